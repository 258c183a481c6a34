"""One fake YARN ResourceManager for every test: in memory through ``httpx.MockTransport``, or on a real
socket on 127.0.0.1 for what a mock transport can't show (refused connections, hangs, bodies cut on the
wire, headers a real RM sends).

It answers with the JSON shapes the real RM documents:

- ``GET /ws/v1/cluster/nodes[?states=A,B]`` (every node when ``states`` is absent; ``ignore_filter`` answers
  every node whatever is asked, as a newer RM with states this client doesn't know would);
- ``GET /ws/v1/cluster/nodes/{id}`` (404 for an id the RM doesn't know);
- ``GET /ws/v1/cluster/metrics`` (404 with ``metrics=False``, as an RM behind a proxy that hides it);
  ``activeNodes`` counts the RUNNING nodes, the memory and vcore totals are the RUNNING nodes' and the
  running apps';
- ``GET /ws/v1/cluster/apps[?states=]``, ``PUT /ws/v1/cluster/apps/{id}/state`` (kill);
- the web proxy to a Spark UI: ``GET /proxy/{id}/api/v1/applications/{id}/jobs``.

The running apps' memory is spread over the RUNNING nodes, filling the first node first.

Faults: ``fail`` (an exception raised into the client, an HTTP status, or raw bytes as a 200 body);
``on_request`` (called with each request, may answer it); and, on the socket only, ``behaviour``, which
gets the raw :class:`RMHandler` first (hang, write garbage, a wrong Content-Length, any header).
``requests`` logs every request, on both paths, before anything answers it.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from decom._yarn import ResourceManagerClient

NOW_MS = int(time.time() * 1000)
CLUSTER_TS = 1732280251000

#: The socket-level hook: True when it answered the request itself.
Behaviour = Callable[["RMHandler"], bool]
#: The request-level hook, on both paths: a response to answer with, or None to go on.
OnRequest = Callable[[httpx.Request], httpx.Response | None]


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
    """A Spark job as the status API's ``/jobs`` lists it."""
    out: dict[str, Any] = {"jobId": job_id, "name": "collect at <stdin>:1", "status": status,
                           "submissionTime": spark_time((ended_ms or NOW_MS) - 5000), "numTasks": 8,
                           "stageIds": [job_id * 2, job_id * 2 + 1]}
    if ended_ms is not None:
        out["completionTime"] = spark_time(ended_ms)
    return out


def _not_found(message: str) -> httpx.Response:
    return httpx.Response(404, json={"RemoteException": {
        "exception": "NotFoundException", "message": message,
        "javaClassName": "org.apache.hadoop.yarn.webapp.NotFoundException"}})


_STATE_COUNTERS = {"LOST": "lostNodes", "UNHEALTHY": "unhealthyNodes", "DECOMMISSIONING": "decommissioningNodes",
                   "DECOMMISSIONED": "decommissionedNodes", "REBOOTED": "rebootedNodes",
                   "SHUTDOWN": "shutdownNodes"}
_KILL = re.compile(r"/ws/v1/cluster/apps/(application_\d+_\d+)/state")
_JOBS = re.compile(r"/proxy/(application_\d+_\d+)/api/v1/applications/(application_\d+_\d+)/jobs")
_NODE = "/ws/v1/cluster/nodes/"


class FakeRM:
    """A ResourceManager with nodes and apps, answering ``handle(httpx.Request)``; ``start()`` serves the same
    answers on 127.0.0.1 (``url``, ``port``), ``stop()`` closes it, ``start()`` again reopens the same port.

    ``nodes=N`` starts with N RUNNING nodes ``nm1:8041``...; each node holds ``node_mb``/``node_vcores``."""

    def __init__(self, *apps: FakeApp, metrics: bool = True, nodes: int = 0, node_mb: int = 8192,
                 node_vcores: int = 8, pending: int = 0) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.apps = {a.id: a for a in apps}
        self.has_metrics = metrics
        self.node_mb = node_mb
        self.node_vcores = node_vcores
        self.pending = pending  # apps waiting for resources, in the metrics
        self.ignore_filter = False
        self.fail: Exception | int | bytes | None = None
        self.on_request: OnRequest | None = None
        self.behaviour: Behaviour | None = None
        self.requests: list[httpx.Request] = []
        self.killed: list[str] = []
        self.lock = threading.RLock()
        self.release = threading.Event()  # ends every hang a behaviour waits on, at teardown
        self.server: _Server | None = None
        self.port = 0
        self._thread: threading.Thread | None = None
        for i in range(1, nodes + 1):
            self.set(f"nm{i}:8041", "RUNNING")

    # ---- the model ---------------------------------------------------------------------------------

    def set(self, node_id: str, state: str, **extra: Any) -> None:
        """Add or replace a node; ``extra`` fields (``lastHealthUpdate``, ``decommissioningTimeout``,
        ``numContainers``, the memory figures, ...) go into its REST object as given."""
        host = node_id.rsplit(":", 1)[0]
        with self.lock:
            self.nodes[node_id] = {
                "rack": "/default-rack", "state": state, "id": node_id, "nodeHostName": host,
                "nodeHTTPAddress": f"{host}:8042" if state == "RUNNING" else "",
                "lastHealthUpdate": 1_700_000_000_000, "version": "3.5.0", "healthReport": "",
                "numContainers": 1, **extra}

    def drop(self, node_id: str) -> None:
        """The RM forgets a node."""
        with self.lock:
            del self.nodes[node_id]

    def running(self) -> list[FakeApp]:
        return [a for a in self.apps.values() if a.state == "RUNNING"]

    def node_list(self) -> list[dict[str, Any]]:
        """Every node's REST object, the running apps' memory spread over the RUNNING nodes."""
        with self.lock:
            used = sum(a.memory_mb for a in self.running())
            out = []
            for node in self.nodes.values():
                here = min(used, self.node_mb) if node["state"] == "RUNNING" else 0
                used -= here
                out.append({"usedMemoryMB": here, "availMemoryMB": self.node_mb - here, "usedVirtualCores": 0,
                            "availableVirtualCores": self.node_vcores, **node})
            return out

    def metrics(self) -> dict[str, Any]:
        """The ``/ws/v1/cluster/metrics`` body."""
        with self.lock:
            states = [n["state"] for n in self.nodes.values()]
            running = self.running()
        active = states.count("RUNNING")
        used_mb = sum(a.memory_mb for a in running)
        used_vc = sum(a.vcores for a in running)
        total_mb, total_vc = self.node_mb * active, self.node_vcores * active
        return {"clusterMetrics": {
            "appsSubmitted": len(self.apps), "appsCompleted": 0, "appsPending": self.pending,
            "appsRunning": len(running), "appsFailed": 0, "appsKilled": len(self.killed),
            "reservedMB": 0, "availableMB": total_mb - used_mb, "allocatedMB": used_mb,
            "pendingMB": 1408 * self.pending, "reservedVirtualCores": 0,
            "availableVirtualCores": total_vc - used_vc, "allocatedVirtualCores": used_vc,
            "pendingVirtualCores": self.pending, "containersAllocated": sum(a.containers for a in running),
            "containersReserved": 0, "containersPending": self.pending, "totalMB": total_mb,
            "totalVirtualCores": total_vc, "totalNodes": len(states), "activeNodes": active,
            **{counter: states.count(state) for state, counter in _STATE_COUNTERS.items()}}}

    def queries(self) -> list[str]:
        """The request log in short: ``metrics``, ``node {id}``, a node list's ``states`` value, or
        ``METHOD path`` for anything else."""
        out = []
        for req in list(self.requests):
            path = req.url.path
            if path == "/ws/v1/cluster/metrics":
                out.append("metrics")
            elif path.startswith(_NODE):
                out.append(f"node {path[len(_NODE):]}")
            elif path == "/ws/v1/cluster/nodes":
                out.append(req.url.params.get("states", ""))
            else:
                out.append(f"{req.method} {path}")
        return out

    # ---- answering ---------------------------------------------------------------------------------

    def handle(self, req: httpx.Request) -> httpx.Response:
        """The httpx.MockTransport handler: log the request, then answer it."""
        self.requests.append(req)
        return self.answer(req)

    def answer(self, req: httpx.Request) -> httpx.Response:
        """The answer to a request already logged: ``on_request``, then ``fail``, then the model."""
        if self.on_request is not None:
            resp = self.on_request(req)
            if resp is not None:
                return resp
        fail = self.fail
        if isinstance(fail, Exception):
            raise fail
        if isinstance(fail, int):
            return httpx.Response(fail)
        if isinstance(fail, bytes):
            return httpx.Response(200, content=fail)
        path = req.url.path
        if req.method == "GET":
            if path == "/ws/v1/cluster/nodes":
                return self._nodes(req.url.params.get("states", ""))
            if path.startswith(_NODE):
                node_id = path[len(_NODE):]
                node = next((n for n in self.node_list() if n["id"] == node_id), None)
                if node is None:
                    return _not_found(f"nodeId, {node_id}, is not found")
                return httpx.Response(200, json={"node": node})
            if path == "/ws/v1/cluster/metrics" and self.has_metrics:
                return httpx.Response(200, json=self.metrics())
            if path == "/ws/v1/cluster/apps":
                wanted = set(filter(None, req.url.params.get("states", "").split(",")))
                apps = [a.rest() for a in list(self.apps.values()) if not wanted or a.state in wanted]
                return httpx.Response(200, json={"apps": {"app": apps} if apps else None})
            m = _JOBS.fullmatch(path)
            if m:
                app = self.apps.get(m.group(1))
                if app is None or app.state != "RUNNING" or app.jobs is None:
                    # The proxy's answer when the app's UI is not there: an HTML error page.
                    return httpx.Response(404, text="<html><body>Not Found</body></html>")
                return httpx.Response(200, json=app.jobs)
        m = _KILL.fullmatch(path)
        if m and req.method == "PUT":
            return self._kill(m.group(1), req)
        return _not_found(f"no {path}")

    def answer_nodes(self, states: str) -> httpx.Response:
        """The node list's answer for ``states`` (comma-separated) as of now."""
        return self._nodes(states)

    def _nodes(self, states: str) -> httpx.Response:
        wanted = set(filter(None, states.split(",")))
        items = [n for n in self.node_list() if self.ignore_filter or not wanted or n["state"] in wanted]
        return httpx.Response(200, json={"nodes": {"node": items} if items else None})

    def _kill(self, app: str, req: httpx.Request) -> httpx.Response:
        with self.lock:
            found = self.apps.get(app)
            if found is None:
                return _not_found(f"app with id: {app} not found")
            assert json.loads(req.content) == {"state": "KILLED"}
            found.state = "KILLED"
            self.killed.append(found.id)
        return httpx.Response(200, json={"state": "KILLED"})

    # ---- clients -----------------------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def client(self, **kw: Any) -> ResourceManagerClient:
        """A client of ``http://rm:8088`` on this RM's MockTransport."""
        return ResourceManagerClient(["http://rm:8088"], transport=self.transport(), **kw)

    # ---- the socket --------------------------------------------------------------------------------

    def start(self) -> FakeRM:
        """Serve on 127.0.0.1: a free port the first time, the same one after a ``stop()``."""
        self.server = _Server(self, self.port)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-rm-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Close the listening socket (connections are refused from now on); requests in flight go on."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class RMHandler(BaseHTTPRequestHandler):
    """One request on the socket: logged, shown to ``behaviour``, else answered by ``FakeRM.answer``.
    An exception from ``fail`` drops the connection without an answer."""

    server: _Server
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        rm = self.server.rm
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        req = httpx.Request(self.command, f"{rm.url}{self.path}", headers=list(self.headers.items()),
                            content=body)
        rm.requests.append(req)
        behaviour = rm.behaviour
        if behaviour is not None and behaviour(self):
            return
        try:
            resp = rm.answer(req)
        except Exception:  # noqa: BLE001 - the socket's way to fail: no answer at all
            self.close_connection = True
            return
        self.send_response(resp.status_code)
        for name, value in resp.headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.content)))
        self.end_headers()
        self._write(resp.content)

    do_GET = do_PUT = do_POST = do_DELETE = _serve  # noqa: N815 - http.server's naming

    def send_json(self, code: int, data: object) -> None:
        self.send_raw(code, json.dumps(data).encode())

    def send_raw(self, code: int, body: bytes, length: int | None = None) -> None:
        """A JSON-typed answer; ``length`` other than the body's is a body cut short on the wire."""
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self._write(body)

    def _write(self, body: bytes) -> None:
        try:
            self.wfile.write(body)
        except OSError:
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, rm: FakeRM, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), RMHandler)
        self.rm = rm
