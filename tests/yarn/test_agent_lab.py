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


def _start_on(lab: Any, hosts: set[str], avoid_am: str, **kw: Any) -> SparkApp:
    """A started app whose executors run only on `hosts` and whose AM is not on `avoid_am`."""
    return start_app_on(lab, hosts, avoid_am=avoid_am, **kw)


def _start_off_am(lab: Any, **kw: Any) -> tuple[SparkApp, str]:
    """A started app with an executor on a node that is not its AM's, and that node."""
    for _ in range(6):
        app = SparkApp(lab, **kw).start()
        am = app.am_host()
        off = sorted(h for h in set(app.executor_ids().values()) if h != am)
        if off:
            return app, off[0]
        app.stop()
    raise AssertionError("six starts in a row put every executor on the AM's node")


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
    batch, victim = _start_off_am(lab, executors=3, conf=small, decom=True, name="agent-batch")
    try:  # started already: `with batch` would start a second driver
        first = batch.keep(**SPEC)
        assert not first["aborted"], first["error"]
        session = _start_on(lab, {victim}, victim, executors=1, conf=small, decom=True, name="agent-session")
        try:
            assert set(session.executor_ids().values()) == {victim}
            lab.stop_agent()  # first without it
            lab.decommission([victim], timeout=TIMEOUT_S)
            _wait("both apps let go of the node",
                  lambda: bool(_node(batch, victim).get("let_go_at")) and bool(_node(session, victim).get("let_go_at")),
                  timeout=120)
            rpc = _rpc_timeouts(lab, monkeypatch)
            time.sleep(15)
            held = lab.node_states()[victim]
            t_agent = time.time()
            lab.start_agent()
            gone_s = _released(lab, victim)
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
    print(f"\n{victim}: without the agent still {held} 15 s after both apps let go; with it DECOMMISSIONED "
          f"{gone_s:.1f}s after the agent started (released {release['at'] - t_agent:.1f}s after); apps "
          f"{states}; re-read: map tasks {again['maps_computed']}, cached {again['cached_computed']}, "
          f"fetch failures {rep['fetch_failures']}")
    assert held == "DECOMMISSIONING", "Apache YARN let the node go without the agent"
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
               "spark.dynamicAllocation.initialExecutors": "1", "spark.dynamicAllocation.maxExecutors": "1",
               "spark.dynamicAllocation.executorIdleTimeout": "3s"}
    hosts = sorted(n.host for n in lab.nodes)
    victim = hosts[-1]
    with_decom = _start_on(lab, {victim}, victim, executors=1, conf=STATIC, decom=True, name="agent-decom")
    try:
        plain = _start_on(lab, {victim}, victim, executors=1, conf=dynamic, decom=False, name="agent-plain")
        try:
            _wait("the plain app's idle executor goes", lambda: plain.executor_ids() == {}, timeout=60)
            lab.decommission([victim], timeout=TIMEOUT_S)
            _wait("the decom app lets go", lambda: bool(_node(with_decom, victim).get("let_go_at")), timeout=120)
            _wait("the agent sees the plain app holding the node",
                  lambda: lab.agent_status()["waiting"].get(victim, {}).get("other_apps") == [plain.app_id],
                  timeout=30)
            time.sleep(10)
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

