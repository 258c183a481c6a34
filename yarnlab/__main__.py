"""CLI: python -m yarnlab up [--nodes N] [--shuffle-service] | down | status"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .errors import LabError, LabUnavailable
from .lab import YarnLab
from .ops import ALL_NODE_STATES
from .supervisor import STATE_PATH, cleanup_stale, pid_alive, read_state


def _up(args: argparse.Namespace) -> int:
    lab = YarnLab(nodes=args.nodes, shuffle_service=args.shuffle_service, workdir=args.workdir,
                  ha=args.ha, emulate_emr_drain=args.emulate_emr_drain, agent=args.agent,
                  lock_timeout=args.lock_timeout)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    try:
        lab.start()
    except LabUnavailable as e:
        print(f"yarnlab: unavailable here: {e}", file=sys.stderr)
        return 2
    except LabError as e:
        print(f"yarnlab: start failed: {e}", file=sys.stderr)
        return 1
    try:
        print(f"yarnlab up in {lab.startup_seconds:.1f}s", flush=True)
        print(f"  rm_url          {lab.rm_url}")
        print(f"  HADOOP_CONF_DIR {lab.hadoop_conf_dir}")
        print(f"  workdir         {lab.workdir}")
        if lab.agent:
            print(f"  decom agent     {lab.agent_url} (secret: {lab.agent_secret_file})")
        print(f"  shuffle service {lab.shuffle.impl + ' ' + lab.shuffle.class_name if lab.shuffle else 'off'}")
        for n in lab.nodes:
            print(f"  {n.name}  {n.host}  netns {n.netns}")
        print("Ctrl-C or `python -m yarnlab down` stops it.", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        print("yarnlab: stopping", flush=True)
        lab.stop()
    return 0


def _down(args: argparse.Namespace) -> int:
    try:
        found = cleanup_stale(STATE_PATH, force=True)
    except LabError as e:
        print(f"yarnlab: {e}", file=sys.stderr)
        return 1
    print("yarnlab: cleaned up" if found else "yarnlab: nothing recorded in .lab/state.json")
    return 0


def _status(args: argparse.Namespace) -> int:
    state = read_state(STATE_PATH)
    if not state:
        print("yarnlab: no lab recorded")
        return 1
    owner = state["owner_pid"]
    report: dict[str, object] = {
        **state,
        "procs": [{**p, "alive": pid_alive(p["pid"])} for p in state["procs"]],
        "owner_alive": bool(owner) and pid_alive(owner),
    }
    try:
        import urllib.request

        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        states = ",".join(ALL_NODE_STATES)
        with opener.open(f"{state['rm_url']}/ws/v1/cluster/nodes?states={states}", timeout=5) as r:
            doc = json.loads(r.read().decode())
        report["node_states"] = {n["nodeHostName"]: n["state"] for n in (doc.get("nodes") or {}).get("node") or []}
    except Exception as e:  # noqa: BLE001
        report["node_states"] = f"REST unavailable: {e}"
    print(json.dumps(report, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yarnlab", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start a lab and keep it up until Ctrl-C / `down`")
    up.add_argument("--nodes", type=int, default=4)
    up.add_argument("--shuffle-service", action="store_true", help="run Spark's shuffle service in each NM")
    up.add_argument("--ha", action="store_true", help="two ResourceManagers, manual failover")
    up.add_argument("--agent", action="store_true",
                    help="also run the decom agent (decom agent run) next to the RM; its URL is printed")
    up.add_argument("--emulate-emr-drain", action="store_true",
                    help="let a DECOMMISSIONING node go once its containers are gone, as EMR's private "
                         "wait-for-applications=false does (Apache Hadoop waits for the apps to end)")
    up.add_argument("--workdir", default=None)
    up.add_argument("--lock-timeout", type=float, default=30.0)
    sub.add_parser("down", help="stop the recorded lab and remove its namespaces/links/bridge")
    sub.add_parser("status", help="print the recorded lab and its node states")
    args = ap.parse_args(argv)
    return {"up": _up, "down": _down, "status": _status}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
