"""Bad input: one clear error naming the file and what is wrong, and nothing published."""

from __future__ import annotations

import json
from pathlib import Path

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
    with pytest.raises(FileNotFoundError, match=r"observation\.images\.wrist/chunk-000/file-001\.mp4"):
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
    with pytest.raises(ValueError, match=r"episode 0 has 53 rows .* expected 54"):
        convert(str(source), str(tmp_path / "d"))
    assert_nothing_published(tmp_path / "d")


def test_video_frame_count_that_disagrees_with_metadata(tmp_path: Path, fixture_copy) -> None:
    source = fixture_copy("tiny")
    last = max(pq.read_table(source / EPISODES_META)["episode_index"].to_pylist())
    rewrite_episodes(source, "videos/observation.images.front/from_timestamp", last, lambda t: t + 0.5)
    with pytest.raises(ValueError, match=rf"episode {last} camera 'observation.images.front'.*frames"):
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
