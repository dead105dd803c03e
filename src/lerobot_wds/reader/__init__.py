"""Reader: stream converted shards as LeRobot-exact items (plan -> episodes -> pool -> windows -> decode)."""

from .dataset import DatasetMeta, ReaderConfig, ShardedLeRobotDataset
from .order import WorkerInfo

__all__ = ["DatasetMeta", "ReaderConfig", "ShardedLeRobotDataset", "WorkerInfo"]
