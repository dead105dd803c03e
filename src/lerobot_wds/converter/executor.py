"""datatrove, kept in one place: one task per planned shard (write + publish), its executor and progress."""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import tempfile
import threading
import time
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from datatrove.executor import LocalPipelineExecutor
from datatrove.io import DataFolder
from datatrove.pipeline.base import PipelineStep
from datatrove.utils import logging as dt_logging
from loguru import logger as loguru_logger  # datatrove's logger

from .. import format as fmt
from .. import storage
from ..orphans import watch_parent
from . import workdir
from .plan import ShardPlan
from .remote import TaskReads
from .shards import VideoOptions, write_shard
from .source import LeRobotSource

T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertProgress:
    """Cumulative progress, reported about twice a second."""

    num_episodes: int  # episodes written so far
    num_frames: int  # their frames
    bytes_written: int
    total_episodes: int  # episodes this conversion writes


def completion_url(dest: str, rank: int) -> str:
    """datatrove's marker of a finished task (``<logging dir>/completions/<rank>``); rank = position of
    the shard in the plan (= its shard index, except in an update, whose shards follow the old ones)."""
    return storage.join(workdir.datatrove_url(dest), "completions", f"{rank:05d}")


class ShardTask(PipelineStep):
    """datatrove step: task ``rank`` writes shard ``rank`` and publishes it with its index entry."""

    name = "lerobot-wds shard"
    type = "convert"

    def __init__(
        self,
        lerobot: LeRobotSource,
        dest: str,
        plans: list[ShardPlan],
        video: VideoOptions,
        storage_options: Mapping[str, Any],
        progress_dir: str | None,
    ) -> None:
        super().__init__()
        self.lerobot = lerobot
        self.dest = dest
        self.plans = plans
        self.opts = storage.HiddenOptions(storage_options)  # never in datatrove's executor.json
        self.video = video
        self.progress_dir = progress_dir
        # A Hub destination's staging folder (converter/hub.py uploads and deletes finished shards): a task
        # starts writing only while fewer than this many finished shards wait there
        self.max_staged_shards: int | None = None

    def run(self, data: Any, rank: int = 0, world_size: int = 1) -> Iterator[Any]:
        if self.progress_dir is None:  # on a cluster node: stage in a folder of this task's own
            local = workdir.staging_url(self.dest) if storage.is_local(self.dest) else None
            if local is not None:
                Path(local).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix="lerobot-wds-", dir=local) as folder:
                self._write(rank, Path(folder))
        else:
            self._write(rank, Path(self.progress_dir))
        yield from ()

    def _write(self, rank: int, folder: Path) -> None:
        plan = self.plans[rank]
        if self.lerobot.remote is None:
            self._write_shard(self.lerobot, plan, rank, folder)
            return
        # A remote source: this task reads its own episodes' bytes only, by ranged GETs
        reads = TaskReads(self.lerobot.remote)
        try:
            self._write_shard(self.lerobot.with_reads(reads), plan, rank, folder)
        finally:
            self.stat_update("source_downloaded_bytes", value=reads.downloaded_bytes)  # datatrove's stats
            self.stat_update("source_requests", value=reads.num_requests)

    def _write_shard(self, lerobot: LeRobotSource, plan: ShardPlan, rank: int, folder: Path) -> None:
        staging = folder / f"shard-{plan.shard_index:06d}.tar.partial"
        if self.max_staged_shards is not None:
            wait_for_staging_room(Path(self.dest), self.max_staged_shards)
        with open(folder / f"task-{rank:05d}.log", "a") as log:

            def on_episode(episode_index: int, frames: int, size: int) -> None:
                log.write(f"{episode_index} {frames} {size}\n")
                log.flush()
                self.stat_update("episodes")
                self.stat_update("frames", value=frames)

            written = write_shard(lerobot, plan, staging, on_episode, self.video)
        storage.move_file(str(staging), storage.join(self.dest, plan.path), self.opts.options)
        workdir.write_index(self.dest, plan.shard_index, written, self.opts.options)


def wait_for_staging_room(dest: Path, max_staged_shards: int, poll_s: float = 0.2) -> None:
    """Block while ``dest`` holds ``max_staged_shards`` finished shards or more (an uploader deletes them
    as it uploads them); raise if the uploader stopped (its error is in the work folder)."""
    failed = Path(workdir.upload_failed_url(str(dest)))
    while len(list((dest / fmt.SHARD_DIR).glob("*.tar"))) >= max_staged_shards:
        if failed.is_file():
            raise RuntimeError(f"{dest}: uploading stopped; {failed.read_text()}")
        time.sleep(poll_s)


def datatrove_folder(dest: str, storage_options: Mapping[str, Any]) -> DataFolder:
    """datatrove's logging dir: its completion markers live beside the shards, reached with the same
    storage options."""
    fs, path = storage.url_to_fs(workdir.datatrove_url(dest), storage_options)
    return DataFolder(path, fs=fs)


class _QuietExecutor(LocalPipelineExecutor):
    """datatrove logs every task to stderr at INFO; keep that in its per-task log files only.

    datatrove has no public hook around a task, and a spawned task process runs nothing of ours before
    it: this overrides the private ``_launch_run_for_rank`` (the one call each task runs through), for
    the datatrove range pinned in pyproject.toml; tests/converter/test_executor.py fails loudly when its
    signature or the logging module it relies on change.
    """

    def _launch_run_for_rank(self, *args: Any, **kwargs: Any) -> Any:
        with quiet_datatrove():
            if self.workers > 1:  # a spawned process of datatrove's pool: a stack of its own already
                return super()._launch_run_for_rank(*args, **kwargs)
            return _on_a_stack_of_its_own(
                lambda: super(_QuietExecutor, self)._launch_run_for_rank(*args, **kwargs)
            )


@contextlib.contextmanager
def quiet_datatrove() -> Iterator[None]:
    """Point datatrove's loggers at ``os.devnull`` instead of stderr while its tasks run.

    datatrove adds its stderr sinks with ``sys.stderr`` as its own logging module sees it: that module's
    ``sys`` is swapped, not the process's ``sys.stderr`` (a ``redirect_stderr`` would swallow every
    thread's stderr while a ``workers=1`` conversion runs in its thread). Afterwards datatrove's default
    logger is set up again on the stderr it had before (the real one, outside any other such block).
    """
    previous = dt_logging.sys  # nested (a task inside a run): the outer run's devnull
    with open(os.devnull, "w") as devnull:
        dt_logging.sys = types.SimpleNamespace(stderr=devnull)
        try:
            yield
        finally:
            dt_logging.sys = previous
            dt_logging.setup_default_logger()  # its sink: the stderr of `previous`


def run_shard_tasks(
    lerobot: LeRobotSource,
    dest: str,
    plans: list[ShardPlan],
    video: VideoOptions,
    storage_options: Mapping[str, Any],
    workers: int,
    on_progress: Callable[[ConvertProgress], None] | None,
    total_episodes: int,
    ranks: range | None = None,
    max_staged_shards: int | None = None,
) -> None:
    """Write the planned shards at positions ``ranks`` (default: all) as datatrove tasks on this machine;
    finished ones are skipped by datatrove's completion markers."""
    ranks = range(len(plans)) if ranks is None else ranks
    if not ranks:
        return
    # Staging sits beside a local destination (so publishing is a rename) or in a temp dir for buckets.
    local_work = workdir.staging_url(dest) if storage.is_local(dest) else None
    if local_work is not None:
        Path(local_work).mkdir(parents=True, exist_ok=True)
    progress_dir = tempfile.mkdtemp(prefix="lerobot-wds-", dir=local_work)
    task = ShardTask(lerobot, dest, plans, video, storage_options, progress_dir)
    task.max_staged_shards = max_staged_shards
    executor = _QuietExecutor(
        pipeline=[task],
        tasks=len(plans),
        workers=min(workers, len(ranks)),
        logging_dir=datatrove_folder(dest, storage_options),
        start_method="spawn",
        local_tasks=len(ranks),
        local_rank_offset=ranks.start,
    )
    stop = threading.Event()
    monitor = threading.Thread(
        target=_report_progress, args=(Path(progress_dir), on_progress, total_episodes, stop), daemon=True
    )
    if on_progress is not None:
        monitor.start()
    try:
        _run_isolated(executor)
    finally:
        stop.set()
        if monitor.is_alive():
            monitor.join()
        shutil.rmtree(progress_dir, ignore_errors=True)


def _run_executor(executor: LocalPipelineExecutor) -> None:
    global _forks_watch_parent
    # datatrove forks (its Manager server, whatever the worker count). Garbage of the caller's that owns
    # FFmpeg threads (a PyAV container or frame converter not yet collected) must be freed here, where
    # those threads exist: freed by a collection in the forked child, it waits on their condition
    # variables forever, and the conversion with it.
    gc.collect()
    _forks_watch_parent = True
    try:
        with quiet_datatrove():  # datatrove's loguru summary; its log files keep it
            executor.run()
    finally:
        _forks_watch_parent = False


# datatrove's LocalPipelineExecutor forks a multiprocess Manager server that serves until told to stop:
# a conversion killed without cleanup (SIGKILL of a `--task-index` part, a crash) left it running for
# good. Processes forked while the executor runs end when the converting process is gone.
_forks_watch_parent = False


def _watch_parent_after_fork() -> None:
    if _forks_watch_parent:
        watch_parent(os.getppid())


os.register_at_fork(after_in_child=_watch_parent_after_fork)


def _run_isolated(executor: LocalPipelineExecutor) -> None:
    """Run the shard tasks; each task's run holds none of the caller's variables on its stack.

    datatrove logs a failing task's traceback with loguru's ``diagnose``, which prints the local
    variables of every frame up the stack: run on the caller's stack, that would put its variables
    (storage options, tokens) into the task logs. With ``workers > 1`` datatrove's pool runs each task
    in a spawned process; with ``workers=1`` each task runs in a thread of its own
    (:meth:`QuietExecutor._launch_run_for_rank`: no new process, so scripts without an
    ``if __name__ == "__main__"`` guard keep working). The executor itself runs on the caller's thread:
    it forks (datatrove's Manager server), and a fork from another thread would free, in the child,
    what only the caller's thread holds (its frames, its thread-locals), FFmpeg objects among them,
    whose threads the child does not have: freeing them there waits forever.
    """
    if executor.workers > 1:
        # The tasks log in their own processes; this one logs a stats summary to the stderr sink that
        # datatrove added when it was imported, before quiet_datatrove: silenced here instead.
        loguru_logger.disable("datatrove")
        try:
            _run_executor(executor)
        finally:
            loguru_logger.enable("datatrove")
        return
    _run_executor(executor)


def _on_a_stack_of_its_own(call: Callable[[], T]) -> T:
    """``call()`` in a new thread (a stack of its own), its result or exception returned here."""
    results: list[Any] = []
    failures: list[BaseException] = []

    def target() -> None:
        try:
            results.append(call())
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=target, name="lerobot-wds-convert")
    thread.start()
    thread.join()
    if failures:
        raise failures[0]
    return results[0]


def _report_progress(
    progress_dir: Path,
    on_progress: Callable[[ConvertProgress], None],
    total_episodes: int,
    stop: threading.Event,
) -> None:
    while True:
        stopping = stop.wait(0.5)
        num_episodes = num_frames = size = 0
        for log in progress_dir.glob("task-*.log"):
            for line in log.read_text().splitlines():
                parts = line.split()  # "<episode_index> <num_frames> <bytes>", one line per episode
                if len(parts) == 3:
                    num_episodes += 1
                    num_frames += int(parts[1])
                    size += int(parts[2])
        on_progress(
            ConvertProgress(
                num_episodes=num_episodes,
                num_frames=num_frames,
                bytes_written=size,
                total_episodes=total_episodes,
            )
        )
        if stopping:
            return
