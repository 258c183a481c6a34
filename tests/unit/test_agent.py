"""The decom agent's decisions and its endpoint, with the RM behind httpx.MockTransport and YARN's admin
tools replaced by a recording stand-in (what the real ones do is shown on the lab, tests/yarn/test_agent_lab.py).
The exclude file, the HTTP endpoint and the driver's link are the real ones."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from decom._agent import Agent, AgentServer, AppReport, ExcludeFile, OtherApps, sign
from decom._agent.yarn_admin import NodeApps
from decom._agent_contract import verify
from decom._driver.agent_link import AgentLink
from decom._errors import AgentError, ExcludeFileError
from decom._yarn import ResourceManagerClient

SECRET = b"0123456789abcdef0123456789abcdef"
APP_A = "application_1700000000000_0001"
APP_B = "application_1700000000000_0002"


def rm_node(host: str, state: str, containers: int = 0) -> dict[str, Any]:
    return {"id": f"{host}:8041", "nodeHostName": host, "state": state, "numContainers": containers,
            "nodeHTTPAddress": f"{host}:8042" if state not in ("DECOMMISSIONED", "LOST") else ""}


class FakeRM:
    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.down = False
        self.asked: list[str] = []
        self.refused_states: set[str] = set()  # a query for any of them gets a 500

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(f"{request.url.path}?{request.url.query.decode()}".rstrip("?"))
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        path = request.url.path
        if path == "/ws/v1/cluster/metrics":
            return httpx.Response(200, json={"clusterMetrics": {
                "activeNodes": sum(1 for n in self.nodes if n["state"] == "RUNNING")}})
        if path.startswith("/ws/v1/cluster/nodes/"):
            node_id = path.rsplit("/", 1)[1]
            found = [n for n in self.nodes if n["id"] == node_id]
            return httpx.Response(200, json={"node": found[0]}) if found else httpx.Response(404, json={
                "RemoteException": {"message": f"nodeId, {node_id}, is not found"}})
        states = request.url.params.get("states")
        wanted = set(states.split(",")) if states else None
        if wanted and wanted & self.refused_states:
            return httpx.Response(500, text="boom")
        return httpx.Response(200, json={"nodes": {"node": [n for n in self.nodes
                                                            if wanted is None or n["state"] in wanted]}})


class FakeAdmin:
    """YarnAdmin's three calls, recorded; apps per host and RPC timeouts set by the test."""

    def __init__(self) -> None:
        self.apps: dict[str, set[str]] = {}
        self.timeouts: dict[str, int | None] = {}
        self.timeouts_fail = False
        self.refreshes = 0

    def node_apps(self, node: str, http_address: str) -> NodeApps:
        return NodeApps(node, frozenset(self.apps.get(node, set())))

    def decommissioning_timeouts(self) -> dict[str, int | None]:
        if self.timeouts_fail:
            raise AgentError("cannot read the decommissioning timeouts: RM down")
        return dict(self.timeouts)

    def refresh_nodes_graceful(self) -> None:
        self.refreshes += 1


def exclude_xml(hosts: dict[str, int | None]) -> str:
    items = "".join(f"<host><name>{h}</name>{'' if t is None else f'<timeout>{t}</timeout>'}</host>"
                    for h, t in hosts.items())
    return f'<?xml version="1.0"?>\n<hosts>{items}</hosts>\n'


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    rm = FakeRM()
    admin = FakeAdmin()
    path = tmp_path / "exclude.xml"
    path.write_text(exclude_xml({"d1": 3600}))
    client = ResourceManagerClient(["http://rm:8088"], transport=httpx.MockTransport(rm.handler))

    def make(**kw: Any) -> Agent:
        kw.setdefault("startup_grace", 0.0)
        return Agent(client, admin, ExcludeFile(path), records=tmp_path / "releases.jsonl", **kw)  # type: ignore[arg-type]

    return rm, admin, path, make


def test_a_node_is_released_once_every_app_there_lets_go(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("r1", "RUNNING", 3)]
    admin.apps = {"d1": {APP_A, APP_B}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.app_reported(AppReport(APP_B, frozenset(), 1.0))
    agent.poll_once()
    assert admin.refreshes == 0 and ExcludeFile(path).read() == {"d1": 3600}, "released while B holds the node"
    assert agent.status()["waiting"]["d1"] == {"apps_holding": [APP_B], "other_apps": []}
    agent.app_reported(AppReport(APP_B, frozenset({"d1"}), 2.0))
    agent.poll_once()
    assert admin.refreshes == 1 and ExcludeFile(path).read() == {"d1": 0}
    release = agent.status()["releases"][0]
    assert release["apps_agreed"] == [APP_A, APP_B] and release["previous_timeout"] == 3600
    agent.poll_once()
    assert admin.refreshes == 1, "released twice"
    # Once YARN has it DECOMMISSIONED, the host's own timeout is back (a 0 would kill a later decommission).
    rm.nodes = [rm_node("d1", "DECOMMISSIONED")]
    agent.poll_once()
    assert ExcludeFile(path).read() == {"d1": 3600}
    lines = [json.loads(x) for x in (path.parent / "releases.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == ["released", "restored"]


def test_an_older_report_arriving_late_does_not_win(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset(), 5.0))  # re-excluded: holds the node again
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 4.0))
    agent.poll_once()
    assert admin.refreshes == 0


def test_containers_on_the_node_hold_it(setup: Any) -> None:
    rm, admin, _, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING", containers=1)]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert admin.refreshes == 0 and agent.status()["waiting"]["d1"] == {"containers": 1}


@pytest.mark.parametrize("other_apps,released", [(OtherApps.WAIT, False), (OtherApps.RELEASE, True)])
def test_apps_without_decom_hold_the_node_only_under_wait(setup: Any, other_apps: OtherApps, released: bool) -> None:
    rm, admin, path, make = setup
    agent = make(other_apps=other_apps)
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A, APP_B}}  # B never reports (MapReduce, or Spark without decom)
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert (admin.refreshes == 1) is released
    assert (ExcludeFile(path).read()["d1"] == 0) is released
    if released:
        assert agent.status()["releases"][0]["other_apps"] == [APP_B]


def test_right_after_a_start_unknown_apps_hold_the_node_even_under_release(setup: Any) -> None:
    """They may be decom apps whose next report is on its way (the agent just restarted)."""
    rm, admin, _, make = setup
    agent = make(other_apps=OtherApps.RELEASE, startup_grace=30.0)
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.poll_once()
    assert admin.refreshes == 0


def test_a_failed_refresh_puts_the_old_timeout_back(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))

    def fail() -> None:
        raise AgentError("cannot refresh the nodes (rmadmin): exit 255")

    admin.refresh_nodes_graceful = fail  # type: ignore[method-assign]
    agent.poll_once()
    assert ExcludeFile(path).read() == {"d1": 3600}, "a 0 left behind would release the node at anyone's next refresh"
    assert agent.status()["releases"] == [] and "exit 255" in agent.status()["last_error"]


def test_a_released_node_that_came_back_is_released_again_on_its_next_decommission(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    rm.nodes = [rm_node("d1", "RUNNING")]  # recommissioned before YARN finished it
    agent.poll_once()
    assert ExcludeFile(path).read() == {"d1": 3600}
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    agent.poll_once()
    assert admin.refreshes == 2


def test_other_decommissioning_hosts_get_their_timeouts_written_before_a_bare_refresh(setup: Any) -> None:
    rm, admin, path, make = setup
    path.write_text(exclude_xml({"d1": 3600, "d2": None, "gone": None}))
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("d2", "DECOMMISSIONING", 2),
                rm_node("gone", "DECOMMISSIONED")]
    admin.apps = {"d1": {APP_A}}
    admin.timeouts = {"d1": 3600, "d2": 7200}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert ExcludeFile(path).read() == {"d1": 0, "d2": 7200, "gone": None}
    assert admin.refreshes == 1


def test_no_release_when_the_other_hosts_timeouts_cannot_be_read(setup: Any) -> None:
    rm, admin, path, make = setup
    path.write_text(exclude_xml({"d1": 3600, "d2": None}))
    before = path.read_bytes()
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("d2", "DECOMMISSIONING", 2)]
    admin.apps = {"d1": {APP_A}}
    admin.timeouts_fail = True
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert path.read_bytes() == before and admin.refreshes == 0
    assert "RM down" in agent.status()["last_error"]


@pytest.mark.parametrize("in_service", ["RUNNING", "UNHEALTHY", "NEW"])
def test_no_refresh_while_the_file_lists_a_host_still_in_service(setup: Any, in_service: str) -> None:
    """An operator wrote r1 into the file but has not refreshed yet: a refresh would start its decommission.
    The light polls don't read UNHEALTHY or NEW nodes; the agent asks for them before a release."""
    rm, admin, path, make = setup
    path.write_text(exclude_xml({"d1": 3600, "r1": 600}))
    before = path.read_bytes()
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("r1", in_service, 1)]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert path.read_bytes() == before and admin.refreshes == 0
    assert "r1" in agent.status()["last_error"]


def _let_go_by_app_a(rm: Any, admin: Any, agent: Any, host: str) -> None:
    """`host` alone, DECOMMISSIONING, with APP_A running there and letting go of it."""
    rm.nodes = [rm_node(host, "DECOMMISSIONING")]
    admin.apps = {host: {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({host}), 1.0))


def test_no_refresh_when_the_new_and_unhealthy_nodes_cannot_be_read(setup: Any) -> None:
    rm, admin, path, make = setup
    before = path.read_bytes()
    agent = make()
    _let_go_by_app_a(rm, admin, agent, "d1")
    rm.refused_states = {"UNHEALTHY"}
    agent.poll_once()
    assert path.read_bytes() == before and admin.refreshes == 0
    assert agent.status()["counters"]["release_errors"] == 1


def test_a_host_not_in_the_exclude_file_is_never_added(setup: Any) -> None:
    rm, admin, path, make = setup
    before = path.read_bytes()
    agent = make()
    _let_go_by_app_a(rm, admin, agent, "elsewhere")
    agent.poll_once()
    assert path.read_bytes() == before and admin.refreshes == 0
    assert "not in the exclude file" in agent.status()["last_error"]


def test_dry_run_changes_nothing_and_records_what_it_would_do(setup: Any) -> None:
    rm, admin, path, make = setup
    before = path.read_bytes()
    agent = make(dry_run=True)
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    agent.poll_once()
    assert path.read_bytes() == before and admin.refreshes == 0
    assert [(r["host"], r["dry_run"]) for r in agent.status()["releases"]] == [("d1", True)]


def test_nothing_is_released_while_the_rm_cannot_be_read(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make()
    rm.down = True
    agent.poll_once()
    assert admin.refreshes == 0 and agent.status()["counters"]["poll_errors"] == 1
    assert agent.healthy()[0] is False


def _running(agent: Any) -> threading.Thread:
    t = threading.Thread(target=agent.run, daemon=True)
    t.start()
    return t


def test_the_agent_reads_the_rm_at_a_fixed_rate_however_long_a_read_takes(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make(interval=0.4)
    rm.nodes = [rm_node("r1", "RUNNING")]
    starts: list[float] = []
    read = agent._poller.poll_once

    def slow_read() -> Any:  # a busy RM: each read takes 0.25 s
        starts.append(time.monotonic())
        time.sleep(0.25)
        return read()

    agent._poller.poll_once = slow_read
    t = _running(agent)
    time.sleep(2.1)
    agent.stop()
    t.join(3)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    # One read every 0.4 s from the start of the last, not 0.4 s after its end (0.65 s apart).
    assert len(gaps) >= 4 and sorted(gaps)[len(gaps) // 2] < 0.5, gaps


def test_a_slow_release_does_not_hold_the_reads_the_drivers_wait_for(setup: Any) -> None:
    rm, admin, path, make = setup
    agent = make(interval=0.1)
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    releasing = threading.Event()
    refresh = admin.refresh_nodes_graceful

    def slow_refresh() -> None:  # rmadmin is a JVM: seconds
        releasing.set()
        time.sleep(3.0)
        refresh()

    admin.refresh_nodes_graceful = slow_refresh
    t = _running(agent)
    assert releasing.wait(5), "never released"
    polls = agent.status()["counters"]["polls"]
    at = agent.last_polled_at()
    agent.wait_for_poll(at, 1.0)  # what a driver's long poll does
    assert agent.last_polled_at() > at, "no read while the release ran"
    time.sleep(0.5)
    assert agent.status()["counters"]["polls"] >= polls + 3
    assert admin.refreshes == 0, "the release was not still under way: this test shows nothing"
    agent.stop()  # returns once the release under way has finished
    t.join(3)
    assert admin.refreshes == 1 and ExcludeFile(path).read() == {"d1": 0}, "released twice, or not at all"


def test_a_restarted_agent_keeps_the_apps_reports_and_what_it_must_restore(setup: Any, tmp_path: Path) -> None:
    rm, admin, path, make = setup
    state = tmp_path / "agent-state.json"
    agent = make(state_file=state)
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A, APP_B}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.poll_once()
    assert admin.refreshes == 0  # B ran there and never reported: it holds the node under wait
    again = make(state_file=state, other_apps=OtherApps.RELEASE)
    assert again.status()["apps"][APP_A]["let_go"] == ["d1"], "the report was lost with the restart"
    again.poll_once()
    assert admin.refreshes == 1 and ExcludeFile(path).read() == {"d1": 0}
    third = make(state_file=state)  # restarted once more before the node is gone
    rm.nodes = [rm_node("d1", "DECOMMISSIONED")]
    third.poll_once()
    assert ExcludeFile(path).read() == {"d1": 3600}, "the agent's 0 outlived the restart"


def test_an_app_whose_driver_died_without_letting_go_holds_nothing_once_it_has_ended(setup: Any) -> None:
    """Its last report kept the node; once YARN ended the app the NodeManager no longer lists it."""
    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A, APP_B}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    agent.app_reported(AppReport(APP_B, frozenset(), 1.0))  # B's driver then dies
    agent.poll_once()
    assert admin.refreshes == 0
    admin.apps = {"d1": {APP_A}}  # the RM ended B: its containers and its hold on the node are gone
    agent.poll_once()
    assert admin.refreshes == 1 and agent.status()["releases"][0]["apps_agreed"] == [APP_A]


@pytest.mark.parametrize("damage", ["not xml", "unreadable", "gone"])
def test_an_exclude_file_broken_while_the_agent_runs_releases_nothing(setup: Any, damage: str) -> None:
    import os

    rm, admin, path, make = setup
    agent = make()
    rm.nodes = [rm_node("d1", "DECOMMISSIONING")]
    admin.apps = {"d1": {APP_A}}
    agent.app_reported(AppReport(APP_A, frozenset({"d1"}), 1.0))
    if damage == "not xml":
        path.write_text("d1\n")
    elif damage == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads a file whatever its mode")
        path.chmod(0)
    else:
        path.unlink()
    before = path.read_bytes() if path.exists() and damage != "unreadable" else None
    agent.poll_once()
    assert admin.refreshes == 0 and agent.status()["counters"]["release_errors"] == 1
    assert "exclude file" in agent.status()["last_error"]
    if before is not None:
        assert path.read_bytes() == before


def test_a_non_xml_exclude_file_stops_the_agent_at_start(setup: Any) -> None:
    _, _, path, make = setup
    path.write_text("d1\nd2\n")
    with pytest.raises(ExcludeFileError, match="XML"):
        make()


# ---- the endpoint --------------------------------------------------------------------------------


@pytest.fixture
def served(setup: Any) -> Any:
    rm, admin, path, make = setup
    agent = make()
    server = AgentServer(agent, SECRET).start()
    yield agent, server, rm, admin
    server.stop()


def _post(server: AgentServer, body: bytes, secret: bytes = SECRET, app: str = APP_A, **headers: str) -> httpx.Response:
    path = f"/v1/apps/{app}"
    signed = sign(secret, "POST", path, body)
    return httpx.post(server.url + path, content=body, headers={**signed, **headers}, trust_env=False)


def test_a_signed_report_is_accepted(served: Any) -> None:
    agent, server, _, _ = served
    body = json.dumps(AppReport(APP_A, frozenset({"d1"}), 1.0).to_json()).encode()
    assert _post(server, body).status_code == 200
    assert agent.status()["apps"][APP_A]["let_go"] == ["d1"]


@pytest.mark.parametrize("case", ["wrong secret", "unsigned", "replayed", "tampered"])
def test_unauthenticated_reports_change_nothing(served: Any, case: str) -> None:
    agent, server, _, _ = served
    body = json.dumps(AppReport(APP_A, frozenset({"d1"}), 1.0).to_json()).encode()
    path = f"/v1/apps/{APP_A}"
    if case == "wrong secret":
        resp = _post(server, body, secret=b"not-the-secret-at-all-0000000000")
    elif case == "unsigned":
        resp = httpx.post(server.url + path, content=body, trust_env=False)
    elif case == "replayed":
        resp = httpx.post(server.url + path, content=body, trust_env=False,
                          headers=sign(SECRET, "POST", path, body, now=time.time() - 3600))
    else:
        headers = sign(SECRET, "POST", path, body)
        resp = httpx.post(server.url + path, content=body.replace(b"d1", b"d9"), headers=headers, trust_env=False)
    assert resp.status_code == 401
    assert agent.status()["apps"] == {} and agent.status()["counters"]["unauthenticated"] == 1


@pytest.mark.parametrize("body,why", [
    (b"\xff\xfe garbage", "not JSON"),
    (b"[1, 2]", "JSON object"),
    (b'{"app_id": "x"}', "YARN application id"),
    (json.dumps({"app_id": APP_B}).encode(), "not the one in the path"),
    (json.dumps({"app_id": APP_A, "let_go": "d1"}).encode(), "list of host"),
    (json.dumps({"app_id": APP_A, "let_go": ["d1; rm -rf /"]}).encode(), "list of host"),
])
def test_garbage_is_refused_with_what_is_wrong(served: Any, body: bytes, why: str) -> None:
    agent, server, _, _ = served
    resp = _post(server, body)
    assert resp.status_code == 400 and why in resp.json()["error"]
    assert agent.status()["apps"] == {}


def test_health_and_metrics(served: Any) -> None:
    agent, server, rm, _ = served
    assert httpx.get(server.url + "/healthz", trust_env=False).status_code == 503, "healthy before any poll"
    rm.nodes = [rm_node("d1", "DECOMMISSIONING", 1)]
    agent.poll_once()
    assert httpx.get(server.url + "/healthz", trust_env=False).status_code == 200
    text = httpx.get(server.url + "/metrics", trust_env=False).text
    assert "decom_agent_polls_total 1" in text and "decom_agent_nodes_decommissioning 1" in text
    assert "decom_agent_up 1" in text


def test_the_drivers_link_reports_and_retries_until_the_agent_is_back(served: Any, tmp_path: Path) -> None:
    agent, server, rm, admin = served
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(SECRET + b"\n")
    let_go: set[str] = set()
    port = server.port
    server.stop()  # the agent is down when the driver starts
    link = AgentLink(f"http://127.0.0.1:{port}", str(secret_file), APP_A, lambda: frozenset(let_go),
                     heartbeat=0.2).start()
    try:
        time.sleep(0.5)
        assert link.sent == 0
        again = AgentServer(agent, SECRET, port=port).start()
        try:
            let_go.add("d1")
            link.changed()
            deadline = time.monotonic() + 10
            while agent.status()["apps"].get(APP_A, {}).get("let_go") != ["d1"] and time.monotonic() < deadline:
                time.sleep(0.05)
            assert agent.status()["apps"][APP_A]["let_go"] == ["d1"], "the link never got through"
        finally:
            again.stop()
    finally:
        link.stop()


def test_the_link_refuses_a_missing_or_short_secret(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="secretFile is not"):
        AgentLink("http://127.0.0.1:1", "", APP_A, frozenset)
    short = tmp_path / "s"
    short.write_text("abc")
    with pytest.raises(AgentError, match="at least 16 bytes"):
        AgentLink("http://127.0.0.1:1", str(short), APP_A, frozenset)


def test_the_agent_reads_every_node_only_when_the_doomed_states_and_the_node_count_do_not_explain_a_change(
        setup: Any) -> None:
    # Reading every node costs the RM ~0.1 s of CPU per 1,000 nodes: the agent polls as a driver does.
    rm, _, _, make = setup
    rm.nodes = [rm_node("d1", "RUNNING"), rm_node("r1", "RUNNING")]
    agent = make()
    agent.poll_once()
    rm.asked.clear()
    rm.nodes[0]["state"] = "DECOMMISSIONING"  # one node leaves RUNNING: the count says nothing else moved
    agent.poll_once()
    assert not any("RUNNING" in a for a in rm.asked), rm.asked
    assert {n.host: n.state for n in agent.nodes_snapshot()[1]}["d1"] == "DECOMMISSIONING"
    rm.asked.clear()
    rm.nodes.append(rm_node("new", "RUNNING"))  # a NodeManager registered: only a full read finds it
    try:
        agent.poll_once()  # the full read runs apart from the light polls (~2 s at 10,000 nodes)
        deadline = time.monotonic() + 5
        while agent.status()["rm_reads"]["full_polls"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert any("RUNNING" in a for a in rm.asked)
        agent.poll_once()
        assert "new" in {n.host for n in agent.nodes_snapshot()[1]}
    finally:
        agent.stop()


def test_the_agent_serves_drivers_the_states_they_ask_for_with_the_node_count(served: Any) -> None:
    agent, server, rm, _ = served
    rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("r1", "RUNNING"), rm_node("r2", "RUNNING")]
    agent.poll_once()
    path = "/v1/nodes?states=DECOMMISSIONING,LOST"
    resp = httpx.get(server.url + path, trust_env=False)
    assert verify(SECRET, "GET", path, resp.content, resp.headers) is None
    data = resp.json()
    assert data["active_nodes"] == 2 and data["states"] == ["DECOMMISSIONING", "LOST"]
    assert [n["nodeHostName"] for n in data["nodes"]["node"]] == ["d1"]
    # The signature covers the query: an answer to another query does not pass for this one.
    assert verify(SECRET, "GET", "/v1/nodes", resp.content, resp.headers) is not None


def test_a_drivers_light_poll_waits_for_the_agents_next_read_of_the_rm_and_is_one_request(served: Any) -> None:
    from decom._driver.agent_link import AgentFirstNodes

    agent, server, agent_rm, _ = served
    agent_rm.nodes = [rm_node("d1", "RUNNING"), rm_node("r1", "RUNNING")]
    agent.poll_once()
    rm = ResourceManagerClient(["http://rm:8088"], transport=httpx.MockTransport(FakeRM().handler))
    asked: list[str] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            asked.append(f"{request.url.path}?{request.url.query.decode()}")
            return super().handle_request(request)

    source = AgentFirstNodes(server.url, rm, SECRET, transport=Counting())
    try:
        assert source.cluster_metrics() == {"activeNodes": 2}  # the first answer comes at once
        assert not source.paced, "the first poll did not wait: the poller keeps its interval"
        agent_rm.nodes[0]["state"] = "DECOMMISSIONING"
        threading.Timer(0.6, agent.poll_once).start()
        asked.clear()
        t0 = time.monotonic()
        assert source.cluster_metrics() == {"activeNodes": 1}  # held until the agent read the RM again
        waited = time.monotonic() - t0
        assert [n.host for n in source.nodes(["DECOMMISSIONING", "DECOMMISSIONED", "LOST", "SHUTDOWN"])] == ["d1"]
        assert 0.5 <= waited < 2.0 and len(asked) == 1 and "newer_than=" in asked[0], asked
        source.node("r1:8041")  # a lookup later in the same poll
        assert source.paced and not source.paced, "paced says once that the poll waited"
        # Looking one node up asks for that node alone.
        asked.clear()
        node = source.node("d1:8041")
        assert node is not None and node.state == "DECOMMISSIONING" and source.node("gone:1") is None
        assert len(asked) == 2 and all("node=" in a for a in asked), asked
        raw = httpx.get(server.url + "/v1/nodes?node=d1:8041", trust_env=False).json()
        assert [n["id"] for n in raw["nodes"]["node"]] == ["d1:8041"], "the agent did not answer for that node alone"
    finally:
        source.close()


# ---- drivers read node states from the agent -----------------------------------------------------


def test_drivers_read_node_states_from_the_agent_and_from_the_rm_while_it_is_down(served: Any) -> None:
    from decom._driver.agent_link import AgentFirstNodes

    agent, server, agent_rm, _ = served
    agent_rm.nodes = [rm_node("d1", "DECOMMISSIONING"), rm_node("r1", "RUNNING", 2), rm_node("r2", "RUNNING")]
    agent.poll_once()
    driver_rm = FakeRM()
    driver_rm.nodes = [rm_node("d1", "DECOMMISSIONED"), rm_node("r1", "RUNNING")]
    asked: list[str] = []

    def rm_handler(request: httpx.Request) -> httpx.Response:
        asked.append(request.url.path)
        return driver_rm.handler(request)

    rm = ResourceManagerClient(["http://rm:8088"], transport=httpx.MockTransport(rm_handler))
    source = AgentFirstNodes(server.url, rm, SECRET, retry_after=0.3)
    try:
        assert [(n.host, n.state) for n in source.nodes(["DECOMMISSIONING"])] == [("d1", "DECOMMISSIONING")]
        assert source.node("r1:8041") is not None and source.node("gone:1") is None
        assert source.cluster_metrics() == {"activeNodes": 2}
        assert asked == [], "the driver asked the RM while the agent answered"
        assert source.active_address is not None and source.active_address.startswith("agent ")
        port = server.port
        server.stop()  # the agent goes away: the driver reads the RM itself
        time.sleep(0.3)
        assert [(n.host, n.state) for n in source.nodes(["DECOMMISSIONED"])] == [("d1", "DECOMMISSIONED")]
        assert asked and not source.on_agent
        again = AgentServer(agent, SECRET, port=port).start()  # back: the driver switches back by itself
        try:
            time.sleep(0.4)
            asked.clear()
            assert [n.host for n in source.nodes(["DECOMMISSIONING"])] == ["d1"] and asked == []
            # A node list not signed with the secret is not the agent's: the driver reads the RM.
            other_rm = ResourceManagerClient(["http://rm:8088"], transport=httpx.MockTransport(rm_handler))
            forged = AgentFirstNodes(server.url.rsplit(":", 1)[0] + f":{port}", other_rm,
                                     b"some-other-secret-0000000000000", retry_after=0.3)
            asked.clear()
            assert [n.host for n in forged.nodes(["DECOMMISSIONED"])] == ["d1"] and asked and not forged.on_agent
            forged.close()
            asked.clear()
            # An agent that cannot read the RM any more serves a stale view: the driver reads the RM.
            agent.counters.last_poll_ok = time.time() - 3600
            time.sleep(0.3)
            assert [n.host for n in source.nodes(["DECOMMISSIONED"])] == ["d1"] and asked
        finally:
            again.stop()
    finally:
        source.close()
