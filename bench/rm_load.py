"""`python -m bench.rm_load`: what node states cost the ResourceManager when every driver polls it
(``direct``) and when one decom agent polls it for every driver (``agent``).

On the lab's real RM (Hadoop 3.5's own jars), with 100 and then 10,000 registered NodeManagers: one
real NodeManager plus simulated ones that register over the RM's resource-tracker RPC as a NodeManager
does (bench/java/SimNodeManagers.java). They do not heartbeat: the lab's liveness expiry is set longer
than the run, so they stay RUNNING and the RM's heartbeat work does not blur what a query costs.

Measured, per node count:
- the RM's CPU per request of each kind a driver's poller sends (its light poll: the doomed states and
  ``/ws/v1/cluster/metrics`` every second; a full poll every 60 s) and of the agent's one read per
  interval: RM process CPU (/proc) over a run of requests minus its idle CPU over the same time;
- delivery: from the RM's own state turning DECOMMISSIONING (watched every 50 ms) to each driver's poller
  seeing it, over several decommissions of a simulated node, with the real NodePoller reading the RM
  (direct) or the real agent's /v1/nodes (agent: `decom agent run --dry-run`, so it releases nothing).

Rows {mode, drivers, nodes, rm_requests_per_s, rm_cpu_s_per_request, delivery_p50_s, delivery_p99_s,
extrapolated}: drivers 1, 100 and 1,000 (and each count that ran). A row is measured (extrapolated:
false) when that many pollers ran against the RM here. A count is run only while this 2-core machine can
sustain it (--max-rm-cpu): the RM's CPU for direct polls, and, since every driver runs in this process,
the parsing of their full polls. The other rows scale the measured cost per request with the request
rate, and keep the delivery measured at the largest driver count that ran. Saved to
bench/results/rm-load.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from decom._agent.exclude_file import ExcludeFile
from decom._agent_contract import read_secret
from decom._driver.agent_link import AgentFirstNodes
from decom._errors import ResourceManagerError
from decom._yarn import ResourceManagerClient
from decom._yarn.nodes import NodeStatus
from decom._yarn.poller import DOOMED_QUERY, FULL_QUERY, NodePoller

if TYPE_CHECKING:
    from yarnlab import YarnLab

RESULTS = Path(__file__).resolve().parent / "results"
JAVA_SRC = Path(__file__).resolve().parent / "java" / "SimNodeManagers.java"
#: What a driver's poller sends per second (spark.decom.poll.interval 1 s): one doomed-states query and
#: one metrics call, plus a full poll every 60 s (decom/_yarn/poller.py).
POLL_INTERVAL_S = 1.0
FULL_EVERY_S = 60.0
#: The agent as the lab runs it (`decom agent run --interval 1s`, the default): a light poll per interval.
AGENT_INTERVAL_S = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: What one agent process can use: its Python serves every driver (the GIL), about one core.
AGENT_CORES = 1.0


def sim_host(i: int) -> str:
    """Simulated NodeManager i's host (as SimNodeManagers.host)."""
    return f"127.2.{i // 250}.{1 + i % 250}"


def build_sim_jar(lab_jars: Path) -> Path:
    """javac SimNodeManagers against the lab's Hadoop jars, once per source version."""
    from yarnlab.jars import java_home

    digest = hashlib.sha256(JAVA_SRC.read_bytes()).hexdigest()[:16]
    dest = lab_jars / "sim-nodes"
    jar = dest / "sim-nodes.jar"
    stamp = dest / ".complete"
    if stamp.exists() and stamp.read_text().strip() == digest and jar.exists():
        return jar
    tmp = Path(tempfile.mkdtemp(prefix="sim-nodes.", dir=lab_jars))
    try:
        jhome = java_home()
        r = subprocess.run([str(jhome / "bin" / "javac"), "-nowarn", "--release", "17", "-cp",
                            str(lab_jars / "hadoop" / "*"), "-d", str(tmp), str(JAVA_SRC)],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise SystemExit("javac of SimNodeManagers failed:\n" + (r.stdout + r.stderr)[-3000:])
        r = subprocess.run([str(jhome / "bin" / "jar"), "cf", str(tmp / "sim-nodes.jar"), "-C", str(tmp),
                            "SimNodeManagers.class"], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise SystemExit("jar of SimNodeManagers failed:\n" + (r.stdout + r.stderr)[-3000:])
        (tmp / ".complete").write_text(digest + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return jar


def register(lab: YarnLab, jar: Path, first: int, count: int, rm: ResourceManagerClient,
             log: Callable[[str], None]) -> None:
    """Register simulated NodeManagers first..first+count-1; return once the RM counts them active."""
    from yarnlab.jars import java_home

    want = int(rm.cluster_metrics()["activeNodes"]) + count
    t0 = time.monotonic()
    cp = ":".join([str(jar), str(lab.hadoop_conf_dir), str(jar.parent.parent / "hadoop" / "*")])
    r = subprocess.run([str(java_home() / "bin" / "java"), "-Xmx512m", "-cp", cp, "SimNodeManagers",
                        str(first), str(count), "16"], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise SystemExit(f"SimNodeManagers failed ({r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    deadline = time.monotonic() + 300
    while int(rm.cluster_metrics()["activeNodes"]) < want:
        if time.monotonic() > deadline:
            raise SystemExit(f"the RM counts {rm.cluster_metrics()['activeNodes']} active nodes, not {want}")
        time.sleep(1)
    log(f"registered {count} simulated NodeManagers in {time.monotonic() - t0:.0f}s (RM: {want} active)")


class RmCpu:
    """The RM process's CPU seconds (all threads), from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime

    def idle_rate(self, window: float) -> float:
        c0, t0 = self.seconds(), time.monotonic()
        time.sleep(window)
        return (self.seconds() - c0) / (time.monotonic() - t0)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def request_cost(cpu: RmCpu, idle: float, call: Callable[[], object], n: int) -> dict[str, float]:
    """RM CPU seconds per call (minus idle) and the calls' latency, over n calls one after another."""
    lat: list[float] = []
    c0, t0 = cpu.seconds(), time.monotonic()
    for _ in range(n):
        s = time.monotonic()
        call()
        lat.append(time.monotonic() - s)
    elapsed = time.monotonic() - t0
    used = cpu.seconds() - c0 - idle * elapsed
    return {"cpu_s": max(used, 0.0) / n, "latency_p50_s": statistics.median(lat), "latency_p99_s": pct(lat, 0.99),
            "calls": n}


class Seen:
    """When each of D pollers first saw a host in a doomed state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.host = ""
        self.first: dict[int, float] = {}
        self.back: set[int] = set()

    def sink(self, i: int) -> Callable[[list[NodeStatus]], None]:
        def on_update(statuses: list[NodeStatus]) -> None:
            now = time.time()
            with self.lock:
                for s in statuses:
                    if s.target != self.host:
                        continue
                    if s.state in ("DECOMMISSIONING", "DECOMMISSIONED"):
                        self.first.setdefault(i, now)
                    elif s.state == "RUNNING":
                        self.back.add(i)
        return on_update

    def watch(self, host: str) -> None:
        with self.lock:
            self.host, self.first, self.back = host, {}, set()


@contextmanager
def pollers(lab: YarnLab, mode: str, drivers: int, seen: Seen) -> Iterator[list[NodePoller]]:
    """`drivers` real NodePollers (one per driver), reading the RM or the agent."""
    started: list[NodePoller] = []
    try:
        for i in range(drivers):
            rm = ResourceManagerClient([lab.rm_url_of(r) for r in lab.rm_ids], timeout=30.0)
            source: Any = rm
            if mode == "agent":
                source = AgentFirstNodes(lab.agent_url, rm, read_secret(lab.agent_secret_file, "secret"),
                                         timeout=30.0)
            p = NodePoller(source, POLL_INTERVAL_S, seen.sink(i), owns_client=True)
            started.append(p.start())
            time.sleep(POLL_INTERVAL_S / max(drivers, 1))  # drivers start at different moments
        # Every poller has made its first (full) poll: at 10,000 nodes ~2 s of the RM each, one after the
        # other, so a fixed wait would time the first decommission against that queue.
        deadline = time.monotonic() + 300
        while any(p.status()["last_success"] is None for p in started):
            if time.monotonic() > deadline:
                raise SystemExit("a driver's poller had no successful poll in 300 s")
            time.sleep(0.2)
        time.sleep(1)
        yield started
    finally:
        for p in started:
            p.stop()


class RmWatch:
    """Asks the RM for one node every 50 ms from before a change is made: the change happened after the
    last request that still saw the old state went out (``changed_after``), which times deliveries from
    no later than the RM's own change (an upper bound by at most one watch period and a lookup)."""

    def __init__(self, lab: YarnLab, node_id: str, new_states: set[str]) -> None:
        self._rm = ResourceManagerClient([lab.rm_url_of(r) for r in lab.rm_ids], timeout=30.0)
        self._node_id, self._new = node_id, new_states
        self.changed_after: float | None = None
        self.seen = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RmWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seen.set()
        self._thread.join(5)
        self._rm.close()

    def _run(self) -> None:
        while not self.seen.is_set():
            asked = time.time()
            try:
                n = self._rm.node(self._node_id)
            except ResourceManagerError:  # a slow answer under load: ask again
                continue
            if n is not None and n.state in self._new:
                self.seen.set()
            else:
                self.changed_after = asked
                time.sleep(0.05)

    def wait(self, timeout: float = 60.0) -> float:
        if not self.seen.wait(timeout) or self.changed_after is None:
            raise SystemExit(f"the RM did not show {self._node_id} in {sorted(self._new)} within {timeout:.0f}s")
        return self.changed_after


def deliveries(lab: YarnLab, seen: Seen, drivers: int, hosts: list[str], log: Callable[[str], None],
               before_each: Callable[[], None] | None = None,
               at_change: Callable[[], None] | None = None) -> list[float]:
    """Decommission each host gracefully (as an operator: exclude file + `-refreshNodes -g`), time every
    poller's first sight of it against the RM's own change, then recommission it. `before_each` runs
    before each decommission, `at_change` as soon as the RM shows it."""
    out: list[float] = []
    for host in hosts:
        seen.watch(host)
        if before_each is not None:
            before_each()
        with RmWatch(lab, f"{host}:45454", {"DECOMMISSIONING", "DECOMMISSIONED"}) as watch:
            time.sleep(0.2)  # it has seen the node RUNNING
            with ExcludeFile(lab.exclude_path).edit() as excluded:
                excluded[host] = 3600
            lab.rmadmin("-refreshNodes", "-g", "-server")
            at = watch.wait()
            if at_change is not None:
                at_change()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with seen.lock:
                if len(seen.first) == drivers:
                    break
            time.sleep(0.05)
        with seen.lock:
            got = [t - at for t in seen.first.values()]
        if len(got) < drivers:
            log(f"  {drivers - len(got)} of {drivers} pollers did not see {host} within 60 s")
        out.extend(got)
        with ExcludeFile(lab.exclude_path).edit() as excluded:
            excluded.pop(host, None)
        with RmWatch(lab, f"{host}:45454", {"RUNNING"}) as back:
            time.sleep(0.2)  # it has seen the node decommissioning
            lab.rmadmin("-refreshNodes", "-g", "-server")
            back.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with seen.lock:
                if len(seen.back) >= len(seen.first):
                    break
            time.sleep(0.05)
    return out


def measure(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    from yarnlab import YarnLab
    from yarnlab.jars import ensure_hadoop_jars

    jar = build_sim_jar(ensure_hadoop_jars().parent)
    results: dict[str, Any] = {"costs": {}, "deliveries": {}}
    lab = YarnLab(nodes=1, nm_expiry_ms=3_600_000, rm_heap_mb=2048, quick_spark_jvms=True).start()
    try:
        log(f"lab up in {lab.startup_seconds:.0f}s")
        rm = ResourceManagerClient([lab.rm_url_of(r) for r in lab.rm_ids], timeout=60.0)
        cpu = RmCpu(lab._procs[lab.active_rm].pid)
        registered = 0
        host_no = 0
        for nodes in args.nodes:
            register(lab, jar, registered, nodes - 1 - registered, rm, log)
            registered = nodes - 1
            time.sleep(5)  # registration's after-work settles
            for _ in range(20 if nodes <= 1000 else 5):  # the RM's JIT warms up on these calls first
                rm.nodes(DOOMED_QUERY), rm.cluster_metrics(), rm.nodes(FULL_QUERY)
            idle = cpu.idle_rate(10)
            n_calls = 100 if nodes <= 1000 else 30
            costs = {
                "doomed": request_cost(cpu, idle, lambda: rm.nodes(DOOMED_QUERY), n_calls),
                "metrics": request_cost(cpu, idle, rm.cluster_metrics, n_calls),
                "full": request_cost(cpu, idle, lambda: rm.nodes(FULL_QUERY), max(5, n_calls // 5)),
            }
            costs["idle_rm_cpu_s_per_s"] = {"cpu_s": idle}
            results["costs"][nodes] = costs
            log(f"{nodes} nodes: RM CPU ms per request: " + ", ".join(
                f"{k} {v['cpu_s'] * 1000:.2f} (p50 {v['latency_p50_s'] * 1000:.1f} ms)"
                for k, v in costs.items() if "calls" in v) + f"; idle {idle * 1000:.0f} ms/s")
            for mode in ("direct", "agent"):
                if mode == "agent":
                    lab.start_agent(dry_run=True)
                per_driver = (costs["metrics"]["cpu_s"] + costs["doomed"]["cpu_s"]) / POLL_INTERVAL_S \
                    + costs["full"]["cpu_s"] * (1 / FULL_EVERY_S + 1 / 30)  # + its first poll, a full one
                # All the drivers run here, in this process: each full poll's node list is parsed here.
                parse = costs["full"]["latency_p50_s"] / FULL_EVERY_S
                for drivers in args.drivers:
                    if mode == "direct" and drivers > 1 and drivers * per_driver > args.max_rm_cpu:
                        log(f"  {mode:6} {drivers:4} drivers: not run: they would need ~{drivers * per_driver:.1f} "
                            f"CPU s/s of the RM (over --max-rm-cpu {args.max_rm_cpu}); extrapolated")
                        continue
                    if drivers > 1 and drivers * parse > args.max_rm_cpu:
                        log(f"  {mode:6} {drivers:4} drivers: not run: their full polls alone would need ~"
                            f"{drivers * parse:.1f} CPU s/s of this machine; extrapolated")
                        continue
                    seen = Seen()
                    hosts = [sim_host(host_no + k) for k in range(args.events)]
                    host_no += args.events
                    with pollers(lab, mode, drivers, seen) as ps:
                        agent_cpu = RmCpu(lab._procs["agent"].pid) if mode == "agent" else None
                        a0 = agent_cpu.seconds() if agent_cpu else 0.0
                        reads0 = rm_reads(lab, mode, ps)
                        c0, t0 = cpu.seconds(), time.monotonic()
                        got = deliveries(lab, seen, drivers, hosts, log)
                        elapsed = time.monotonic() - t0
                        rm_cpu_rate = (cpu.seconds() - c0) / elapsed - idle
                        reads1 = rm_reads(lab, mode, ps)
                        agent_rate = (agent_cpu.seconds() - a0) / elapsed if agent_cpu else None
                    polls = reads1[0] - reads0[0]
                    full = reads1[1] - reads0[1]
                    results["deliveries"][f"{mode}/{drivers}/{nodes}"] = {
                        "delivery_s": got, "rm_cpu_s_per_s_over_idle": rm_cpu_rate,
                        "rm_polls_per_s": polls / elapsed, "full_fraction": full / polls if polls else 0.0,
                        "agent_cpu_s_per_s": agent_rate, "seconds": elapsed}
                    log(f"  {mode:6} {drivers:4} drivers: delivery p50 {statistics.median(got):.2f}s "
                        f"p99 {pct(got, 0.99):.2f}s worst {max(got):.2f}s ({len(got)} sightings); "
                        f"RM polls {polls / elapsed:.1f}/s ({full} full); RM CPU over idle {rm_cpu_rate:.3f} s/s"
                        + (f"; agent CPU {agent_rate:.3f} s/s" if agent_rate is not None else ""))
                if mode == "agent" and nodes == max(args.nodes):
                    registered = during_full_read(lab, jar, rm, registered, host_no, args, results, nodes, log)
                    host_no += args.events
                if mode == "agent":
                    lab.stop_agent()
        rm.close()
    finally:
        lab.stop()
    return results


def during_full_read(lab: YarnLab, jar: Path, rm: ResourceManagerClient, registered: int, host_no: int,
                     args: argparse.Namespace, results: dict[str, Any], nodes: int,
                     log: Callable[[str], None]) -> int:
    """Delivery while the agent reads every node: right before each decommission one more simulated
    NodeManager registers, so the RM's node count tells the agent to read every node (~2 s at 10,000
    nodes); whether that read was still under way when the RM showed the change is sampled from the
    agent's status. One driver, so that no other driver's parsing in this process adds to the delay.
    Returns the number of simulated NodeManagers registered; a failure here is logged and skipped."""
    count = [registered]
    overlapped: list[bool] = []
    slowest_read: list[float] = []

    def one_more() -> None:
        register(lab, jar, count[0], 1, rm, lambda _msg: None)
        count[0] += 1

    def sample() -> None:
        status = lab.agent_status()
        overlapped.append(bool(status["rm_reads"].get("full_read_in_flight")))
        slowest_read.append(float(status.get("slowest_recent_poll_s", float("nan"))))

    seen = Seen()
    hosts = [sim_host(host_no + k) for k in range(args.events)]
    try:
        with pollers(lab, "agent", 1, seen):
            got = deliveries(lab, seen, 1, hosts, log, before_each=one_more, at_change=sample)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - the other measurements must be saved
        log(f"  agent: delivery during the agent's full reads not measured: {type(e).__name__}: {e}")
        return count[0]
    results["deliveries_during_full_read"] = {f"agent/1/{nodes}": {
        "delivery_s": got, "events": len(hosts), "full_read_under_way_at_change": overlapped,
        "agent_slowest_light_read_s": slowest_read}}
    log(f"  agent     1 driver, a NodeManager registering before each decommission: delivery p50 "
        f"{statistics.median(got):.2f}s worst {max(got):.2f}s; the agent's full read was under way at "
        f"{sum(overlapped)} of {len(overlapped)} changes; the agent's slowest light read of the RM in the minute "
        f"before: {max(slowest_read):.2f}s")
    return count[0]


def rm_reads(lab: YarnLab, mode: str, ps: list[NodePoller]) -> tuple[int, int]:
    """(polls, full polls) made of the RM so far: by the drivers' pollers, or by the agent."""
    if mode == "agent":
        r = lab.agent_status()["rm_reads"]
        return int(r["polls"]), int(r["full_polls"])
    st = [p.status() for p in ps]
    return sum(int(x["polls"]) for x in st), sum(int(x["full_polls"]) for x in st)


def rows_from(results: dict[str, Any], node_counts: list[int]) -> list[dict[str, Any]]:
    """A poll is two requests (the metrics, and the doomed states or, for a full poll, every node): its
    RM CPU is the measured cost of each kind, weighted by the share of full polls seen."""
    rows: list[dict[str, Any]] = []
    for nodes in node_counts:
        c = results["costs"][nodes]
        for mode in ("direct", "agent"):
            ran = sorted(int(k.split("/")[1]) for k in results["deliveries"]
                         if k.startswith(f"{mode}/") and k.endswith(f"/{nodes}"))
            for drivers in sorted({1, 100, 1000} | set(ran)):
                measured = drivers in ran
                largest = max(d for d in ran if d <= drivers)
                run = results["deliveries"][f"{mode}/{largest}/{nodes}"]
                # In steady state a poller (a driver's or the agent's) reads every node each FULL_EVERY_S;
                # a run's short window may have caught one or none (kept as full_fraction_measured).
                f = POLL_INTERVAL_S / FULL_EVERY_S
                polls_s = run["rm_polls_per_s"]
                if mode == "direct" and not measured:
                    polls_s = polls_s / largest * drivers
                cpu_req = (c["metrics"]["cpu_s"] + (1 - f) * c["doomed"]["cpu_s"] + f * c["full"]["cpu_s"]) / 2
                got = run["delivery_s"]
                agent_cpu = run["agent_cpu_s_per_s"]
                if agent_cpu is not None and not measured:
                    # Its own polls, plus what each driver's polls cost it, as measured from 1 to `largest`.
                    one = results["deliveries"][f"agent/{min(ran)}/{nodes}"]["agent_cpu_s_per_s"]
                    per = (agent_cpu - one) / (largest - min(ran)) if largest > min(ran) else agent_cpu
                    agent_cpu = one + per * (drivers - min(ran))
                # One agent process serves every driver from one Python interpreter: about one core.
                beyond_agent = agent_cpu is not None and agent_cpu > AGENT_CORES
                if beyond_agent:
                    got = []
                note = "" if measured else (
                    f"direct: polls scaled from {largest} driver(s); delivery as measured with {largest}, if the "
                    "RM keeps up" if mode == "direct" else
                    f"the agent's reads of the RM do not depend on drivers; its own CPU extrapolated from 1-{largest}"
                    + ("; more than one agent process can serve: no delivery figure" if beyond_agent else
                       f"; delivery as measured with {largest}"))
                rows.append({
                    "mode": mode, "drivers": drivers, "nodes": nodes,
                    "rm_requests_per_s": round(2 * polls_s, 3),
                    "rm_cpu_s_per_request": round(cpu_req, 6),
                    "rm_cpu_s_per_s": round(2 * polls_s * cpu_req, 4),
                    "rm_cpu_s_per_s_measured": round(run["rm_cpu_s_per_s_over_idle"], 4) if measured else None,
                    "full_fraction_measured": round(run["full_fraction"], 4),
                    "agent_cpu_s_per_s": None if agent_cpu is None else round(agent_cpu, 4),
                    "delivery_p50_s": round(statistics.median(got), 3) if got else None,
                    "delivery_p99_s": round(pct(got, 0.99), 3) if got else None,
                    "delivery_worst_s": round(max(got), 3) if got else None,
                    "extrapolated": not measured,
                    "note": note,
                })
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    def num(v: float | None, f: str) -> str:
        return "-" if v is None else format(v, f)

    out = [f"{'mode':7}{'drivers':>8}{'nodes':>7}{'RM req/s':>10}{'RM CPU ms/req':>15}{'RM CPU s/s':>12}"
           f"{'measured':>10}{'agent CPU':>11}{'deliv p50':>11}{'p99':>7}{'worst':>7}  extrapolated"]
    for r in rows:
        out.append(f"{r['mode']:7}{r['drivers']:>8}{r['nodes']:>7}{r['rm_requests_per_s']:>10.2f}"
                   f"{r['rm_cpu_s_per_request'] * 1000:>15.3f}{r['rm_cpu_s_per_s']:>12.3f}"
                   f"{num(r['rm_cpu_s_per_s_measured'], '.3f'):>10}{num(r['agent_cpu_s_per_s'], '.3f'):>11}"
                   f"{num(r['delivery_p50_s'], '.2f'):>11}{num(r['delivery_p99_s'], '.2f'):>7}"
                   f"{num(r['delivery_worst_s'], '.2f'):>7}  {'yes' if r['extrapolated'] else 'no'}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rm_load", description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", default="100,10000", help="registered node counts, ascending (default 100,10000)")
    ap.add_argument("--drivers", default="1,10,100", help="driver counts run for real (default 1,10,100)")
    ap.add_argument("--max-rm-cpu", type=float, default=0.8,
                    help="run a driver count only if its polls would need at most this many CPU s/s of the RM "
                         "(direct), and its full polls' parsing at most this much of this machine, where all the "
                         "drivers run; default 0.8")
    ap.add_argument("--events", type=int, default=5, help="decommissions timed per mode and driver count")
    ap.add_argument("--out", type=Path, default=RESULTS / "rm-load.json")
    ap.add_argument("--from-json", type=Path, default=None,
                    help="measure nothing: make the rows from the measurements saved in this file")
    args = ap.parse_args(argv)
    args.nodes = sorted(int(n) for n in args.nodes.split(","))
    args.drivers = sorted(int(n) for n in args.drivers.split(","))
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f}s] {msg}", file=sys.stderr, flush=True)

    if args.from_json:  # the rows again from a run's measurements (e.g. after changing how rows are made)
        results = json.loads(args.from_json.read_text())["measured"]
        results["costs"] = {int(k): v for k, v in results["costs"].items()}
        args.nodes = sorted(results["costs"])
    else:
        results = measure(args, log)
    rows = rows_from(results, args.nodes)
    print(table(rows))
    doc = {
        "command": "python -m bench.rm_load " + " ".join(argv if argv is not None else sys.argv[1:]),
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "setup": {"poll_interval_s": POLL_INTERVAL_S, "full_poll_every_s": FULL_EVERY_S,
                  "agent_interval_s": AGENT_INTERVAL_S, "events": args.events,
                  "real_nodemanagers": 1, "simulated_nodemanagers": "register only, no heartbeats"},
        "rows": rows,
        "measured": results,
        "wall_s": round(time.monotonic() - t0),
    }
    if args.from_json:  # still the measuring run's: its command, date, machine and time
        source = json.loads(args.from_json.read_text())
        doc |= {k: source[k] for k in ("command", "when", "machine", "setup", "wall_s")}
        doc["rows_made_again"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    print(f"saved {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
