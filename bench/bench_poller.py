"""Benchmark of decom's ResourceManager poller (a benchmark, not a test).

    python bench/bench_poller.py [--quick]

Starts a fake ResourceManager in a child process on 127.0.0.1 (so its CPU is not counted as the
poller's), serving Hadoop 3.5-shaped node JSON (resources, utilization, labels: ~2 kB a node),
and measures:

* the cost of one poll (HTTP + JSON parse + diff) at 100, 1,000 and 10,000 nodes, for a *full*
  poll (every RUNNING node listed) and for the poller's steady-state *light* poll (cluster metrics
  + the doomed states only, with 1% of the nodes DECOMMISSIONED);
* the latency from a state change on the fake RM to ``on_update`` being called, over a mix of
  RUNNING -> DECOMMISSIONING, DECOMMISSIONING -> DECOMMISSIONED and DECOMMISSIONED -> RUNNING
  changes made at random moments, at poll intervals of 0.2 s and 1 s (1,000 nodes).

Prints a table and writes bench/results/poller.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# ---- the fake RM (child process) -----------------------------------------------------------------


def _resource(memory: int, vcores: int) -> dict[str, Any]:
    return {"memory": memory, "vCores": vcores, "resourceInformations": {"resourceInformation": [
        {"attributes": {}, "maximumAllocation": 9223372036854775807, "minimumAllocation": 0,
         "name": "memory-mb", "resourceType": "COUNTABLE", "units": "Mi", "value": memory},
        {"attributes": {}, "maximumAllocation": 9223372036854775807, "minimumAllocation": 0,
         "name": "vcores", "resourceType": "COUNTABLE", "units": "", "value": vcores}]}}


def _node(i: int, state: str) -> dict[str, Any]:
    host = f"ip-10-{i // 65536 % 256}-{i // 256 % 256}-{i % 256}.ec2.internal"
    running = state == "RUNNING"
    used = 4 if running else 0
    return {
        "rack": f"/rack-{i % 40}", "state": state, "id": f"{host}:8041", "nodeHostName": host,
        "nodeHTTPAddress": f"{host}:8042" if running else "", "lastHealthUpdate": 1_700_000_000_000,
        "version": "3.5.0", "healthReport": "", "numContainers": used,
        "usedMemoryMB": used * 4096, "availMemoryMB": (8 - used) * 4096,
        "usedVirtualCores": used, "availableVirtualCores": 8 - used,
        "memUtilization": 0.5, "cpuUtilization": 0.41, "numRunningOpportContainers": 0,
        "usedMemoryOpportGB": 0, "usedVirtualCoresOpport": 0, "numQueuedContainers": 0,
        "nodeLabels": ["CORE"], "allocationTags": {},
        "resourceUtilization": {"nodePhysicalMemoryMB": 20480, "nodeVirtualMemoryMB": 20480,
                                "nodeCPUUsage": 0.41, "aggregatedContainersPhysicalMemoryMB": 15000,
                                "aggregatedContainersVirtualMemoryMB": 16000,
                                "containersCPUUsage": 0.38},
        "usedResource": _resource(used * 4096, used),
        "availableResource": _resource((8 - used) * 4096, 8 - used),
        "totalResource": _resource(32768, 8), "nodeAttributesInfo": {},
    }


class _FakeRM:
    def __init__(self) -> None:
        self.nodes: dict[int, str] = {}
        self.cache: dict[frozenset[str], bytes] = {}
        self.json: dict[int, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def body(self, states: frozenset[str]) -> bytes:
        with self.lock:
            if states not in self.cache:
                items = [self.json[i] for i, s in self.nodes.items() if not states or s in states]
                self.cache[states] = json.dumps(
                    {"nodes": {"node": items} if items else None}).encode()
            return self.cache[states]

    def node(self, node_id: str) -> bytes | None:
        with self.lock:
            for data in self.json.values():
                if data["id"] == node_id:
                    return json.dumps({"node": data}).encode()
        return None

    def metrics(self) -> bytes:
        with self.lock:
            counts: dict[str, int] = {}
            for s in self.nodes.values():
                counts[s] = counts.get(s, 0) + 1
        return json.dumps({"clusterMetrics": {
            "activeNodes": counts.get("RUNNING", 0),
            "decommissioningNodes": counts.get("DECOMMISSIONING", 0),
            "decommissionedNodes": counts.get("DECOMMISSIONED", 0),
            "lostNodes": counts.get("LOST", 0), "totalNodes": len(self.nodes)}}).encode()

    def reset(self, n: int, doomed_every: int) -> None:
        with self.lock:
            self.nodes = {i: ("DECOMMISSIONED" if doomed_every and i % doomed_every == 0
                              else "RUNNING") for i in range(n)}
            self.json = {i: _node(i, s) for i, s in self.nodes.items()}
            self.cache.clear()

    def set(self, i: int, state: str) -> None:
        with self.lock:
            self.nodes[i] = state
            self.json[i] = _node(i, state)
            self.cache.clear()


def _serve() -> None:
    fake = _FakeRM()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            q = parse_qs(url.query)
            if url.path == "/ws/v1/cluster/metrics":
                self._send(fake.metrics())
            elif url.path == "/ws/v1/cluster/nodes":
                states = q.get("states", [""])[0]
                self._send(fake.body(frozenset(s for s in states.split(",") if s)))
            elif url.path.startswith("/ws/v1/cluster/nodes/"):
                node = fake.node(url.path.rsplit("/", 1)[1])
                if node is None:
                    self.send_error(404)
                else:
                    self._send(node)
            elif url.path == "/_fake/reset":
                fake.reset(int(q["n"][0]), int(q["doomed_every"][0]))
                self._send(b"{}")
            elif url.path == "/_fake/set":
                fake.set(int(q["i"][0]), q["state"][0])
                self._send(b"{}")
            else:
                self.send_error(404)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


# ---- the measurements (parent process) -----------------------------------------------------------


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions and changes")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve()
        return

    import httpx

    from decom._driver.poller import NodePoller
    from decom._yarn import ResourceManagerClient
    from decom._yarn.nodes import NodeStatus

    child = subprocess.Popen([sys.executable, __file__, "--serve"], stdout=subprocess.PIPE,
                             text=True)
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        control = httpx.Client(base_url=base, timeout=120.0, trust_env=False)

        def reset(n: int, doomed_every: int = 100) -> None:
            control.get("/_fake/reset", params={"n": n, "doomed_every": doomed_every})

        results: dict[str, Any] = {
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "platform": platform.platform(),
                        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]},
            "quick": args.quick, "poll_cost": [], "latency": []}

        # -- cost per poll --
        reps = {100: 30, 1000: 15, 10000: 5} if args.quick else {100: 100, 1000: 40, 10000: 10}
        for n, r in reps.items():
            reset(n)
            for mode in ("full", "light"):
                rm = ResourceManagerClient([base], timeout=60.0, user="bench")
                poller = NodePoller(rm, 1.0, lambda c: None, light=mode == "light",
                                    full_interval=1e9)
                poller.poll_once()  # first poll: baseline (always a full one)
                wall: list[float] = []
                cpu: list[float] = []
                for _ in range(r):
                    t0, c0 = time.perf_counter(), time.process_time()
                    poller.poll_once()
                    wall.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
                states = "DECOMMISSIONING,DECOMMISSIONED,LOST,SHUTDOWN" + (
                    ",RUNNING" if mode == "full" else "")
                size = len(control.get("/ws/v1/cluster/nodes", params={"states": states}).content)
                results["poll_cost"].append({
                    "nodes": n, "mode": mode, "polls": r, "reply_bytes": size,
                    "median_ms": round(statistics.median(wall) * 1000, 2),
                    "p90_ms": round(_pct(wall, 0.9) * 1000, 2),
                    "cpu_median_ms": round(statistics.median(cpu) * 1000, 2)})
                rm.close()

        # -- latency from a change on the RM to on_update --
        n_latency = 1000
        plans = [(0.2, 20 if args.quick else 50), (1.0, 10 if args.quick else 50)]
        rng = random.Random(42)
        for interval, changes in plans:
            reset(n_latency, doomed_every=0)
            seen: dict[str, float] = {}
            cond = threading.Condition()

            def on_update(statuses: list[NodeStatus], seen: dict[str, float] = seen,
                          cond: threading.Condition = cond) -> None:
                now = time.perf_counter()
                with cond:
                    for s in statuses:
                        seen[f"{s.target}={s.state}"] = now
                    cond.notify_all()

            rm = ResourceManagerClient([base], timeout=10.0, user="bench")
            poller = NodePoller(rm, interval, on_update)
            poll_starts: list[float] = []
            real_poll = poller.poll_once

            def timed_poll(real: Any = real_poll, starts: list[float] = poll_starts) -> Any:
                starts.append(time.perf_counter())
                return real()

            poller.poll_once = timed_poll  # type: ignore[method-assign]
            poller.start()
            time.sleep(interval * 2)
            samples: list[float] = []
            own: list[float] = []
            kinds: dict[str, list[float]] = {}
            cycle = [("RUNNING", "DECOMMISSIONING"), ("DECOMMISSIONING", "DECOMMISSIONED"),
                     ("DECOMMISSIONED", "RUNNING")]
            node_i = 0
            for k in range(changes):
                old, new = cycle[k % 3]
                if k % 3 == 0:
                    node_i = rng.randrange(n_latency)
                host = _node(node_i, new)["nodeHostName"]
                time.sleep(rng.uniform(0, interval))
                control.get("/_fake/set", params={"i": node_i, "state": new})
                t0 = time.perf_counter()
                key = f"{host}={new}"
                def reported(k: str = key, d: dict[str, float] = seen) -> bool:
                    return k in d

                with cond:
                    ok = cond.wait_for(reported, timeout=interval * 10 + 10)
                    t1 = seen.pop(key, None)
                if not ok or t1 is None:
                    print(f"  change {k} ({old} -> {new}) never reported", file=sys.stderr)
                    continue
                samples.append(max(0.0, t1 - t0))
                kinds.setdefault(f"{old}->{new}", []).append(max(0.0, t1 - t0))
                started = [t for t in poll_starts if t >= t0]
                if started:  # the part the poller adds: from the poll that saw it to on_update
                    own.append(max(0.0, t1 - started[0]))
            status = poller.status()
            poller.stop()
            rm.close()
            results["latency"].append({
                "interval_s": interval, "nodes": n_latency, "changes": changes,
                "reported": len(samples),
                "median_ms": round(statistics.median(samples) * 1000, 1),
                "p99_ms": round(_pct(samples, 0.99) * 1000, 1),
                "max_ms": round(max(samples) * 1000, 1),
                "poll_to_update_median_ms": round(statistics.median(own) * 1000, 1),
                "poll_to_update_p99_ms": round(_pct(own, 0.99) * 1000, 1),
                "median_by_kind_ms": {k: round(statistics.median(v) * 1000, 1)
                                      for k, v in kinds.items()},
                "polls": status["polls"], "full_polls": status["full_polls"]})
    finally:
        child.terminate()
        child.wait(10)

    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    out = HERE / "results" / "poller.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")

    load = results["machine"]
    print(f"\nPoll cost (HTTP + parse + diff), fake RM in another process, {os.cpu_count()} CPUs, "
          f"load average {load['loadavg_at_start'][0]:.1f} -> {load['loadavg_at_end'][0]:.1f}")
    print(f"{'nodes':>7} {'mode':>6} {'reply':>10} {'median ms':>10} {'p90 ms':>8} {'cpu ms':>8}")
    for row in results["poll_cost"]:
        print(f"{row['nodes']:>7} {row['mode']:>6} {row['reply_bytes']:>10,} "
              f"{row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} {row['cpu_median_ms']:>8.2f}")
    print("  full: DECOMMISSIONING,DECOMMISSIONED,LOST,SHUTDOWN,RUNNING every poll; light: "
          "metrics + doomed states (1% of nodes DECOMMISSIONED)")
    print(f"\nChange on the RM -> on_update ({n_latency} nodes, light mode)")
    print(f"{'interval':>9} {'changes':>8} {'median ms':>10} {'p99 ms':>8} {'max ms':>8} "
          f"{'poll->cb med':>13} {'p99':>6}")
    for row in results["latency"]:
        print(f"{row['interval_s']:>8g}s {row['reported']:>4}/{row['changes']:<3} "
              f"{row['median_ms']:>10.1f} {row['p99_ms']:>8.1f} {row['max_ms']:>8.1f} "
              f"{row['poll_to_update_median_ms']:>13.1f} {row['poll_to_update_p99_ms']:>6.1f}")
        print("           median by kind (ms): " + ", ".join(
            f"{k} {v:.0f}" for k, v in row["median_by_kind_ms"].items()))
    print("  change -> on_update = wait for the next poll (uniform over the interval) + the poll "
          "itself;\n  poll->cb: from the start of the poll that saw the change to on_update")
    print(f"\nsaved {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
