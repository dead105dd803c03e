"""``convert``: LeRobot v3 source -> shard tasks (datatrove) -> meta files -> manifest, last."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import format as fmt
from .. import storage
from .check import LEVELS, CheckReport, check_opened
from .cluster import SlurmConfig, SlurmJobs, run_shard_tasks_ray, submit_shard_tasks_slurm
from .executor import ConvertProgress, completion_url, run_shard_tasks
from .finalize import existing_manifest, finalize
from .hub import HubTarget, ShardUploader, hf_api, hub_target, stage_update
from .keptmeta import kept_meta
from .plan import ConversionPlan, ShardPlan, plan_episodes, plan_shards
from .reencode import VCODECS
from .shards import VideoOptions
from .source import LeRobotSource, SourceEpisode, open_source
from .update import check_same, update_episodes
from .workdir import WorkPlan, published_sha256, read_index, read_plan, source_meta_url, work_url, write_plan

logger = logging.getLogger(__name__)

# 256 MB: one sequential GET per shard reaches full object-store throughput (first-byte latency
# of ~50 ms is <2% of a 256 MB read at 100 MB/s) while a DROID-size dataset stays at ~10k objects.
DEFAULT_SHARD_SIZE_MB = 256.0
# hf://datasets destinations: finished shards waiting for upload in staging before tasks pause; staging
# holds at most this many plus one per worker being written (4 x 256 MB: about a GB of disk, enough for
# the uploader to stay busy: bench_hub_staging.py peaked at 3 with 1 worker).
DEFAULT_HUB_STAGED_SHARDS = 4
EXECUTORS = ("local", "ray")  # that convert() runs and waits for; SLURM jobs are submitted: submit_slurm()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertConfig:
    """Options of :func:`convert`.

    Only ``episodes`` and ``shard_size_mb`` shape the output bytes; they are recorded in the manifest
    and a destination converted with other values is refused.
    """

    episodes: tuple[int, ...] | None = None  # None: every episode
    shard_size_mb: float = DEFAULT_SHARD_SIZE_MB  # see DEFAULT_SHARD_SIZE_MB
    workers: int = 1  # parallel shard tasks (processes when > 1)
    revision: str | None = None  # Hub revision of the source
    overwrite: bool = False  # delete whatever the destination holds and start over
    # "copy" keeps the source bytes (pixel-identical); "h264"/"hevc" re-encode each segment once, for
    # decoders without AV1 (NVDEC on A100/H100). crf: constant quality of that re-encode (x264 default).
    vcodec: str = "copy"
    crf: int = 23
    # where the shard tasks run: "local" (datatrove's LocalPipelineExecutor, `workers` processes) or
    # "ray" (datatrove's RayPipelineExecutor; extra `ray`) on the cluster at `ray_address` (None: the
    # RAY_ADDRESS environment variable, else a local Ray instance). SLURM: see submit_slurm().
    executor: str = "local"
    ray_address: str | None = None
    # hf://datasets destinations convert here first, shards uploaded and deleted as they are finished
    # (converter/hub.py); None: ~/.cache/lerobot-wds/staging/<owner>--<name>[--prefix]
    staging_dir: str | None = None
    hub_staged_shards: int = DEFAULT_HUB_STAGED_SHARDS  # see DEFAULT_HUB_STAGED_SHARDS
    # for the destination's fsspec filesystem; repr=False keeps credentials out of logs and tracebacks
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # A remote source (s3://..., hf://datasets/..., owner/name): its fsspec options, and where planning
    # puts its temporary copy of meta/ (None: ~/.cache/lerobot-wds/source); tasks read by byte ranges
    source_storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)
    cache_dir: str | None = None
    # Convert every selected episode that the checks run first (lerobot-wds check) find no error in, and
    # list the others in the manifest with why; False: any error stops the conversion before it writes.
    skip_bad_episodes: bool = False
    # How far the checks run before planning go (converter/check.py LEVELS). None: "videos" for a local
    # source (each mp4's index: its header when the stream has no B-frames, else a demux of its packets),
    # "meta" for a remote one (only meta/ and file listings: the shard tasks read its files by byte ranges).
    # "meta"/"rows" spare a large local source with B-frame videos a second read of them; the shard tasks
    # still refuse what they cannot copy.
    check_level: str | None = None

    def __post_init__(self) -> None:
        if self.hub_staged_shards < 1:
            raise ValueError(f"ConvertConfig.hub_staged_shards: got {self.hub_staged_shards}; expected >= 1")
        if self.shard_size_mb <= 0:
            raise ValueError(f"ConvertConfig.shard_size_mb: got {self.shard_size_mb}; expected > 0")
        if self.workers < 1:
            raise ValueError(f"ConvertConfig.workers: got {self.workers}; expected >= 1")
        if self.vcodec not in VCODECS:
            raise ValueError(f"ConvertConfig.vcodec: got {self.vcodec!r}; expected one of {list(VCODECS)}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"ConvertConfig.crf: got {self.crf}; expected 0..51")
        if self.executor not in EXECUTORS:
            raise ValueError(
                f"ConvertConfig.executor: got {self.executor!r}; expected one of {list(EXECUTORS)}"
            )
        if self.check_level not in (None, *LEVELS):
            raise ValueError(
                f"ConvertConfig.check_level: got {self.check_level!r}; expected None or one of {list(LEVELS)}"
            )
        if self.episodes is not None and not self.episodes:
            raise ValueError("ConvertConfig.episodes: got an empty selection; expected None (all) or indices")

    def shaping_options(self) -> dict[str, Any]:
        """The options that change the output bytes (recorded in the manifest)."""
        episodes = sorted(set(self.episodes)) if self.episodes is not None else None
        video = {"vcodec": self.vcodec} | ({"crf": self.crf} if self.vcodec != "copy" else {})
        return {"episodes": episodes, "shard_size_mb": self.shard_size_mb, **video}

    def video_options(self) -> VideoOptions:
        return VideoOptions(vcodec=self.vcodec, crf=self.crf)

    @property
    def shard_size_bytes(self) -> int:
        return round(self.shard_size_mb * 1e6)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConvertResult:
    manifest: fmt.Manifest
    dest: str
    elapsed_s: float
    source_bytes: int  # source data + video bytes that the converted episodes account for
    # not written by this run: finished by an interrupted one (kept after a checksum check), or already
    # in the destination's manifest (an update keeps them untouched)
    shards_skipped: int
    checked: CheckReport | None = None  # what the checks run before planning found (warnings included)

    @property
    def overhead(self) -> float:
        """Shard bytes over source bytes, minus one (0.03 = 3% larger than the source)."""
        return self.manifest.total_bytes / max(self.source_bytes, 1) - 1.0


def convert(
    source: str,
    dest: str,
    config: ConvertConfig | None = None,
    *,
    on_progress: Callable[[ConvertProgress], None] | None = None,
) -> ConvertResult:
    """Convert a LeRobot v3 dataset into self-contained episode shards.

    Runs every shard task (on this machine, or on a Ray cluster with ``executor="ray"``), then
    :func:`~lerobot_wds.converter.finalize.finalize`. Converting again after the source gained episodes
    appends shards for the new episodes only (an update: the manifest's ``generation`` grows by one).

    Args:
        source: a local LeRobot v3 folder, a Hub dataset repo id (``owner/name``) or a URL
            (``hf://datasets/owner/name``, ``s3://bucket/prefix``): each shard task reads its own
            episodes' bytes only, by ranged reads (converter/remote.py).
        dest: a local folder or any fsspec URL (``s3://bucket/prefix``, ``hf://...``).
        config: see :class:`ConvertConfig`.
        on_progress: called from a helper thread with cumulative :class:`ConvertProgress`.

    Example:
        >>> from lerobot_wds import ConvertConfig, convert
        >>> result = convert("tests/data/tiny", "/tmp/tiny-wds", ConvertConfig(shard_size_mb=64))
        >>> result.manifest.num_episodes
        6
    """
    config = config or ConvertConfig()
    target = hub_target(dest)
    if target is not None:
        return _convert_to_hub(source, dest, target, config, on_progress)
    return _convert(source, dest, config, on_progress)


def _convert(
    source: str,
    dest: str,
    config: ConvertConfig,
    on_progress: Callable[[ConvertProgress], None] | None,
    max_staged_shards: int | None = None,
) -> ConvertResult:
    started = time.perf_counter()
    opts = config.storage_options
    prepared = _prepare(source, dest, config)
    if prepared.work is not None:
        work = prepared.work
        total = sum(len(shard.episodes) for shard in work.shards)
        lerobot, video = prepared.plan.source, config.video_options()
        if config.executor == "ray":
            run_shard_tasks_ray(
                lerobot, dest, list(work.shards), video, opts, config.ray_address, config.workers
            )
        else:
            run_shard_tasks(
                lerobot, dest, list(work.shards), video, opts, config.workers, on_progress, total,
                max_staged_shards=max_staged_shards,
            )  # fmt: skip
    manifest = finalize(dest, opts)
    return ConvertResult(
        manifest=manifest,
        dest=dest,
        elapsed_s=time.perf_counter() - started,
        source_bytes=prepared.plan.source_bytes,
        shards_skipped=prepared.resumed + prepared.base_shards,
        checked=prepared.plan.checked,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class PartResult:
    """What :func:`convert_part` did: its slice of the plan's shards."""

    dest: str
    task_index: int
    tasks: int
    shards: list[str]  # paths of the shards this part owns (written now or kept from an earlier run)
    shards_skipped: int  # of those, finished in an earlier run and kept after a checksum check
    elapsed_s: float


def part_shards(num_shards: int, tasks: int, task_index: int) -> range:
    """Positions in the plan of the shards part ``task_index`` of ``tasks`` writes: a contiguous slice."""
    if tasks < 1 or not 0 <= task_index < tasks:
        raise ValueError(
            f"--tasks/--task-index: got {tasks}/{task_index}; expected tasks >= 1, 0 <= index < tasks"
        )
    return range(num_shards * task_index // tasks, num_shards * (task_index + 1) // tasks)


def convert_part(
    source: str,
    dest: str,
    config: ConvertConfig | None = None,
    *,
    tasks: int,
    task_index: int,
    on_progress: Callable[[ConvertProgress], None] | None = None,
) -> PartResult:
    """Write one slice of the plan's shards: no scheduler, no ``meta/``, no manifest.

    Run it once for every ``task_index`` in ``0..tasks-1`` (on any machines, in any order, again after a
    crash), then :func:`~lerobot_wds.converter.finalize.finalize` the destination once. Each part plans
    the conversion itself (a pure function of the source), so the parts agree on the shards without
    talking to each other; the result is byte-identical to :func:`convert`.
    """
    config = config or ConvertConfig()
    if hub_target(dest) is not None:
        raise ValueError(f"{dest}: --tasks needs a folder or bucket destination; got an hf://datasets repo")
    if config.overwrite:
        raise ValueError(
            "--overwrite with --tasks: one part would delete what the others write; "
            "empty the destination once before starting the parts"
        )
    if config.executor != "local":
        raise ValueError(f"--tasks: runs the part here; got executor {config.executor!r}, expected 'local'")
    started = time.perf_counter()
    prepared = _prepare(source, dest, config, tasks=tasks, task_index=task_index)
    if prepared.work is None:
        return PartResult(dest=dest, task_index=task_index, tasks=tasks, shards=[], shards_skipped=0,
                          elapsed_s=time.perf_counter() - started)  # fmt: skip
    work = prepared.work
    ranks = part_shards(len(work.shards), tasks, task_index)
    plans = list(work.shards)
    total = sum(len(plans[rank].episodes) for rank in ranks)
    run_shard_tasks(
        prepared.plan.source, dest, plans, config.video_options(), config.storage_options,
        config.workers, on_progress, total, ranks=ranks,
    )  # fmt: skip
    return PartResult(
        dest=dest,
        task_index=task_index,
        tasks=tasks,
        shards=[plans[rank].path for rank in ranks],
        shards_skipped=prepared.resumed,
        elapsed_s=time.perf_counter() - started,
    )


def submit_slurm(
    source: str, dest: str, config: ConvertConfig | None = None, *, slurm: SlurmConfig
) -> SlurmJobs:
    """Submit the conversion to SLURM: datatrove's job array (one task per shard), then a job that runs
    ``lerobot-wds finalize DEST`` once the array succeeded. Returns without waiting.

    The submitting machine plans and records the work folder; the nodes need the source at the same
    location and the destination reachable. Resubmitting after failed tasks runs only the unfinished ones.
    """
    config = config or ConvertConfig()
    if hub_target(dest) is not None:
        raise ValueError(
            f"{dest}: --executor slurm needs a folder or bucket destination; got an hf://datasets repo"
        )
    if config.source_storage_options:
        raise ValueError(
            "--executor slurm: source storage options would be written into the job's pickled pipeline on "
            "disk; got some, expected none: give the nodes their credentials through the environment instead"
        )
    prepared = _prepare(source, dest, config)
    if prepared.work is None:
        return SlurmJobs(array_script=None, finalize_script=None, array_job_id=None, finalize_job_id=None,
                         num_tasks=0)  # fmt: skip
    return submit_shard_tasks_slurm(
        prepared.plan.source, dest, list(prepared.work.shards), config.video_options(),
        config.storage_options, slurm,
    )  # fmt: skip


def plan_conversion(source: str, config: ConvertConfig | None = None) -> ConversionPlan:
    """The shards :func:`convert` would write for ``source`` and ``config``; writes nothing.

    ``convert`` plans with this very function, so the plan it returns is the one a conversion follows.
    A remote source (Hub, S3, ...) is planned from its ``meta/`` and a listing of its files' sizes:
    nothing else is downloaded.

    Example:
        >>> from lerobot_wds.converter.convert import plan_conversion
        >>> plan = plan_conversion("tests/data/multi", ConvertConfig(shard_size_mb=1))
        >>> len(plan.shards), len(plan.episodes), plan.num_frames
        (2, 24, 1852)
    """
    config = config or ConvertConfig()
    plan = _plan(source, config)
    plan.source.close()
    return plan


def _plan(source: str, config: ConvertConfig) -> ConversionPlan:
    """The plan, its source still open (a remote source's meta/ copy is there until ``close()``)."""
    lerobot = open_source(
        source,
        revision=config.revision,
        storage_options=config.source_storage_options,
        cache_dir=config.cache_dir,
    )
    try:
        selected = lerobot.select(config.episodes)
        level = config.check_level or ("meta" if lerobot.remote is not None else "videos")
        report = check_opened(lerobot, selected, level=level)
        for finding in report.findings:
            if finding.severity == "warning":
                logger.warning("%s: %s", lerobot.location, finding.text(max_episodes=5))
        kept, skipped = _kept_episodes(lerobot, selected, report, config.skip_bad_episodes)
        return plan_episodes(
            lerobot, kept, target_bytes=config.shard_size_bytes, checked=report, skipped=skipped
        )
    except BaseException:
        lerobot.close()
        raise


def _kept_episodes(
    lerobot: LeRobotSource, selected: list[SourceEpisode], report: CheckReport, skip: bool
) -> tuple[list[SourceEpisode], tuple[fmt.SkippedEpisode, ...]]:
    """The episodes to convert and the ones skipped; every error at once when the conversion cannot go on."""
    if report.ok:
        return selected, ()
    bad = report.bad_episodes()
    if skip and not report.dataset_errors and len(bad) < len(selected):
        skipped = tuple(
            fmt.SkippedEpisode(
                episode_index=index,
                checks=tuple(dict.fromkeys(f.check for f in findings)),
                reason="; ".join(dict.fromkeys(report.reasons.get(index, []))),
            )
            for index, findings in bad.items()
        )
        logger.warning("%s: skipping %d bad episode(s): %s", lerobot.location, len(bad), list(bad)[:20])
        return [e for e in selected if e.episode_index not in bad], skipped
    errors = "\n".join(f.text(max_episodes=20) for f in report.errors)
    if report.dataset_errors or not skip:
        fix = (
            "fix the dataset-level errors first"
            if report.dataset_errors
            else f"convert the other {len(selected) - len(bad)} episode(s) with --skip-bad-episodes"
        )
    else:
        fix = "every selected episode has an error: nothing would be left to convert"
    raise ValueError(
        f"{lerobot.location}: {len(report.errors)} error(s) in {len(bad)} of {len(selected)} selected "
        f"episode(s), found before writing anything:\n{errors}\n{fix}"
    )


def _convert_to_hub(
    source: str,
    dest: str,
    target: HubTarget,
    config: ConvertConfig,
    on_progress: Callable[[ConvertProgress], None] | None,
) -> ConvertResult:
    """Convert into a local staging folder (an update of the repo's manifest if it has one) while an
    uploader sends finished shards to the repo and deletes them; the manifest goes in the last commit."""
    name = "--".join([target.repo_id.replace("/", "--"), *filter(None, [target.prefix.replace("/", "--")])])
    staging = Path(config.staging_dir or Path.home() / ".cache" / "lerobot-wds" / "staging" / name)
    there = None if config.overwrite else stage_update(dest, staging, config.storage_options)
    with ShardUploader(hf_api(config.storage_options), target, staging) as uploader:
        local = _convert(
            source, str(staging), replace(config, storage_options={}), on_progress, config.hub_staged_shards
        )
        if there is not None and local.manifest == there:
            logger.info("%s: already converted (no new episodes); nothing to publish", dest)
        else:
            uploaded = uploader.finish(local.manifest)
            logger.info("%s: %d shards uploaded (%d already there)", dest, uploaded,
                        len(local.manifest.shards) - uploaded)  # fmt: skip
    shutil.rmtree(staging)
    return replace(local, dest=dest)


# --------------------------------------------------------------------------- destination state


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    plan: ConversionPlan  # the whole selection
    work: WorkPlan | None  # the shards to write now (all, or an update's new ones); None: nothing to do
    resumed: int  # shards of this run's ranks finished by an interrupted run (kept after a checksum check)
    base_shards: int  # shards of the manifest an update extends (untouched)


def _prepare(
    source: str, dest: str, config: ConvertConfig, *, tasks: int | None = None, task_index: int | None = None
) -> _Prepared:
    """Plan, compare with what ``dest`` holds (refusing a mismatch) and record the work plan."""
    opts = config.storage_options
    if config.overwrite:
        _clear_destination(dest, opts)
    plan = _plan(source, config)
    try:
        return _prepare_plan(plan, dest, config, tasks, task_index)
    finally:
        plan.source.close()  # the work folder has its meta copies; tasks read only data and video files


def _prepare_plan(
    plan: ConversionPlan, dest: str, config: ConvertConfig, tasks: int | None, task_index: int | None
) -> _Prepared:
    opts = config.storage_options
    existing = existing_manifest(dest, opts)
    shards, generation, base_shards = plan.shards, 0, 0
    if existing is not None:
        check_same(dest, existing, plan.source, _source_info(plan.source), config.shaping_options())
        new = update_episodes(dest, existing, plan)
        if not new:
            logger.info("%s: already converted (manifest present, no new episodes); nothing to do", dest)
            return _Prepared(plan=plan, work=None, resumed=0, base_shards=len(existing.shards))
        shards = plan_shards(
            new, plan.estimated_bytes, config.shard_size_bytes, first_index=len(existing.shards)
        )
        generation, base_shards = existing.generation + 1, len(existing.shards)
    work = _work_plan(plan.source, config, shards, generation, plan.skipped)
    ranks = (
        range(len(shards))
        if tasks is None or task_index is None
        else part_shards(len(shards), tasks, task_index)
    )
    kept = [e.episode_index for e in plan.episodes] if plan.skipped else None
    resumed = _prepare_work_dir(dest, work, plan.source, opts, ranks, kept)
    return _Prepared(plan=plan, work=work, resumed=resumed, base_shards=base_shards)


def _work_plan(
    lerobot: LeRobotSource,
    config: ConvertConfig,
    plans: list[ShardPlan],
    generation: int,
    skipped: tuple[fmt.SkippedEpisode, ...],
) -> WorkPlan:
    return WorkPlan(
        format_version=fmt.FORMAT_VERSION,
        source=_source_info(lerobot),
        options=config.shaping_options(),
        shards=tuple(plans),
        fps=lerobot.fps,
        features=lerobot.features,
        camera_keys=lerobot.camera_keys,
        generation=generation,
        skipped_episodes=skipped,
    )


def _source_info(lerobot: LeRobotSource) -> fmt.SourceInfo:
    return fmt.SourceInfo(
        location=lerobot.location, revision=lerobot.revision, codebase_version=lerobot.codebase_version
    )


def _prepare_work_dir(
    dest: str,
    plan: WorkPlan,
    lerobot: LeRobotSource,
    opts: Mapping[str, Any],
    ranks: range,
    kept: list[int] | None,
) -> int:
    """Record the plan and the source's meta files (or check an interrupted run's plan); return how many
    of the shards at ``ranks`` (positions in the plan) are finished and kept. With ``kept`` (episodes were
    skipped), the meta files describe those episodes only (:func:`.keptmeta.kept_meta`)."""
    previous = read_plan(dest, opts)
    if previous is None:
        # before plan.json: a plan on disk means its meta copies are there
        for name, data in _meta_copies(lerobot, kept).items():
            storage.write_bytes(data, source_meta_url(dest, name), opts)
        write_plan(dest, plan, opts)
    elif (
        previous != plan
        and replace(previous, shards=plan.shards, skipped_episodes=plan.skipped_episodes) == plan
    ):
        raise ValueError(
            f"{dest}: the source's files changed since the interrupted conversion began (its shard plan "
            "or the episodes its checks skip differ); pass --overwrite to start over"
        )
    elif previous != plan:
        raise ValueError(
            f"{dest}: an interrupted conversion of {previous.source.location} with options "
            f"{previous.options} is in progress; got {plan.source.location} with "
            f"{plan.options}; rerun that command to finish it, or pass --overwrite"
        )
    return sum(_keep_finished(dest, rank, plan.shards[rank], opts) for rank in ranks)


def _meta_copies(lerobot: LeRobotSource, kept: list[int] | None) -> dict[str, bytes]:
    """The source's meta files and episode tables (per-episode stats, for ``export``), by relative name."""
    if kept is not None:
        return kept_meta(lerobot.root, kept)
    names = [name for name in fmt.META_FILES if (lerobot.root / name).is_file()]
    names += [
        p.relative_to(lerobot.root).as_posix() for p in sorted(lerobot.root.glob(fmt.EPISODES_META_GLOB))
    ]
    return {name: (lerobot.root / name).read_bytes() for name in names}


def _keep_finished(dest: str, rank: int, plan: ShardPlan, opts: Mapping[str, Any]) -> bool:
    """A shard marked complete is kept if its bytes still match its recorded checksum."""
    marker = completion_url(dest, rank)
    if not storage.exists(marker, opts):
        return False
    try:
        written = read_index(dest, plan.shard_index, opts)
        shard_url = storage.join(dest, plan.path)
        if not storage.exists(shard_url, opts):  # a Hub destination's staging deletes what it committed
            if published_sha256(dest, plan.shard_index, opts) == written.shard.sha256:
                return True
        elif storage.sha256_file(shard_url, opts) == written.shard.sha256:
            return True
    except (FileNotFoundError, ValueError):  # a missing or malformed index (ShardFormatError) too
        pass
    logger.warning("%s: %s failed its checksum check; converting it again", dest, plan.path)
    storage.remove(marker, opts)
    return False


def _clear_destination(dest: str, opts: Mapping[str, Any]) -> None:
    for url in (*(storage.join(dest, n) for n in (fmt.MANIFEST_NAME, fmt.SHARD_DIR, "meta")), work_url(dest)):
        storage.remove(url, opts, recursive=True)
