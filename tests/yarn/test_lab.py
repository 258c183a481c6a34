"""The lab against a real YARN: node states as the RM's REST API (/ws/v1/cluster/nodes) reports them.

Facts these tests pin down (Apache Hadoop 3.5.0) are written to <lab workdir>/facts.json too.
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from yarnlab import YarnLab
from yarnlab.sparkapp import SparkApp

pytestmark = pytest.mark.yarn

FACTS: dict[str, Any] = {}


def record(lab: YarnLab, key: str, value: Any) -> None:
    FACTS[key] = value
    (lab.workdir / "facts.json").write_text(json.dumps(FACTS, indent=2, default=str))
    print(f"FACT {key}: {json.dumps(value, default=str)}")


def wait_state(lab: YarnLab, host: str, want: set[str], timeout: float,
               poll: float = 0.5) -> tuple[str, list[tuple[float, str]]]:
    """Poll one node's state until it is in `want`; returns (state, [(seconds, state) transitions])."""
    t0 = time.monotonic()
    seen: list[tuple[float, str]] = []
    while True:
        st = lab.node_states().get(host, "ABSENT")
        if not seen or seen[-1][1] != st:
            seen.append((round(time.monotonic() - t0, 1), st))
        if st in want:
            return st, seen
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{host} not in {want} after {timeout}s; transitions {seen}")
        time.sleep(poll)


def node_doc(lab: YarnLab, host: str) -> dict[str, Any]:
    return next(n for n in lab.nodes_rest() if n["nodeHostName"] == host)


def _netns_pids(lab: YarnLab, host: str) -> list[int]:
    from yarnlab.net import netns_pids

    return netns_pids(lab.node(host).netns)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def http_status(url: str) -> int:
    try:
        with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(url, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_all_nodes_running_with_distinct_hosts(lab: YarnLab) -> None:
    nodes = lab.nodes_rest()
    hosts = [n["nodeHostName"] for n in nodes]
    assert sorted(hosts) == sorted(n.host for n in lab.nodes)
    assert len(set(hosts)) == len(lab.nodes)
    assert {n["state"] for n in nodes} == {"RUNNING"}
    assert all(n["id"] == f"{n['nodeHostName']}:8041" for n in nodes)
    assert all(n["nodeHTTPAddress"] == f"{n['nodeHostName']}:8042" for n in nodes)
    # Each node answers on its own address from inside its namespace (NM web + shuffle port).
    for n in lab.nodes:
        r = lab.run_in_node(n.host, ["ss", "-ltn"])
        assert f"{n.host}:8041" in r.stdout and f"{n.host}:7337" in r.stdout, r.stdout
    record(lab, "startup_seconds", round(lab.startup_seconds or 0, 1))
    default_doc = lab.rest("/ws/v1/cluster/nodes")
    record(lab, "default_nodes_query_states", sorted({n["state"] for n in default_doc["nodes"]["node"]}))


def test_states_filter_of_nodes_rest(lab: YarnLab) -> None:
    base = lab.rm_url + "/ws/v1/cluster/nodes"
    assert http_status(base + "?states=RUNNING") == 200
    assert http_status(base + "?states=running,decommissioned") == 200  # case-insensitive, comma list
    assert http_status(base + "?states=BOGUS") == 400  # unknown state: 400 IllegalArgumentException
    none = lab.rest("/ws/v1/cluster/nodes?states=DECOMMISSIONING")
    assert none["nodes"] is None or not none["nodes"].get("node")
    record(lab, "empty_nodes_doc", none)


def test_graceful_decommission_idle_node_then_recommission(lab: YarnLab) -> None:
    target, others = lab.nodes[-1], lab.nodes[:-1]
    t0 = time.monotonic()
    lab.decommission([target.host], timeout=30)
    st, seen = wait_state(lab, target.host, {"DECOMMISSIONED"}, timeout=60, poll=0.2)
    record(lab, "idle_node_decommission_transitions", seen)
    record(lab, "idle_node_drain_seconds", round(time.monotonic() - t0, 1))
    assert st == "DECOMMISSIONED"
    assert all(s in ("RUNNING", "DECOMMISSIONING", "DECOMMISSIONED") for _, s in seen), seen
    states = lab.node_states()
    assert all(states[n.host] == "RUNNING" for n in others), states
    doc = node_doc(lab, target.host)
    assert doc["nodeHTTPAddress"] == ""  # inactive nodes have no HTTP address
    # Real YARN: the RM tells a DECOMMISSIONED NodeManager to shut down; the process exits.
    deadline = time.monotonic() + 60
    while lab._procs[f"nm-{target.name}"].alive() and time.monotonic() < deadline:
        time.sleep(0.5)
    nm_exited = not lab._procs[f"nm-{target.name}"].alive()
    record(lab, "nm_exits_after_decommissioned", nm_exited)
    # Recommission: out of the exclude file, -refreshNodes, and (NM gone) start the NM again.
    t1 = time.monotonic()
    lab.recommission([target.host], timeout=180)
    record(lab, "recommission_seconds", round(time.monotonic() - t1, 1))
    states = lab.node_states()
    assert all(states[n.host] == "RUNNING" for n in lab.nodes), states


@pytest.mark.long  # ~2 min: the lab's Apache (WAIT_APP) and EMR-emulation drain facts, with a Spark app
def test_spark_executor_pins_decommissioning_node(lab: YarnLab) -> None:
    timeout = 20
    with SparkApp(lab, executors=3, name="yarnlab-pin") as app:
        assert len(app.executor_hosts) == 3, app.executor_hosts
        assert set(app.executor_hosts) <= {n.host for n in lab.nodes}
        record(lab, "spark_session_seconds", app.startup_seconds)
        record(lab, "spark_conf_used", app.conf)
        checksum = app.run_job()
        busy = {n["nodeHostName"]: n["numContainers"] for n in lab.nodes_rest() if n["numContainers"] > 0}
        # Not the ApplicationMaster's node: its decommission would kill the AM at the timeout and
        # start a second app attempt (whose executors replace all of the first attempt's).
        am = app.am_host()
        exec_hosts = sorted(set(app.executor_hosts) - {am})
        record(lab, "placement", {"am": am, "executors": app.executor_hosts})
        if len(exec_hosts) < 2:
            pytest.skip(f"executors landed on fewer than 2 non-AM nodes: {app.executor_hosts}, AM {am}")
        target = exec_hosts[0]
        assert busy.get(target, 0) >= 1, busy

        # 1) graceful decommission with a timeout: DECOMMISSIONING while the executor runs, then
        #    DECOMMISSIONED once the timeout expires (the app is still running).
        t0 = time.monotonic()
        lab.decommission([target], timeout=timeout)
        st, seen = wait_state(lab, target, {"DECOMMISSIONING"}, timeout=30, poll=0.2)
        doc = node_doc(lab, target)
        record(lab, "decommissioning_node_doc_keys", sorted(doc))
        record(lab, "decommissioning_timeout_field",
               {k: v for k, v in doc.items() if "decom" in k.lower() or "timeout" in k.lower()} or None)
        while time.monotonic() - t0 < timeout - 3:
            assert lab.node_states()[target] == "DECOMMISSIONING"
            time.sleep(1)
        st, seen2 = wait_state(lab, target, {"DECOMMISSIONED"}, timeout=timeout + 60, poll=0.5)
        elapsed = round(time.monotonic() - t0, 1)
        record(lab, "busy_node_transitions", seen + seen2)
        record(lab, "busy_node_drain_seconds_with_timeout", {"timeout": timeout, "observed": elapsed})
        assert elapsed >= timeout - 1

        # 2) stock Apache Hadoop 3.5.0 (the lab's default): a second executor node, long timeout, its
        #    executor killed: no container left, yet it stays DECOMMISSIONING because an app that ran
        #    there is still alive (watcher state WAIT_APP).
        second = exec_hosts[1]
        assert not lab.emulate_emr_drain
        try:
            lab.decommission([second], timeout=600)
            wait_state(lab, second, {"DECOMMISSIONING"}, timeout=30, poll=0.2)
            killed = []
            for pid in _netns_pids(lab, second):
                if "CoarseGrainedExecutorBackend" in _cmdline(pid):
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
            assert killed, f"no executor process found in {second}'s namespace"
            deadline = time.monotonic() + 60
            while node_doc(lab, second)["numContainers"] > 0 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert node_doc(lab, second)["numContainers"] == 0
            time.sleep(2 * lab.decom_poll_secs + 3)
            st_no_containers = lab.node_states()[second]
            record(lab, "apache_decommissioning_node_without_containers_while_app_alive", st_no_containers)
            assert st_no_containers == "DECOMMISSIONING"
        finally:
            # 3) EMR semantics (wait-for-applications=false), emulated when asked for: the node
            #    without containers is DECOMMISSIONED promptly although the app lives on.
            lab.emulate_emr_drain = True
        t2 = time.monotonic()
        st, seen3 = wait_state(lab, second, {"DECOMMISSIONED"}, timeout=60, poll=0.5)
        record(lab, "emr_emulation_drain_seconds_after_last_container", round(time.monotonic() - t2, 1))
        apps = lab.rest("/ws/v1/cluster/apps?states=RUNNING")["apps"]["app"]
        assert [a["id"] for a in apps] == [app.app_id]
        second_checksum = app.run_job()
        assert second_checksum == checksum
    lab.recommission([target, second], timeout=240)


@pytest.mark.long  # the lab's own check: make test drives this through decom's tests
def test_recommission_while_decommissioning(lab: YarnLab) -> None:
    with SparkApp(lab, executors=1, name="yarnlab-recommission") as app:
        host = app.executor_hosts[0]
        lab.decommission([host], timeout=600)
        wait_state(lab, host, {"DECOMMISSIONING"}, timeout=30, poll=0.2)
        lab.recommission([host], timeout=60)
        st, seen = wait_state(lab, host, {"RUNNING"}, timeout=30)
        record(lab, "recommission_from_decommissioning", seen)
        assert app.current_executors() == [host]  # the executor survived


@pytest.mark.long  # the lab's own check: make test drives this through decom's tests
def test_restart_rm(lab: YarnLab) -> None:
    before = lab.rest("/ws/v1/cluster/info")["clusterInfo"]["startedOn"]
    t0 = time.monotonic()
    lab.restart_rm(timeout=240)
    record(lab, "rm_restart_seconds", round(time.monotonic() - t0, 1))
    info = lab.rest("/ws/v1/cluster/info")["clusterInfo"]
    assert info["state"] == "STARTED" and info["startedOn"] != before
    lab.wait_for_nodes({n.host: "RUNNING" for n in lab.nodes}, timeout=120)


@pytest.mark.long  # the lab's own check: make test drives this through decom's tests
def test_vanished_node_goes_lost_and_comes_back(lab: YarnLab) -> None:
    target = lab.nodes[1]
    t0 = time.monotonic()
    lab.vanish(target.host)
    try:
        # The node does not answer: nothing from the host reaches it.
        with pytest.raises(OSError):
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://{target.host}:8042/ws/v1/node/info", timeout=3)
        st, seen = wait_state(lab, target.host, {"LOST"}, timeout=90, poll=0.5)
        record(lab, "vanish_to_lost_seconds", round(time.monotonic() - t0, 1))
        record(lab, "vanish_transitions", seen)
        states = lab.node_states()
        assert all(states[n.host] == "RUNNING" for n in lab.nodes if n is not target), states
    finally:
        lab.restore(target.host)
    st, seen = wait_state(lab, target.host, {"RUNNING"}, timeout=120, poll=0.5)
    record(lab, "restore_after_lost_transitions", seen)


def test_killed_nm_goes_lost_and_restarts(lab: YarnLab) -> None:
    target = lab.nodes[2]
    t0 = time.monotonic()
    lab.kill_nm(target.host)
    wait_state(lab, target.host, {"LOST"}, timeout=90)
    record(lab, "kill_nm_to_lost_seconds", round(time.monotonic() - t0, 1))
    lab.start_nm(target.host, timeout=120)
    assert lab.node_states()[target.host] == "RUNNING"
