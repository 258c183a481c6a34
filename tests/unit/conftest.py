"""Unit-test fixtures shared by the areas under tests/unit."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from tests.unit.shared_cluster_fakes import NOW_MS


@pytest.fixture(autouse=True)
def _sessions_clock_at_fakes_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake RM/Livy date everything relative to NOW_MS (taken at import); decom._sessions reads the
    wall clock. Pin it to NOW_MS, so ages and idle times don't drift with how long the suite ran before
    (in `make test` the unit tests start after half an hour of Spark and YARN tests)."""
    import decom._sessions

    monkeypatch.setattr(decom._sessions, "time", SimpleNamespace(
        time=lambda: NOW_MS / 1000.0, monotonic=time.monotonic, sleep=time.sleep))
