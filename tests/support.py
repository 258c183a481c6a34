"""Test support shared by the fault, chaos and Spark areas.

`FakeRM`: the RM's node REST endpoints served on 127.0.0.1 by a real HTTP server, with a behaviour
hook for what a real RM can't be made to do (hang, garbage, echo credentials). `capture_logs`: every
line decom and its HTTP stack log, at every level, for asserting what an operator would see.
`RecordingShim`: the controller's shim port, recording each action.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from decom._driver.shim import Action, ActionResult, ShimReport

Behaviour = Callable[["RMHandler"], bool]  # True when it answered the request itself


class RMHandler(BaseHTTPRequestHandler):
    server: FakeRMServer
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        rm = self.server.rm
        rm.requests += 1
        behaviour = rm.behaviour
        if behaviour is not None and behaviour(self):
            return
        url = urlsplit(self.path)
        if url.path == "/ws/v1/cluster/metrics":
            self.send_json(404, {})
            return
        if url.path.startswith("/ws/v1/cluster/nodes/"):  # one node, as the poller looks up a recommissioned one
            with rm.lock:
                node = rm.nodes.get(url.path.rsplit("/", 1)[1])
            if node is None:
                self.send_json(404, {"RemoteException": {"message": "nodeId not found"}})
            else:
                self.send_json(200, {"node": node})
            return
        wanted = set(parse_qs(url.query).get("states", [""])[0].split(","))
        with rm.lock:
            body = rm.cached_body(wanted)
        self.send_raw(200, body)

    def send_json(self, code: int, data: object) -> None:
        self.send_raw(code, json.dumps(data).encode())

    def send_raw(self, code: int, body: bytes, length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass


class FakeRMServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, rm: FakeRM, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), RMHandler)
        self.rm = rm


class FakeRM:
    """Nodes + a behaviour hook, served by a FakeRMServer in a thread; restartable on its port."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.behaviour: Behaviour | None = None
        self.lock = threading.Lock()
        self.requests = 0
        self.release = threading.Event()  # ends every hang at teardown
        self._cache: dict[frozenset[str], bytes] = {}
        self.server: FakeRMServer | None = None
        self.port = 0

    def set(self, node_id: str, state: str) -> None:
        with self.lock:
            host = node_id.rsplit(":", 1)[0]
            self.nodes[node_id] = {
                "rack": "/default-rack", "state": state, "id": node_id, "nodeHostName": host,
                "nodeHTTPAddress": f"{host}:8042" if state == "RUNNING" else "",
                "lastHealthUpdate": 1_700_000_000_000, "version": "3.5.0", "healthReport": "",
                "numContainers": 1, "usedMemoryMB": 1024, "availMemoryMB": 7168,
                "usedVirtualCores": 1, "availableVirtualCores": 7}
            self._cache.clear()

    def cached_body(self, wanted: set[str]) -> bytes:
        key = frozenset(wanted)
        if key not in self._cache:
            items = [n for n in self.nodes.values() if n["state"] in wanted]
            self._cache[key] = json.dumps({"nodes": {"node": items} if items else None}).encode()
        return self._cache[key]

    def start(self) -> FakeRM:
        self.server = FakeRMServer(self, self.port)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def capture_logs(names: tuple[str, ...] = ("decom", "httpx", "httpcore")) -> Iterator[io.StringIO]:
    """Every record of these loggers, at every level, into a buffer; levels and handlers restored after.

    The HTTP stack's records (several per poll) stay out of pytest's own capture, so a failing test's
    report shows decom's lines rather than pages of httpcore DEBUG."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.addHandler(handler)
        if not lg.name.startswith("decom"):
            lg.propagate = False
    try:
        yield buf
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


# ---- a recording shim ----------------------------------------------------------------------------


class RecordingShim:
    """A :class:`decom._driver.shim.ShimPort` that records each action, for tests of the controller and the
    control plane. ``calls`` holds ``(action, hosts, executors, arg)`` with ``arg`` the exclusion timeout
    (exclude), the cleanup flag (decommissioned) or None (unexclude). ``fail=True`` fails every call the
    way a busy py4j gateway does; ``failures=N`` fails the first N, then works (``attempts`` counts all).
    What the real shim does with these calls is shown on Spark in tests/spark."""

    def __init__(self, fail: bool = False, failures: int = 0) -> None:
        self.calls: list[tuple[str, list[str], list[str], float | bool | None]] = []
        self.fail = fail
        self.failures = failures
        self.attempts = 0
        self.exempt: bool | None = None

    def set_exemption_enabled(self, enabled: bool) -> None:
        self.exempt = enabled

    def exclude(self, hosts: Sequence[str], executors: Sequence[str], timeout_s: float,
                reason: str) -> ActionResult:
        self._call(Action.EXCLUDE, hosts, executors, timeout_s)
        return ActionResult(Action.EXCLUDE, tuple(hosts) + tuple(f"executor:{e}" for e in executors))

    def unexclude(self, hosts: Sequence[str], executors: Sequence[str], reason: str) -> ActionResult:
        self._call(Action.UNEXCLUDE, hosts, executors, None)
        return ActionResult(Action.UNEXCLUDE, tuple(hosts) + tuple(f"executor:{e}" for e in executors))

    def decommissioned(self, hosts: Sequence[str], executors: Sequence[str], cleanup: bool,
                       reason: str) -> ActionResult:
        self._call(Action.DECOMMISSIONED, hosts, executors, cleanup)
        return ActionResult(Action.DECOMMISSIONED, tuple(hosts) + tuple(f"executor:{e}" for e in executors))

    def report(self) -> ShimReport:
        return ShimReport.empty()

    def actions_for(self, host: str) -> list[str]:
        """The actions, in order, whose hosts included ``host``."""
        return [action for action, hosts, _, _ in self.calls if host in hosts]

    def _call(self, action: Action, hosts: Sequence[str], executors: Sequence[str],
              arg: float | bool | None) -> None:
        self.attempts += 1
        if self.fail or self.attempts <= self.failures:
            raise RuntimeError("py4j gateway is busy")
        self.calls.append((action.method, list(hosts), list(executors), arg))
