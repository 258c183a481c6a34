"""The scale-in story on a real YARN cluster (yarnlab), stock Spark vs decom, side by side.

A Spark 4.3 job runs on 4 YARN nodes (NodeManagers in network namespaces, Spark's shuffle service in
each). During each of two consecutive attempts of its reduce stage, a node holding map outputs is
gracefully decommissioned with a 5 s timeout (a spot storm), with spark.stage.maxConsecutiveAttempts=2.
Prints the timeline of node states (from the RM) and decom's actions, then the figures.

Where the lab cannot run (not root, no network namespaces, no Java), it says so and runs the
single-host local-cluster demo instead (python -m bench.demo).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .yarn_scenarios import YarnOutcome

SCENARIO = "repeated-loss"
ROWS = [("correct answer", "correct"), ("job aborted", "aborted"), ("job wall time (s)", "wall_s"),
        ("stage attempts", "stage_attempts"), ("FetchFailed tasks", "fetch_failed_tasks"),
        ("map outputs on lost nodes", "outputs_lost"), ("map tasks recomputed", "map_tasks_recomputed"),
        ("tasks on a node after it left", "tasks_on_victims_after")]


def timeline(out: YarnOutcome) -> str:
    lines: list[tuple[float, str]] = []
    for e in out.events:
        lines.append((e["told_t"], f"bench   {e['stage']} attempt {e['attempt']} running: {e['how']} "
                                   f"{', '.join(e['victims'])} (timeout {e['timeout']}s, "
                                   f"{e['outputs_there']} map outputs there)"))
    for c in out.timeline:
        lines.append((c["t"], f"YARN    {c['host']}: {c['from']} -> {c['state']}"))
    for e in (out.decom or {}).get("events", []):
        detail = {k: v for k, v in (e.get("detail") or {}).items() if k not in ("until",)}
        lines.append((e["t"], f"decom   {e['action']} {e['target']} {detail}"))
    lines.append((out.job_end_t, f"Spark   job {'ABORTED' if out.aborted else 'finished'}"
                                 + (f": {out.error[:140]}" if out.error else "")))
    return "\n".join(f"  t={t:+6.1f}s  {text}" for t, text in sorted(lines, key=lambda x: x[0]))


def table(stock: dict[str, Any], dec: dict[str, Any]) -> str:
    lines = [f"  {'':<32}{'stock Spark':>14}{'decom':>10}"]
    lines += [f"  {label:<32}{str(stock[k]):>14}{str(dec[k]):>10}" for label, k in ROWS]
    return "\n".join(lines)


#: The notebook story's app: dynamic allocation, so an idle session keeps no executor (as notebooks run).
NOTEBOOK_CONF = {"spark.dynamicAllocation.enabled": "true", "spark.dynamicAllocation.minExecutors": "0",
                 "spark.dynamicAllocation.initialExecutors": "2", "spark.dynamicAllocation.maxExecutors": "2",
                 "spark.dynamicAllocation.executorIdleTimeout": "10s", "spark.executor.memory": "512m"}
NOTEBOOK_DATA: dict[str, Any] = {"n": 40_000, "keys": 97, "maps": 4, "reduces": 4, "parts": 4}
#: YARN's default graceful timeout: only the app's end, or the agent, lets the node go sooner.
NOTEBOOK_TIMEOUT_S = 3600
#: How long the demo watches a node held by a live app before it closes the notebook.
NOTEBOOK_WATCH_S = 60


def notebook_story(lab: Any, decom: bool, log: Any) -> dict[str, Any]:
    """An idle notebook-like session that cached data and ran a shuffle, one of its nodes gracefully
    decommissioned (1 h timeout). Stock Spark: YARN holds the node until the session ends. decom + the
    agent: the session moves its data off and lets go, the agent finishes the node, the session stays up
    and reads its data back right."""
    from yarnlab.sparkapp import shuffle_checksum, start_app_on

    hosts = sorted(n.host for n in lab.nodes)
    victim, other = hosts[-1], hosts[-2]
    app = start_app_on(lab, {victim, other}, avoid_am=victim, need_on=victim, executors=2, conf=NOTEBOOK_CONF,
                       decom=decom, name=f"notebook-{'decom' if decom else 'stock'}")
    out: dict[str, Any] = {"victim": victim}
    try:
        first = app.keep(**NOTEBOOK_DATA)
        log(f"session {app.app_id} cached its data and ran a shuffle; then it sits idle")
        t0 = time.time()
        lab.decommission([victim], timeout=NOTEBOOK_TIMEOUT_S)
        log(f"{victim} gracefully decommissioned (timeout {NOTEBOOK_TIMEOUT_S} s)")
        deadline = t0 + NOTEBOOK_WATCH_S
        while time.time() < deadline and lab.node_states().get(victim) != "DECOMMISSIONED":
            time.sleep(1)
        state = lab.node_states().get(victim)
        out["freed_while_up_s"] = round(time.time() - t0, 1) if state == "DECOMMISSIONED" else None
        out["session_state"] = str(lab.rest(f"/ws/v1/cluster/apps/{app.app_id}")["app"]["state"])
        log(f"{victim} is {state} {time.time() - t0:.0f} s later, with the session {out['session_state']}")
        if state == "DECOMMISSIONED":
            again = app.reread()
            out["answer_right"] = (not again["aborted"] and again["checksum"] == first["checksum"]
                                   and again["cached_sum"] == sum(range(NOTEBOOK_DATA["n"]))
                                   and first["checksum"] == shuffle_checksum(NOTEBOOK_DATA["n"], NOTEBOOK_DATA["keys"]))
            out["recomputed"] = again["maps_computed"] + again["cached_computed"]
            log(f"the session reads its data again: answer {'right' if out['answer_right'] else 'WRONG'}, "
                f"{out['recomputed']} partition(s) recomputed")
    finally:
        t_end = time.time()
        app.stop()
    if out.get("freed_while_up_s") is None:
        log("the notebook is closed (the app ends)")
        while time.time() - t_end < 120 and lab.node_states().get(victim) != "DECOMMISSIONED":
            time.sleep(1)
        out["freed_after_app_end_s"] = round(time.time() - t_end, 1)
        log(f"{victim} DECOMMISSIONED {out['freed_after_app_end_s']} s after the session ended")
    return out


def main() -> int:
    from yarnlab import LabUnavailable, YarnLab
    from yarnlab.net import preflight

    try:
        preflight()
    except LabUnavailable as e:
        print(f"The YARN lab cannot run here ({e}).\nRunning the single-host variant instead: "
              "local-cluster Spark, executors frozen with SIGSTOP (python -m bench.demo).\n", flush=True)
        from . import demo

        return demo.main()
    from .yarn_scenarios import repair, run_scenario

    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"   {time.strftime('%H:%M:%S')} {msg}", flush=True)

    print("== starting a 4-node YARN cluster (RM on the host, NodeManagers in network namespaces, Apache "
          "Hadoop's behaviour) and the decom agent ...", flush=True)
    try:
        lab = YarnLab(nodes=4, shuffle_service=True, agent=True).start()
    except LabUnavailable as e:
        print(f"The YARN lab cannot run here ({e}); running python -m bench.demo instead.\n", flush=True)
        from . import demo

        return demo.main()
    results: dict[str, YarnOutcome] = {}
    notebook: dict[bool, dict[str, Any]] = {}
    try:
        print(f"   up in {lab.startup_seconds:.0f}s: {', '.join(n.host for n in lab.nodes)}", flush=True)
        for mode in ("stock", "decom-ess-on"):
            print(f"\n== {mode}: a node lost in each of 2 consecutive reduce-stage attempts "
                  "(spark.stage.maxConsecutiveAttempts=2)", flush=True)
            try:
                out = run_scenario(lab, SCENARIO, mode, log=log)
            finally:
                repair(lab)
            results[mode] = out
            print(f"\n   timeline ({mode}; t = seconds since the job started):")
            print(timeline(out), flush=True)
        for decom in (False, True):
            print(f"\n== {'decom + the agent' if decom else 'stock Spark'}: an idle notebook session holds data on a "
                  "node that is gracefully decommissioned (1 h timeout)", flush=True)
            try:
                notebook[decom] = notebook_story(lab, decom, log)
            finally:
                repair(lab)
    finally:
        lab.stop()
    stock, dec = results["stock"].row(), results["decom-ess-on"].row()
    print("\n== side by side (shuffle service on in both):")
    print(table(stock, dec))
    if stock["error"]:
        print(f"\nstock Spark: {stock['error'][:300]}")
    stock_nb, decom_nb = notebook[False], notebook[True]
    print("\n== the notebook story (Apache Hadoop holds a DECOMMISSIONING node while an app that ran there lives):")
    print(f"  {'':<40}{'stock Spark':>14}{'decom+agent':>14}")
    rows = [("node freed while the session is up (s)", "freed_while_up_s"),
            ("node freed after the session ended (s)", "freed_after_app_end_s"),
            ("session state", "session_state"), ("answer right after", "answer_right"),
            ("partitions recomputed", "recomputed")]
    for label, k in rows:
        print(f"  {label:<40}{str(stock_nb.get(k, '-')):>14}{str(decom_nb.get(k, '-')):>14}")
    print(f"  (stock Spark: the node stayed DECOMMISSIONING for the {NOTEBOOK_WATCH_S} s watched, then until the "
          "session ended; YARN's timeout was 1 h)")
    print(f"\ndemo took {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
