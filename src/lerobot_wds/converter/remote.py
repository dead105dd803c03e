"""Remote sources (``s3://...``, ``hf://datasets/...``, any fsspec URL): meta/ for planning, ranges per task.

Planning needs only ``meta/`` (info.json, tasks, the episodes table: lengths, file indices, from/to
timestamps) and the data and video files' sizes, which one listing per folder gives. So the planning
process downloads ``meta/`` alone (into a private temporary folder, removed once the work folder has its
copies). Each shard task then reads the bytes of its own episodes only, by ranged GETs, into memory
(:class:`TaskReads`): per parquet file its footer and the column chunks of the row groups its episodes
are in; per mp4 its index (moov) and the packets of its episodes, located from that index. Nothing is
written to local disk, and tasks on different machines together read about the source once: a v3 file
holds many episodes, and each task reads its own part of it.
"""

from __future__ import annotations

import logging
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .. import format as fmt
from .. import storage

logger = logging.getLogger(__name__)

# Where planning puts its temporary copy of a remote source's meta/ when ConvertConfig.cache_dir is None.
DEFAULT_CACHE_DIR = "~/.cache/lerobot-wds/source"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFiles:
    """Where a remote source's files are, and where planning puts its copy of ``meta/``."""

    url: str  # fsspec URL of the dataset root; a Hub repo's is pinned: hf://datasets/owner/name@<sha>
    options: storage.HiddenOptions  # for the source's filesystem (never printed nor in executor.json)
    cache_dir: str | None  # None: DEFAULT_CACHE_DIR

    def cache_root(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir or DEFAULT_CACHE_DIR))


def is_remote(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def download_meta(remote: RemoteFiles, folder: Path) -> None:
    """The source's ``meta/`` files that the converter reads or copies, into ``folder`` (concurrently
    where the filesystem is async: s3fs, HfFileSystem)."""
    fs, root = storage.url_to_fs(remote.url, remote.options.options)
    root = root.rstrip("/")
    if not fs.exists(f"{root}/meta/info.json"):
        raise FileNotFoundError(
            f"{storage.redact(remote.url)}: no meta/info.json; expected a LeRobot v3 dataset at that URL"
        )
    wanted = [name for name in fmt.META_FILES if fs.exists(f"{root}/{name}")]
    # names as listed may spell the root differently (HfFileSystem: with or without "@<sha>"): keep the tail
    episodes = fs.glob(f"{root}/{fmt.EPISODES_META_GLOB}")
    wanted += sorted("meta/episodes/" + str(p).rsplit("/meta/episodes/", 1)[1] for p in episodes)
    for relative in wanted:
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
    fs.get([f"{root}/{r}" for r in wanted], [str(folder / r) for r in wanted])
    logger.info("%s: downloaded %d meta files", storage.redact(remote.url), len(wanted))


def remote_file_sizes(remote: RemoteFiles, relatives: Iterable[str]) -> dict[str, int]:
    """Sizes of source files from one listing per folder (no download): what planning's estimates need."""
    fs, root = storage.url_to_fs(remote.url, remote.options.options)
    root = root.rstrip("/")
    wanted = sorted(set(relatives))
    sizes: dict[str, int] = {}
    for folder in sorted({posixpath.dirname(r) for r in wanted}):
        try:
            listed = fs.ls(f"{root}/{folder}", detail=True)
        except FileNotFoundError:
            listed = []
        for entry in listed:  # by basename: a listing may spell the root differently (see download_meta)
            if entry.get("type") == "file":
                sizes[posixpath.join(folder, posixpath.basename(str(entry["name"])))] = int(entry["size"])
    missing = [r for r in wanted if r not in sizes]
    if missing:
        raise FileNotFoundError(
            f"{storage.redact(remote.url)}: missing file {missing[0]!r} referenced by meta/episodes"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    return {r: sizes[r] for r in wanted}


class TaskReads:
    """The remote data and video files one shard task reads, each a :class:`storage.RangedFile` (bytes
    fetched by ranged GETs as the readers ask for them, nothing written to disk)."""

    def __init__(self, remote: RemoteFiles) -> None:
        self.remote = remote
        self._files: list[storage.RangedFile] = []

    def open(self, relative: str) -> storage.RangedFile:
        # the paths come from the source's info.json templates: never outside the dataset
        if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
            raise ValueError(
                f"{storage.redact(self.remote.url)}: file path {relative!r} leaves the dataset; expected a "
                "relative path inside it (meta/info.json's data_path and video_path)"
            )
        file = storage.RangedFile(f"{self.remote.url.rstrip('/')}/{relative}", self.remote.options.options)
        self._files.append(file)
        return file

    @property
    def downloaded_bytes(self) -> int:
        return sum(f.downloaded_bytes for f in self._files)

    @property
    def num_requests(self) -> int:
        return sum(f.num_requests for f in self._files)


def meta_folder(remote: RemoteFiles) -> Path:
    """A private temporary folder for the planning process's copy of ``meta/``."""
    cache = remote.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="meta-", dir=cache))


def remove_meta_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
