"""A fake YARN ResourceManager and a fake Apache Livy server for the shared-cluster tests.

Both are httpx.MockTransport handlers that answer with the JSON shapes the real servers document:
the RM's ``/ws/v1/cluster/apps``, ``/metrics``, ``/nodes``, ``PUT .../state`` and its web proxy to a
Spark UI's ``/api/v1/applications/{id}/jobs``; Livy's ``/sessions`` (paged: from, size, total),
``/sessions/{id}``, ``/sessions/{id}/statements``, ``DELETE /sessions/{id}`` (``{"msg": "deleted"}``),
404 ``{"msg": "Session 'N' not found."}`` and its CSRF check (400 without ``X-Requested-By``).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from decom._sessions.livy import LivyClient
from decom._yarn import ResourceManagerClient

NOW_MS = int(time.time() * 1000)
CLUSTER_TS = 1732280251000


def app_id(n: int) -> str:
    return f"application_{CLUSTER_TS}_{n:04d}"


def spark_time(ms: int) -> str:
    """Spark's status-API time format: 2026-11-22T12:34:56.789GMT."""
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "GMT"


@dataclass
class FakeApp:
    n: int
    name: str
    user: str = "livy"
    queue: str = "default"
    state: str = "RUNNING"
    containers: int = 3
    memory_mb: int = 3072
    vcores: int = 3
    started_ms: int = NOW_MS - 3_600_000
    #: Spark jobs as the status API lists them; None: the UI does not answer (spark.ui.enabled=false).
    jobs: list[dict[str, Any]] | None = field(default_factory=list)

    @property
    def id(self) -> str:
        return app_id(self.n)

    def rest(self) -> dict[str, Any]:
        running = self.state == "RUNNING"
        return {"id": self.id, "user": self.user, "name": self.name, "queue": self.queue, "state": self.state,
                "finalStatus": "UNDEFINED" if running else "KILLED", "progress": 10.0 if running else 100.0,
                "trackingUI": "ApplicationMaster", "trackingUrl": f"http://rm:8088/proxy/{self.id}/",
                "applicationType": "SPARK", "startedTime": self.started_ms, "launchTime": self.started_ms + 500,
                "finishedTime": 0, "elapsedTime": NOW_MS - self.started_ms,
                "amHostHttpAddress": "nm1:8042", "allocatedMB": self.memory_mb if running else -1,
                "allocatedVCores": self.vcores if running else -1,
                "runningContainers": self.containers if running else -1,
                "memorySeconds": 1000, "vcoreSeconds": 10, "priority": 0}


def job(job_id: int, status: str = "SUCCEEDED", ended_ms: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"jobId": job_id, "name": "collect at <stdin>:1", "status": status,
                           "submissionTime": spark_time((ended_ms or NOW_MS) - 5000), "numTasks": 8,
                           "stageIds": [job_id * 2, job_id * 2 + 1]}
    if ended_ms is not None:
        out["completionTime"] = spark_time(ended_ms)
    return out


class FakeRM:
    """A ResourceManager with apps on 4 nodes of 8 GB / 8 vcores each."""

    def __init__(self, *apps: FakeApp, node_mb: int = 8192, node_vcores: int = 8, nodes: int = 4,
                 pending: int = 0) -> None:
        self.apps = {a.id: a for a in apps}
        self.node_mb = node_mb
        self.node_vcores = node_vcores
        self.node_count = nodes
        self.pending = pending
        self.requests: list[httpx.Request] = []
        self.killed: list[str] = []

    def running(self) -> list[FakeApp]:
        return [a for a in self.apps.values() if a.state == "RUNNING"]

    def metrics(self) -> dict[str, Any]:
        used_mb = sum(a.memory_mb for a in self.running())
        used_vc = sum(a.vcores for a in self.running())
        total_mb, total_vc = self.node_mb * self.node_count, self.node_vcores * self.node_count
        return {"clusterMetrics": {
            "appsSubmitted": len(self.apps), "appsCompleted": 0, "appsPending": self.pending,
            "appsRunning": len(self.running()), "appsFailed": 0, "appsKilled": len(self.killed),
            "reservedMB": 0, "availableMB": total_mb - used_mb, "allocatedMB": used_mb,
            "pendingMB": 1408 * self.pending, "reservedVirtualCores": 0,
            "availableVirtualCores": total_vc - used_vc, "allocatedVirtualCores": used_vc,
            "pendingVirtualCores": self.pending, "containersAllocated": sum(a.containers for a in self.running()),
            "containersReserved": 0, "containersPending": self.pending, "totalMB": total_mb,
            "totalVirtualCores": total_vc, "totalNodes": self.node_count, "lostNodes": 0, "unhealthyNodes": 0,
            "decommissioningNodes": 0, "decommissionedNodes": 0, "rebootedNodes": 0,
            "activeNodes": self.node_count, "shutdownNodes": 0}}

    def nodes(self) -> dict[str, Any]:
        # The running apps' memory spread over the nodes, filling node 1 first.
        used = sum(a.memory_mb for a in self.running())
        out = []
        for i in range(self.node_count):
            here = min(used, self.node_mb)
            used -= here
            out.append({"id": f"nm{i + 1}:8041", "nodeHostName": f"nm{i + 1}", "state": "RUNNING", "rack": "/r",
                        "nodeHTTPAddress": f"nm{i + 1}:8042", "lastHealthUpdate": NOW_MS, "numContainers": 1,
                        "usedMemoryMB": here, "availMemoryMB": self.node_mb - here, "usedVirtualCores": 0,
                        "availableVirtualCores": self.node_vcores})
        return {"nodes": {"node": out}}

    def handle(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        path = req.url.path
        if path == "/ws/v1/cluster/apps" and req.method == "GET":
            wanted = set(filter(None, req.url.params.get("states", "").split(",")))
            apps = [a.rest() for a in self.apps.values() if not wanted or a.state in wanted]
            return httpx.Response(200, json={"apps": {"app": apps} if apps else None})
        if path == "/ws/v1/cluster/metrics":
            return httpx.Response(200, json=self.metrics())
        if path == "/ws/v1/cluster/nodes":
            wanted = set(filter(None, req.url.params.get("states", "").split(",")))
            nodes = [n for n in self.nodes()["nodes"]["node"] if not wanted or n["state"] in wanted]
            return httpx.Response(200, json={"nodes": {"node": nodes} if nodes else {}})
        m = re.fullmatch(r"/ws/v1/cluster/apps/(application_\d+_\d+)/state", path)
        if m and req.method == "PUT":
            app = self.apps.get(m.group(1))
            if app is None:
                return httpx.Response(404, json={"RemoteException": {
                    "exception": "NotFoundException", "message": f"app with id: {m.group(1)} not found",
                    "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}})
            assert json.loads(req.content) == {"state": "KILLED"}
            app.state = "KILLED"
            self.killed.append(app.id)
            return httpx.Response(200, json={"state": "KILLED"})
        m = re.fullmatch(r"/proxy/(application_\d+_\d+)/api/v1/applications/(application_\d+_\d+)/jobs", path)
        if m:
            app = self.apps.get(m.group(1))
            if app is None or app.state != "RUNNING" or app.jobs is None:
                # The proxy's answer when the app's UI is not there: an HTML error page.
                return httpx.Response(404, text="<html><body>Not Found</body></html>")
            return httpx.Response(200, json=app.jobs)
        return httpx.Response(404, json={"RemoteException": {"message": f"no {path}"}})


@dataclass
class FakeSession:
    id: int
    app: FakeApp | None
    state: str = "idle"
    owner: str = "alice"
    proxy_user: str | None = None
    name: str | None = None
    statements: list[dict[str, Any]] = field(default_factory=list)

    def rest(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "appId": self.app.id if self.app else None,
                "owner": self.owner, "proxyUser": self.proxy_user or self.owner, "state": self.state,
                "kind": "pyspark",
                "appInfo": {"driverLogUrl": "http://nm1:8042/node/containerlogs/x/livy",
                            "sparkUiUrl": f"http://rm:8088/proxy/{self.app.id}/" if self.app else None},
                "log": ["stdout: ", "\nstderr: "]}


def statement(statement_id: int, state: str = "available", completed_ms: int = 0,
              started_ms: int | None = None) -> dict[str, Any]:
    return {"id": statement_id, "code": "spark.range(10).count()", "state": state,
            "output": {"status": "ok", "execution_count": statement_id, "data": {"text/plain": "10"}}
            if state == "available" else None,
            "progress": 1.0 if state == "available" else 0.5,
            "started": started_ms if started_ms is not None else (completed_ms - 2000 if completed_ms else NOW_MS),
            "completed": completed_ms}


class FakeLivy:
    """Livy 0.8's REST API for interactive sessions, with CSRF protection on."""

    def __init__(self, *sessions: FakeSession, rm: FakeRM | None = None) -> None:
        self.sessions = {s.id: s for s in sessions}
        self.rm = rm
        self.requests: list[httpx.Request] = []
        self.deleted: list[int] = []

    def handle(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        path = req.url.path
        if req.method in ("POST", "DELETE") and "x-requested-by" not in req.headers:
            return httpx.Response(400, text="Missing Required Header for CSRF protection.")
        if path == "/sessions" and req.method == "GET":
            start = int(req.url.params.get("from", "0"))
            size = int(req.url.params.get("size", "100"))
            items = sorted(self.sessions.values(), key=lambda s: s.id)
            page = items[start:start + size]
            return httpx.Response(200, json={"from": start, "total": len(items), "sessions": [s.rest() for s in page]})
        m = re.fullmatch(r"/sessions/(\d+)(/statements)?", path)
        if m:
            sid = int(m.group(1))
            session = self.sessions.get(sid)
            if session is None:
                return httpx.Response(404, json={"msg": f"Session '{sid}' not found."})
            if m.group(2):
                return httpx.Response(200, json={"total_statements": len(session.statements),
                                                 "statements": session.statements})
            if req.method == "DELETE":
                del self.sessions[sid]
                self.deleted.append(sid)
                if self.rm is not None and session.app is not None:
                    session.app.state = "KILLED"  # Livy stops the session's Spark app
                return httpx.Response(200, json={"msg": "deleted"})
            return httpx.Response(200, json=session.rest())
        return httpx.Response(404, text="<html>Not Found</html>")


# ---- the cluster the session, diagnose and CLI tests share -------------------------------------

MIN = 60_000


def cluster() -> tuple[FakeRM, FakeLivy]:
    """Six apps: Livy sessions 1-3 (idle 2 h, busy, idle 5 min), a Livy-less livy-session app idle 50 min
    by its Spark jobs, a batch job, a livy-session app of bob in queue 'etl' idle 3 h; plus Livy's
    dead session 9 (app gone) and starting session 10 (no app yet)."""
    s1 = FakeApp(1, "livy-session-1", containers=3, memory_mb=3072, vcores=3, started_ms=NOW_MS - 180 * MIN)
    s2 = FakeApp(2, "livy-session-2", containers=5, memory_mb=6144, vcores=5)
    s3 = FakeApp(3, "livy-session-3", containers=2, memory_mb=2048, vcores=2)
    orphan = FakeApp(4, "livy-session-4", user="carol", containers=4, memory_mb=4096, vcores=4,
                     jobs=[job(0, ended_ms=NOW_MS - 90 * MIN), job(1, ended_ms=NOW_MS - 50 * MIN)])
    batch = FakeApp(5, "nightly-etl", user="etl", containers=6, memory_mb=7168, vcores=6,
                    started_ms=NOW_MS - 600 * MIN)
    bobs = FakeApp(6, "livy-session-6", user="bob", queue="etl", containers=2, memory_mb=2048, vcores=2,
                   started_ms=NOW_MS - 200 * MIN, jobs=[])
    dead_app = FakeApp(9, "livy-session-9", state="KILLED")
    rm = FakeRM(s1, s2, s3, orphan, batch, bobs, dead_app)
    livy = FakeLivy(
        FakeSession(1, s1, statements=[statement(0, completed_ms=NOW_MS - 130 * MIN),
                                       statement(1, completed_ms=NOW_MS - 90 * MIN)]),
        FakeSession(2, s2, state="busy", owner="bob", statements=[statement(0, state="running")]),
        FakeSession(3, s3, owner="carol", statements=[statement(0, completed_ms=NOW_MS - 5 * MIN)]),
        FakeSession(9, dead_app, state="dead"),
        FakeSession(10, None, state="starting", owner="dave"),
        rm=rm)
    return rm, livy


def clients(rm: FakeRM, livy: FakeLivy | None) -> tuple[ResourceManagerClient, LivyClient | None]:
    rmc = ResourceManagerClient(["http://rm:8088"], user="ops", transport=httpx.MockTransport(rm.handle))
    lc = LivyClient("http://livy:8998", transport=httpx.MockTransport(livy.handle)) if livy else None
    return rmc, lc
