"""The CI guard: a skipped LeRobot-marked test fails when LEROBOT_WDS_REQUIRE_LEROBOT=1."""

from __future__ import annotations

import pytest
from require_lerobot import REQUIRE_LEROBOT

pytest_plugins = ["pytester"]

TESTS = """
import pytest

@pytest.mark.lerobot
def test_needs_lerobot():
    pytest.skip("LEROBOT_VENV (a LeRobot venv) not given")

@pytest.mark.lerobot
@pytest.mark.skipif(True, reason="LEROBOT_VENV (a LeRobot venv) not given")
def test_needs_lerobot_skipif():
    pass

def test_other_skip():
    pytest.skip("not a LeRobot test")
"""


# A skip at setup (skipif) turns into an error, one in the call into a failure: either fails the run.
@pytest.mark.parametrize(("required", "failed", "errors", "skipped"), [("1", 1, 1, 1), ("", 0, 0, 3)])
def test_skipped_lerobot_tests_fail_only_when_required(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    required: str,
    failed: int,
    errors: int,
    skipped: int,
) -> None:
    monkeypatch.setenv(REQUIRE_LEROBOT, required)
    pytester.makeini("[pytest]\nmarkers =\n    lerobot: runs LeRobot\n")
    pytester.makepyfile(TESTS)
    result = pytester.runpytest("-p", "require_lerobot", "--strict-markers")
    result.assert_outcomes(failed=failed, errors=errors, skipped=skipped)
    if failed:
        result.stdout.fnmatch_lines(
            ["*a LeRobot test was skipped (*not given); LEROBOT_WDS_REQUIRE_LEROBOT=1*"]
        )
