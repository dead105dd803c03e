"""Remote sources (``s3://...``, ``hf://datasets/...``, any fsspec URL): meta/ for planning, files per task.

Planning needs only ``meta/`` (info.json, tasks, the episodes table: lengths, file indices, from/to
timestamps) and the data and video files' sizes, which one listing per folder gives. So the planning
process downloads ``meta/`` alone (into a private temporary folder, removed once the work folder has its
copies), and each shard task downloads only the files its own episodes live in, into a folder of its own
under the cache, right before writing its shard, and deletes it when the shard is written (unless
``keep_cache``).

A file two shards share (a v3 file holds many episodes) is downloaded once per machine while some task
needs it: a task that downloads a file also links it into the machine's shared folder, and a task that
needs it links it from there into its own folder (hard links: no copy, and each task's link outlives the
others'). A task done removes its folder, then the shared files no folder links any more (link count 1)
unless tasks of the same local run not done yet need them (datatrove's ranks of this machine, known when
the run starts; a task marks itself done in the run's own folder before it lets go, so the last task out
removes what it shared). No task ever reads a partial file: downloads and shares go under a temporary
name and are renamed, and a task that finds a shared file gone meanwhile downloads it. Tasks on other
machines (Ray, SLURM) share only through a cache folder they have in common.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

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

    def cache_root(self) -> Path:
        return Path(os.path.expanduser(self.cache_dir or DEFAULT_CACHE_DIR))

    def task_folder(self, key: str) -> Path:
        """This source's files for one task (``key``: the shard and its destination), directly under the
        cache: a task removes its own folder only, never a parent that another task may be creating."""
        return self.cache_root() / f"{self._slug()}--{key}"

    def store_folder(self) -> Path:
        """The files tasks on this machine share (hard links into their folders), see task_files."""
        return self.cache_root() / f"{self._slug()}--shared"

    def _slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "-", self.url.split("://", 1)[-1]).strip("-")[-80:]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFiles:
    folder: Path  # the task's files, at their paths relative to the source root
    downloaded_bytes: int  # of those, downloaded by this task (the rest was linked or already there)


@contextmanager
def task_files(
    remote: RemoteFiles,
    relatives: Iterable[str],
    key: str,
    still_needed: Callable[[], Iterable[str]] | None = None,
    lock_dir: Path | None = None,
) -> Iterator[TaskFiles]:
    """The files ``relatives`` in the task's own folder: linked from the machine's shared store when
    another task has them, else downloaded (then shared through the store). Yields the folder and what
    was downloaded; after, removes the folder and every store file no other task holds (unless
    ``keep_cache``).

    ``still_needed``: called when the task is over (before its folder is removed): it marks the task
    done and returns the files that tasks of this machine yet to run need, kept in the store for them.
    ``lock_dir``: a folder of the local run (outside the cache): tasks starting together lock the files
    they need there, so that one downloads a file and the others link it.
    """
    folder = remote.task_folder(key)
    store = remote.store_folder()
    wanted = sorted(set(relatives))
    for relative in wanted:  # the paths come from the source's info.json templates: never outside
        if relative.startswith("/") or ".." in PurePosixPath(relative).parts:
            raise ValueError(
                f"{storage.redact(remote.url)}: file path {relative!r} leaves the dataset; expected a "
                "relative path inside it (meta/info.json's data_path and video_path)"
            )
    try:
        with _locked(lock_dir, [_store_name(r) for r in wanted]):
            have = [r for r in wanted if (folder / r).is_file() or _link(store / _store_name(r), folder / r)]
            todo = [r for r in wanted if r not in set(have)]
            fetch(remote, todo, folder)
            for relative in todo:
                _share(folder / relative, store, _store_name(relative))
        yield TaskFiles(folder=folder, downloaded_bytes=sum(os.path.getsize(folder / r) for r in todo))
    finally:
        keep = set(still_needed()) if still_needed is not None else set()  # marks this task done first
        if not remote.keep_cache:
            shutil.rmtree(folder, ignore_errors=True)
            _release(store, [r for r in wanted if r not in keep])


@contextmanager
def _locked(lock_dir: Path | None, names: list[str]) -> Iterator[None]:
    """Exclusive ``flock`` on one lock file per name, taken in sorted order (no deadlock between tasks
    needing overlapping files); released when the files are in the task's folder and shared. The lock
    files live as long as the run's folder (never removed while a task may wait on one)."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): tasks starting together may download a file twice
        yield
        return
    if lock_dir is None:
        yield
        return
    with contextlib.ExitStack() as held:
        for name in sorted(set(names)):
            lock = held.enter_context(open(lock_dir / f"{name}.lock", "a"))
            fcntl.flock(lock, fcntl.LOCK_EX)  # closing the file releases it
        yield


def _store_name(relative: str) -> str:
    """One flat folder (no subfolders to create or remove while other tasks use it)."""
    return relative.replace("/", "%2F")


def _link(source: Path, target: Path) -> bool:
    """Hard-link a file another task shared; False if it is not there (or links are not supported)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except FileExistsError:
        return True
    except OSError:  # missing (never shared, or released meanwhile), or a filesystem without links
        return False
    return True


def _share(path: Path, store: Path, name: str) -> None:
    """Put a downloaded file in the store (a hard link: no copy) for tasks that need it while this one
    holds it. Renamed into place: the store never shows a partial file."""
    for _ in range(3):  # the store folder may be removed by a task releasing the last file meanwhile
        temporary = store / f"{name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            store.mkdir(parents=True, exist_ok=True)
            os.link(path, temporary)
            os.replace(temporary, store / name)
            return
        except FileNotFoundError:
            continue
        except OSError:  # a filesystem without hard links: no sharing
            return


def _release(store: Path, relatives: list[str]) -> None:
    """Remove the store's files that no task folder links to any more (a link count of 1), then the
    store folder if empty. A task linking one meanwhile keeps its own link; the next one downloads it."""
    for relative in relatives:
        path = store / _store_name(relative)
        try:
            if os.stat(path).st_nlink == 1:
                os.remove(path)
        except FileNotFoundError:
            pass
    with contextlib.suppress(OSError):  # not empty: another task holds files; or gone
        store.rmdir()


def fetch(remote: RemoteFiles, relatives: list[str], folder: Path) -> None:
    """Each file to ``folder/<relative>``: downloaded under a temporary name, then renamed (a reader of
    the folder never sees a partial file)."""
    if not relatives:
        return
    fs, root = storage.url_to_fs(remote.url, remote.options.options)
    root = root.rstrip("/")
    temporary = {r: folder / f"{r}.partial-{uuid.uuid4().hex[:8]}" for r in relatives}
    for path in temporary.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.get([f"{root}/{r}" for r in relatives], [str(temporary[r]) for r in relatives])
        for relative, path in temporary.items():
            os.replace(path, folder / relative)
    except FileNotFoundError as exc:
        exc.add_note(
            f"while downloading {len(relatives)} files of {storage.redact(remote.url)} into {folder}"
        )
        raise
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    logger.info("%s: downloaded %d files into %s", storage.redact(remote.url), len(relatives), folder)
    logger.debug("downloaded: %s", " ".join(relatives))


def meta_folder(remote: RemoteFiles) -> Path:
    """A private temporary folder for the planning process's copy of ``meta/``."""
    cache = remote.cache_root()
    cache.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="meta-", dir=cache))


def remove_meta_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
