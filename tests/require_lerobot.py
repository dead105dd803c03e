"""pytest plugin: with ``LEROBOT_WDS_REQUIRE_LEROBOT=1`` (set by ``make test``, so by CI), a skipped
``lerobot``-marked test is reported as a failure.

Those tests skip themselves without ``LEROBOT_VENV``; in CI that would hide that LeRobot itself was never
run, so there a skip means the LeRobot venv is missing or broken.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

REQUIRE_LEROBOT = "LEROBOT_WDS_REQUIRE_LEROBOT"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    report = yield
    if (
        isinstance(report, pytest.TestReport)
        and report.skipped
        and os.environ.get(REQUIRE_LEROBOT) == "1"
        and item.get_closest_marker("lerobot") is not None
    ):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid}: a LeRobot test was skipped ({reason}); {REQUIRE_LEROBOT}=1 requires it to run. "
            "Give LEROBOT_VENV=<venv of ../shared/tools/lerobot-venv/setup.sh> (make test builds one)"
        )
    return report
