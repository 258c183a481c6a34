"""The ResourceManager stopped for 30 s and restarted while a real Spark job runs on the YARN lab with
decom, which finds the RM the way users' drivers do (HADOOP_CONF_DIR). The job must not notice, decom
must resume by itself (it acts on a graceful decommission that happens after the outage) and must do
nothing to any other node. (tests/yarn/test_control_plane*.py check the control plane alone across RM
restarts and HA failover; slow and garbage answers, which a real RM does not give, are in
tests/spark/test_faults_during_job.py with a fake RM.) ~4 minutes.

Dynamic allocation is off here. In client mode, Spark's AM blocks on the RM while it is down, so an ask
from the driver (dynamic allocation's RequestExecutors) times out after spark.network.timeout (15 s in
these scenarios). The driver then drops the AM, and the AM unregisters ("Driver terminated or
disconnected"), which ends the app. That is Spark's behaviour with or without decom: seen on this lab.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.yarn_scenarios import Event, repair, run_scenario

pytestmark = pytest.mark.yarn

#: A reduce stage of 96 tasks x 4 s on 4 executors: long enough for the outage, the restart and a
#: decommission seen while the job still runs, on a busy 2-core machine.
JOB = {"n": 40_000, "keys": 97, "maps": 8, "map_sleep": 0.5, "reduces": 96, "reduce_sleep": 4.0}
DA_OFF = {"spark.dynamicAllocation.enabled": "false"}


@pytest.mark.long  # ~4 min; make test keeps the poller's own RM-restart recovery (tests/yarn/test_control_plane.py)
def test_rm_down_30s_mid_job_then_a_decommission(lab: Any) -> None:
    events = [Event(how="rm-restart", timeout=30, at_s=6.0),
              Event(how="graceful", timeout=120, at_s=7.0)]  # fires as soon as the RM is back
    try:
        out = run_scenario(lab, "rm-outage", "decom-ess-on", log=print, job=JOB, extra_conf=DA_OFF, events=events,
                           wait_drain=False)
    finally:
        repair(lab)
    print(f"correct={out.correct} aborted={out.aborted} wall={out.wall_s}s events={out.events} "
          f"error={out.error[:300]!r}")
    for e in (out.decom or {}).get("events", []):
        print(f"  t={e['t']:+6.1f}s decom {e.get('action')} {e.get('target')}")
    assert not out.aborted, f"the job aborted: {out.error}"
    assert out.correct, "the job's answer differs from its no-loss answer"
    restart, dec = out.events
    assert restart["how"] == "rm-restart" and dec["how"] == "graceful"
    assert dec["told_t"] >= restart["rm_up_t"] and dec["told_t"] < out.job_end_t, \
        "the decommission did not happen after the outage while the job ran: the test proved nothing"
    assert out.decom is not None
    poller = out.decom["poller"]
    assert poller["errors"] >= 1, "decom's poller never saw the RM down"
    assert poller["consecutive_errors"] == 0 and poller["running"], "the poller did not recover by itself"
    victim = dec["victims"][0]
    # decom resumed by itself: it saw the node leave after the outage, while the job ran.
    assert victim in out.decom["nodes"], "decom never saw the decommission after the outage"
    first = out.decom["nodes"][victim]["transitions"][0]
    assert first["state"] == "DECOMMISSIONING" and restart["rm_up_t"] <= first["t"] < out.job_end_t
    # ... soon: the poller's backoff during the outage (at most 5 s) must not leave it blind for long after.
    assert first["t"] - dec["told_t"] < 20, f"decom saw the decommission {first['t'] - dec['told_t']:.1f}s late"
    # Nothing wrong was done: no other node was acted on (the RM's answers around its restart included).
    assert set(out.decom["nodes"]) == {victim}, f"decom acted on nodes YARN did not decommission: {out.decom['nodes']}"
    acted = {e["target"] for e in out.decom["events"] if e.get("action") in
             ("excluded", "decommissioned", "executors-released", "outputs-unregistered", "unexcluded")}
    assert acted <= {victim}, f"shim actions on healthy nodes: {sorted(acted - {victim})}"
