"""A tiny Spark-on-YARN application for the lab, run in its own process.

    with SparkApp(lab, executors=2) as app:     # driver on the host (client mode), executors in nodes
        app.executor_hosts                       # e.g. ["198.18.0.11", "198.18.0.13"]
        app.run_job()                            # a small shuffle job; returns its result checksum
    # leaving the block stops the app (and kills the driver process if it does not stop)

The driver process is `python -m yarnlab.sparkapp --conf k=v ... --executors N`; it prints one
JSON object per line ({"event": "ready", ...}) and obeys "job" / "stop" lines on stdin.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import LabError

if TYPE_CHECKING:
    from .lab import YarnLab


def _emit(**kw: Any) -> None:
    print(json.dumps(kw), flush=True)


def _driver_main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m yarnlab.sparkapp")
    ap.add_argument("--conf", action="append", default=[], help="k=v Spark setting (repeatable)")
    ap.add_argument("--executors", type=int, default=2)
    ap.add_argument("--name", default="yarnlab-sparkapp")
    ap.add_argument("--register-timeout", type=float, default=300.0)
    args = ap.parse_args(argv)

    from pyspark.sql import SparkSession

    b = SparkSession.builder.appName(args.name)
    for kv in args.conf:
        k, _, v = kv.partition("=")
        b = b.config(k, v)
    b = b.config("spark.executor.instances", str(args.executors))
    t0 = time.monotonic()
    spark = b.getOrCreate()
    sc = spark.sparkContext
    sc.setLogLevel("WARN")
    driver_host = sc.getConf().get("spark.driver.host", "")

    def executor_hosts() -> list[str]:
        status = sc._jsc.sc().getExecutorMemoryStatus()
        keys = status.keySet().iterator()
        hosts = []
        while keys.hasNext():
            hostport = str(keys.next())
            hosts.append(hostport.rsplit(":", 1)[0])
        hosts.remove(driver_host) if driver_host in hosts else None
        return sorted(hosts)

    deadline = time.monotonic() + args.register_timeout
    while len(executor_hosts()) < args.executors and time.monotonic() < deadline:
        time.sleep(0.5)
    _emit(event="ready", app_id=sc.applicationId, executors=executor_hosts(),
          seconds=round(time.monotonic() - t0, 1))

    def job() -> int:
        rdd = sc.parallelize(range(20000), 8).map(lambda x: (x % 97, x)).reduceByKey(lambda a, b: a + b)
        return int(sum(k * v for k, v in rdd.collect()) % 1_000_000_007)

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "job":
            t1 = time.monotonic()
            try:
                _emit(event="job", checksum=job(), seconds=round(time.monotonic() - t1, 1))
            except Exception as e:  # noqa: BLE001
                _emit(event="job_failed", error=str(e)[:2000])
        elif cmd == "executors":
            _emit(event="executors", executors=executor_hosts())
        elif cmd == "stop":
            break
    spark.stop()
    _emit(event="stopped")
    return 0


class SparkApp:
    """Runs the driver above in a subprocess against `lab` (see the module docstring)."""

    def __init__(self, lab: YarnLab, executors: int = 2, conf: Mapping[str, str] | None = None,
                 name: str = "yarnlab-sparkapp", ready_timeout: float = 420.0) -> None:
        self.lab = lab
        self.executors = executors
        self.conf = dict(lab.spark_conf())
        self.conf.update(conf or {})
        self.name = name
        self.ready_timeout = ready_timeout
        self.app_id = ""
        self.executor_hosts: list[str] = []
        self.startup_seconds = 0.0
        self.log_path = lab.log_dir / f"sparkapp-{int(time.time())}.log"
        self._proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()

    def __enter__(self) -> SparkApp:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SparkApp:
        argv = [sys.executable, "-m", "yarnlab.sparkapp", "--executors", str(self.executors), "--name", self.name]
        for k, v in self.conf.items():
            argv += ["--conf", f"{k}={v}"]
        env = dict(os.environ)
        env.update(self.lab.spark_env())
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                          env.get("PYTHONPATH")]))
        self._log = open(self.log_path, "w")
        self._proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                      text=True, env=env, cwd=str(self.lab.workdir), start_new_session=True)
        threading.Thread(target=self._reader, daemon=True).start()
        ev = self._wait_event("ready", self.ready_timeout)
        self.app_id = ev["app_id"]
        self.executor_hosts = list(ev["executors"])
        self.startup_seconds = float(ev["seconds"])
        return self

    def _reader(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                try:
                    self._lines.put(json.loads(line))
                except ValueError:
                    pass
        self._lines.put(None)

    def _wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                ev = self._lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                ev = {}
            if ev is None:
                raise LabError(f"Spark driver exited before '{name}'; {self.log_path}:\n{self.log_tail()}")
            if ev.get("event") in (name, "job_failed"):
                if ev["event"] == "job_failed" and name != "job_failed":
                    raise LabError(f"Spark job failed: {ev.get('error')}")
                return ev
            if time.monotonic() > deadline:
                raise LabError(f"no '{name}' from the Spark driver in {timeout:.0f}s; {self.log_path}:\n"
                               f"{self.log_tail()}")

    def _send(self, cmd: str) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(cmd + "\n")
        self._proc.stdin.flush()

    def run_job(self, timeout: float = 300.0) -> int:
        self._send("job")
        return int(self._wait_event("job", timeout)["checksum"])

    def current_executors(self, timeout: float = 60.0) -> list[str]:
        self._send("executors")
        return list(self._wait_event("executors", timeout)["executors"])

    def am_host(self) -> str:
        """Host of the app's current ApplicationMaster container (from the RM's REST API)."""
        app = self.lab.rest(f"/ws/v1/cluster/apps/{self.app_id}")["app"]
        return str(app.get("amHostHttpAddress", "")).rsplit(":", 1)[0]

    def log_tail(self, lines: int = 40) -> str:
        from .lab import tail

        return tail(self.log_path, lines)

    def stop(self, timeout: float = 120.0) -> None:
        p = self._proc
        if p is None:
            return
        self._proc = None
        try:
            if p.poll() is None:
                try:
                    assert p.stdin is not None
                    p.stdin.write("stop\n")
                    p.stdin.flush()
                    p.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
                try:
                    p.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=30)
        finally:
            self._log.close()


if __name__ == "__main__":
    sys.exit(_driver_main())
