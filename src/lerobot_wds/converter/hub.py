"""Publish a converted dataset to a Hub dataset repo in few commits, the manifest in the last one.

Through fsspec (``HfFileSystem``) every file written to a dataset repo is a commit of its own: shards,
index sidecars, datatrove's markers and logs. So an ``hf://datasets/...`` destination is converted in a
local staging folder (resumable like any local conversion) while :class:`ShardUploader` sends each finished
shard to the repo and deletes it (staging holds a few shards, not the dataset), committing them in batches
of :data:`SHARDS_PER_COMMIT` with ``HfApi.create_commit``, then ``meta/``, the dataset card and
``manifest.json`` in one final commit. A reader never sees a manifest without its shards; a rerun skips the
shards already on the Hub with the same size and sha256. Converting again after the source gained
episodes is an update (:func:`stage_update`): the repo's manifest is read, only the new episodes are
converted in staging and only their shards are uploaded, then meta/ and the new manifest.
``hf://buckets/...`` have no commits and go the generic fsspec way.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import format as fmt
from .. import storage
from . import workdir
from .card import dataset_card

logger = logging.getLogger(__name__)

# 50 files per commit: the Hub's guidance for large uploads is many files per commit, few commits per
# hour; at 256 MB shards a commit carries ~13 GB.
SHARDS_PER_COMMIT = 50

_HF_DATASET_URL = re.compile(
    r"^hf://datasets/(?P<repo_id>[^/@]+/[^/@]+)(?:@(?P<revision>[^/]+))?(?P<prefix>/.*)?$"
)


@dataclass(frozen=True, slots=True)
class HubTarget:
    """Where ``hf://datasets/owner/name[@revision][/prefix]`` points."""

    repo_id: str
    revision: str | None
    prefix: str  # folder inside the repo, "" for its root

    def path_in_repo(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative


def hub_target(url: str) -> HubTarget | None:
    """The Hub dataset repo an ``hf://datasets/...`` URL points at; None for any other URL."""
    match = _HF_DATASET_URL.match(url.rstrip("/"))
    if match is None:
        return None
    return HubTarget(
        repo_id=match["repo_id"], revision=match["revision"], prefix=(match["prefix"] or "").strip("/")
    )


@dataclass(frozen=True, slots=True)
class RemoteFile:
    size_bytes: int
    sha256: str | None  # the LFS/Xet object's sha256 when the Hub reports one


def plan_commits(
    local_root: Path, manifest: fmt.Manifest, target: HubTarget, remote: Mapping[str, RemoteFile]
) -> list[list[tuple[str, Path | bytes]]]:
    """The commits that publish ``local_root``: ``(path_in_repo, file or bytes)`` lists, in order.

    Shards already in the repo with the manifest's size and sha256 are left out; the last commit holds
    the meta files, the dataset card and the manifest.
    """
    missing: list[tuple[str, Path | bytes]] = []
    for shard in manifest.shards:
        path_in_repo = target.path_in_repo(shard.path)
        there = remote.get(path_in_repo)
        if there is not None and (there.size_bytes, there.sha256) == (shard.size_bytes, shard.sha256):
            continue
        if not (local_root / shard.path).is_file():  # an update stages only its new shards
            if there is not None and there.sha256 is None and there.size_bytes == shard.size_bytes:
                continue  # the Hub reports no checksum for it: the size is all there is to compare
            raise ValueError(
                f"{target.repo_id}: shard {path_in_repo!r} of the manifest being published is neither in the "
                f"repo (got {there}) nor in {local_root}; expected the repo to hold the shards of the "
                "manifest it had; convert again with --overwrite"
            )
        missing.append((path_in_repo, local_root / shard.path))
    commits = [missing[i : i + SHARDS_PER_COMMIT] for i in range(0, len(missing), SHARDS_PER_COMMIT)]
    last: list[tuple[str, Path | bytes]] = [
        (target.path_in_repo(name), local_root / name)
        for name in fmt.META_FILES
        if (local_root / name).is_file()
    ]
    last += [
        (target.path_in_repo(path.relative_to(local_root).as_posix()), path)
        for path in sorted(local_root.glob(fmt.EPISODES_META_GLOB))
    ]
    last.append((target.path_in_repo("README.md"), dataset_card(manifest, target.prefix).encode()))
    last.append((target.path_in_repo(fmt.MANIFEST_NAME), local_root / fmt.MANIFEST_NAME))
    return [*commits, last]


def stage_update(url: str, staging: Path, storage_options: Mapping[str, Any]) -> fmt.Manifest | None:
    """Put the manifest the repo at ``url`` holds into ``staging`` (returned), so that converting there
    is an update: only the source's new episodes are converted, into shards numbered after the repo's,
    and the new manifest lists the repo's shards first (their bytes are not downloaded; publishing skips
    them by size and checksum). None if the repo has no manifest, or ``staging`` holds one at least as
    new (an interrupted publish: publishing it again finishes it)."""
    remote_url = storage.join(url, fmt.MANIFEST_NAME)
    if not storage.exists(remote_url, storage_options):
        return None
    data = storage.read_bytes(remote_url, storage_options)
    remote = fmt.Manifest.from_json(data, remote_url)
    local = staging / fmt.MANIFEST_NAME
    if (
        local.is_file()
        and fmt.Manifest.from_json(local.read_bytes(), str(local)).generation >= remote.generation
    ):
        return None
    storage.write_bytes(data, str(local))
    logger.info("%s: updating generation %d (%d shards)", url, remote.generation, len(remote.shards))
    return remote


def hf_api(storage_options: Mapping[str, Any]) -> Any:
    """The ``HfApi`` that publishes to the Hub, with the destination's token and endpoint if given."""
    from huggingface_hub import HfApi

    return HfApi(token=storage_options.get("token"), endpoint=storage_options.get("endpoint"))


class ShardUploader:
    """Uploads an ``hf://datasets`` destination's shards while they are converted, then the manifest last.

    A thread watches the staging folder's ``shards/``: each finished shard (renamed into place whole) is
    pre-uploaded (its LFS object sent, not yet in any commit) and deleted; every
    :data:`SHARDS_PER_COMMIT` of them go into one commit, after which each is recorded in the work folder
    (``published/``: a rerun keeps it without its local file). Shards the repo already holds with the
    same size and sha256 are deleted without an upload. The shard tasks pause while staging holds
    ``ConvertConfig.hub_staged_shards`` finished shards (executor.wait_for_staging_room), so staging
    holds that many plus the ones being written. :meth:`finish` uploads the rest, then commits ``meta/``,
    the card and ``manifest.json`` last. A crash loses at most the pre-uploaded shards of the commit
    not made yet: a rerun converts them again (the Hub already has their bytes, so they are not sent
    twice).
    """

    def __init__(self, api: Any, target: HubTarget, staging: Path, poll_s: float = 0.5) -> None:
        self.api, self.target, self.staging, self.poll_s = api, target, staging, poll_s
        self.uploaded = 0  # shards pre-uploaded by this run
        self._pending: list[tuple[Any, int, str]] = []  # (CommitOperationAdd, shard index, sha256)
        self._remote: dict[str, RemoteFile] = {}
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lerobot-wds-upload", daemon=True)

    def __enter__(self) -> ShardUploader:
        self.api.create_repo(self.target.repo_id, repo_type="dataset", private=True, exist_ok=True)
        self._remote = _remote_shards(self.api, self.target)
        Path(workdir.upload_failed_url(str(self.staging))).unlink(missing_ok=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, traceback: object) -> None:
        self._stop.set()
        self._thread.join()
        if exc is not None and self._error is not None and exc is not self._error:
            raise self._error  # the cause: the tasks stopped because uploading did

    def finish(self, manifest: fmt.Manifest) -> int:
        """Upload the shards left, commit them, then commit meta/, the card and the manifest; returns the
        number of shards this run uploaded."""
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error
        self._upload_finished(final=True)
        commits = plan_commits(self.staging, manifest, self.target, _remote_shards(self.api, self.target))
        for number, files in enumerate(commits, start=1):
            message = "manifest, meta and card" if number == len(commits) else f"shards, part {number}"
            self._commit([_operation(path, content) for path, content in files], message)
        self.uploaded += sum(len(files) for files in commits[:-1])
        return self.uploaded

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.poll_s):
                self._upload_finished(final=False)
        except BaseException as exc:
            self._error = exc  # raised by finish(); tasks waiting for room see the file and stop
            storage.write_bytes(f"{exc!r}".encode(), workdir.upload_failed_url(str(self.staging)))

    def _upload_finished(self, *, final: bool) -> None:
        for path in sorted((self.staging / fmt.SHARD_DIR).glob("*.tar")):
            shard_index = int(path.stem.removeprefix("shard-"))
            operation = _operation(self.target.path_in_repo(fmt.shard_path(shard_index)), path)
            sha256 = operation.upload_info.sha256.hex()
            there = self._remote.get(operation.path_in_repo)
            if there is not None and (there.size_bytes, there.sha256) == (operation.upload_info.size, sha256):
                workdir.mark_published(str(self.staging), shard_index, sha256, {})
            else:
                self.api.preupload_lfs_files(
                    self.target.repo_id,
                    additions=[operation],
                    repo_type="dataset",
                    revision=self.target.revision,
                )
                self._pending.append((operation, shard_index, sha256))
                self.uploaded += 1
            path.unlink()
            if len(self._pending) >= SHARDS_PER_COMMIT:
                self._commit_pending()
        if final and self._pending:
            self._commit_pending()

    def _commit_pending(self) -> None:
        self._commit([operation for operation, _, _ in self._pending], "shards")
        for _, shard_index, sha256 in self._pending:
            workdir.mark_published(str(self.staging), shard_index, sha256, {})
        self._pending = []

    def _commit(self, operations: list[Any], message: str) -> None:
        self.api.create_commit(
            self.target.repo_id,
            repo_type="dataset",
            revision=self.target.revision,
            operations=operations,
            commit_message=f"lerobot-wds: {message}",
        )
        logger.info("%s: committed %d files (%s)", self.target.repo_id, len(operations), message)


def _operation(path_in_repo: str, content: Path | bytes) -> Any:
    from huggingface_hub import CommitOperationAdd

    return CommitOperationAdd(path_in_repo, content if isinstance(content, bytes) else str(content))


def _remote_shards(api: Any, target: HubTarget) -> dict[str, RemoteFile]:
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    folder = target.path_in_repo(fmt.SHARD_DIR)
    try:
        entries = api.list_repo_tree(
            target.repo_id, path_in_repo=folder, repo_type="dataset", revision=target.revision, expand=True
        )
        return {
            e.path: RemoteFile(e.size, getattr(e.lfs, "sha256", None) if e.lfs else None)
            for e in entries
            if hasattr(e, "size")
        }
    except (EntryNotFoundError, RevisionNotFoundError):
        return {}
