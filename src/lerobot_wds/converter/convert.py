"""``convert``: LeRobot v3 source -> shard tasks (datatrove) -> meta files -> manifest, last."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import format as fmt
from .. import storage
from .executor import ConvertProgress, completion_url, run_shard_tasks
from .hub import HubTarget, hub_target, publish_to_hub
from .plan import ConversionPlan, ShardPlan, plan_episodes
from .reencode import VCODECS
from .shards import VideoOptions
from .source import LeRobotSource, open_source
from .workdir import WorkPlan, WrittenShard, read_index, read_plan, work_url, write_plan

logger = logging.getLogger(__name__)

# 256 MB: one sequential GET per shard reaches full object-store throughput (first-byte latency
# of ~50 ms is <2% of a 256 MB read at 100 MB/s) while a DROID-size dataset stays at ~10k objects.
DEFAULT_SHARD_SIZE_MB = 256.0


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
    # hf://datasets destinations convert here first, then publish in a few commits (converter/hub.py);
    # None: ~/.cache/lerobot-wds/staging/<owner>--<name>[--prefix]
    staging_dir: str | None = None
    # for the destination's fsspec filesystem; repr=False keeps credentials out of logs and tracebacks
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.shard_size_mb <= 0:
            raise ValueError(f"ConvertConfig.shard_size_mb: got {self.shard_size_mb}; expected > 0")
        if self.workers < 1:
            raise ValueError(f"ConvertConfig.workers: got {self.workers}; expected >= 1")
        if self.vcodec not in VCODECS:
            raise ValueError(f"ConvertConfig.vcodec: got {self.vcodec!r}; expected one of {list(VCODECS)}")
        if not 0 <= self.crf <= 51:
            raise ValueError(f"ConvertConfig.crf: got {self.crf}; expected 0..51")
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
    shards_skipped: int  # finished in an earlier run and kept after a checksum check

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

    Args:
        source: a local LeRobot v3 folder or a Hub dataset repo id (``owner/name``).
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
    started = time.perf_counter()
    opts = config.storage_options
    if config.overwrite:
        _clear_destination(dest, opts)
    plan = plan_conversion(source, config)
    lerobot, plans = plan.source, plan.shards
    work_plan = _work_plan(lerobot, config, plans)
    existing = _existing_manifest(dest, opts)
    if existing is not None:
        _check_same(dest, existing.source, existing.options, lerobot, config)
        logger.info("%s: already converted (manifest present); nothing to do", dest)
        return ConvertResult(
            manifest=existing,
            dest=dest,
            elapsed_s=time.perf_counter() - started,
            source_bytes=plan.source_bytes,
            shards_skipped=len(existing.shards),
        )
    skipped = _prepare_work_dir(dest, work_plan, opts)
    run_shard_tasks(
        lerobot, dest, plans, config.video_options(), opts, config.workers, on_progress, len(plan.episodes)
    )
    written = [read_index(dest, plan.shard_index, opts) for plan in plans]
    manifest = _manifest(lerobot, config, written)
    _publish(lerobot, dest, manifest, opts)
    return ConvertResult(
        manifest=manifest,
        dest=dest,
        elapsed_s=time.perf_counter() - started,
        source_bytes=plan.source_bytes,
        shards_skipped=skipped,
    )


def plan_conversion(source: str, config: ConvertConfig | None = None) -> ConversionPlan:
    """The shards :func:`convert` would write for ``source`` and ``config``; writes nothing.

    ``convert`` plans with this very function, so the plan it returns is the one a conversion follows.
    A Hub source is opened as ``convert`` opens it (its selected episodes' files are downloaded: the
    estimate needs their sizes).

    Example:
        >>> from lerobot_wds.converter.convert import plan_conversion
        >>> plan = plan_conversion("tests/data/multi", ConvertConfig(shard_size_mb=1))
        >>> len(plan.shards), len(plan.episodes), plan.num_frames
        (2, 24, 1852)
    """
    config = config or ConvertConfig()
    lerobot = open_source(source, revision=config.revision, episodes=config.episodes)
    return plan_episodes(lerobot, lerobot.select(config.episodes), target_bytes=config.shard_size_bytes)


def _convert_to_hub(
    source: str,
    dest: str,
    target: HubTarget,
    config: ConvertConfig,
    on_progress: Callable[[ConvertProgress], None] | None,
) -> ConvertResult:
    """Convert into a local staging folder, publish it in a few commits, then drop the staging folder."""
    name = "--".join([target.repo_id.replace("/", "--"), *filter(None, [target.prefix.replace("/", "--")])])
    staging = Path(config.staging_dir or Path.home() / ".cache" / "lerobot-wds" / "staging" / name)
    local = convert(source, str(staging), replace(config, storage_options={}), on_progress=on_progress)
    uploaded = publish_to_hub(staging, dest, config.storage_options)
    logger.info(
        "%s: %d shards uploaded (%d already there)", dest, uploaded, len(local.manifest.shards) - uploaded
    )
    shutil.rmtree(staging)
    return replace(local, dest=dest)


# --------------------------------------------------------------------------- destination state


def _work_plan(lerobot: LeRobotSource, config: ConvertConfig, plans: list[ShardPlan]) -> WorkPlan:
    return WorkPlan(
        format_version=fmt.FORMAT_VERSION,
        source=_source_info(lerobot),
        options=config.shaping_options(),
        shards=tuple(plans),
    )


def _source_info(lerobot: LeRobotSource) -> fmt.SourceInfo:
    return fmt.SourceInfo(
        location=lerobot.location, revision=lerobot.revision, codebase_version=lerobot.codebase_version
    )


def _existing_manifest(dest: str, opts: Mapping[str, Any]) -> fmt.Manifest | None:
    url = storage.join(dest, fmt.MANIFEST_NAME)
    if not storage.exists(url, opts):
        return None
    return fmt.Manifest.from_json(storage.read_bytes(url, opts), url)


def _check_same(
    dest: str, source: fmt.SourceInfo, options: dict[str, Any], lerobot: LeRobotSource, config: ConvertConfig
) -> None:
    ours = _source_info(lerobot)
    if (source.location, source.revision) != (
        ours.location,
        ours.revision,
    ) or options != config.shaping_options():
        raise ValueError(
            f"{dest}: holds a conversion of {source.location}@{source.revision} with options {options}; "
            f"got {ours.location}@{ours.revision} with {config.shaping_options()}; "
            "choose another destination or pass --overwrite"
        )


def _prepare_work_dir(dest: str, plan: WorkPlan, opts: Mapping[str, Any]) -> int:
    """Record the plan (or check it against an interrupted run's); return how many shards are kept."""
    previous = read_plan(dest, opts)
    if previous is None:
        write_plan(dest, plan, opts)
    elif previous != plan and replace(previous, shards=plan.shards) == plan:
        raise ValueError(
            f"{dest}: the source's files changed since the interrupted conversion began (its shard plan "
            "differs); pass --overwrite to start over"
        )
    elif previous != plan:
        raise ValueError(
            f"{dest}: an interrupted conversion of {previous.source.location} with options "
            f"{previous.options} is in progress; got {plan.source.location} with "
            f"{plan.options}; rerun that command to finish it, or pass --overwrite"
        )
    return sum(_keep_finished(dest, shard, opts) for shard in plan.shards)


def _keep_finished(dest: str, plan: ShardPlan, opts: Mapping[str, Any]) -> bool:
    """A shard marked complete is kept if its bytes still match its recorded checksum."""
    marker = completion_url(dest, plan.shard_index)
    if not storage.exists(marker, opts):
        return False
    try:
        written = read_index(dest, plan.shard_index, opts)
        shard_url = storage.join(dest, plan.path)
        if storage.sha256_file(shard_url, opts) == written.shard.sha256:
            return True
    except (FileNotFoundError, ValueError):  # a missing or malformed index (ShardFormatError) too
        pass
    logger.warning("%s: %s failed its checksum check; converting it again", dest, plan.path)
    storage.remove(marker, opts)
    return False


def _clear_destination(dest: str, opts: Mapping[str, Any]) -> None:
    for url in (*(storage.join(dest, n) for n in (fmt.MANIFEST_NAME, fmt.SHARD_DIR, "meta")), work_url(dest)):
        storage.remove(url, opts, recursive=True)


# -------------------------------------------------------------------------------------- publish


def _manifest(lerobot: LeRobotSource, config: ConvertConfig, written: Sequence[WrittenShard]) -> fmt.Manifest:
    return fmt.Manifest(
        format_version=fmt.FORMAT_VERSION,
        source=_source_info(lerobot),
        fps=lerobot.fps,
        features=lerobot.features,
        camera_keys=lerobot.camera_keys,
        options=config.shaping_options(),
        shards=[w.shard for w in written],
        episodes=[_with_fields(e, lerobot.episode_fields) for w in written for e in w.episodes],
        psnr_db=_psnr_summary(written),
    )


def _with_fields(
    entry: fmt.EpisodeEntry, fields: Mapping[int, tuple[tuple[str, fmt.EpisodeValue], ...]]
) -> fmt.EpisodeEntry:
    """The entry with its episode's extra meta/episodes columns (``fields``), if the source has any."""
    extra = fields.get(entry.episode_index, ())
    return replace(entry, fields=extra) if extra else entry


def _psnr_summary(written: Sequence[WrittenShard]) -> dict[str, dict[str, float]]:
    values: dict[str, list[float]] = {}
    for shard in written:
        for camera, psnr in shard.psnr_db.items():
            values.setdefault(camera, []).extend(psnr)
    return {c: {"min": min(v), "mean": round(sum(v) / len(v), 2)} for c, v in sorted(values.items())}


def _publish(lerobot: LeRobotSource, dest: str, manifest: fmt.Manifest, opts: Mapping[str, Any]) -> None:
    """Copy the source's meta files, write the manifest (last), then drop the work folder."""
    for name in fmt.META_FILES:
        path = lerobot.root / name
        if path.is_file():
            storage.write_bytes(path.read_bytes(), storage.join(dest, name), opts)
        else:
            logger.warning("%s: no %s to copy", lerobot.location, name)
    for path in sorted(lerobot.root.glob(fmt.EPISODES_META_GLOB)):  # per-episode stats, for `export`
        relative = path.relative_to(lerobot.root).as_posix()
        storage.write_bytes(path.read_bytes(), storage.join(dest, relative), opts)
    storage.write_bytes(manifest.to_json(), storage.join(dest, fmt.MANIFEST_NAME), opts)
    storage.remove(work_url(dest), opts, recursive=True)
