"""`make demo`: one scale-in story on local-cluster Spark, stock Spark vs decom, side by side.

Four executors hold a shuffle's map outputs; one is reported DECOMMISSIONED and vanishes (SIGSTOP:
it stops answering, like a reclaimed spot host); then the reduce runs. Then a node is lost in each of
two consecutive attempts of a reduce stage, with spark.stage.maxConsecutiveAttempts=2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .local_scenarios import lost_outputs, repeated_loss, session

QUIET = {"spark.driver.extraJavaOptions":
         f"-Dlog4j2.configurationFile=file:{Path(__file__).resolve().parent / 'log4j2-demo.properties'}"}
ROWS = [("correct answer", "correct"), ("job aborted", "aborted"), ("reduce wall time (s)", "wall_s"),
        ("FetchFailed tasks", "fetch_failed_tasks"), ("map outputs lost", "outputs_lost"),
        ("map tasks recomputed", "map_tasks_recomputed"), ("map-stage attempts", "map_stage_attempts"),
        ("result-stage attempts", "result_stage_attempts")]


def table(title: str, stock: Mapping[str, object], dec: Mapping[str, object]) -> str:
    lines = [title, f"  {'':<24}{'stock Spark':>14}{'decom':>10}"]
    lines += [f"  {label:<24}{str(stock[k]):>14}{str(dec[k]):>10}" for label, k in ROWS]
    return "\n".join(lines)


def main() -> int:
    t0 = time.monotonic()
    results: dict[str, dict[str, Any]] = {}
    for mode in ("stock", "decom"):
        print(f"== {mode}: starting local-cluster Spark 4.3 with 4 executors ...", flush=True)
        conf = {"spark.stage.maxConsecutiveAttempts": "2", **QUIET}
        with session(mode, conf=conf, app="demo") as (spark, ctl):
            print(f"   executor loss after the map stage ({mode}) ...", flush=True)
            results[f"{mode}-lost"] = lost_outputs(spark, ctl, mode, lose=1).row()
            print(f"   a node lost in each of two consecutive reduce attempts ({mode}) ...", flush=True)
            results[f"{mode}-repeated"] = repeated_loss(spark, ctl, mode, losses=2).row()
            if ctl is not None:
                print("\n   decom's timeline (from controller.report()):")
                for e in ctl.report()["shim"]["events"]:
                    if e["action"] != "shim-started":
                        print(f"     {time.strftime('%H:%M:%S', time.localtime(e['time'] / 1000))}"
                              f"  {e['action']:<24} {e['target']:<14} {e['detail']}")
    print()
    print(table("1) One executor reported DECOMMISSIONED, then vanished; the reduce runs:",
                results["stock-lost"], results["decom-lost"]))
    print()
    print(table("2) A node lost in each of 2 consecutive reduce-stage attempts (maxConsecutiveAttempts=2):",
                results["stock-repeated"], results["decom-repeated"]))
    print(f"\nstock abort: {results['stock-repeated']['error'] or '-'}")
    print(f"demo took {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
