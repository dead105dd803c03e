"""``lerobot-wds preview``: one PNG of an episode, to look at the data instead of reading numbers.

A strip of evenly spaced frames per camera (frame index and timestamp under each), one plot per
numeric feature (``observation.state``, ``action``, ...) over time with its dimensions' names from
``info.json``, the task as the title. The episode is fetched as the reader fetches it (one ranged read
by the manifest's offsets), so local folders and ``s3://``/``hf://``/``https://`` URLs work alike.

Frames are drawn with matplotlib's ``figimage`` at whole-pixel offsets, unscaled unless taller than
``max_tile_height``: the PNG holds the decoded pixels themselves, and :class:`FrameTile` says where.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from . import format as fmt
from .meta import DatasetMeta, read_meta
from .reader.episodes import Episode, EpisodeSource

if TYPE_CHECKING:
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install 'lerobot-wds[preview]'"
# LeRobot's bookkeeping columns: the same line in every episode, nothing to look at
_BOOKKEEPING = frozenset({"timestamp", "frame_index", "episode_index", "index", "task_index"})
_DPI = 100  # figure inches -> pixels; any value works, pixel offsets are computed in pixels
_MARGIN = 16  # pixels around everything
_TITLE_H = 56  # task (bold) and a line of facts
_CAMERA_H = 20  # camera key above its strip
_LABEL_H = 30  # "frame N" and "T.TT s" under each tile
_GAP = 6  # between tiles
_PLOT_H = 200  # one plot per numeric feature
_PLOT_GAP = 40  # room for the plot's title and x tick labels
_MIN_PLOT_W = 640
_LEGEND_W = 280  # dimension names right of each plot
_MIN_SLOT_W = 60  # a tile's column: room for its label under frames narrower than that
_PLOT_LEFT = 56  # the plots' left edge: room for y tick labels


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameTile:
    """Where one frame sits in the PNG, in pixels from the top-left corner."""

    camera_key: str
    frame_index: int  # episode-local
    timestamp_s: float  # LeRobot's timestamp column at that frame
    left: int
    top: int
    width: int
    height: int


@dataclass(frozen=True, slots=True, kw_only=True)
class EpisodePreview:
    """The rendered PNG and what is where in it."""

    png: bytes
    width: int  # pixels
    height: int
    tiles: list[FrameTile]
    plots: dict[str, list[str]]  # feature key -> the names its lines carry, in dimension order
    title: str


def preview_episode(
    url: str,
    episode_index: int,
    *,
    num_frames: int = 8,
    max_tile_height: int = 160,
    storage_options: Mapping[str, Any] | None = None,
) -> EpisodePreview:
    """Render one episode of a converted dataset as a PNG.

    Args:
        url: the converted dataset (folder or fsspec URL).
        episode_index: LeRobot's ``episode_index`` of the episode to show.
        num_frames: frames per camera strip, evenly spaced from the first to the last frame.
        max_tile_height: taller frames are scaled down to this many pixels (aspect kept).
        storage_options: fsspec options for remote URLs.

    Raises:
        ModuleNotFoundError: matplotlib is not installed (the ``preview`` extra).
        ValueError: the episode is not in the dataset, or ``num_frames``/``max_tile_height`` < 1.
    """
    _require_matplotlib()
    if num_frames < 1 or max_tile_height < 1:
        raise ValueError(
            f"preview: num_frames {num_frames}, max_tile_height {max_tile_height}; expected both >= 1"
        )
    manifest = fmt.read_manifest(url, storage_options)
    entry = _entry(manifest, episode_index, url)
    meta = read_meta(url, storage_options)
    episode = EpisodeSource(url, manifest.camera_keys, manifest.features, storage_options).fetch(entry)
    indices = np.unique(np.linspace(0, episode.num_frames - 1, num_frames).round().astype(np.int64))
    timestamps = _timestamps(episode, meta.fps)
    strips = {key: _fit(frames, max_tile_height) for key, frames in _strips(episode, meta, indices).items()}
    series = _series(episode, meta)
    title = " | ".join(episode.meta.tasks) or "(no task)"
    facts = (
        f"{_shown(url)}  ·  episode {episode_index}  ·  {episode.num_frames} frames at {meta.fps} fps "
        f"({episode.num_frames / meta.fps:.1f} s)"
    )
    figure, tiles = _draw(title, facts, strips, indices, timestamps, series)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI, facecolor="white")
    width, height = (round(v) for v in figure.get_size_inches() * _DPI)
    return EpisodePreview(
        png=buffer.getvalue(),
        width=width,
        height=height,
        tiles=tiles,
        plots={key: names for key, (_, names) in series.items()},
        title=title,
    )


def _shown(url: str) -> str:
    """The URL as printed in the image: without user info or query (where tokens could sit)."""
    parts = urlsplit(url)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return url
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"preview: needs matplotlib, which is not installed; {INSTALL_HINT}"
        ) from exc


def _entry(manifest: fmt.Manifest, episode_index: int, url: str) -> fmt.EpisodeEntry:
    for entry in manifest.episodes:
        if entry.episode_index == episode_index:
            return entry
    held = sorted(e.episode_index for e in manifest.episodes)
    span = f"{len(held)} episodes, {held[0]}..{held[-1]}" if held else "no episodes"
    raise ValueError(f"{url}: episode {episode_index} is not in the dataset; got {span}")


def _timestamps(episode: Episode, fps: int) -> np.ndarray:
    """LeRobot's ``timestamp`` column, or ``frame_index / fps`` if the rows lack it."""
    column = episode.columns.get("timestamp")
    if column is None or column.dtype == object:
        return np.arange(episode.num_frames) / fps
    return column.reshape(episode.num_frames, -1)[:, 0].astype(np.float64)


# ---------------------------------------------------------------------------------------- frames


def _strips(episode: Episode, meta: DatasetMeta, indices: np.ndarray) -> dict[str, list[np.ndarray]]:
    """Camera key -> the frames at ``indices`` as uint8 ``(H, W, 3)``, in ``info.json`` order."""
    from .reader.depth import DepthDecoder
    from .reader.frames import EpisodeDecoder

    strips = {}
    for key in meta.camera_keys:
        where = f"episode {episode.entry.episode_index}, {key}"
        if key in episode.videos and key in meta.depth_keys:
            codes = DepthDecoder(episode.videos[key], where).frames(indices)
            strips[key] = _grey([c[0].numpy() for c in codes])
        elif key in episode.videos:
            frames = EpisodeDecoder(episode.videos[key], "cpu").frames(indices)
            strips[key] = [_rgb(f.permute(1, 2, 0).numpy()) for f in frames]
        elif key in episode.columns:
            strips[key] = _stored_images(episode.columns[key], indices, where)
    return strips


def _stored_images(column: np.ndarray, indices: np.ndarray, where: str) -> list[np.ndarray]:
    """Image features stored in the rows (``{"bytes", "path"}`` PNG/JPEG cells) as uint8 RGB."""
    from PIL import Image

    arrays = []
    for index in indices.tolist():
        cell = column[index]
        if not isinstance(cell, dict) or not cell.get("bytes"):
            raise fmt.ShardFormatError(f"{where}, frame {index}: image cell without bytes; expected PNG/JPEG")
        with Image.open(io.BytesIO(cell["bytes"])) as image:
            arrays.append(np.array(image))
    if any(a.dtype != np.uint8 for a in arrays):  # 16-bit or float depth images
        return _grey([a.reshape(a.shape[0], a.shape[1], -1)[:, :, 0] for a in arrays])
    return [_rgb(a) for a in arrays]


def _grey(maps: list[np.ndarray]) -> list[np.ndarray]:
    """Depth maps scaled together to 0..255 (near dark, far light), so the strip's frames compare."""
    low = min(float(m.min()) for m in maps)
    high = max(float(m.max()) for m in maps)
    scale = 255.0 / (high - low) if high > low else 0.0
    return [_rgb(((m.astype(np.float64) - low) * scale).round().astype(np.uint8)) for m in maps]


def _rgb(array: np.ndarray) -> np.ndarray:
    """uint8 ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` -> contiguous ``(H, W, 3)``."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def _fit(frames: list[np.ndarray], max_height: int) -> list[np.ndarray]:
    """Frames taller than ``max_height`` scaled down (PIL's Lanczos filter), others untouched."""
    from PIL import Image

    height, width = frames[0].shape[:2]
    if height <= max_height:
        return frames
    size = (max(1, round(width * max_height / height)), max_height)
    return [np.asarray(Image.fromarray(f).resize(size, Image.Resampling.LANCZOS)) for f in frames]


# ---------------------------------------------------------------------------------------- series


def _series(episode: Episode, meta: DatasetMeta) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Numeric features (not cameras, not bookkeeping) as ``(num_frames, dims)`` float64 and their names."""
    series = {}
    for key, feature in meta.features.items():
        column = episode.columns.get(key)
        if key in _BOOKKEEPING or key in meta.camera_keys or column is None or column.dtype == object:
            continue
        if not (np.issubdtype(column.dtype, np.number) or column.dtype == np.bool_):
            continue
        values = column.reshape(episode.num_frames, -1).astype(np.float64)
        series[key] = (values, dimension_names(key, feature.get("names"), values.shape[1]))
    return series


def dimension_names(key: str, names: Any, num_dims: int) -> list[str]:
    """The names of a feature's dimensions as ``info.json`` gives them: a list, a nested list (one per
    axis, flattened) or a dict of lists (``{"motors": [...]}``, flattened); ``key[i]`` otherwise."""
    flat: list[Any] = []
    pending = [names]
    while pending:
        item = pending.pop(0)
        if isinstance(item, dict):
            pending[:0] = list(item.values())
        elif isinstance(item, list | tuple):
            pending[:0] = list(item)
        elif item is not None:
            flat.append(item)
    if len(flat) == num_dims:
        return [str(name) for name in flat]
    return [f"{key}[{i}]" for i in range(num_dims)]


# ------------------------------------------------------------------------------------------ draw


def _draw(
    title: str,
    facts: str,
    strips: dict[str, list[np.ndarray]],
    indices: np.ndarray,
    timestamps: np.ndarray,
    series: dict[str, tuple[np.ndarray, list[str]]],
) -> tuple[Figure, list[FrameTile]]:
    """The figure, laid out in whole pixels from the top-left corner, and where each frame went."""
    from matplotlib.figure import Figure

    strip_w = max((sum(_slot(f) for f in frames) + _GAP * (len(frames) - 1) for frames in strips.values()),
                  default=0)  # fmt: skip
    plot_w = max(strip_w - _LEGEND_W, _MIN_PLOT_W)
    width = _MARGIN * 2 + max(strip_w, plot_w + _LEGEND_W)
    strips_h = sum(_CAMERA_H + frames[0].shape[0] + _LABEL_H for frames in strips.values())
    height = _MARGIN * 2 + _TITLE_H + strips_h + len(series) * (_PLOT_H + _PLOT_GAP)
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)

    def text(x: float, y: float, s: str, **kwargs: Any) -> None:  # pixels from the top-left corner
        figure.text(x / width, 1 - y / height, s, va="top", **kwargs)

    text(_MARGIN, _MARGIN, title, fontsize=13, weight="bold")
    text(_MARGIN, _MARGIN + 26, facts, fontsize=8, color="0.35")
    top = _MARGIN + _TITLE_H
    tiles = []
    for key, frames in strips.items():
        text(_MARGIN, top, key, fontsize=9, family="monospace")
        top += _CAMERA_H
        left = _MARGIN
        for index, frame in zip(indices.tolist(), frames, strict=True):
            h, w = frame.shape[:2]
            x = left + (_slot(frame) - w) // 2
            figure.figimage(frame, xo=x, yo=height - top - h, origin="upper")
            tile = FrameTile(camera_key=key, frame_index=index, timestamp_s=float(timestamps[index]),
                             left=x, top=top, width=w, height=h)  # fmt: skip
            tiles.append(tile)
            label = f"frame {index}\n{tile.timestamp_s:.2f} s"
            text(left + _slot(frame) / 2, top + h + 3, label, fontsize=7, ha="center", linespacing=1.2)
            left += _slot(frame) + _GAP
        top += frames[0].shape[0] + _LABEL_H
    marks = timestamps[indices]
    axes_h = _PLOT_H + _PLOT_GAP - 50  # 20 pixels above for the plot's title, 30 below for the x axis
    for key, (values, names) in series.items():
        bottom = height - (top + 20) - axes_h
        axes = figure.add_axes((_PLOT_LEFT / width, bottom / height, (plot_w - _PLOT_LEFT + _MARGIN) / width,
                                axes_h / height))  # fmt: skip
        _plot(axes, key, timestamps, values, names, marks)
        top += _PLOT_H + _PLOT_GAP
    return figure, tiles


def _slot(frame: np.ndarray) -> int:
    return max(frame.shape[1], _MIN_SLOT_W)


def _plot(
    axes: Any, key: str, timestamps: np.ndarray, values: np.ndarray, names: list[str], marks: np.ndarray
) -> None:
    """One feature's dimensions over time; dotted lines where the strips' frames were taken."""
    for t in marks:
        axes.axvline(t, color="0.85", linewidth=0.6, linestyle=":")
    for dim, name in enumerate(names):
        axes.plot(timestamps, values[:, dim], linewidth=1.0, label=name)
    axes.set_title(key, loc="left", fontsize=9, family="monospace")
    axes.set_xlabel("timestamp (s)", fontsize=7, labelpad=1)
    axes.tick_params(labelsize=7)
    axes.margins(x=0)
    rows = max(1, (_PLOT_H - 20) // 11)  # legend lines that fit beside the plot
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=6, frameon=False,
                ncol=math.ceil(len(names) / rows), handlelength=1.2, borderaxespad=0)  # fmt: skip
