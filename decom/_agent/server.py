"""The agent's HTTP endpoint: drivers' signed reports in; health, metrics and status out.

- ``POST /v1/apps/<app id>``: an :class:`~.wire.AppReport`, signed (see :mod:`.wire`);
- ``GET /healthz``: 200 while the RM is polled, else 503;
- ``GET /metrics``: Prometheus text;
- ``GET /v1/status``: what the agent sees and has done (``decom agent status``);
- ``GET /v1/nodes[?states=A,B][&node=ID][&newer_than=T]``: the RM's nodes as the agent last read them
  (those in the given states, or that node), in the RM's own JSON form (``nodes.node``), with
  ``polled_at``, ``interval_s``, ``states`` and ``active_nodes`` (the RUNNING ones, as the RM's metrics
  count them): what drivers poll instead of the RM. With ``newer_than`` (a ``polled_at`` it served) the
  answer waits for the agent's next read of the RM (at most 3 intervals, 10 s), so a change reaches every
  driver as soon as the agent has seen it.

Reads change nothing and need no signature; ``/v1/nodes``, which drivers act on, is signed by the agent
(the same headers as a report). Bind the endpoint where only the cluster reaches it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .._agent_contract import AppReport, WireError, long_poll_hold, sign, verify
from .._yarn import RMNode
from .agent import Agent

__all__ = ["AgentServer"]

log = logging.getLogger("decom.agent")
_APP_PATH = re.compile(r"^/v1/apps/([A-Za-z0-9_]{1,64})$")
_MAX_BODY = 1 << 20


class AgentServer:
    """Serves ``agent`` on ``host:port`` (port 0: any free one, see :attr:`port`) in a daemon thread."""

    def __init__(self, agent: Agent, secret: bytes, host: str = "127.0.0.1", port: int = 0) -> None:
        handler = _handler(agent, secret)
        self._server = _Server((host, port), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="decom-agent-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = str(self._server.server_address[0])
        return f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    def start(self) -> AgentServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _Server(ThreadingHTTPServer):
    # Every driver's long poll ends at the same read of the RM, and each asks again at once: the default
    # backlog of 5 would drop connections.
    request_queue_size = 1024


def _handler(agent: Agent, secret: bytes) -> type[BaseHTTPRequestHandler]:
    # Every driver asks for the same few state sets after each read of the RM: each answer is built once
    # per read (at 10,000 nodes, a list of every node is megabytes of JSON).
    # Built one at a time: drivers woken together by a read wait for the first build, then share it.
    built: dict[tuple[float | None, tuple[str, ...] | None], str] = {}
    built_lock = threading.Lock()

    def node_list(states: list[str] | None, node_ids: list[str]) -> str:
        key = (agent.last_polled_at(), None if states is None else tuple(states))
        hit = None if node_ids else built.get(key)  # most answers: built already, no wait for the lock
        if hit is not None:
            return hit
        with built_lock:
            if key in built and not node_ids:
                return built[key]
            at, nodes = agent.nodes_snapshot()
            body = json.dumps({"polled_at": at, "interval_s": agent.interval, "states": states,
                               "active_nodes": sum(1 for n in nodes if n.state == "RUNNING"),
                               "nodes": {"node": [_node_json(n) for n in nodes
                                                  if (states is None or n.state in states)
                                                  and (not node_ids or n.node_id in node_ids)]}},
                              sort_keys=True)
            if not node_ids:
                for old in [k for k in built if k[0] != at]:
                    del built[old]
                built[(at, key[1])] = body
        return body

    class Handler(BaseHTTPRequestHandler):
        server_version = "decom-agent"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
            log.debug("decom agent: %s %s", self.address_string(), format % args)

        # A client that sends nothing must not hold a thread for ever.
        timeout = 30

        def _reply(self, code: int, body: dict[str, Any] | str, content_type: str = "application/json",
                   signed: bool = False) -> None:
            data = (body if isinstance(body, str) else json.dumps(body, sort_keys=True)).encode()
            self.send_response(code)
            if signed:  # drivers act on it: they check it comes from the agent
                for k, v in sign(secret, "GET", self.path, data).items():
                    self.send_header(k, v)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/healthz":
                ok, age = agent.healthy()
                self._reply(200 if ok else 503, {"ok": ok, "last_poll_age_s": age})
            elif self.path == "/metrics":
                self._reply(200, agent.metrics(), "text/plain; version=0.0.4")
            elif self.path == "/v1/status":
                self._reply(200, agent.status())
            elif (url := urlsplit(self.path)).path == "/v1/nodes":
                query = parse_qs(url.query)
                states = sorted({s.strip().upper() for v in query.get("states", []) for s in v.split(",")
                                 if s.strip()}) or None
                if "newer_than" in query:  # a long poll: answer with the agent's next read of the RM
                    try:
                        newer_than = float(query["newer_than"][0])
                    except ValueError:
                        agent.count("bad_requests")
                        self._reply(400, {"error": "newer_than must be a polled_at the agent served"})
                        return
                    agent.wait_for_poll(newer_than, long_poll_hold(agent.interval))
                self._reply(200, node_list(states, query.get("node", [])), signed=True)
            else:
                self._reply(404, {"error": "no such endpoint: GET /healthz, /metrics, /v1/status, /v1/nodes"})

        def do_POST(self) -> None:  # noqa: N802
            m = _APP_PATH.match(self.path)
            if m is None:
                self._reply(404, {"error": "no such endpoint: POST /v1/apps/<application id>"})
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0 or length > _MAX_BODY:
                agent.count("bad_requests")
                self._reply(400, {"error": f"Content-Length must be 0..{_MAX_BODY}"})
                return
            body = self.rfile.read(length)
            why = verify(secret, "POST", self.path, body, self.headers)
            if why is not None:
                agent.count("unauthenticated")
                log.warning("decom agent: refused a report from %s: %s", self.address_string(), why)
                self._reply(401, {"error": f"unauthenticated: {why}"})
                return
            try:
                report = AppReport.parse(body, m.group(1))
            except WireError as e:
                agent.count("bad_requests")
                self._reply(400, {"error": str(e)})
                return
            agent.app_reported(report)
            self._reply(200, {"accepted": True})

    return Handler


def _node_json(n: RMNode) -> dict[str, Any]:
    """An RMNode in the RM's REST form (webapp.dao.NodeInfo's names), which the driver's parser reads."""
    return {"id": n.node_id, "nodeHostName": n.host, "state": n.state, "rack": n.rack,
            "nodeHTTPAddress": n.http_address, "numContainers": n.num_containers,
            "lastHealthUpdate": n.last_health_update, "usedMemoryMB": n.used_memory_mb,
            "availMemoryMB": n.avail_memory_mb, "usedVirtualCores": n.used_vcores,
            "availableVirtualCores": n.avail_vcores, "healthReport": n.health_report, "version": n.version,
            **({"decommissioningTimeout": n.decommissioning_timeout} if n.decommissioning_timeout is not None else {})}
