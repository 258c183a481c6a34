"""A fake Apache Livy server and the shared cluster (that Livy next to tests.fake_rm's FakeRM) the
session, diagnose and CLI tests use.

FakeLivy is an httpx.MockTransport handler that answers with the JSON shapes Livy documents:
``/sessions`` (paged: from, size, total), ``/sessions/{id}``, ``/sessions/{id}/statements``,
``DELETE /sessions/{id}`` (``{"msg": "deleted"}``), 404 ``{"msg": "Session 'N' not found."}`` and its
CSRF check (400 without ``X-Requested-By``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from decom._sessions.livy import LivyClient
from decom._yarn import ResourceManagerClient
from tests.fake_rm import NOW_MS, FakeApp, FakeRM, job


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
    rm = FakeRM(s1, s2, s3, orphan, batch, bobs, dead_app, nodes=4)
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
    rmc = rm.client(user="ops")
    lc = LivyClient("http://livy:8998", transport=httpx.MockTransport(livy.handle)) if livy else None
    return rmc, lc
