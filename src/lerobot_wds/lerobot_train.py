"""Run LeRobot's own ``lerobot-train`` on converted shards, unchanged but for where the data comes from.

    python -m lerobot_wds.lerobot_train --dataset.url=s3://bucket/my_dataset <lerobot-train arguments>

Every argument but ``--dataset.url`` (and the optional ``--wds.<option>=<value>`` reader options of
:class:`~lerobot_wds.reader.config.ReaderConfig`) goes to ``lerobot-train`` as it is. LeRobot stays a
user-installed dependency (``pip install 'lerobot[training]'``); this module imports it only when run.

What is swapped, and nothing else:

- ``make_train_eval_datasets``: a :class:`ShardedLeRobotDataset` with LeRobot's training semantics
  (``delta_timestamps`` from the policy config, ``return_uint8=True``, ``image_transforms``,
  ``tolerance_s``, ``episodes``, ``use_imagenet_stats``, ``eval_split`` per task as LeRobot splits it),
  streamed as one endless sequence of epochs per reader (epoch ``e`` reshuffled by ``(seed, e)``),
  so ``lerobot-train``'s ``cycle(dataloader)`` never restarts it. ``--dataset.streaming=true`` is set
  so that ``lerobot-train`` builds a plain ``DataLoader`` (no sampler) over it.
- Accelerate's data-loader preparation is skipped for our loader: each rank already reads its own
  part (rank and world size come from ``torch.distributed``, which Accelerate starts first), so
  neither dispatching batches from rank 0 nor re-sharding an iterable is wanted. LeRobot's
  pre-processor moves batches to the device.
- ``save_checkpoint`` also writes ``training_state/lerobot_wds.json`` (URL, dataset fingerprint, the
  loader's layout). ``--resume=true`` continues the data exactly where the checkpoint's step left it:
  with ``B`` the batch size and ``N`` workers, worker ``w`` had handed out the batches ``w, w+N, ...``
  below the step (the DataLoader's in-order round robin), ``B`` draws each; it skips those draws, no
  I/O. A resume with another world size, worker count or batch size is refused (the draw counts would
  not add up).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import logging
import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any

from torch.utils.data import IterableDataset

from .reader.config import ReaderConfig
from .reader.dataset import ShardedLeRobotDataset

logger = logging.getLogger(__name__)

STATE_FILE = "lerobot_wds.json"
URL_OPTION = "--dataset.url"
READER_PREFIX = "--wds."
# Set from lerobot-train's own configuration: not to be given as --wds options.
_FROM_TRAIN_CONFIG = frozenset(
    {"delta_timestamps", "episodes", "seed", "return_uint8", "tolerance_s", "image_transforms",
     "batch_size", "drop_last", "rank", "world_size"}
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class LoaderLayout:
    """What the data position of a checkpoint depends on, besides its step."""

    url: str
    fingerprint: str
    batch_size: int
    num_workers: int
    world_size: int

    def refuse_other(self, saved: LoaderLayout, where: Path) -> None:
        for name in ("fingerprint", "batch_size", "num_workers", "world_size"):
            if getattr(saved, name) != getattr(self, name):
                was, now = getattr(saved, name), getattr(self, name)
                raise ValueError(
                    f"{where}: the checkpoint's data position was saved with {name}={was!r}; this run has "
                    f"{name}={now!r}. Resume with the same dataset, batch size, num_workers and processes"
                )


class TrainStream(IterableDataset[dict[str, Any]]):
    """A dataset's items, epoch after epoch without end, from ``start_batches`` batches on (per rank).

    ``lerobot-train`` reads the attributes of LeRobot's dataset that it logs and builds the policy
    from (``meta``, ``num_frames``, ``num_episodes``); they are those of ``dataset``.
    """

    def __init__(self, dataset: ShardedLeRobotDataset, *, batch_size: int, start_batches: int = 0) -> None:
        super().__init__()
        self.dataset = dataset
        self.batch_size = batch_size
        self.start_batches = start_batches

    @property
    def meta(self) -> Any:
        return self.dataset.meta

    @property
    def num_frames(self) -> int:
        return self.dataset.num_frames

    @property
    def num_episodes(self) -> int:
        return self.dataset.num_episodes

    def __iter__(self) -> Iterator[dict[str, Any]]:
        who = self.dataset.worker_info()
        # The DataLoader asks its worker 0 first; after `start_batches` batches the next one was due from
        # worker `start_batches % N`: worker w of this run plays that part, and the others follow in turn.
        who = replace(who, worker=(who.worker + self.start_batches) % who.num_workers)
        draws = batches_handed_out(self.start_batches, who.worker, who.num_workers) * self.batch_size
        epoch = 0
        while True:
            per_epoch = self.dataset.samples_per_reader(who, epoch)
            if per_epoch == 0:
                raise ValueError(
                    f"{self.dataset.url}: reader {who} has no frames in epoch {epoch}: use fewer workers or "
                    f"processes than the {self.dataset.num_frames} frames"
                )
            if draws >= per_epoch:
                draws -= per_epoch
            else:
                yield from self.dataset._open_stream(who, draws=draws, epoch=epoch)
                draws = 0
            epoch += 1


def batches_handed_out(batches: int, worker: int, num_workers: int) -> int:
    """How many of a rank's first ``batches`` came from ``worker``: a DataLoader hands out its workers'
    batches in turn (``0, 1, ..., N-1, 0, ...``) while none is exhausted, and ours never are."""
    return max(0, math.ceil((batches - worker) / num_workers))


def split_episodes_per_task(dataset: ShardedLeRobotDataset, eval_split: float) -> tuple[list[int], list[int]]:
    """LeRobot's ``make_train_eval_datasets`` rule: per task (an episode's first task), the last
    ``ceil(n * eval_split)`` episodes in episode order are held out for evaluation."""
    by_task: dict[int | None, list[int]] = {}
    for entry in dataset.entries:
        task = entry.task_indices[0] if entry.task_indices else None
        by_task.setdefault(task, []).append(entry.episode_index)
    train: list[int] = []
    held_out: list[int] = []
    for episodes in by_task.values():
        n_eval = math.ceil(len(episodes) * eval_split)
        train.extend(episodes[: len(episodes) - n_eval])
        held_out.extend(episodes[len(episodes) - n_eval :])
    if not train:
        raise ValueError(
            f"{dataset.url}: eval_split={eval_split} leaves 0 training episodes of {len(dataset.entries)}"
        )
    return sorted(train), sorted(held_out)


def make_train_eval_datasets(
    cfg: Any, *, url: str | None, reader_options: Mapping[str, Any]
) -> tuple[TrainStream, ShardedLeRobotDataset | None]:
    """Stands in for ``lerobot.datasets.factory.make_train_eval_datasets`` (same argument, same use)."""
    from lerobot.datasets.factory import resolve_delta_timestamps
    from lerobot.transforms import ImageTransforms
    from lerobot.utils.constants import IMAGENET_STATS, TRAINING_STATE_DIR

    saved = _saved_layout(cfg.checkpoint_path / TRAINING_STATE_DIR) if cfg.resume else None
    url = url or (saved.url if saved is not None else None)
    if url is None:
        raise ValueError(f"lerobot_wds.lerobot_train: no dataset; got no {URL_OPTION}=..., expected the URL")
    # The selected episodes and the metadata, read once: delta_timestamps and the eval split come from it.
    probe = ShardedLeRobotDataset(url, episodes=cfg.dataset.episodes, **_storage_keywords(reader_options))
    transforms = cfg.dataset.image_transforms
    common: dict[str, Any] = {
        **reader_options,
        "delta_timestamps": resolve_delta_timestamps(cfg.trainable_config, probe.meta),
        "return_uint8": True,
        "tolerance_s": cfg.tolerance_s,
        "depth_output_unit": cfg.dataset.depth_output_unit,
        "seed": cfg.seed if cfg.seed is not None else 0,
    }
    train_episodes, eval_episodes = cfg.dataset.episodes, None
    if cfg.dataset.eval_split > 0:
        train_episodes, eval_episodes = split_episodes_per_task(probe, cfg.dataset.eval_split)
        logger.info(
            "eval_split=%s: episodes %s held out for evaluation, %d for training",
            cfg.dataset.eval_split, eval_episodes, len(train_episodes),
        )  # fmt: skip
    dataset = ShardedLeRobotDataset(
        url,
        episodes=train_episodes,
        image_transforms=ImageTransforms(transforms) if transforms.enable else None,
        **common,
    )
    layout = LoaderLayout(
        url=url,
        fingerprint=dataset.fingerprint(),
        batch_size=cfg.batch_size,
        num_workers=cfg.num_workers,
        world_size=dataset.worker_info().world_size,
    )
    start = 0
    if saved is not None:
        layout.refuse_other(saved, cfg.checkpoint_path / TRAINING_STATE_DIR / STATE_FILE)
        start = _saved_step(cfg.checkpoint_path / TRAINING_STATE_DIR)
    _LAYOUT[0] = layout
    train = TrainStream(dataset, batch_size=cfg.batch_size, start_batches=start)
    held_out = None
    if eval_episodes:
        held_out = ShardedLeRobotDataset(url, episodes=eval_episodes, shuffle=False, **common)
    if cfg.dataset.use_imagenet_stats:
        stats = dataset.meta.stats
        for key in dataset.meta.camera_keys:
            if key not in dataset.meta.depth_keys:
                stats[key] = {**stats.get(key, {}), **_imagenet_stats(IMAGENET_STATS)}
    return train, held_out


_LAYOUT: list[LoaderLayout | None] = [None]  # the run's layout, written beside each checkpoint

SUPPORTED_LEROBOT = "0.6.1"
# What `install` replaces or calls, with the leading parameters it relies on, as in LeRobot 0.6.1 (and
# accelerate 1.x). LeRobot's main branch (0.6.2.dev, 2026-08) has no `load_training_step` and builds its
# Accelerator in `lerobot.distributed.make_accelerator`: refused by this check, not supported.
_EXPECTED_SIGNATURES: dict[str, tuple[str, ...]] = {
    "lerobot.scripts.lerobot_train.make_train_eval_datasets": ("cfg",),
    "lerobot.scripts.lerobot_train.save_checkpoint": ("checkpoint_dir", "step", "cfg", "policy", "optimizer"),
    "lerobot.scripts.lerobot_train.main": (),
    "lerobot.common.train_utils.load_training_step": ("save_dir",),
    "accelerate.Accelerator.prepare_data_loader": ("self", "data_loader"),
}


def check_lerobot(modules: Mapping[str, Any], version: str) -> None:
    """Refuse, with one message naming every difference, a LeRobot whose patched names differ from 0.6.1's.

    ``modules``: the modules by name (``lerobot.scripts.lerobot_train``, ``lerobot.common.train_utils``,
    ``accelerate``; None where it cannot be imported). A parameter list must start with the expected
    names; more parameters after them are fine.
    """
    problems = []
    for qualified, expected in _EXPECTED_SIGNATURES.items():
        module_name = next(
            name for name in sorted(modules, key=len, reverse=True) if qualified.startswith(name + ".")
        )
        found: Any = modules[module_name]
        for attribute in qualified[len(module_name) + 1 :].split("."):
            found = getattr(found, attribute, None)
        if not callable(found):
            problems.append(f"{qualified} is missing")
            continue
        parameters = tuple(inspect.signature(found).parameters)
        if parameters[: len(expected)] != expected:
            problems.append(f"{qualified}{tuple(parameters)}; expected parameters starting {expected}")
    if problems:
        raise SystemExit(
            f"lerobot_wds.lerobot_train: LeRobot {version} is not supported; this runner patches LeRobot "
            f"{SUPPORTED_LEROBOT}'s lerobot-train, and here "
            + "; ".join(problems)
            + f". Install lerobot=={SUPPORTED_LEROBOT}"
        )


def _imagenet_stats(imagenet: Mapping[str, Any]) -> dict[str, Any]:
    import torch

    return {name: torch.tensor(values, dtype=torch.float32) for name, values in imagenet.items()}


def _storage_keywords(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: options[key] for key in ("storage_options", "retry") if key in options}


def _saved_layout(state_dir: Path) -> LoaderLayout:
    path = state_dir / STATE_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: missing; this checkpoint was not written by lerobot_wds.lerobot_train, so its data "
            "position is unknown"
        )
    return LoaderLayout(**json.loads(path.read_text()))


def _saved_step(state_dir: Path) -> int:
    from lerobot.common.train_utils import load_training_step

    return int(load_training_step(state_dir))


def _save_checkpoint(original: Any, checkpoint_dir: Path, *args: Any, **kwargs: Any) -> None:
    from lerobot.utils.constants import TRAINING_STATE_DIR

    original(checkpoint_dir, *args, **kwargs)
    layout = _LAYOUT[0]
    if layout is not None:
        path = Path(checkpoint_dir) / TRAINING_STATE_DIR / STATE_FILE
        path.write_text(json.dumps({f.name: getattr(layout, f.name) for f in fields(layout)}, indent=2))


def _accelerator_leaving_our_loaders(accelerator_class: type) -> type:
    """Accelerate's ``Accelerator``, except that a DataLoader over a :class:`TrainStream` is returned as
    it is (each rank reads its own part already)."""

    class Accelerator(accelerator_class):
        def prepare_data_loader(self, data_loader: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(getattr(data_loader, "dataset", None), (TrainStream, ShardedLeRobotDataset)):
                return data_loader
            return super().prepare_data_loader(data_loader, *args, **kwargs)

    return Accelerator


def parse_arguments(argv: Sequence[str]) -> tuple[str | None, dict[str, Any], list[str]]:
    """``(url, reader options, lerobot-train's arguments)`` from the command line."""
    url = None
    options: dict[str, Any] = {}
    rest: list[str] = []
    known = {f.name for f in fields(ReaderConfig)} - _FROM_TRAIN_CONFIG
    for argument in argv:
        if argument.startswith(URL_OPTION + "="):
            url = argument.split("=", 1)[1]
        elif argument.startswith(READER_PREFIX):
            name, sep, value = argument[len(READER_PREFIX) :].partition("=")
            if not sep or name not in known:
                raise ValueError(
                    f"lerobot_wds.lerobot_train: unknown reader option {argument!r}; expected "
                    f"{READER_PREFIX}<option>=<value> with an option of {sorted(known)}"
                )
            options[name] = _parse_value(value)
        else:
            rest.append(argument)
    return url, options, rest


def _parse_value(value: str) -> Any:
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def install(url: str | None, reader_options: Mapping[str, Any]) -> None:
    """Swap LeRobot's dataset construction, Accelerate's loader preparation and checkpoint saving in the
    running ``lerobot.scripts.lerobot_train`` for ours."""
    import accelerate
    from lerobot.scripts import lerobot_train

    lerobot_train.make_train_eval_datasets = partial(
        make_train_eval_datasets, url=url, reader_options=dict(reader_options)
    )
    lerobot_train.save_checkpoint = partial(_save_checkpoint, lerobot_train.save_checkpoint)
    accelerate.Accelerator = _accelerator_leaving_our_loaders(accelerate.Accelerator)


def _module_or_none(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def main(argv: Sequence[str] | None = None) -> None:
    url, options, rest = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:
        from lerobot.scripts import lerobot_train
    except ImportError as error:
        raise SystemExit(
            f"lerobot_wds.lerobot_train: LeRobot is not installed ({error}); pip install 'lerobot[training]'"
        ) from error
    modules = {name: _module_or_none(name) for name in ("lerobot.common.train_utils", "accelerate")}
    check_lerobot(
        {"lerobot.scripts.lerobot_train": lerobot_train, **modules}, importlib.metadata.version("lerobot")
    )
    install(url, options)
    named = any(argument.startswith("--dataset.repo_id") for argument in rest)
    defaults = [] if named else ["--dataset.repo_id=lerobot_wds"]  # required by LeRobot, used for logs only
    sys.argv = [sys.argv[0], *defaults, *rest, "--dataset.streaming=true"]
    lerobot_train.main()


if __name__ == "__main__":
    main()
