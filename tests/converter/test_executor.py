"""datatrove, held honestly: the private pieces the executor relies on, and stderr left to its owner."""

from __future__ import annotations

import inspect
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
