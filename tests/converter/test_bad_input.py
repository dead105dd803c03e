"""Bad input: one clear error naming the file and what is wrong, and nothing published."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import add_image_feature, read_samples

from lerobot_wds import convert
from lerobot_wds import format as fmt

EPISODES_META = "meta/episodes/chunk-000/file-000.parquet"


def rewrite_episodes(source: Path, column: str, episode_index: int, change) -> None:
    path = source / EPISODES_META
    table = pq.read_table(path)
    values = table[column].to_pylist()
    row = table["episode_index"].to_pylist().index(episode_index)
    values[row] = change(values[row])
    table = table.set_column(
        table.schema.get_field_index(column), column, pa.array(values, table[column].type)
    )
    pq.write_table(table, path)


def assert_nothing_published(dest: Path) -> None:
    assert not (dest / fmt.MANIFEST_NAME).exists()


def test_v2_dataset_names_its_version_and_the_v3_converter(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    info = json.loads((source / "meta/info.json").read_text())
    info["codebase_version"] = "v2.1"
    (source / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=r"'v2\.1'.*convert_dataset_v21_to_v30"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_missing_video_file_is_named(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("multi")
    (source / "videos/observation.images.wrist/chunk-000/file-001.mp4").unlink()
    with pytest.raises(
        ValueError, match=r"files\.missing(.|\n)*observation\.images\.wrist/chunk-000/file-001\.mp4"
    ):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_unreadable_data_file_is_named(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    (source / "data/chunk-000/file-000.parquet").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"data/chunk-000/file-000\.parquet"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_row_count_that_disagrees_with_metadata(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    data = source / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    # drop one row of episode 0 (54 frames)
    pq.write_table(table.filter(pc.invert(pc.equal(table["index"], 30))), data)
    with pytest.raises(ValueError, match=r"rows\.count: .*episode 0: 53 rows, length 54"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_video_frame_count_that_disagrees_with_metadata(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    last = max(pq.read_table(source / EPISODES_META)["episode_index"].to_pylist())
    rewrite_episodes(source, "videos/observation.images.front/from_timestamp", last, lambda t: t + 0.5)
    with pytest.raises(
        ValueError, match=rf"videos\.frames: .*episode {last} camera 'observation.images.front'"
    ):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_undeclared_columns_are_dropped_and_missing_declared_ones_refused(
    tmp_path: Path, fixture_copy
) -> None:
    source = fixture_copy("tiny")
    data = source / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    pq.write_table(table.append_column("undeclared", pa.array([1] * table.num_rows)), data)
    result = convert(str(source), str(tmp_path / "ok"))
    assert "undeclared" not in result.manifest.features
    pq.write_table(table.drop_columns(["action"]), data)
    with pytest.raises(ValueError, match=r"lacks columns \['action'\]"):
        convert(str(source), str(tmp_path / "d"))


def test_unsupported_layout(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    (source / EPISODES_META).unlink()
    with pytest.raises(FileNotFoundError, match=r"no meta/episodes"):
        convert(str(source), str(tmp_path / "d"))
    with pytest.raises(FileNotFoundError, match=r"no meta/info\.json"):
        convert(str(tmp_path), str(tmp_path / "d"))
    with pytest.raises(FileNotFoundError, match="not a Hub repo id"):
        convert(str(tmp_path / "nowhere" / "x" / "y"), str(tmp_path / "d"))


def test_image_features_stored_in_parquet_are_carried_through(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    add_image_feature(source)
    dest = tmp_path / "d"
    convert(str(source), str(dest))
    rows = fmt.decode_rows(read_samples(dest)[2][fmt.ROWS_SUFFIX], "test", max_rows=40, max_bytes=1 << 20)
    expected = [{"bytes": bytes([i % 256]) * 8, "path": None} for i in rows["index"].to_pylist()]
    assert rows["observation.images.static"].to_pylist() == expected


def rewrite_rows(source: Path, column: str, change) -> None:
    """Apply ``change`` to a column of tiny's data file (all episodes), as numpy, in place."""
    data = source / "data/chunk-000/file-000.parquet"
    table = pq.read_table(data)
    values = change(table[column].to_numpy().copy())
    position = table.schema.get_field_index(column)
    pq.write_table(table.set_column(position, column, pa.array(values, table[column].type)), data)


def test_non_monotonic_timestamps_are_refused(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")

    def swap(timestamps):  # frames 10 and 11 of episode 0 (rows 10 and 11)
        timestamps[[10, 11]] = timestamps[[11, 10]]
        return timestamps

    rewrite_rows(source, "timestamp", swap)
    with pytest.raises(ValueError, match=r"rows\.timestamp: .*episode 0: .* at row 10"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_rows_out_of_frame_order_are_refused(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")

    def shift(frames):
        frames[5] += 1
        return frames

    rewrite_rows(source, "frame_index", shift)
    with pytest.raises(ValueError, match=r"rows\.frame_index: .*episode 0: row 5 has frame_index 6"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_jittered_timestamps_are_kept(tmp_path: Path, fixture_copy) -> None:
    """Off the 1/fps grid but increasing (a real recording's clock): converted as they are."""
    source = fixture_copy("tiny")
    rewrite_rows(source, "timestamp", lambda t: t + (np.arange(len(t)) % 2) * np.float32(0.003))
    result = convert(str(source), str(tmp_path / "d"))
    assert result.manifest.num_frames == 224


def test_missing_or_malformed_info_json(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    info = source / "meta/info.json"
    info.write_text("{not json")
    with pytest.raises(ValueError, match=r"meta/info\.json"):
        convert(str(source), str(tmp_path / "d"))
    info.unlink()
    with pytest.raises(FileNotFoundError, match=r"meta/info\.json"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_video_ffmpeg_cannot_read_is_named(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    video = source / "videos/observation.images.front/chunk-000/file-000.mp4"
    video.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"observation\.images\.front/chunk-000/file-000\.mp4"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")
