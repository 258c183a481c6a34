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

    print("== starting a 4-node YARN cluster (RM on the host, NodeManagers in network namespaces) ...",
          flush=True)
    try:
        lab = YarnLab(nodes=4, shuffle_service=True).start()
    except LabUnavailable as e:
        print(f"The YARN lab cannot run here ({e}); running python -m bench.demo instead.\n", flush=True)
        from . import demo

        return demo.main()
    results: dict[str, YarnOutcome] = {}
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
    finally:
        lab.stop()
    stock, dec = results["stock"].row(), results["decom-ess-on"].row()
    print("\n== side by side (shuffle service on in both):")
    print(table(stock, dec))
    if stock["error"]:
        print(f"\nstock Spark: {stock['error'][:300]}")
    print(f"\ndemo took {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
