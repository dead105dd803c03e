"""datatrove, held honestly: the private pieces the executor relies on, and stderr left to its owner."""

from __future__ import annotations

import inspect
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from datatrove.executor import LocalPipelineExecutor
from datatrove.utils import logging as dt_logging
from helpers import fixture_dir

from lerobot_wds import ConvertConfig, convert


def test_datatrove_still_has_what_the_executor_overrides() -> None:
    """converter/executor.py overrides ``_launch_run_for_rank`` and swaps ``datatrove.utils.logging.sys``:
    a datatrove release that changes either must fail here, not silently print or hang a conversion."""
    parameters = list(inspect.signature(LocalPipelineExecutor._launch_run_for_rank).parameters)
    assert parameters == ["self", "rank", "ranks_q", "completed", "completed_lock"]
    assert dt_logging.sys is sys
    for function in (dt_logging.add_task_logger, dt_logging.setup_default_logger):
        assert "sys.stderr" in inspect.getsource(function), function.__name__


def test_a_conversion_leaves_other_threads_stderr_alone(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """``workers=1`` converts in a thread: another thread's stderr writes still arrive meanwhile, and
    datatrove's task logs do not."""
    stop = threading.Event()
    written = []

    def chatter() -> None:
        while not stop.is_set():
            sys.stderr.write("other thread\n")
            written.append(1)
            time.sleep(0.01)

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        convert(str(fixture_dir("tiny")), str(tmp_path / "out"), ConvertConfig(workers=1))
    finally:
        stop.set()
        thread.join()
    err = capfd.readouterr().err
    assert err.count("other thread") == len(written) > 3
    assert "Launching pipeline" not in err
    assert dt_logging.sys is sys


FFMPEG_THREADS_HELD = """
import gc, os, sys, threading
import av
from lerobot_wds import ConvertConfig, convert

gc.disable()  # garbage stays until the fork
os.register_at_fork(after_in_child=gc.collect)  # in the child, any allocation may start a collection


class Holder:
    pass


holder = Holder()
holder.container = av.open(sys.argv[1])  # FFmpeg's default decoder threads
holder.frame = next(holder.container.decode(video=0))
holder.array = holder.frame.to_ndarray(format="gray12le")  # a converter with swscale's threads
if sys.argv[5] == "garbage":
    holder.me = holder  # a cycle: only the collector frees it
    del holder
else:  # only this thread holds it (as PyAV's stashed exceptions are held): a fork from another thread
    held = threading.local()  # frees it in the child
    held.holder = holder
    del holder
convert(sys.argv[2], sys.argv[3], ConvertConfig(workers=int(sys.argv[4])))
"""


@pytest.mark.parametrize(("held", "workers"), [("garbage", 1), ("garbage", 2), ("thread-local", 1)])
def test_ffmpeg_threads_held_by_the_caller_do_not_hang_the_conversion(
    tmp_path: Path, held: str, workers: int
) -> None:
    """datatrove forks its Manager server: a PyAV decoder and converter with FFmpeg's threads, freed in
    that child (as garbage by a collection, or as what only the caller's thread held when the fork came
    from another thread), waited forever on threads the child does not have."""
    video = next((fixture_dir("depth") / "videos").glob("observation.images.depth/*/*.mp4"))  # HEVC
    command = [sys.executable, "-c", FFMPEG_THREADS_HELD, str(video), str(fixture_dir("tiny"))]
    log = tmp_path / "stderr.txt"  # not a pipe: a hung grandchild holding it would hold the timeout too
    with log.open("wb") as stderr:
        completed = subprocess.run(
            [*command, str(tmp_path / "out"), str(workers), held], stderr=stderr, timeout=180
        )
    assert completed.returncode == 0, log.read_text()[-2000:]
    assert (tmp_path / "out" / "manifest.json").is_file()
