"""Remote sources (``s3://...``, ``hf://datasets/...``, any fsspec URL): meta/ for planning, files per task.

Planning needs only ``meta/`` (info.json, tasks, the episodes table: lengths, file indices, from/to
timestamps) and the data and video files' sizes, which one listing per folder gives. So the planning
process downloads ``meta/`` alone (into a private temporary folder, removed once the work folder has its
copies), and each shard task downloads only the files its own episodes live in, into a folder of its own
under the cache, right before writing its shard, and deletes it when the shard is written (unless
``keep_cache``). A file two shards share (a v3 file holds many episodes) is downloaded by each task that
needs it, except from one task to the next in one worker's sequence (``workers=1``), where it is handed
over (hard-linked into the next task's folder); no task ever deletes or reads another's files, whatever
the executor (local processes, Ray, SLURM nodes) and however tasks overlap. Every file is downloaded
under a temporary name and renamed, so a file in the cache is always complete (a task rerun with
``keep_cache`` reuses what it finds there).
"""

from __future__ import annotations

import hashlib
import logging
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import format as fmt
from .. import storage

logger = logging.getLogger(__name__)

# Where tasks put the files they download when ConvertConfig.cache_dir is None; resolved where the task
# runs (a SLURM or Ray node's own home), not where the conversion was planned.
DEFAULT_CACHE_DIR = "~/.cache/lerobot-wds/source"


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteFiles:
    """Where a remote source's files are and where its tasks download them."""

    url: str  # fsspec URL of the dataset root; a Hub repo's is pinned: hf://datasets/owner/name@<sha>
    options: storage.HiddenOptions  # for the source's filesystem (never printed nor in executor.json)
    cache_dir: str | None  # None: DEFAULT_CACHE_DIR
    keep_cache: bool  # keep each task's downloaded files after its shard is written

    def file_url(self, relative: str) -> str:
        return storage.join(self.url, relative)

    def cache_root(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir or DEFAULT_CACHE_DIR))

    def task_folder(self, key: str) -> Path:
        """This source's files for one task (``key``: the shard and its destination), directly under the
        cache: a task removes its own folder only, never a parent that another task may be creating."""
        source = re.sub(r"[^A-Za-z0-9._-]+", "-", self.url.split("://", 1)[-1]).strip("-")[-80:]
        return self.cache_root() / f"{source}--{key}"


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


def task_key(dest: str, shard_index: int) -> str:
    """A task's cache folder name: its shard, and its destination (two conversions of one source into
    two destinations never share a folder)."""
    return f"{hashlib.sha256(dest.encode()).hexdigest()[:12]}-shard-{shard_index:06d}"


@contextmanager
def task_files(
    remote: RemoteFiles,
    relatives: Iterable[str],
    key: str,
    hand_over: tuple[str, Iterable[str]] | None = None,
) -> Iterator[Path]:
    """Download ``relatives`` into the task's own folder, yield it, and delete it afterwards (even after
    a failure) unless ``keep_cache``. Files already there (a kept cache, or handed over) are not
    downloaded again.

    ``hand_over``: ``(key, files)`` of the task that runs next in this same process (one worker runs
    its tasks one after another): after a success, the files both need are hard-linked into that task's
    folder before this one's is removed, so a file neighbouring shards share is downloaded once.
    """
    folder = remote.task_folder(key)
    try:
        fetch(remote, sorted(set(relatives)), folder)
        yield folder
        if hand_over is not None:
            _hand_over(folder, remote.task_folder(hand_over[0]), set(relatives) & set(hand_over[1]))
    finally:
        if not remote.keep_cache:
            shutil.rmtree(folder, ignore_errors=True)


def _hand_over(folder: Path, following: Path, relatives: set[str]) -> None:
    for relative in sorted(relatives):
        target = following / relative
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f"{target.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            os.link(folder / relative, temporary)  # the same inode: no copy, and it outlives this folder
        except OSError:  # a filesystem without hard links
            shutil.copyfile(folder / relative, temporary)
        os.replace(temporary, target)


def fetch(remote: RemoteFiles, relatives: list[str], folder: Path) -> None:
    """Each file to ``folder/<relative>``: downloaded under a temporary name, then renamed (a reader of
    the folder never sees a partial file)."""
    fs, root = storage.url_to_fs(remote.url, remote.options.options)
    root = root.rstrip("/")
    todo = [r for r in relatives if not (folder / r).is_file()]
    if not todo:
        return
    temporary = {r: folder / f"{r}.partial-{uuid.uuid4().hex[:8]}" for r in todo}
    for path in temporary.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get([f"{root}/{r}" for r in todo], [str(temporary[r]) for r in todo])
        for relative, path in temporary.items():
            os.replace(path, folder / relative)
    except FileNotFoundError as exc:
        exc.add_note(f"while downloading {len(todo)} files of {storage.redact(remote.url)} into {folder}")
        raise
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    logger.info("%s: downloaded %d files into %s", storage.redact(remote.url), len(todo), folder)


def meta_folder(remote: RemoteFiles) -> Path:
    """A private temporary folder for the planning process's copy of ``meta/``."""
    cache = remote.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="meta-", dir=cache))


def remove_meta_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
