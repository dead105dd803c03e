"""Batches built by the dataset equal DataLoader's default_collate of the same items, exactly."""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, default_collate
from torchdata.stateful_dataloader import StatefulDataLoader

from lerobot_wds import ShardedLeRobotDataset, collate
from lerobot_wds.reader import arena

BATCH = 16


def windows(dataset: ShardedLeRobotDataset) -> dict[str, list[float]]:
    fps = dataset.fps
    return {"action": [i / fps for i in range(8)], dataset.camera_keys[0]: [-1 / fps, 0.0]}


def plain_collate(items: list[dict[str, Any]]) -> Any:
    """torch's default_collate of the items as plain dicts (our items' type routes them to ``collate``)."""
    return default_collate([dict(item) for item in items])


def assert_same_batches(ours: list[dict[str, Any]], reference: list[dict[str, Any]]) -> None:
    assert len(ours) == len(reference)
    for batch, expected in zip(ours, reference, strict=True):
        assert list(batch) == list(expected)  # same keys, same order
        for key, value in expected.items():
            if isinstance(value, torch.Tensor):
                assert batch[key].dtype == value.dtype, key
                assert torch.equal(batch[key], value), key
            else:
                assert batch[key] == value, key


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(
    "options",
    [{}, {"return_uint8": True, "frame_order": "forward"}, {"image_transforms": lambda f: f.flip(-1) * 2}],
    ids=["float32", "uint8-forward", "transforms"],
)
def test_batches_equal_collated_items(
    converted: dict[str, str], num_workers: int, options: dict[str, Any]
) -> None:
    probe = ShardedLeRobotDataset(converted["h264"])
    common = {"delta_timestamps": windows(probe), "seed": 7, **options}
    batched = ShardedLeRobotDataset(converted["h264"], batch_size=BATCH, **common)
    items = ShardedLeRobotDataset(converted["h264"], **common)
    ours = list(DataLoader(batched, batch_size=None, num_workers=num_workers))
    reference = list(DataLoader(items, batch_size=BATCH, num_workers=num_workers, collate_fn=plain_collate))
    assert_same_batches(ours, reference)
    assert sum(len(b["index"]) for b in ours) == probe.num_frames
    assert any(len(b["index"]) < BATCH for b in ours)  # a last, smaller batch per reader


def test_drop_last_drops_each_readers_smaller_batch(converted: dict[str, str]) -> None:
    dataset = ShardedLeRobotDataset(converted["multi"], batch_size=BATCH, drop_last=True, seed=1)
    reference = ShardedLeRobotDataset(converted["multi"], seed=1)
    batches = list(DataLoader(dataset, batch_size=None, num_workers=2))
    expected = list(
        DataLoader(reference, batch_size=BATCH, num_workers=2, drop_last=False, collate_fn=plain_collate)
    )
    assert_same_batches(batches, [b for b in expected if len(b["index"]) == BATCH])


def test_batched_reader_resumes_exactly(converted: dict[str, str]) -> None:
    def make() -> ShardedLeRobotDataset:
        return ShardedLeRobotDataset(converted["multi"], batch_size=BATCH, seed=3, return_uint8=True)

    full = [b["index"] for b in StatefulDataLoader(make(), batch_size=None, num_workers=2)]
    loader = StatefulDataLoader(make(), batch_size=None, num_workers=2)
    iterator = iter(loader)
    head = [next(iterator)["index"] for _ in range(37)]
    state = loader.state_dict()
    restored = StatefulDataLoader(make(), batch_size=None, num_workers=2)
    restored.load_state_dict(state)
    tail = [b["index"] for b in restored]
    assert len(head) + len(tail) == len(full)
    for ours, expected in zip(head + tail, full, strict=True):
        assert torch.equal(ours, expected)


def test_batch_size_is_checked(converted: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="batch_size: got 0; expected >= 1 or None"):
        ShardedLeRobotDataset(converted["tiny"], batch_size=0)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize("return_uint8", [False, True], ids=["float32", "uint8"])
def test_channels_last_changes_the_layout_not_the_values(
    converted: dict[str, str], num_workers: int, return_uint8: bool
) -> None:
    probe = ShardedLeRobotDataset(converted["h264"])
    common = {"delta_timestamps": windows(probe), "seed": 7, "return_uint8": return_uint8}
    contiguous = ShardedLeRobotDataset(converted["h264"], **common)
    reference = list(
        DataLoader(contiguous, batch_size=BATCH, num_workers=num_workers, collate_fn=plain_collate)
    )
    batched = ShardedLeRobotDataset(converted["h264"], batch_size=BATCH, channels_last=True, **common)
    ours = list(DataLoader(batched, batch_size=None, num_workers=num_workers))
    assert_same_batches(ours, reference)
    items = ShardedLeRobotDataset(converted["h264"], channels_last=True, **common)
    assert_same_batches(list(DataLoader(items, batch_size=BATCH, num_workers=num_workers)), reference)
    for key in probe.camera_keys:  # (..., C, H, W) whose memory is (..., H, W, C)
        assert not ours[0][key].is_contiguous()
        assert ours[0][key].movedim(-3, -1).is_contiguous()
        assert next(iter(items))[key].movedim(-3, -1).is_contiguous()


def test_a_batch_leaves_a_worker_as_one_shared_buffer(converted: dict[str, str]) -> None:
    """torch sends each storage of a worker's batch over its own socket connection: the batch's tensors
    are views of one buffer so that it crosses once."""
    probe = ShardedLeRobotDataset(converted["h264"])
    dataset = ShardedLeRobotDataset(converted["h264"], delta_timestamps=windows(probe), batch_size=BATCH)
    batch = next(iter(DataLoader(dataset, batch_size=None, num_workers=1)))
    tensors = [value for value in batch.values() if isinstance(value, torch.Tensor)]
    assert len(tensors) > 10
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1
    assert all(t.untyped_storage().is_shared() for t in tensors)


def recycling_dataset(url: str) -> ShardedLeRobotDataset:
    probe = ShardedLeRobotDataset(url)
    deltas = windows(probe)
    return ShardedLeRobotDataset(url, delta_timestamps=deltas, batch_size=4, seed=2, return_uint8=True)


def test_worker_buffers_are_used_again_once_dropped(converted: dict[str, str]) -> None:
    inodes = set()
    batches = 0
    for batch in DataLoader(recycling_dataset(converted["multi"]), batch_size=None, num_workers=1):
        fd, _ = batch["index"].untyped_storage()._share_fd_cpu_()  # the worker's shared-memory file
        inodes.add(os.fstat(fd).st_ino)
        batches += 1
    assert batches > 100
    assert len(inodes) <= arena.RECYCLED_BUFFERS + 2  # not one buffer per batch


def test_buffers_still_viewed_by_the_training_process_are_never_reused(converted: dict[str, str]) -> None:
    """Whole batches kept, and batches dropped with only a view of each tensor kept: none may change."""
    loader = DataLoader(recycling_dataset(converted["multi"]), batch_size=None, num_workers=2)
    reference = [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in loader]
    kept: list[dict[str, Any]] = []
    for number, batch in enumerate(loader):
        if number % 3 == 0:
            kept.append(batch)
        else:
            kept.append({k: v[:] if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        del batch
    assert_same_batches(kept, reference)


@pytest.mark.parametrize("num_workers", [0, 2])
@pytest.mark.parametrize(
    "options", [{}, {"preset": "fast"}, {"return_uint8": True}], ids=["float32", "fast", "uint8"]
)
def test_collate_equals_default_collate_in_one_buffer(
    converted: dict[str, str], num_workers: int, options: dict[str, Any]
) -> None:
    probe = ShardedLeRobotDataset(converted["h264"])
    dataset = ShardedLeRobotDataset(converted["h264"], delta_timestamps=windows(probe), seed=7, **options)
    ours = list(DataLoader(dataset, batch_size=BATCH, num_workers=num_workers, collate_fn=collate))
    by_default = list(DataLoader(dataset, batch_size=BATCH, num_workers=num_workers))  # no collate_fn
    reference = list(DataLoader(dataset, batch_size=BATCH, num_workers=num_workers, collate_fn=plain_collate))
    assert_same_batches(ours, reference)
    assert_same_batches(by_default, reference)
    for batch in ours + by_default:
        tensors = [v for v in batch.values() if isinstance(v, torch.Tensor)]
        assert len({t.untyped_storage().data_ptr() for t in tensors}) == 1  # one buffer per batch
    reference_storages = {
        v.untyped_storage().data_ptr() for v in reference[0].values() if isinstance(v, torch.Tensor)
    }
    assert len(reference_storages) > 1  # (the check above can fail: plain dicts get one storage per key)
    camera = ours[0][probe.camera_keys[0]]
    assert camera.movedim(-3, -1).is_contiguous() == (
        options.get("preset") == "fast"
    )  # (B, T, H, W, C) memory


def test_collate_refuses_items_of_different_shapes() -> None:
    items = [{"a": torch.zeros(2)}, {"a": torch.zeros(3)}]
    with pytest.raises(ValueError, match=r"collate: 'a' has shape \(3,\) torch.float32 in one item"):
        collate(items)


def test_process_buffers_come_back_only_when_no_view_is_left() -> None:
    buffers = arena.ProcessBuffers(count=2)
    first = buffers.take(1000)
    view = first[10:20].view(torch.int16)
    address = first.data_ptr()
    del first
    assert not buffers.free  # a view still holds it
    second = buffers.take(1000)
    assert second.data_ptr() != address
    del view
    assert len(buffers.free) == 1
    assert buffers.take(800).data_ptr() == address  # used again
    del second


def test_process_buffers_keep_at_most_max_bytes() -> None:
    buffers = arena.ProcessBuffers(count=4, max_bytes=2500)
    taken = [buffers.take(1000) for _ in range(4)]
    taken.clear()  # all four come back; the third would pass 2500 bytes
    assert [a.nbytes for a in buffers.free] == [1000, 1000]
    big = arena.ProcessBuffers(count=4, max_bytes=10)
    taken = [big.take(1000) for _ in range(2)]
    taken.clear()
    assert len(big.free) == 1  # one buffer at least, whatever its size


def test_worker_buffers_keep_at_most_max_bytes() -> None:
    buffers = arena.WorkerBuffers(count=4, max_bytes=2500)
    leases = [buffers.take(1000)[1] for _ in range(4)]
    assert [lease is not None for lease in leases] == [True, True, False, False]  # fresh, untracked
    assert sum(b is not None for b in buffers.buffers) == 2
    buffers.board[0] = 0  # the training process dropped the first batch
    lease = buffers.take(1000)[1]
    assert lease is not None
    assert lease.buffer_index == 0
    buffers.board[0] = 0
    assert buffers.take(3000)[1] is None  # growing buffer 0 would pass max_bytes next to buffer 1
    buffers.board[:] = 0
    one = arena.WorkerBuffers(count=4, max_bytes=10)
    assert one.take(1000)[1] is not None  # one buffer at least


def test_batches_built_in_the_training_process_are_never_overwritten_while_viewed(
    converted: dict[str, str],
) -> None:
    """num_workers=0 uses its batch buffers again: whole batches kept, and views kept, never change."""
    dataset = recycling_dataset(converted["multi"])
    reference = [{k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in b.items()} for b in dataset]
    kept: list[dict[str, Any]] = []
    addresses = set()
    for number, batch in enumerate(dataset):
        addresses.add(batch["index"].untyped_storage().data_ptr())
        if number % 3 == 0:
            kept.append(batch)
        else:
            kept.append({k: v[:] if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
        del batch
    assert_same_batches(kept, reference)
    kept.clear()
    addresses.clear()
    for batch in dataset:  # nothing held: a handful of buffers serve the epoch
        addresses.add(batch["index"].untyped_storage().data_ptr())
    assert len(addresses) <= arena.RECYCLED_BUFFERS + 1
