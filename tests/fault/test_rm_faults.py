"""The RM client and poller against a real HTTP server on 127.0.0.1 misbehaving on purpose.

Covers what httpx.MockTransport can't show: refused connections, 5xx, a hanging server, bodies
cut short on the wire, non-UTF-8, a standby's 307 to the active RM, fail-over from a dead address,
a 10,000-node reply. Every wait is bounded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from decom import NodeStatus, ResourceManagerError
from decom._driver.poller import NodePoller
from decom._yarn import ResourceManagerClient
from tests.support import FakeRM, RMHandler, closed_port


@pytest.fixture
def rm() -> Any:
    server = FakeRM(metrics=False).start()
    yield server
    server.release.set()
    server.stop()


def wait_until(pred: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[NodeStatus]] = []

    def __call__(self, changes: list[NodeStatus]) -> None:
        self.calls.append(list(changes))

    def flat(self) -> list[tuple[str, str]]:
        return [(s.target, s.state) for c in self.calls for s in c]


def client(*urls: str, timeout: float = 2.0) -> ResourceManagerClient:
    return ResourceManagerClient(list(urls), timeout=timeout, user="tester")


# ---- single requests -----------------------------------------------------------------------------


def test_connection_refused() -> None:
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(ResourceManagerError, match=f"127.0.0.1:{port}: connection refused"):
        client(f"127.0.0.1:{port}").nodes()
    assert time.monotonic() - started < 2.0


def test_http_500(rm: FakeRM) -> None:
    def fail(h: RMHandler) -> bool:
        h.send_json(500, {"RemoteException": {"message": "internal trouble"}})
        return True

    rm.behaviour = fail
    with pytest.raises(ResourceManagerError, match="HTTP 500: internal trouble"):
        client(rm.url).nodes()


def test_a_hang_longer_than_the_timeout_fails_fast(rm: FakeRM) -> None:
    def hang(h: RMHandler) -> bool:
        rm.release.wait(10)
        return False

    rm.behaviour = hang
    started = time.monotonic()
    with pytest.raises(ResourceManagerError, match="no answer within 0.3 s"):
        client(rm.url, timeout=0.3).nodes()
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("body,length", [
    (b"Service Unavailable<html>", None),
    (b'{"nodes": {"node": [{"id": "h1:1", "state": "DECOMMISSIONED"}', None),  # cut JSON
    (b'{"nodes": {"node": [{"id": "h1:1", "state": "DECOMMISSIONED"}]}}', 200),  # cut on wire
    (b'{"nodes": {"node": [{"id": "h\xe9:1", "state": "DECOMMISSIONED"}]}}', None),  # latin-1
    (b'{"nodes": {"node": [{"id": 42, "state": "DECOMMISSIONED"}]}}', None),
])
def test_garbage_never_becomes_a_state(rm: FakeRM, body: bytes, length: int | None) -> None:
    rm.set("h1:1", "RUNNING")
    rec = Recorder()
    p = NodePoller(client(rm.url), 1.0, rec, light=False)
    p.poll_once()

    def garbage(h: RMHandler) -> bool:
        h.send_raw(200, body, length)
        if length is not None:
            h.close_connection = True
        return True

    rm.behaviour = garbage
    for _ in range(3):
        with pytest.raises(ResourceManagerError):
            p.poll_once()
    assert rec.calls == []
    assert p.status()["consecutive_errors"] == 3


def test_unknown_node_states_are_passed_on(rm: FakeRM) -> None:
    def any_state(h: RMHandler) -> bool:
        h.send_json(200, {"nodes": {"node": [
            {"id": "h1:1", "nodeHostName": "h1", "state": "DECOMMISSIONING_WAIT"},
            {"id": "h2:1", "nodeHostName": "h2", "state": "RUNNING"}]}})
        return True

    rm.behaviour = any_state
    rec = Recorder()
    NodePoller(client(rm.url), 1.0, rec).poll_once()
    assert rec.flat() == [("h1", "DECOMMISSIONING_WAIT")]


# ---- HA ------------------------------------------------------------------------------------------


def test_standby_307_to_the_active(rm: FakeRM) -> None:
    rm.set("h1:1", "DECOMMISSIONED")
    standby = FakeRM(metrics=False)

    def redirect(h: RMHandler) -> bool:
        h.send_response(307)
        h.send_header("Location", f"{rm.url}{h.path}")
        h.send_header("Content-Length", "0")
        h.end_headers()
        return True

    standby.behaviour = redirect
    standby.start()
    try:
        rm_client = client(standby.url, rm.url)
        rec = Recorder()
        NodePoller(rm_client, 1.0, rec).poll_once()
        assert rec.flat() == [("h1", "DECOMMISSIONED")]
        assert rm_client.active_address == rm.url
        before = len(standby.requests)
        rm_client.nodes()
        assert len(standby.requests) == before  # the active one is asked first now
    finally:
        standby.stop()


def test_failover_from_a_dead_first_address(rm: FakeRM) -> None:
    rm.set("h1:1", "LOST")
    rec = Recorder()
    rm_client = client(f"127.0.0.1:{closed_port()}", rm.url)
    NodePoller(rm_client, 1.0, rec).poll_once()
    assert rec.flat() == [("h1", "LOST")]
    assert rm_client.active_address == rm.url


# ---- the poller thread through outages -----------------------------------------------------------


def test_outage_one_warning_then_recovery(rm: FakeRM, caplog: pytest.LogCaptureFixture) -> None:
    rm.set("h1:1", "RUNNING")
    rec = Recorder()
    p = NodePoller(client(rm.url, timeout=0.5), 0.02, rec, max_backoff=0.05)
    with caplog.at_level(logging.INFO, logger="decom"):
        p.start()
        try:
            assert wait_until(lambda: p.status()["polls"] >= 1)
            rm.stop()  # connection refused from now on
            assert wait_until(lambda: p.status()["consecutive_errors"] >= 10)
            rm.set("h1:1", "DECOMMISSIONING")
            rm.start()  # same port
            assert wait_until(lambda: rec.flat() == [("h1", "DECOMMISSIONING")])
            errors = p.status()["errors"]

            def fail(h: RMHandler) -> bool:
                h.send_json(503, {})
                return True

            rm.behaviour = fail  # a second outage: 5xx this time
            assert wait_until(lambda: p.status()["errors"] >= errors + 10)
            rm.behaviour = None
            assert wait_until(lambda: p.status()["consecutive_errors"] == 0)
        finally:
            p.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings  # one per outage, not one per failed poll
    # refused, or reset when a connect races the listening socket's close
    assert any(w in warnings[0] for w in ("connection refused", "reset", "cannot connect"))
    assert "HTTP 503" in warnings[1]
    back = [r for r in caplog.records if "answers again" in r.getMessage()]
    assert len(back) == 2 and all(r.levelno == logging.INFO for r in back)
    assert rec.flat() == [("h1", "DECOMMISSIONING")]


def test_stop_returns_while_a_request_hangs(rm: FakeRM) -> None:
    def hang(h: RMHandler) -> bool:
        rm.release.wait(10)
        return False

    rm.behaviour = hang
    rec = Recorder()
    p = NodePoller(client(rm.url, timeout=5.0), 0.05, rec).start()
    assert wait_until(lambda: len(rm.requests) >= 1)
    started = time.monotonic()
    p.stop(timeout=0.5)
    assert time.monotonic() - started < 1.5
    rm.release.set()
    assert rec.calls == []


# ---- scale ---------------------------------------------------------------------------------------


def test_ten_thousand_nodes(rm: FakeRM) -> None:
    for i in range(10_000):
        rm.set(f"node-{i:05d}.example:8041", "DECOMMISSIONED" if i % 1000 == 0 else "RUNNING")
    rec = Recorder()
    p = NodePoller(client(rm.url, timeout=10.0), 1.0, rec)
    started = time.monotonic()
    p.poll_once()
    first = time.monotonic() - started
    assert len(rec.flat()) == 10 and all(s == "DECOMMISSIONED" for _, s in rec.flat())
    assert p.status()["nodes_tracked"] == 10_000
    started = time.monotonic()
    assert p.poll_once() == []  # light poll: only the 10 doomed nodes travel
    light = time.monotonic() - started
    assert first < 10.0 and light < first
