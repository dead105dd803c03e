"""``finalize``: once every planned shard is written, publish ``meta/`` and the manifest (last).

It needs nothing but the destination: the work folder holds the plan (with what the manifest says
besides shards), each written shard's index, and the source's meta files. Every route ends here —
``convert`` on one machine calls it after its executor, and ``lerobot-wds finalize DEST`` runs it after
the tasks of a scheduler-free or SLURM conversion — so every route publishes the same bytes.
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from .. import format as fmt
from .. import storage
from .workdir import (
    WorkPlan,
    WrittenShard,
    indexed_shards,
    plan_url,
    read_index,
    read_plan,
    source_meta_url,
    work_url,
)

logger = logging.getLogger(__name__)

_MISSING_NAMED = 20  # a refusal names this many missing shards, then counts the rest


def finalize(dest: str, storage_options: Mapping[str, Any] | None = None) -> fmt.Manifest:
    """Write ``meta/`` and ``manifest.json`` for a destination whose shards are all written.

    Args:
        dest: the conversion's destination (local folder or fsspec URL).
        storage_options: for the destination's fsspec filesystem.

    Returns:
        The published manifest (the existing one if ``dest`` was finalized already).

    Raises:
        ValueError: some planned shards are not written yet (named, up to 20).
        FileNotFoundError: ``dest`` holds neither a conversion in progress nor a manifest.
    """
    opts = dict(storage_options or {})
    plan = read_plan(dest, opts)
    if plan is None:
        existing = existing_manifest(dest, opts)
        if existing is not None:
            logger.info("%s: already finalized (manifest present, no work folder)", dest)
            return existing
        raise FileNotFoundError(
            f"{dest}: nothing to finalize; expected {plan_url(dest)} (written by `lerobot-wds convert`)"
        )
    published = existing_manifest(dest, opts)
    if published is not None and published.generation == plan.generation:  # killed before the clean-up
        storage.remove(work_url(dest), opts, recursive=True)
        return published
    done = indexed_shards(dest, opts)
    missing = [shard.path for shard in plan.shards if shard.shard_index not in done]
    if missing:
        named = ", ".join(missing[:_MISSING_NAMED]) + (
            f" and {len(missing) - _MISSING_NAMED} more" if len(missing) > _MISSING_NAMED else ""
        )
        raise ValueError(
            f"{dest}: {len(missing)} of {len(plan.shards)} planned shards are not written yet: {named}; "
            "run the conversion tasks that write them, then finalize again"
        )
    base = _base_manifest(dest, plan, opts)
    written = [read_index(dest, shard.shard_index, opts) for shard in plan.shards]
    manifest = build_manifest(plan, written, base)
    _publish(dest, manifest, opts)
    return manifest


def existing_manifest(dest: str, opts: Mapping[str, Any]) -> fmt.Manifest | None:
    url = storage.join(dest, fmt.MANIFEST_NAME)
    if not storage.exists(url, opts):
        return None
    return fmt.Manifest.from_json(storage.read_bytes(url, opts), url)


def _base_manifest(dest: str, plan: WorkPlan, opts: Mapping[str, Any]) -> fmt.Manifest | None:
    """The manifest an update extends (generation ``plan.generation - 1``); None for a first conversion."""
    if plan.generation == 0:
        return None
    base = existing_manifest(dest, opts)
    found = None if base is None else base.generation
    if found != plan.generation - 1:
        raise ValueError(
            f"{dest}: the update being finalized extends manifest generation {plan.generation - 1}; "
            f"got {'no manifest' if found is None else f'generation {found}'}; "
            "pass --overwrite to convert again"
        )
    return base


def build_manifest(
    plan: WorkPlan, written: Sequence[WrittenShard], base: fmt.Manifest | None = None
) -> fmt.Manifest:
    """The manifest of the planned shards, after ``base``'s shards and episodes when updating."""
    psnr: dict[str, list[float]] = {}
    for shard in written:
        for camera, values in shard.psnr_db.items():
            psnr.setdefault(camera, []).extend(values)
    psnr_db = {c: {"min": min(v), "mean": round(sum(v) / len(v), 2)} for c, v in sorted(psnr.items())}
    if base is not None and base.psnr_db:
        psnr_db = _merged_psnr(base, psnr_db, sum(len(w.episodes) for w in written))
    return fmt.Manifest(
        format_version=plan.format_version,
        source=plan.source,
        fps=plan.fps,
        features=plan.features,
        camera_keys=plan.camera_keys,
        options=plan.options,
        shards=[*(base.shards if base else []), *(w.shard for w in written)],
        episodes=[*(base.episodes if base else []), *(e for w in written for e in w.episodes)],
        psnr_db=psnr_db,
        generation=plan.generation,
        skipped_episodes=list(plan.skipped_episodes),
        streams=_merged_streams([*([base.streams] if base else []), *(w.streams for w in written)]),
    )


def _merged_streams(parts: Sequence[dict[str, list[dict[str, Any]]]]) -> dict[str, list[dict[str, Any]]]:
    """Each camera's distinct streams over the shards (and the base manifest an update extends)."""
    merged: dict[str, list[dict[str, Any]]] = {}
    for part in parts:
        for camera, streams in part.items():
            known = merged.setdefault(camera, [])
            known.extend(s for s in streams if s not in known)
    return dict(sorted(merged.items()))


def _merged_psnr(
    base: fmt.Manifest, new: dict[str, dict[str, float]], num_new: int
) -> dict[str, dict[str, float]]:
    """Min and episode-weighted mean over the base's and the update's episodes (per camera)."""
    merged = dict(base.psnr_db)
    for camera, summary in new.items():
        old = base.psnr_db.get(camera)
        if old is None:
            merged[camera] = summary
            continue
        mean = (old["mean"] * base.num_episodes + summary["mean"] * num_new) / (base.num_episodes + num_new)
        merged[camera] = {"min": min(old["min"], summary["min"]), "mean": round(mean, 2)}
    return merged


def _publish(dest: str, manifest: fmt.Manifest, opts: Mapping[str, Any]) -> None:
    """Copy the source's meta files, write the manifest (last), then drop the work folder."""
    for name in fmt.META_FILES:
        copy = source_meta_url(dest, name)
        if storage.exists(copy, opts):
            storage.write_bytes(storage.read_bytes(copy, opts), storage.join(dest, name), opts)
        else:
            logger.warning("%s: the source had no %s to copy", dest, name)
    for relative in _episodes_meta_copies(dest, opts):  # per-episode stats, for `export`
        copy = source_meta_url(dest, relative)
        storage.write_bytes(storage.read_bytes(copy, opts), storage.join(dest, relative), opts)
    storage.write_bytes(manifest.to_json(), storage.join(dest, fmt.MANIFEST_NAME), opts)
    storage.remove(work_url(dest), opts, recursive=True)


def _episodes_meta_copies(dest: str, opts: Mapping[str, Any]) -> list[str]:
    """The source's ``meta/episodes/*/*.parquet`` copied into the work folder, relative to the source."""
    root = source_meta_url(dest, "")
    fs, path = storage.url_to_fs(root, opts)
    base = path.rstrip("/")
    found = fs.glob(f"{base}/{fmt.EPISODES_META_GLOB}")
    return sorted(posixpath.relpath(str(name), base) for name in found)
