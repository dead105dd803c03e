"""Read a LeRobot v3 dataset (local folder, Hub repo or any fsspec URL): metadata, episode table, files."""

from __future__ import annotations

import copy
import gc
import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..format import EpisodeValue, task_strings
from ..storage import HiddenOptions, RangedFile
from .hub import hub_target
from .remote import (
    RemoteFiles,
    TaskReads,
    download_meta,
    is_remote,
    meta_folder,
    remote_file_sizes,
    remove_meta_folder,
)

logger = logging.getLogger(__name__)

SUPPORTED_CODEBASE_VERSIONS = ("v3.0",)
_V3_CONVERTER_HINT = (
    "convert it to v3.0 first with LeRobot's "
    "`python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<repo>`"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoSpan:
    """Where one camera's frames of an episode sit inside a concatenated source mp4."""

    file: str  # relative to the source root
    from_timestamp: float
    to_timestamp: float


@dataclass(frozen=True, slots=True, kw_only=True)
class SourceEpisode:
    episode_index: int
    length: int
    dataset_from_index: int
    tasks: tuple[str, ...]
    data_file: str  # relative to the source root
    videos: dict[str, VideoSpan]


class LeRobotSource:
    """A LeRobot v3 dataset: a local folder, or a remote one's ``meta/`` (its files come per task).

    Only the columns of the episode metadata that the converter needs are read (the ~100 ``stats/*``
    columns are skipped).
    """

    def __init__(
        self, root: Path, *, location: str, revision: str | None = None, remote: RemoteFiles | None = None
    ) -> None:
        self.root = root  # meta/ is read from here (a remote source's: a temporary copy, see close())
        self.location = location
        self.revision = revision
        self.remote = remote
        # where data/ and videos/ are: a local source's folder; a remote source's are read by byte ranges
        # in a shard task (with_reads)
        self.files_root: Path | None = root if remote is None else None
        self.reads: TaskReads | None = None
        self.info = _read_info(root)
        self.fps: int = int(self.info["fps"])
        self.features: dict[str, Any] = self.info["features"]
        self.camera_keys = [k for k, v in self.features.items() if v.get("dtype") == "video"]
        self.data_columns = [k for k, v in self.features.items() if v.get("dtype") != "video"]
        self.task_indices = _read_task_indices(root / "meta/tasks.parquet")
        # an episode_index listed twice in meta/episodes: the last row wins here; `check` reports it
        self.episodes, self.duplicate_episodes = _read_episodes(root, self.info, self.camera_keys)
        self.episode_fields = _read_episode_fields(root)

    @property
    def codebase_version(self) -> str:
        return str(self.info["codebase_version"])

    def select(self, episodes: Sequence[int] | None) -> list[SourceEpisode]:
        """The requested episodes in index order (all when ``episodes`` is None)."""
        if episodes is None:
            return list(self.episodes.values())
        missing = sorted(set(episodes) - set(self.episodes))
        if missing:
            raise ValueError(
                f"{self.location}: episodes {missing[:10]} not in the dataset; "
                f"expected indices among {min(self.episodes)}..{max(self.episodes)}"
            )
        return [self.episodes[i] for i in sorted(set(episodes))]

    def path(self, relative: str) -> Path:
        """Absolute path of a local source file; a clear error if it is missing."""
        if self.files_root is None:
            raise ValueError(
                f"{self.location}: {relative!r} is remote; expected it to be read through "
                "with_reads(<the shard task's TaskReads>).file()"
            )
        path = self.files_root / relative
        if not path.is_file():
            raise FileNotFoundError(f"{self.location}: missing file {relative!r} referenced by meta/episodes")
        return path

    def file(self, relative: str) -> Path | RangedFile:
        """A data or video file to read: a local path, or a remote object read by byte ranges."""
        if self.reads is not None:
            return self.reads.open(relative)
        return self.path(relative)

    def with_reads(self, reads: TaskReads) -> LeRobotSource:
        """This source, reading its remote data and video files through ``reads`` (one shard task's)."""
        view = copy.copy(self)
        view.reads = reads
        return view

    def file_sizes(self, relatives: Iterable[str]) -> dict[str, int]:
        """Sizes in bytes of source files: ``stat`` locally, one listing per folder for a remote source."""
        if self.remote is not None and self.files_root is None:
            return remote_file_sizes(self.remote, relatives)
        return {relative: os.path.getsize(self.path(relative)) for relative in relatives}

    def files_of(self, episodes: Iterable[int]) -> list[str]:
        """The data and video files that ``episodes`` live in (relative to the source root), sorted."""
        files: set[str] = set()
        for episode in self.select(list(episodes)):
            files.add(episode.data_file)
            files.update(span.file for span in episode.videos.values())
        return sorted(files)

    def close(self) -> None:
        """Remove a remote source's temporary copy of ``meta/`` (planning is done; tasks do not read it)."""
        if self.remote is not None and self.root.is_dir():
            remove_meta_folder(self.root)

    @cached_property
    def video_durations_s(self) -> dict[str, float]:
        """Each concatenated mp4's duration: the end of its last episode (metadata only; no file opened).

        One pass over every episode (selected or not), computed once: planning looks it up per episode
        and camera, so a scan per lookup made planning quadratic (4,000 episodes took 5 s; issue 14).
        """
        durations: dict[str, float] = {}
        for episode in self.episodes.values():
            for span in episode.videos.values():
                end = durations.get(span.file)
                if end is None or span.to_timestamp > end:
                    durations[span.file] = span.to_timestamp
        return durations

    @cached_property
    def data_file_rows(self) -> dict[str, int]:
        """Rows (frames) of each data file, summed from the episodes' lengths in one pass, once."""
        rows: dict[str, int] = {}
        for episode in self.episodes.values():
            rows[episode.data_file] = rows.get(episode.data_file, 0) + episode.length
        return rows


def open_source(
    source: str,
    *,
    revision: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
    cache_dir: str | None = None,
) -> LeRobotSource:
    """Open a local LeRobot v3 folder, or the ``meta/`` of a remote one (a Hub repo id ``owner/name``,
    ``hf://datasets/owner/name[@rev][/folder]``, ``s3://bucket/prefix`` or any fsspec URL).

    A remote source's ``meta/`` is downloaded into a temporary folder under ``cache_dir`` (call
    :meth:`LeRobotSource.close` when planning is done); its data and video files are read later, by
    each shard task, for its own episodes' bytes only (converter/remote.py). A Hub source is pinned to the
    commit sha its revision points at now.
    """
    if is_remote(source):
        return _open_remote(source, revision, storage_options or {}, cache_dir)
    local = Path(source.removeprefix("file://")).expanduser()
    if local.is_dir():
        if revision is not None:
            raise ValueError(f"{source}: --revision applies to Hub repos only; got a local folder")
        return LeRobotSource(local.resolve(), location=str(local.resolve()))
    if source.count("/") != 1 or source.startswith((".", "/")):
        raise FileNotFoundError(
            f"{source}: no such folder, and not a Hub repo id; "
            "expected a LeRobot v3 folder, '<owner>/<name>' or a URL (s3://..., hf://datasets/...)"
        )
    sha = _hub_sha(source, revision, storage_options or {})
    remote = RemoteFiles(url=f"hf://datasets/{source}@{sha}", options=HiddenOptions(storage_options),
                         cache_dir=cache_dir)  # fmt: skip
    return _open_meta(remote, location=source, revision=sha)


def _open_remote(
    url: str, revision: str | None, options: Mapping[str, Any], cache_dir: str | None
) -> LeRobotSource:
    target = hub_target(url)
    if target is None:
        if revision is not None:
            raise ValueError(f"{url}: --revision applies to Hub repos only; got another URL")
        remote = RemoteFiles(url=url.rstrip("/"), options=HiddenOptions(options), cache_dir=cache_dir)
        return _open_meta(remote, location=url.rstrip("/"), revision=None)
    if target.revision is not None and revision is not None and target.revision != revision:
        raise ValueError(f"{url}: names revision {target.revision!r}; got --revision {revision!r} too")
    sha = _hub_sha(target.repo_id, target.revision or revision, options)
    folder = f"/{target.prefix}" if target.prefix else ""
    remote = RemoteFiles(url=f"hf://datasets/{target.repo_id}@{sha}{folder}", options=HiddenOptions(options),
                         cache_dir=cache_dir)  # fmt: skip
    return _open_meta(remote, location=f"hf://datasets/{target.repo_id}{folder}", revision=sha)


def _hub_sha(repo_id: str, revision: str | None, options: Mapping[str, Any]) -> str:
    from huggingface_hub import HfApi

    api = HfApi(token=options.get("token"), endpoint=options.get("endpoint"))
    sha = api.dataset_info(repo_id, revision=revision).sha
    if sha is None:
        raise ValueError(f"{repo_id}: the Hub reported no commit sha for revision {revision!r}")
    return sha


def _open_meta(remote: RemoteFiles, *, location: str, revision: str | None) -> LeRobotSource:
    folder = meta_folder(remote)
    try:
        download_meta(remote, folder)
        return LeRobotSource(folder, location=location, revision=revision, remote=remote)
    except BaseException:
        remove_meta_folder(folder)
        raise


def _read_info(root: Path) -> dict[str, Any]:
    path = root / "meta/info.json"
    if not path.is_file():
        raise FileNotFoundError(f"{root}: no meta/info.json; expected a LeRobot v3 dataset folder")
    try:
        info: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON; {exc}") from exc
    if not isinstance(info, dict):
        raise ValueError(f"{path}: a JSON {type(info).__name__}; expected an object")
    version = info.get("codebase_version")
    if version not in SUPPORTED_CODEBASE_VERSIONS:
        raise ValueError(
            f"{root}: LeRobot dataset codebase_version {version!r}; expected one of "
            f"{list(SUPPORTED_CODEBASE_VERSIONS)}; {_V3_CONVERTER_HINT}"
        )
    problems = info_problems(info)
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)}; expected a LeRobot v3 info.json")
    return info


def info_problems(info: dict[str, Any]) -> list[str]:
    """Every defect of an info.json that stops a conversion (all of them, not the first)."""
    problems = [f"missing {name!r}" for name in ("fps", "features", "data_path") if name not in info]
    fps = info.get("fps")
    if "fps" in info and (isinstance(fps, bool) or not isinstance(fps, int | float) or fps <= 0
                          or fps != int(fps)):  # fmt: skip
        problems.append(f"fps {fps!r}; expected a whole number > 0")
    features = info.get("features", {})
    if not isinstance(features, dict):
        return [*problems, f"features is a {type(features).__name__}; expected an object"]
    for key, feature in features.items():
        if not isinstance(feature, dict) or not isinstance(feature.get("dtype"), str):
            problems.append(f"feature {key!r} has no 'dtype'")
        elif not isinstance(feature.get("shape"), list) or not all(
            isinstance(n, int) and n >= 0 for n in feature["shape"]
        ):
            problems.append(f"feature {key!r} has shape {feature.get('shape')!r}; expected a list of sizes")
    has_video = any(isinstance(v, dict) and v.get("dtype") == "video" for v in features.values())
    templates = {"data_path": {}, **({"video_path": {"video_key": "k"}} if has_video else {})}
    for name, extra in templates.items():
        template = info.get(name)
        if name == "video_path" and template is None:
            problems.append("video features but no 'video_path'")
            continue
        if template is None:
            continue
        try:
            str(template).format(chunk_index=0, file_index=0, **extra)
        except (KeyError, IndexError, ValueError) as exc:
            fields = "{chunk_index}, {file_index}" + (" and {video_key}" if extra else "")
            problems.append(f"{name} {template!r} does not resolve ({exc!r}); expected fields {fields}")
    return problems


def _read_task_indices(path: Path) -> dict[str, int]:
    """Task string -> task_index. LeRobot writes the task strings as the pandas index."""
    if not path.is_file():
        raise FileNotFoundError(f"{path.parent.parent}: no meta/tasks.parquet; expected a LeRobot v3 dataset")
    return {task: index for index, task in task_strings(pq.read_table(path), str(path)).items()}


def _episode_columns(camera_keys: list[str]) -> list[str]:
    columns = [
        "episode_index",
        "tasks",
        "length",
        "dataset_from_index",
        "data/chunk_index",
        "data/file_index",
    ]
    for key in camera_keys:
        columns += [
            f"videos/{key}/{name}" for name in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
        ]
    return columns


def _read_episodes(
    root: Path, info: dict[str, Any], camera_keys: list[str]
) -> tuple[dict[int, SourceEpisode], list[int]]:
    files = sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise FileNotFoundError(
            f"{root}: no meta/episodes/chunk-*/file-*.parquet; expected a LeRobot v3 dataset"
        )
    columns = _episode_columns(camera_keys)
    tables = []
    for path in files:
        schema = pq.read_schema(path)
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise ValueError(
                f"{path}: missing episode columns {missing}; expected LeRobot v3 episode metadata"
            )
        tables.append(pq.read_table(path, columns=columns))
    table = pa.concat_tables(tables)
    values = {name: table.column(name).to_pylist() for name in columns}  # column-wise: no dict per row
    data_files = _file_paths(info["data_path"], values, "data")
    spans = [
        (
            key,
            _file_paths(info["video_path"], values, f"videos/{key}", video_key=key),
            values[f"videos/{key}/from_timestamp"],
            values[f"videos/{key}/to_timestamp"],
        )
        for key in camera_keys
    ]
    task_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}
    episodes = {}
    duplicates = []
    with _gc_paused():
        for row, episode_index in enumerate(values["episode_index"]):
            tasks = tuple(values["tasks"][row])
            episode = SourceEpisode(
                episode_index=int(episode_index),
                length=int(values["length"][row]),
                dataset_from_index=int(values["dataset_from_index"][row]),
                tasks=task_tuples.setdefault(tasks, tasks),
                data_file=data_files[row],
                videos={
                    key: VideoSpan(
                        file=files[row], from_timestamp=float(starts[row]), to_timestamp=float(ends[row])
                    )
                    for key, files, starts, ends in spans
                },
            )
            if episode.episode_index in episodes:
                duplicates.append(episode.episode_index)
            episodes[episode.episode_index] = episode
        return dict(sorted(episodes.items())), sorted(set(duplicates))


# Columns of meta/episodes that LeRobot itself writes (besides these prefixes: file locations, stats).
_LEROBOT_EPISODE_COLUMNS = frozenset(
    {"episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index"}
)
_LEROBOT_EPISODE_PREFIXES = ("data/", "videos/", "meta/", "stats/")


def _read_episode_fields(root: Path) -> dict[int, tuple[tuple[str, EpisodeValue], ...]]:
    """Per episode, the scalar columns of meta/episodes beyond LeRobot's own (e.g. a success flag some
    datasets record), for the manifest's ``episodes.fields``; nested columns are left out."""
    fields: dict[int, tuple[tuple[str, EpisodeValue], ...]] = {}
    for path in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet")):
        schema = pq.read_schema(path)
        extra = sorted(
            name
            for name, kind in zip(schema.names, schema.types, strict=True)
            if name not in _LEROBOT_EPISODE_COLUMNS
            and not name.startswith(_LEROBOT_EPISODE_PREFIXES)
            and (pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind)
                 or pa.types.is_string(kind) or pa.types.is_large_string(kind))
        )  # fmt: skip
        if not extra:
            continue
        table = pq.read_table(path, columns=["episode_index", *extra])
        values = [table.column(name).to_pylist() for name in extra]
        for row, episode_index in enumerate(table.column("episode_index").to_pylist()):
            pairs = ((name, column[row]) for name, column in zip(extra, values, strict=True))
            fields[int(episode_index)] = tuple((name, value) for name, value in pairs if value is not None)
    return fields


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the episode table is built.

    It allocates several objects per episode, none in a cycle, and the collector (set off every few
    hundred allocations) keeps walking the ones already built: 130,000 episodes x 3 cameras are read
    in 1.7 s with it, 0.65 s without (the source of scripts/bench_convert_plan.py).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _file_paths(template: str, values: dict[str, list[Any]], prefix: str, **fields: str) -> list[str]:
    """Each row's file path from its ``{prefix}/chunk_index`` and ``{prefix}/file_index`` columns.

    Formatted once per distinct file, and the same string shared by its rows (130,000 DROID-like
    episodes live in ~8,000 files: scripts/bench_convert_plan.py).
    """
    paths: dict[tuple[int, int], str] = {}
    rows = []
    for chunk_index, file_index in zip(
        values[f"{prefix}/chunk_index"], values[f"{prefix}/file_index"], strict=True
    ):
        path = paths.get((chunk_index, file_index))
        if path is None:
            path = template.format(chunk_index=chunk_index, file_index=file_index, **fields)
            paths[(chunk_index, file_index)] = path
        rows.append(path)
    return rows
