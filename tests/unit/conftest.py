"""Unit-test fixtures shared by the areas under tests/unit."""

from __future__ import annotations

import time
from functools import partial
from types import SimpleNamespace

import httpx
import pytest

import decom._cli.options as cli_options
import decom._cli.sessions as cli_sessions
from decom._sessions.livy import LivyClient
from decom._yarn import ResourceManagerClient
from tests.fake_rm import NOW_MS, FakeRM
from tests.unit.shared_cluster_fakes import FakeLivy, cluster


@pytest.fixture(autouse=True)
def _sessions_clock_at_fakes_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake RM/Livy date everything relative to NOW_MS (taken at import); decom._sessions.inventory reads the
    wall clock. Pin it to NOW_MS, so ages and idle times don't drift with how long the suite ran before
    (in `make test` the unit tests start after half an hour of Spark and YARN tests)."""
    import decom._sessions.inventory

    monkeypatch.setattr(decom._sessions.inventory, "time", SimpleNamespace(
        time=lambda: NOW_MS / 1000.0, monotonic=time.monotonic, sleep=time.sleep))


@pytest.fixture
def fakes(monkeypatch: pytest.MonkeyPatch) -> tuple[FakeRM, FakeLivy]:
    """The CLI talks to the shared fake cluster: its RM and Livy clients get MockTransports."""
    rm, livy = cluster()
    monkeypatch.setattr(cli_options, "ResourceManagerClient",
                        partial(ResourceManagerClient, transport=rm.transport()))
    monkeypatch.setattr(cli_sessions, "LivyClient", partial(LivyClient, transport=httpx.MockTransport(livy.handle)))
    return rm, livy
