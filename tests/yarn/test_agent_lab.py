"""The decom agent on Apache Hadoop 3.5 (the lab's default: a DECOMMISSIONING node stays while any app
that ran a container there lives, or until the graceful timeout). The node is decommissioned with a 1 h
timeout, as YARN's default. The agent runs as operators run it (`decom agent run`, `yarn rmadmin`, the
lab's XML exclude file) and the apps report to it through spark.decom.agent.url. Every figure comes from
the RM, Spark's own records or the agent's status.

Placement: an app's executors are kept to chosen nodes with Spark's own spark.yarn.exclude.nodes, so that
each app surely ran a container on the victim; its ApplicationMaster must not land there (it would hold a
container there for the app's life), so such a start is retried.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.yarn.graceful import STATIC
from tests.yarn.graceful import wait_for as _wait
from yarnlab.sparkapp import SparkApp, shuffle_checksum, start_app_on

pytestmark = pytest.mark.yarn

SPEC = {"n": 40_000, "keys": 97, "maps": 8, "reduces": 8, "parts": 8}
#: Long enough that only the agent, not YARN's timeout, can end the decommission within the test.
TIMEOUT_S = 3600


def _node(app: SparkApp, host: str) -> dict[str, Any]:
    return dict(((app.report() or {}).get("nodes") or {}).get(host) or {})


def _start_on(lab: Any, victim: str, **kw: Any) -> SparkApp:
    """A started app with an executor on `victim` and its AM elsewhere. Its executors are kept to `victim`
    and one other node: Spark's AM fails an app once the nodes it excludes (spark.yarn.exclude.nodes, used
    here for placement) are as many as the cluster's, which keeping them to `victim` alone would make
    true as soon as the victim leaves."""
    other = next(h for h in sorted(n.host for n in lab.nodes) if h != victim)
    return start_app_on(lab, {victim, other}, avoid_am=victim, need_on=victim, attempts=10, **kw)


def _start_off_am(lab: Any, **kw: Any) -> tuple[SparkApp, list[str]]:
    """A started app with an executor on a node that is not its AM's, and those nodes."""
    for _ in range(6):
        app = SparkApp(lab, **kw).start()
        am = app.am_host()
        off = sorted(h for h in set(app.executor_ids().values()) if h != am)
        if off:
            return app, off
        app.stop()
    raise AssertionError("six starts in a row put every executor on the AM's node")


def _start_sharing(lab: Any, candidates: list[str], **kw: Any) -> tuple[SparkApp, str]:
    """A started app with an executor on one of `candidates` that is not its own AM's node, and that node.
    A plain start usually has one (each start costs ~20 s); otherwise it is started again, kept to the first
    candidate and one other node."""
    app = SparkApp(lab, **kw).start()
    am = app.am_host()
    shared = sorted(h for h in set(app.executor_ids().values()) if h in candidates and h != am)
    if shared:
        return app, shared[0]
    app.stop()
    return _start_on(lab, candidates[0], **kw), candidates[0]


def _rpc_timeouts(lab: Any, monkeypatch: pytest.MonkeyPatch) -> dict[str, int | None]:
    """What the agent writes for the other DECOMMISSIONING hosts before a bare `-refreshNodes -g`: each
    one's timeout as the RM's client RPC reports it (REST has none), read by the decom jar's reader run on
    its own with pyspark's Hadoop client and the cluster's configuration."""
    from decom._agent import YarnAdmin, default_timeouts_command

    monkeypatch.setenv("HADOOP_CONF_DIR", str(lab.hadoop_conf_dir))
    monkeypatch.setenv("JAVA_HOME", lab.spark_env()["JAVA_HOME"])
    admin = YarnAdmin(["true"], default_timeouts_command())
    try:
        return admin.decommissioning_timeouts()
    finally:
        admin.close()


def _released(lab: Any, victim: str, timeout: float = 90) -> float:
    """Seconds until the RM has `victim` DECOMMISSIONED; on time-out, what the agent says holds it."""
    try:
        return _wait(f"{victim} DECOMMISSIONED", lambda: lab.node_states()[victim] == "DECOMMISSIONED", timeout)
    except TimeoutError as e:
        status = lab.agent_status()
        raise AssertionError(f"{e}; the agent: waiting {status['waiting']}, apps {status['apps']}, last error "
                             f"{status['last_error']!r}") from None


def _reads_from(app: SparkApp) -> str:
    """Where the app's driver reads node states now: "agent <url>" or the RM's address."""
    return str((((app.report() or {}).get("poller") or {}).get("active_address")) or "")


def _rm_state(lab: Any, app: SparkApp) -> str:
    return str(lab.rest(f"/ws/v1/cluster/apps/{app.app_id}")["app"]["state"])


def test_a_node_two_decom_apps_let_go_of_is_freed_by_the_agent_while_both_stay_up(
        lab: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch app (shuffle + cached data on a node) and an idle notebook-like session (one executor
    there) share a node, gracefully decommissioned with a 1 h timeout. Without the agent, both apps let
    go of it (the batch's data moved off) and YARN still holds it DECOMMISSIONING. With the agent, it is
    DECOMMISSIONED within seconds, both apps stay up, the batch's data reads back right with no
    FetchFailed, and the agent records the release with both apps' agreement."""
    lab.start_agent()
    small = {**STATIC, "spark.executor.memory": "512m"}  # the batch's executors and the session's fit one node
    batch, off_am = _start_off_am(lab, executors=3, conf=small, decom=True, name="agent-batch")
    try:  # started already: `with batch` would start a second driver
        first = batch.keep(**SPEC)
        assert not first["aborted"], first["error"]
        session, victim = _start_sharing(lab, off_am, executors=2, conf=small, decom=True, name="agent-session")
        try:
            lab.stop_agent()  # first without it
            lab.decommission([victim], timeout=TIMEOUT_S)
            _wait("both apps let go of the node",
                  lambda: bool(_node(batch, victim).get("let_go_at")) and bool(_node(session, victim).get("let_go_at")),
                  timeout=120)
            rpc = _rpc_timeouts(lab, monkeypatch)
            time.sleep(5)  # YARN's decommissioning watcher runs every second here: 5 chances to let go
            held = lab.node_states()[victim]
            read_from_down = {a.app_id: _reads_from(a) for a in (batch, session)}
            t_agent = time.time()
            lab.start_agent()
            gone_s = _released(lab, victim)
            # Each driver goes back to the agent by itself (it tries again every 10 s).
            _wait("both drivers read node states from the agent again",
                  lambda: all(_reads_from(a).startswith("agent ") for a in (batch, session)), timeout=30)
            states = (_rm_state(lab, batch), _rm_state(lab, session))
            again = batch.reread()
            rep = batch.report()
            agent = lab.agent_status()
        finally:
            session.stop()
    finally:
        batch.stop()
    assert rep is not None
    release = next(r for r in agent["releases"] if r["host"] == victim)
    print(f"\n{victim}: without the agent still {held} 10 s after both apps let go; with it DECOMMISSIONED "
          f"{gone_s:.1f}s after the agent started (released {release['at'] - t_agent:.1f}s after); apps "
          f"{states}; re-read: map tasks {again['maps_computed']}, cached {again['cached_computed']}, "
          f"fetch failures {rep['fetch_failures']}")
    assert held == "DECOMMISSIONING", "Apache YARN let the node go without the agent"
    assert not any(a.startswith("agent ") for a in read_from_down.values()), \
        f"while the agent was down the drivers read {read_from_down}, not the RM"
    assert rpc == {victim: TIMEOUT_S}, f"the agent's RPC reader: {rpc}"
    assert gone_s < 30, f"the agent took {gone_s:.0f}s"
    assert states == ("RUNNING", "RUNNING"), "an app did not stay up"
    assert not again["aborted"], again["error"]
    assert again["checksum"] == shuffle_checksum(SPEC["n"], SPEC["keys"]), "wrong answer (shuffle)"
    assert again["cached_sum"] == sum(range(SPEC["n"])), "wrong answer (cached)"
    assert again["maps_computed"] == 0 and again["cached_computed"] == 0, "data on the freed node was lost"
    assert rep["fetch_failures"]["total"] == 0
    assert sorted(release["apps_agreed"]) == sorted([batch.app_id, session.app_id]) and release["other_apps"] == []
    assert release["previous_timeout"] == TIMEOUT_S and not release["dry_run"]


@pytest.mark.long  # ~2 min
def test_an_app_without_decom_holds_the_node_under_wait_and_not_under_release(lab: Any) -> None:
    """A decom app and an app without decom each ran an executor on the node; the latter's executor has
    gone (dynamic allocation), so only YARN's "ran there" holds the node. Under --other-apps wait the agent
    keeps waiting for it; restarted with --other-apps release, it frees the node, and both apps stay up."""
    lab.start_agent(other_apps="wait")
    dynamic = {"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "0",
               "spark.dynamicAllocation.initialExecutors": "2", "spark.dynamicAllocation.maxExecutors": "2",
               # Long enough for the start to see where its executors run (one must be on the victim).
               "spark.dynamicAllocation.executorIdleTimeout": "20s"}
    hosts = sorted(n.host for n in lab.nodes)
    victim = hosts[-1]
    with_decom = _start_on(lab, victim, executors=2, conf=STATIC, decom=True, name="agent-decom")
    try:
        plain = _start_on(lab, victim, executors=2, conf=dynamic, decom=False, name="agent-plain")
        try:
            _wait("the plain app's idle executor goes", lambda: plain.executor_ids() == {}, timeout=60)
            lab.decommission([victim], timeout=TIMEOUT_S)
            _wait("the decom app lets go", lambda: bool(_node(with_decom, victim).get("let_go_at")), timeout=120)
            _wait("the agent sees the plain app holding the node",
                  lambda: lab.agent_status()["waiting"].get(victim, {}).get("other_apps") == [plain.app_id],
                  timeout=30)
            time.sleep(5)  # 5 of YARN's watcher rounds: the node stays while the plain app holds it under wait
            held = lab.node_states()[victim]
            lab.start_agent(other_apps="release")
            gone_s = _released(lab, victim)
            states = (_rm_state(lab, with_decom), _rm_state(lab, plain))
            agent = lab.agent_status()
        finally:
            plain.stop()
    finally:
        with_decom.stop()
    release = next(r for r in agent["releases"] if r["host"] == victim)
    print(f"\n{victim} (of {hosts}): under wait still {held}; under release DECOMMISSIONED {gone_s:.1f}s after "
          f"the agent's restart; agreed {release['apps_agreed']}, released over {release['other_apps']}")
    assert held == "DECOMMISSIONING", "released while an app without decom had run there (--other-apps wait)"
    assert gone_s < 30
    assert release["apps_agreed"] == [with_decom.app_id] and release["other_apps"] == [plain.app_id]
    assert states == ("RUNNING", "RUNNING")



@pytest.mark.long  # ~2 min, on the HA lab
def test_the_agent_follows_an_rm_failover_and_releases_the_node_through_the_new_active_rm(ha_lab: Any) -> None:
    """Two ResourceManagers; the agent and the app's driver are given both. A decom app ran a job on a node;
    the active RM fails over (the old one stays down) and the node is then gracefully decommissioned with
    a 1 h timeout on the new active RM, which holds it for the app (the NodeManagers re-registered with
    the app running there). The agent follows the failover, and once the app lets go it frees the node
    through the new RM; the app stays up and computes right."""
    lab = ha_lab
    lab.start_agent()
    try:
        hosts = {n.host for n in lab.nodes}
        victim = sorted(hosts)[-1]
        # No node excluded for placement: with two nodes, Spark's AM fails an app whose excluded nodes are
        # all the cluster has left once the victim is gone.
        app = start_app_on(lab, hosts, avoid_am=victim, need_on=victim, attempts=10, executors=2, conf=STATIC,
                           decom=True, name="agent-ha")
        try:
            first = app.keep(**SPEC)
            assert not first["aborted"], first["error"]
            old = lab.active_rm
            new = lab.failover()
            lab.stop_rm(old)  # the old active is gone for good
            lab.decommission([victim], timeout=TIMEOUT_S)
            gone_s = _released(lab, victim, timeout=120)
            state = _rm_state(lab, app)
            after = app.keep(name="after", **SPEC)
            agent = lab.agent_status()
        finally:
            app.stop()
    finally:
        lab.stop_agent()
    release = next(r for r in agent["releases"] if r["host"] == victim)
    print(f"\n{victim}: failover {old} -> {new}; DECOMMISSIONED {gone_s:.1f}s after the decommission; app {state}; "
          f"agent reads {agent['rm']}; agreed {release['apps_agreed']}")
    assert agent["rm"] == lab.rm_url_of(new), f"the agent reads {agent['rm']}, not the new active RM"
    assert gone_s < 60, f"the node was freed {gone_s:.0f}s after its decommission"
    assert release["apps_agreed"] == [app.app_id] and not release["dry_run"]
    assert state == "RUNNING"
    assert not after["aborted"], after["error"]
    assert after["checksum"] == shuffle_checksum(SPEC["n"], SPEC["keys"]), "wrong answer after the failover"


@pytest.mark.long  # ~2 min
def test_a_driver_that_dies_without_letting_go_holds_the_node_until_yarn_ends_its_app(lab: Any) -> None:
    """A decom app runs an executor on a node that is gracefully decommissioned (1 h timeout); its driver
    is SIGKILLed before it lets go. The agent releases nothing for it while the app lives; YARN ends the
    app (its ApplicationMaster loses the driver), and the node is then DECOMMISSIONED well before the
    timeout, by YARN or by the agent, never before the app ended."""
    lab.start_agent()
    hosts = sorted(n.host for n in lab.nodes)
    victim = hosts[-1]
    app = _start_on(lab, victim, executors=2, conf=STATIC, decom=True, name="agent-crash")
    try:
        first = app.keep(**SPEC)  # cached blocks and shuffle output on the node: not let go at once
        assert not first["aborted"], first["error"]
        lab.decommission([victim], timeout=TIMEOUT_S)
        _wait(f"{victim} DECOMMISSIONING", lambda: lab.node_states()[victim] == "DECOMMISSIONING", timeout=30)
        let_go = _node(app, victim).get("let_go_at")
        app.kill_driver()
        killed = time.time()
        gone_s = _released(lab, victim, timeout=240)
        info = lab.rest(f"/ws/v1/cluster/apps/{app.app_id}")["app"]
        agent = lab.agent_status()
    finally:
        app.stop()
    ended = float(info["finishedTime"]) / 1000
    release = next((r for r in agent["releases"] if r["host"] == victim), None)
    print(f"\n{victim}: driver killed while DECOMMISSIONING (let go: {let_go}); app {info['state']}/"
          f"{info['finalStatus']} {ended - killed:.1f}s after; DECOMMISSIONED {gone_s:.1f}s after the kill; "
          f"{'the agent released it at +%.1fs' % (release['at'] - killed) if release else 'YARN freed it'}")
    assert info["state"] in ("FINISHED", "FAILED", "KILLED"), info["state"]
    assert not let_go, "the app let go of the node before its driver was killed: not the case under test"
    assert gone_s < 240
    if release is not None:
        assert release["at"] >= ended - 1, "the agent released the node while the dead driver's app still lived"
        assert app.app_id not in release["apps_agreed"]
