"""LeRobot v3 datasets written without LeRobot's writer, and defects added to them, for the check tests.

``write_custom_dataset`` writes what a custom recording pipeline leaves (the shape of a public dataset
met on the Hub): keys ``actions`` / ``state`` / ``image``, one MPEG-4 Part 2 mp4 per episode encoded by
PyAV/FFmpeg with a GOP of 12, ``info.json`` claiming ``h264``, ``to_timestamp = (length - 1) / fps``.
Values describe themselves: ``actions[e, f] = [e*1000+f, e, f]``; ``state = actions + 0.5`` plus one
more entry; frame ``f`` of episode ``e`` is a flat grey of ``(20 + 7*e + 3*f) % 200 + 20`` with a brighter
bar whose width is ``f % 16`` (MPEG-4 is lossy: the parity test compares with LeRobot's decode, not
with these values).

``add_defects`` then breaks one episode per defect kind (see ``DEFECTS``).
"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

FPS = 10
HEIGHT, WIDTH = 48, 64
GOP = 12
LENGTHS = (23, 31, 17, 26, 40, 19, 28, 22, 35, 20)  # none a multiple of the GOP
TASKS = ("stack the cups", "wipe the table", "open the box")
DATA_FILE = "data/chunk-000/file-000.parquet"
EPISODES_FILE = "meta/episodes/chunk-000/file-000.parquet"


def video_file(episode_index: int) -> str:
    return f"videos/image/chunk-000/file-{episode_index:03d}.mp4"


def _frames(episode_index: int, num_frames: int, lead_in: int = 0) -> list[np.ndarray]:
    frames = []
    for f in range(-lead_in, num_frames):
        frame = np.full((HEIGHT, WIDTH, 3), (20 + 7 * episode_index + 3 * f) % 200 + 20, np.uint8)
        frame[8:16, : (f % 16) * 4] = 235
        frames.append(frame)
    return frames


def write_video(path: Path, frames: list[np.ndarray], *, codec: str = "mpeg4", gop: int = GOP) -> None:
    """An mp4 of ``frames`` at FPS, encoded by FFmpeg through PyAV (keyframe every ``gop`` frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.gop_size = gop
        stream.codec_context.time_base = Fraction(1, FPS)
        # a keyframe every `gop` frames and nowhere else (no scene-cut keyframes)
        stream.options = {"sc_threshold": "1000000000"} | ({"qscale": "3"} if codec == "mpeg4" else {})
        for index, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _feature(dtype: str, shape: list[int], names: list[str] | None = None) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "names": names}


def _info(num_episodes: int, num_frames: int) -> dict[str, object]:
    image = _feature("video", [HEIGHT, WIDTH, 3], ["height", "width", "channels"])
    image["info"] = {
        "video.height": HEIGHT,
        "video.width": WIDTH,
        "video.codec": "h264",
        "video.pix_fmt": "yuv420p",
        "video.is_depth_map": False,
        "video.fps": FPS,
        "video.channels": 3,
        "has_audio": False,
    }
    return {
        "codebase_version": "v3.0",
        "robot_type": "custom_arm",
        "total_episodes": num_episodes,
        "total_frames": num_frames,
        "total_tasks": len(TASKS),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": 500,
        "fps": FPS,
        "splits": {"train": f"0:{num_episodes}"},
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "features": {
            "actions": _feature("float32", [3], ["code", "episode", "frame"]),
            "state": _feature("float32", [4], ["code", "episode", "frame", "one"]),
            "image": image,
            "timestamp": _feature("float32", [1]),
            "frame_index": _feature("int64", [1]),
            "episode_index": _feature("int64", [1]),
            "index": _feature("int64", [1]),
            "task_index": _feature("int64", [1]),
        },
    }


def _rows(lengths: tuple[int, ...]) -> pa.Table:
    columns: dict[str, list[object]] = {
        name: []
        for name in ("actions", "state", "timestamp", "frame_index", "episode_index", "index", "task_index")
    }
    index = 0
    for e, length in enumerate(lengths):
        for f in range(length):
            columns["actions"].append([e * 1000 + f, e, f])
            columns["state"].append([e * 1000 + f + 0.5, e + 0.5, f + 0.5, 1.0])
            columns["timestamp"].append(f / FPS)
            columns["frame_index"].append(f)
            columns["episode_index"].append(e)
            columns["index"].append(index)
            columns["task_index"].append(e % len(TASKS))
            index += 1
    types = {
        "actions": pa.list_(pa.float32(), 3),
        "state": pa.list_(pa.float32(), 4),
        "timestamp": pa.float32(),
    }
    return pa.table({name: pa.array(values, types.get(name, pa.int64())) for name, values in columns.items()})


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "min": values.min(0),
        "max": values.max(0),
        "mean": values.mean(0),
        "std": values.std(0),
        "count": np.array([len(values)]),
    }


def _episode_table(rows: pa.Table, lengths: tuple[int, ...]) -> pa.Table:
    columns: dict[str, list[object]] = {}
    start = 0
    for e, length in enumerate(lengths):
        part = rows.slice(start, length)
        record: dict[str, object] = {
            "episode_index": e,
            "tasks": [TASKS[e % len(TASKS)]],
            "length": length,
            "data/chunk_index": 0,
            "data/file_index": 0,
            "dataset_from_index": start,
            "dataset_to_index": start + length,
            "videos/image/chunk_index": 0,
            "videos/image/file_index": e,
            "videos/image/from_timestamp": 0.0,
            "videos/image/to_timestamp": (length - 1) / FPS,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
        }
        for key in ("actions", "state"):
            for stat, value in _stats(np.array(part[key].to_pylist(), np.float64)).items():
                record[f"stats/{key}/{stat}"] = value.tolist()
        for name, value in record.items():
            columns.setdefault(name, []).append(value)
        start += length
    return pa.table(columns)


def write_custom_dataset(root: Path, lengths: tuple[int, ...] = LENGTHS) -> Path:
    """A clean LeRobot v3 dataset at ``root`` written with pyarrow and PyAV only (no LeRobot)."""
    rows = _rows(lengths)
    (root / DATA_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, root / DATA_FILE)
    (root / EPISODES_FILE).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(_episode_table(rows, lengths), root / EPISODES_FILE)
    # LeRobot reads the tasks with pandas, the task strings being the frame's index
    tasks = pd.DataFrame({"task_index": range(len(TASKS))}, index=pd.Index(TASKS, name="task"))
    tasks.to_parquet(root / "meta/tasks.parquet")
    stats = {
        key: {k: v.tolist() for k, v in _stats(np.array(rows[key].to_pylist(), np.float64)).items()}
        for key in ("actions", "state")
    }
    (root / "meta/stats.json").write_text(json.dumps(stats, indent=4))
    (root / "meta/info.json").write_text(json.dumps(_info(len(lengths), sum(lengths)), indent=4))
    for e, length in enumerate(lengths):
        write_video(root / video_file(e), _frames(e, length))
    return root


# episode -> the check that must name it (one defect per episode; the rest stay clean)
DEFECTS = {
    1: "files.missing",  # its mp4 removed
    2: "rows.count",  # its last row removed from the data file
    3: "rows.frame_index",  # a gap: frame_index 5 -> 6
    4: "rows.frame_index",  # a duplicate: frame_index 5 -> 4
    5: "rows.timestamp_grid",  # frame 3's timestamp 30 ms late (a warning: still converted)
    6: "videos.keyframe",  # its segment starts 3 frames into a GOP
    7: "tasks.missing",  # its task is not in meta/tasks.parquet
}
ORPHAN_EPISODE = 99  # rows appended with this episode_index (in no episode: a warning)
LEAD_IN = 3  # frames before episode 6's first in its mp4


def add_defects(root: Path) -> None:
    """Break episodes 1-7 of a ``write_custom_dataset`` dataset as ``DEFECTS`` says; add orphan rows.

    info.json's ``h264`` for MPEG-4 Part 2 streams is the codec lie (a warning for every episode).
    """
    (root / video_file(1)).unlink()
    table = pq.read_table(root / DATA_FILE)
    columns = {name: table[name].to_pylist() for name in table.column_names}
    rows = list(zip(*columns.values(), strict=True))
    names = list(columns)
    at = {name: i for i, name in enumerate(names)}

    def row_of(episode: int, frame: int) -> int:
        return next(
            i
            for i, r in enumerate(rows)
            if r[at["episode_index"]] == episode and r[at["frame_index"]] == frame
        )

    rows = [list(r) for r in rows]
    rows[row_of(3, 5)][at["frame_index"]] = 6
    rows[row_of(4, 5)][at["frame_index"]] = 4
    rows[row_of(5, 3)][at["timestamp"]] += 0.03
    del rows[row_of(2, LENGTHS[2] - 1)]
    orphan = list(rows[0])
    orphan[at["episode_index"]] = ORPHAN_EPISODE
    rows += [orphan, orphan]
    repaired = pa.table(
        {name: pa.array([r[i] for r in rows], table.schema.field(name).type) for i, name in enumerate(names)}
    )
    pq.write_table(repaired, root / DATA_FILE)
    write_video(root / video_file(6), _frames(6, LENGTHS[6], lead_in=LEAD_IN))
    episodes = pq.read_table(root / EPISODES_FILE)
    frame = episodes.to_pydict()
    frame["videos/image/from_timestamp"][6] = LEAD_IN / FPS
    frame["videos/image/to_timestamp"][6] = (LEAD_IN + LENGTHS[6] - 1) / FPS
    frame["tasks"][7] = ["a task nobody wrote down"]
    pq.write_table(pa.table(frame, schema=episodes.schema), root / EPISODES_FILE)


def rename_video_folder(root: Path) -> None:
    """``videos/`` renamed ``video/`` (info.json's template still says ``videos/``)."""
    shutil.move(root / "videos", root / "video")
