"""The shard tasks on many machines, through datatrove's own executors: SLURM job arrays and Ray.

Every route runs the same :class:`~lerobot_wds.converter.executor.ShardTask` (task ``rank`` writes the
plan's shard ``rank``) and ends with :func:`~lerobot_wds.converter.finalize.finalize`, so the bytes are
the same whichever executor ran the tasks. The tasks need the source at the same location on every
machine (a shared folder, or the same Hub repo) and the destination reachable from all of them.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import storage
from . import workdir
from .executor import ShardTask, datatrove_folder
from .plan import ShardPlan
from .shards import VideoOptions
from .source import LeRobotSource

SLURM_SCRIPT = "launch_script.slurm"  # datatrove's name for its array job's script, in its logging dir
FINALIZE_SCRIPT = "finalize.slurm"  # the dependent job that publishes meta/ and the manifest


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmConfig:
    """Options of :func:`submit_slurm`: the SLURM job array that writes the shards, one task per shard.

    Defaults are datatrove's (``SlurmPipelineExecutor``) unless said otherwise.
    """

    partition: str
    time: str = "04:00:00"  # per array task; a 256 MB shard takes seconds to minutes (BENCHMARKS.md)
    cpus_per_task: int = 1  # a shard task is one sequential demux + tar write
    mem_per_cpu_gb: int = 2
    max_array_size: int = 1001  # your cluster's MaxArraySize (`scontrol show config`); more: several arrays
    workers: int = -1  # array tasks running at once (`--array=0-N%workers`); -1: no limit
    job_name: str = "lerobot-wds"
    logs_dir: str | None = None  # SLURM's own log files (a local path); None: datatrove's default
    # shell line(s) run before the task, e.g. "source /shared/venv/bin/activate"; None: the python running
    # this submission must exist at the same path on the nodes
    env_command: str | None = None
    submit: bool = True  # False: write the scripts and the work folder, submit nothing (then: sbatch them)

    def __post_init__(self) -> None:
        if not self.partition:
            raise ValueError("SlurmConfig.partition: got an empty name; expected a SLURM partition")
        if self.cpus_per_task < 1 or self.mem_per_cpu_gb < 1:
            raise ValueError(
                f"SlurmConfig: cpus_per_task {self.cpus_per_task}, mem_per_cpu_gb {self.mem_per_cpu_gb}; "
                "expected >= 1"
            )
        if self.max_array_size < 1 or self.workers == 0 or self.workers < -1:
            raise ValueError(
                f"SlurmConfig: max_array_size {self.max_array_size}, workers {self.workers}; "
                "expected max_array_size >= 1 and workers >= 1 or -1"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SlurmJobs:
    """What :func:`submit_slurm` submitted (or, with ``submit=False``, wrote)."""

    array_script: str | None  # URL of datatrove's array job script; None: nothing to convert
    finalize_script: str | None  # URL of the dependent finalize job's script
    array_job_id: str | None  # None when not submitted
    finalize_job_id: str | None
    num_tasks: int  # array tasks still to run (finished shards are skipped)


def _slurm_executor(
    task: ShardTask, num_shards: int, dest: str, slurm: SlurmConfig, opts: Mapping[str, Any]
) -> Any:
    from datatrove.executor import SlurmPipelineExecutor

    return SlurmPipelineExecutor(
        pipeline=[task],
        tasks=num_shards,
        time=slurm.time,
        partition=slurm.partition,
        cpus_per_task=slurm.cpus_per_task,
        mem_per_cpu_gb=slurm.mem_per_cpu_gb,
        workers=slurm.workers,
        job_name=slurm.job_name,
        env_command=slurm.env_command or f"export PATH={shlex.quote(str(Path(sys.executable).parent))}:$PATH",
        max_array_size=slurm.max_array_size,
        logging_dir=datatrove_folder(dest, opts),
        slurm_logs_folder=slurm.logs_dir,
    )


def submit_shard_tasks_slurm(
    lerobot: LeRobotSource,
    dest: str,
    plans: list[ShardPlan],
    video: VideoOptions,
    storage_options: Mapping[str, Any],
    slurm: SlurmConfig,
) -> SlurmJobs:
    """Submit the shard tasks as datatrove's SLURM job array, then ``lerobot-wds finalize`` after it."""
    from datatrove.executor.slurm import launch_slurm_job

    if storage_options:
        raise ValueError(
            "--executor slurm: storage options would be written into the job's pickled pipeline on disk; "
            "got some, expected none: give the nodes their credentials through the environment instead"
        )
    task = ShardTask(lerobot, dest, plans, video, {}, progress_dir=None)
    executor = _slurm_executor(task, len(plans), dest, slurm, storage_options)
    folder = executor.logging_dir
    finalize_args = {
        **executor.get_sbatch_args(),
        "job-name": f"{slurm.job_name}-finalize",
        "cpus-per-task": 1,
        "time": "01:00:00",  # reads one index file per shard, writes the manifest
    }
    finalize_args.pop("array", None)
    finalize_command = f"{shlex.quote(sys.executable)} -m lerobot_wds.cli finalize {shlex.quote(dest)}"
    finalize_script = executor.get_launch_file_contents(finalize_args, finalize_command)
    with folder.open(FINALIZE_SCRIPT, "w") as f:
        f.write(finalize_script)
    remaining = len(executor.get_incomplete_ranks())
    urls = (
        storage.join(workdir.datatrove_url(dest), SLURM_SCRIPT),
        storage.join(workdir.datatrove_url(dest), FINALIZE_SCRIPT),
    )
    if not slurm.submit:
        _write_array_script(executor)
        return SlurmJobs(
            array_script=urls[0],
            finalize_script=urls[1],
            array_job_id=None,
            finalize_job_id=None,
            num_tasks=remaining,
        )
    executor.run()  # datatrove: pickles the pipeline, writes launch_script.slurm, calls sbatch
    dependency = [f"--dependency=afterok:{executor.job_id}"] if executor.job_id not in (None, -1) else []
    finalize_id = launch_slurm_job(finalize_script, executor.job_id_retriever, *dependency)
    return SlurmJobs(
        array_script=urls[0],
        finalize_script=urls[1],
        array_job_id=None if executor.job_id == -1 else str(executor.job_id),
        finalize_job_id=str(finalize_id),
        num_tasks=remaining,
    )


def _write_array_script(executor: Any) -> None:
    """What datatrove's ``launch_job`` writes before it calls sbatch: the pickled pipeline, the ranks to
    run and the array script (its own methods build each; only the sbatch call is left out)."""
    import json

    import dill
    from dill import CONTENTS_FMODE

    ranks = executor.get_incomplete_ranks()
    with executor.logging_dir.open("executor.pik", "wb") as f:
        dill.dump(executor, f, fmode=CONTENTS_FMODE)
    executor.save_executor_as_json()
    with executor.logging_dir.open("ranks_to_run.json", "w") as f:
        json.dump(ranks, f)
    array = min(len(ranks), executor.max_array_size) if ranks else 1
    pickled = executor.logging_dir.resolve_paths("executor.pik")
    script = executor.get_launch_file_contents(
        executor.get_sbatch_args(array),
        f"srun  -l -n {executor.nodes_per_task} launch_pickled_pipeline {pickled}",
    )
    with executor.logging_dir.open(SLURM_SCRIPT, "w") as f:
        f.write(script)


def run_shard_tasks_ray(
    lerobot: LeRobotSource,
    dest: str,
    plans: list[ShardPlan],
    video: VideoOptions,
    storage_options: Mapping[str, Any],
    address: str | None,
    workers: int,
) -> None:
    """Run the shard tasks with datatrove's RayPipelineExecutor and wait for them.

    ``address``: an existing cluster (``ray://host:10001`` or ``host:6379``); None: the one ``RAY_ADDRESS``
    names, else a local instance of ``workers`` CPUs started here (and stopped after).
    """
    try:
        import ray
    except ImportError as exc:
        raise ValueError(
            "--executor ray: Ray is not installed; expected `pip install 'lerobot-wds[ray]'`"
        ) from exc
    from datatrove.executor.ray import RayPipelineExecutor

    started_here = not ray.is_initialized()
    if started_here and address is None and "RAY_ADDRESS" not in os.environ:
        # "local": always a new instance (ray.init() alone would join whatever cluster
        # /tmp/ray/ray_current_cluster names, even a dead one)
        ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    elif started_here:
        try:
            ray.init(address=address, log_to_driver=False)
        except Exception as exc:  # ConnectionError, ray's AuthenticationError, ...: one line for the CLI
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(
                f"--ray-address {address or os.environ.get('RAY_ADDRESS')}: cannot connect to the Ray "
                f"cluster; {type(exc).__name__}: {first_line}"
            ) from exc
    try:
        executor = RayPipelineExecutor(
            pipeline=[ShardTask(lerobot, dest, plans, video, storage_options, progress_dir=None)],
            tasks=len(plans),
            workers=-1,
            logging_dir=datatrove_folder(dest, storage_options),
            cpus_per_task=1,
            mem_per_cpu_gb=1,  # measured: a part writing g1 (one 31 MB shard) peaks at 403 MB RSS
        )
        executor.run()
    finally:
        if started_here:
            ray.shutdown()
