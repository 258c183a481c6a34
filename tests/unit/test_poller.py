"""NodePoller diffing, cost strategy, error handling and start_poller, on httpx.MockTransport."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import httpx
import pytest

import decom._driver.poller as poller_mod
from decom import DecomConfig, NodeStatus, ResourceManagerError
from decom._driver.poller import DOOMED_QUERY, FULL_QUERY, NodePoller, start_poller
from decom._yarn import ResourceManagerClient
from tests.fake_rm import FakeRM


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[NodeStatus]] = []

    def __call__(self, changes: list[NodeStatus]) -> None:
        self.calls.append(list(changes))

    def flat(self) -> list[tuple[str, str]]:
        return [(s.target, s.state) for call in self.calls for s in call]


def make(rm: FakeRM, **kw: Any) -> tuple[NodePoller, Recorder]:
    rec = Recorder()
    return NodePoller(rm.client(), 1.0, rec, **kw), rec


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


FULL = ",".join(FULL_QUERY)
DOOMED = ",".join(DOOMED_QUERY)


# ---- diffing -------------------------------------------------------------------------------------


def test_first_poll_reports_every_node_not_running_then_only_changes() -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    rm.set("h2:1", "DECOMMISSIONING")
    rm.set("h3:1", "LOST")
    p, rec = make(rm)
    assert sorted((s.target, s.state) for s in p.poll_once()) == [
        ("h2", "DECOMMISSIONING"), ("h3", "LOST")]
    assert p.poll_once() == []
    rm.set("h1:1", "DECOMMISSIONING")
    rm.set("h2:1", "DECOMMISSIONED")
    p.poll_once()
    assert p.poll_once() == []
    assert rec.flat() == [("h2", "DECOMMISSIONING"), ("h3", "LOST"),
                          ("h1", "DECOMMISSIONING"), ("h2", "DECOMMISSIONED")]
    assert len(rec.calls) == 2  # one batch per poll


def test_every_poll_calls_back_also_without_changes() -> None:
    """What start_poller asks for: the controller checks the shim for nodes let go on each poll."""
    rm = FakeRM()
    rm.set("h1:1", "DECOMMISSIONING")
    p, rec = make(rm, every_poll=True)
    p.poll_once()
    p.poll_once()
    assert rec.calls == [[NodeStatus("h1", "DECOMMISSIONING")], []]
    assert p.status()["updates"] == 1, "a poll without changes is no update"


def test_back_to_running_is_seen_without_polling_running_every_time() -> None:
    rm = FakeRM()
    for i in range(5):
        rm.set(f"h{i}:1", "RUNNING")
    p, rec = make(rm)
    p.poll_once()
    assert rm.queries() == ["metrics", FULL]
    rm.requests.clear()
    p.poll_once()
    p.poll_once()
    assert rm.queries() == ["metrics", DOOMED] * 2  # steady state: RUNNING is not listed
    rm.set("h1:1", "DECOMMISSIONING")
    rm.requests.clear()
    p.poll_once()  # activeNodes fell by one, explained by h1 in the doomed answer: no full poll
    p.poll_once()
    assert rm.queries() == ["metrics", DOOMED] * 2
    rm.set("h1:1", "RUNNING")  # recommissioned
    rm.requests.clear()
    assert [(s.target, s.state) for s in p.poll_once()] == [("h1", "RUNNING")]
    assert rm.queries() == ["metrics", DOOMED, "node h1:1"]  # looked up alone, no full poll
    assert rec.flat() == [("h1", "DECOMMISSIONING"), ("h1", "RUNNING")]
    rm.requests.clear()
    p.poll_once()
    assert rm.queries() == ["metrics", DOOMED]


def test_vanished_doomed_node_is_looked_up_even_without_metrics() -> None:
    rm = FakeRM(metrics=False)
    rm.set("h1:1", "DECOMMISSIONING")
    rm.set("h2:1", "LOST")
    rm.set("h3:1", "RUNNING")
    p, rec = make(rm)
    p.poll_once()
    rm.requests.clear()
    p.poll_once()
    assert rm.queries() == [DOOMED]
    rm.set("h1:1", "RUNNING")
    rm.drop("h2:1")  # the RM forgot it: nothing to say about it
    p.poll_once()
    assert sorted(rm.queries()[1:]) == sorted([DOOMED, "node h1:1", "node h2:1"])
    assert rec.flat() == [("h1", "DECOMMISSIONING"), ("h2", "LOST"), ("h1", "RUNNING")]
    assert p.status()["nodes_tracked"] == 2


def test_many_vanished_nodes_make_one_full_poll() -> None:
    rm = FakeRM()
    for i in range(5):
        rm.set(f"h{i}:1", "DECOMMISSIONED")
    p, rec = make(rm, max_lookups=3)
    p.poll_once()
    for i in range(5):
        rm.set(f"h{i}:1", "RUNNING")
    rm.requests.clear()
    p.poll_once()
    assert rm.queries() == ["metrics", DOOMED, FULL]
    assert sorted((s.target, s.state) for s in rec.calls[-1]) == [
        (f"h{i}", "RUNNING") for i in range(5)]


def test_periodic_full_poll_uses_the_clock() -> None:
    rm = FakeRM(metrics=False)
    rm.set("h1:1", "RUNNING")
    now = [0.0]
    p, _ = make(rm, clock=lambda: now[0], full_interval=60.0)
    p.poll_once()
    now[0] = 30.0
    p.poll_once()
    now[0] = 61.0
    p.poll_once()
    assert rm.queries() == ["metrics", FULL, DOOMED, FULL]  # metrics 404 once: not asked again


def _hold_full_reads(rm: FakeRM) -> tuple[threading.Event, threading.Event]:
    """Full reads answer what the RM said when asked, but only once ``go`` is set: a slow RM."""
    asked, go = threading.Event(), threading.Event()

    def hold(req: httpx.Request) -> httpx.Response | None:
        if req.url.path == "/ws/v1/cluster/nodes" and req.url.params.get("states") == FULL:
            answer = rm.answer_nodes(FULL)
            asked.set()
            assert go.wait(5)
            return answer
        return None

    rm.on_request = hold
    return asked, go


def test_full_reads_apart_hold_no_light_poll_back_and_undo_nothing_newer() -> None:
    """The agent's poller: a slow periodic full read runs in its own thread; a node the light polls saw
    going DECOMMISSIONING meanwhile stays so, though the full answer (older) still had it RUNNING."""
    rm = FakeRM()
    for i in range(1, 4):
        rm.set(f"h{i}:1", "RUNNING")
    now = [0.0]
    p, rec = make(rm, clock=lambda: now[0], full_interval=60.0, full_apart=True)
    p.poll_once()  # the first read is made inline: the baseline
    asked, go = _hold_full_reads(rm)
    rm.set("h4:1", "RUNNING")  # registered: the node count rises
    now[0] = 61.0
    try:
        assert p.poll_once() == []
        assert asked.wait(5), "the periodic full read was not made"
        rm.set("h1:1", "DECOMMISSIONING")
        started = time.monotonic()
        assert [(s.target, s.state) for s in p.poll_once()] == [("h1", "DECOMMISSIONING")]
        assert time.monotonic() - started < 1.0, "the light poll waited for the full read"
    finally:
        go.set()
    assert wait_until(lambda: p.status()["full_polls"] == 2)
    assert p.states()["h1"] == "DECOMMISSIONING"
    assert sorted(n.host for n in p.nodes()) == ["h1", "h2", "h3", "h4"]
    assert p.poll_once() == []
    assert rec.flat() == [("h1", "DECOMMISSIONING")]
    p.stop()


def test_full_read_apart_follows_a_registration_and_its_news_comes_with_the_next_poll() -> None:
    rm = FakeRM()
    rm.set("h1:4001", "RUNNING")
    rm.set("h2:4001", "RUNNING")
    p, rec = make(rm, full_apart=True)
    p.poll_once()
    rm.set("h1:4001", "LOST")
    p.poll_once()
    rm.fail = 500
    rm.set("h1:4555", "RUNNING")  # back on a new port; the old id stays LOST
    with pytest.raises(ResourceManagerError):
        p.poll_once()
    rm.fail = None
    rm.requests.clear()
    assert p.poll_once() == []  # light: the count mismatch asks the full reader
    assert wait_until(lambda: p.status()["full_polls"] == 2)
    assert [(s.target, s.state) for s in p.poll_once()] == [("h1", "RUNNING")]
    assert FULL in rm.queries()
    assert rec.flat() == [("h1", "LOST"), ("h1", "RUNNING")]
    p.stop()


def test_an_inline_full_read_supersedes_an_older_one_still_in_flight_apart() -> None:
    """17 nodes back at once are too many to look up: that poll reads every node inline. A full read apart
    that began before it must not put its older answer over it."""
    rm = FakeRM()
    for i in range(17):
        rm.set(f"d{i}:1", "DECOMMISSIONED")
    rm.set("r:1", "RUNNING")
    now = [0.0]
    p, rec = make(rm, clock=lambda: now[0], full_interval=60.0, full_apart=True)
    p.poll_once()
    asked, go = _hold_full_reads(rm)
    now[0] = 61.0
    try:
        p.poll_once()  # the periodic read, apart: it holds the RM's answer of now (17 DECOMMISSIONED)
        assert asked.wait(5)
        rm.on_request = None
        for i in range(17):
            rm.set(f"d{i}:1", "RUNNING")  # recommissioned: 17 lookups would be needed
        assert sorted(s.state for s in p.poll_once()) == ["RUNNING"] * 17
    finally:
        go.set()
    assert wait_until(lambda: not p._full_in_flight)  # noqa: SLF001 - the held read has ended
    assert p.poll_once() == [], "the older answer came back"
    assert {p.states()[f"d{i}"] for i in range(17)} == {"RUNNING"}
    assert rec.flat().count(("d0", "DECOMMISSIONED")) == 1 and rec.flat().count(("d0", "RUNNING")) == 1
    p.stop()


def test_a_registration_after_a_merge_apart_is_still_caught_by_the_node_count() -> None:
    """The count check compares the RM's activeNodes with the snapshot's RUNNING nodes, so a merge from the
    full reader that was first to see h1 leave RUNNING leaves it right, and h9 registering is read at once."""
    rm = FakeRM()
    for i in range(1, 4):
        rm.set(f"h{i}:1", "RUNNING")
    now = [0.0]
    p, rec = make(rm, clock=lambda: now[0], full_interval=60.0, full_apart=True)
    p.poll_once()

    def h1_goes_first(req: httpx.Request) -> httpx.Response | None:
        if req.url.params.get("states") == FULL:
            rm.set("h1:1", "DECOMMISSIONING")  # after the light poll's read, before the full one's
        return None

    rm.on_request = h1_goes_first
    now[0] = 61.0
    assert p.poll_once() == []
    assert wait_until(lambda: p.status()["full_polls"] == 2 and not p._full_in_flight)  # noqa: SLF001
    rm.on_request = None
    rm.set("h9:1", "RUNNING")  # registers: the RM's count is back where it was before h1 left
    rm.requests.clear()
    assert [(s.target, s.state) for s in p.poll_once()] == [("h1", "DECOMMISSIONING")]
    assert wait_until(lambda: p.status()["full_polls"] == 3), "the registration was not followed by a full read"
    assert FULL in rm.queries()
    assert "h9" in {n.host for n in p.nodes()}
    assert rec.flat() == [("h1", "DECOMMISSIONING")]
    p.stop()


def test_a_failing_full_read_apart_shows_and_backs_off(caplog: pytest.LogCaptureFixture) -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    now = [0.0]
    p, _ = make(rm, clock=lambda: now[0], full_interval=60.0, full_apart=True)
    p.poll_once()
    rm.requests.clear()

    def refuse_full(req: httpx.Request) -> httpx.Response | None:
        return httpx.Response(500) if req.url.params.get("states") == FULL else None

    rm.on_request = refuse_full
    rm.set("h2:1", "RUNNING")  # registered: every light poll now asks for a full read
    with caplog.at_level(logging.WARNING, logger="decom.poller"):
        for t in range(1, 6):
            now[0] = float(t)
            p.poll_once()
            assert wait_until(lambda: not p._full_in_flight)  # noqa: SLF001
    full_reads = sum(1 for q in rm.queries() if q == FULL)
    assert full_reads == 2, f"{full_reads} full reads in 5 s: at t=1, then after a 2 s backoff at t=3"
    status = p.status()
    assert status["full_read_errors"] == full_reads and status["last_full_read_error"]
    assert sum("full read of the ResourceManager's nodes failed" in r.message for r in caplog.records) == 1
    p.stop()
    assert wait_until(lambda: p._full_thread is not None and not p._full_thread.is_alive())  # noqa: SLF001


def test_an_rm_whose_count_never_matches_its_list_costs_no_full_read_per_poll() -> None:
    """YARN keeps its node counters apart from its node list; if they disagree for good, the difference
    found by a full read is taken as the norm, not chased with a full read every poll."""
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    p, rec = make(rm)
    real_metrics = rm.metrics

    def one_more_active() -> dict[str, Any]:
        m = real_metrics()
        m["clusterMetrics"]["activeNodes"] += 1
        return m

    rm.metrics = one_more_active  # type: ignore[method-assign]
    p.poll_once()
    p.poll_once()  # a second full read finds the same difference: the RM's norm from now on
    rm.requests.clear()
    for _ in range(3):
        p.poll_once()
    assert rm.queries() == ["metrics", DOOMED] * 3
    rm.set("h2:1", "RUNNING")  # a real registration is still seen
    rm.requests.clear()
    p.poll_once()
    assert FULL in rm.queries()
    assert {n.host for n in p.nodes()} == {"h1", "h2"}


def test_full_mode_lists_running_every_poll() -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    p, _ = make(rm, light=False)
    p.poll_once()
    p.poll_once()
    assert rm.queries() == [FULL, FULL]


def test_nodemanager_restarted_on_a_new_port_brings_the_host_back() -> None:
    rm = FakeRM()
    rm.set("h1:4001", "RUNNING")
    rm.set("h2:4001", "RUNNING")
    p, rec = make(rm)
    p.poll_once()
    rm.set("h1:4001", "LOST")
    p.poll_once()
    rm.set("h1:4555", "RUNNING")  # the old id stays LOST in the RM's list
    rm.requests.clear()
    p.poll_once()
    assert rm.queries() == ["metrics", DOOMED, FULL]  # activeNodes rose: someone registered
    assert rec.flat() == [("h1", "LOST"), ("h1", "RUNNING")]
    assert p.poll_once() == []


def test_several_nodemanagers_on_one_host_are_named_by_node_id() -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    rm.set("h1:2", "RUNNING")
    rm.set("h2:1", "RUNNING")
    p, rec = make(rm)
    p.poll_once()
    rm.set("h1:2", "DECOMMISSIONING")
    rm.set("h2:1", "DECOMMISSIONING")
    p.poll_once()
    assert sorted(rec.flat()) == [("h1:2", "DECOMMISSIONING"), ("h2", "DECOMMISSIONING")]


def test_all_nodemanagers_of_a_host_gone_name_the_host() -> None:
    rm = FakeRM()
    rm.set("h1:1", "LOST", lastHealthUpdate=1)
    rm.set("h1:2", "DECOMMISSIONED", lastHealthUpdate=2)
    p, rec = make(rm)
    p.poll_once()
    assert rec.flat() == [("h1", "DECOMMISSIONED")]


def test_deadline_from_decommissioning_timeout() -> None:
    rm = FakeRM()
    rm.set("h1:1", "DECOMMISSIONING", decommissioningTimeout=300)
    rm.set("h2:1", "DECOMMISSIONING")
    p, _ = make(rm, wall_clock=lambda: 1000.0)
    got = {s.target: s.deadline for s in p.poll_once()}
    assert got == {"h1": 1300.0, "h2": None}


def test_unknown_states_are_kept() -> None:
    rm = FakeRM()
    rm.set("h1:1", "FROBNICATING")
    rm.ignore_filter = True
    p, rec = make(rm)
    p.poll_once()
    assert rec.flat() == [("h1", "FROBNICATING")]


# ---- failures ------------------------------------------------------------------------------------


def test_garbage_raises_and_reports_nothing() -> None:
    rm = FakeRM()
    rm.set("h1:1", "DECOMMISSIONING")
    p, rec = make(rm)
    p.poll_once()
    rm.fail = b'{"nodes": {"node": [{"id": "h1:1", "state": "DECOMMISSIONED"'
    with pytest.raises(Exception, match="not a YARN ResourceManager reply"):
        p.poll_once()
    rm.fail = None
    p.poll_once()
    assert rec.flat() == [("h1", "DECOMMISSIONING")]
    assert p.status()["errors"] == 1 and p.status()["consecutive_errors"] == 0


def test_thread_logs_one_warning_per_outage_and_one_info_on_recovery(
        caplog: pytest.LogCaptureFixture) -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    rm.fail = httpx.ConnectError("[Errno 111] Connection refused")
    rec = Recorder()
    p = NodePoller(rm.client(), 0.01, rec, max_backoff=0.02)
    with caplog.at_level(logging.INFO, logger="decom"):
        p.start()
        try:
            assert wait_until(lambda: p.status()["consecutive_errors"] >= 8)
            rm.set("h1:1", "LOST")
            rm.fail = None
            assert wait_until(lambda: rec.flat() == [("h1", "LOST")])
            assert p.status()["consecutive_errors"] == 0
        finally:
            p.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "connection refused" in warnings[0].getMessage()
    assert sum("answers again" in r.getMessage() for r in caplog.records) == 1


def test_callback_errors_do_not_stop_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    rm = FakeRM()
    rm.set("h1:1", "LOST")
    calls: list[int] = []

    def broken(changes: list[NodeStatus]) -> None:
        calls.append(len(changes))
        raise RuntimeError("boom")

    p = NodePoller(rm.client(), 0.01, broken)
    with caplog.at_level(logging.ERROR, logger="decom"):
        p.start()
        try:
            assert wait_until(lambda: len(calls) == 1)
            rm.set("h2:1", "LOST")
            assert wait_until(lambda: len(calls) == 2)
            assert p.running
        finally:
            p.stop()
    assert "callback failed" in caplog.text


def test_stop_is_quick_and_status_is_complete() -> None:
    rm = FakeRM()
    rm.set("h1:1", "RUNNING")
    p = NodePoller(rm.client(), 30.0, Recorder()).start()
    assert wait_until(lambda: p.status()["polls"] == 1)
    started = time.monotonic()
    p.stop()
    assert time.monotonic() - started < 1.0 and not p.running
    status = p.status()
    assert status["addresses"] == ["http://rm:8088"]
    assert status["active_address"] == "http://rm:8088"
    assert status["last_success"] is not None and status["last_error"] is None
    assert {"polls", "consecutive_errors", "full_polls", "errors"} <= set(status)


# ---- start_poller --------------------------------------------------------------------------------


class FakeController:
    def __init__(self) -> None:
        self.poller: Any = None
        self.updates: list[list[NodeStatus]] = []

    def attach_poller(self, poller: Any) -> None:
        self.poller = poller

    def on_node_states(self, statuses: list[NodeStatus]) -> None:
        self.updates.append(list(statuses))


def test_start_poller_without_rm(monkeypatch: pytest.MonkeyPatch,
                                 caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    ctl = FakeController()
    with caplog.at_level(logging.INFO, logger="decom"):
        assert start_poller(ctl, DecomConfig(), {}) is None
    assert "no ResourceManager configured: nodes are reported by hand" in caplog.text
    assert ctl.poller is None


def test_start_poller_attaches_and_feeds_the_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    rm = FakeRM()
    rm.set("h1:1", "DECOMMISSIONING")
    monkeypatch.setattr(poller_mod, "ResourceManagerClient",
                        partial(ResourceManagerClient, transport=rm.transport()))
    ctl = FakeController()
    config = DecomConfig(poll_interval=0.05)
    p = start_poller(ctl, config, {"spark.hadoop.yarn.resourcemanager.webapp.address": "rm:8088"})
    assert p is not None and ctl.poller is p
    try:
        # Every poll reaches the controller; the ones without changes bring no statuses.
        assert wait_until(lambda: [u for u in ctl.updates if u] == [[NodeStatus("h1", "DECOMMISSIONING")]]
                          and len(ctl.updates) >= 2)
        assert p.status()["addresses"] == ["http://rm:8088"]
    finally:
        p.stop()
