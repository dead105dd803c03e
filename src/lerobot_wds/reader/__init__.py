"""Reader: stream converted shards as LeRobot-exact items (see pipeline.py for the stages)."""

from ..meta import DatasetMeta
from .arena import collate
from .config import ReaderConfig
from .dataset import ShardedLeRobotDataset
from .elasticstate import elastic_state
from .items import Item
from .mixmeta import MixtureMeta
from .mixture import MixedDataset
from .order import WorkerInfo
from .selection import EpisodeInfo

__all__ = [
    "DatasetMeta",
    "EpisodeInfo",
    "Item",
    "MixedDataset",
    "MixtureMeta",
    "ReaderConfig",
    "ShardedLeRobotDataset",
    "WorkerInfo",
    "collate",
    "elastic_state",
]
