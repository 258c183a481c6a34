"""The driver's side of the cluster agent (``spark.decom.agent.url``): it reports which DECOMMISSIONING
nodes the app holds nothing on any more (the controller's "let go"), on every change and every
heartbeat, signed with the shared secret. The contract is in :mod:`decom._agent_contract`.

A report that fails (agent down, 5xx) is retried with backoff; meanwhile nothing is released, so the
nodes wait for the app, as without an agent. A 400/401 is a set-up error: logged once per outage.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

import httpx

from .._agent_contract import HEARTBEAT_S, AppReport, long_poll_hold, read_secret, sign, verify
from .._errors import AgentError
from .._redact import display_url
from .._yarn import ResourceManagerClient, RMNode
from .._yarn.nodes import parse_node
from .._yarn.poller import DOOMED_QUERY

__all__ = ["AgentLink", "AgentFirstNodes"]

log = logging.getLogger("decom")
_BACKOFF_MAX = 5.0


class AgentLink:
    """Keeps the agent told of ``let_go()`` (a set of node keys) for ``app_id``. :meth:`changed` sends at
    once (the controller's let-go hook calls it); otherwise every ``heartbeat`` seconds."""

    def __init__(self, url: str, secret_file: str, app_id: str, let_go: Callable[[], frozenset[str]], *,
                 heartbeat: float = HEARTBEAT_S, timeout: float = 5.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        if not url:
            raise AgentError("spark.decom.agent.url is empty")
        if not secret_file:
            raise AgentError("spark.decom.agent.url is set but spark.decom.agent.secretFile is not: give the "
                             "file holding the agent's shared secret")
        self._secret = read_secret(secret_file, "spark.decom.agent.secretFile")
        self.url = url.rstrip("/")
        self.app_id = app_id
        self._let_go = let_go
        self._heartbeat = heartbeat
        self._http = httpx.Client(timeout=timeout, trust_env=False, transport=transport)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="decom-agent-link", daemon=True)
        self._failing = False
        self.sent = 0
        self.last_ok: float | None = None
        self.last_sent: frozenset[str] | None = None

    def start(self) -> AgentLink:
        self._thread.start()
        log.info("decom: reporting nodes let go to the decom agent at %s", display_url(self.url))
        return self

    def changed(self, *_: Any) -> None:
        """Send now (a hook: takes and ignores the controller's NodeLetGo)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=10)
        self._http.close()

    def send_once(self) -> bool:
        """One report; True when the agent accepted it."""
        nodes = self._let_go()
        report = AppReport(self.app_id, nodes, time.time())
        path = f"/v1/apps/{self.app_id}"
        body = json.dumps(report.to_json(), sort_keys=True).encode()
        headers = {"Content-Type": "application/json", **sign(self._secret, "POST", path, body)}
        try:
            resp = self._http.post(self.url + path, content=body, headers=headers)
        except httpx.HTTPError as e:
            self._failed(f"{type(e).__name__}: {str(e)[:200]}")
            return False
        if resp.status_code != 200:
            self._failed(f"HTTP {resp.status_code}: {resp.text[:300]}")
            return False
        if self._failing:
            log.info("decom: the decom agent at %s accepts reports again", display_url(self.url))
        self._failing = False
        self.sent += 1
        self.last_ok = time.time()
        self.last_sent = nodes
        return True

    def _failed(self, why: str) -> None:
        level = logging.DEBUG if self._failing else logging.WARNING
        log.log(level, "decom: cannot report to the decom agent at %s (retried with backoff; nodes wait for "
                "the app meanwhile): %s", display_url(self.url), why)
        self._failing = True

    def _run(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            ok = self.send_once()
            backoff = 1.0 if ok else min(_BACKOFF_MAX, backoff * 2)
            self._wake.wait(self._heartbeat if ok else backoff)
            self._wake.clear()


class AgentFirstNodes:
    """The node states the poller reads when spark.decom.agent.url is set: the agent's one read of the RM
    per interval (``GET /v1/nodes?states=...``), so the RM's work does not grow with the number of drivers.
    While the agent does not answer, or its view is older than 3 of its intervals, the RM itself is read,
    and the agent is tried again every ``retry_after`` seconds: the driver switches back by itself.

    It has the ResourceManagerClient calls the poller makes (nodes, node, cluster_metrics). A light poll
    (cluster_metrics, then the doomed states) is one request to the agent: its answer carries both."""

    def __init__(self, agent_url: str, rm: ResourceManagerClient, secret: bytes, *, timeout: float = 2.0,
                 retry_after: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.agent_url = agent_url.rstrip("/")
        self.rm = rm
        self._secret = secret
        self._retry_after = retry_after
        self._http = httpx.Client(timeout=timeout, trust_env=False, transport=transport)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._skip_until = 0.0
        self._last_polled_at: float | None = None  # the agent's last read of the RM we were served
        self._long_polled = False  # the last poll waited for the agent's next read (see paced)
        self._agent_interval = 2.0
        # One poll's calls share an answer: the query's states -> (when, active nodes, nodes).
        self._cached: dict[tuple[str, ...] | None, tuple[float, int, list[RMNode]]] = {}
        self.on_agent = False
        self.fallbacks = 0

    # The poller's view of where it reads from.
    @property
    def addresses(self) -> list[str]:
        return [f"agent {display_url(self.agent_url)}", *self.rm.addresses]

    @property
    def active_address(self) -> str | None:
        return f"agent {display_url(self.agent_url)}" if self.on_agent else self.rm.active_address

    @property
    def timeout(self) -> float:
        return self.rm.timeout

    @property
    def paced(self) -> bool:
        """Whether the last poll waited for the agent's next read of the RM (a long poll it answered): the
        poller then asks again at once rather than after its interval. Read once per poll: it clears."""
        with self._lock:
            paced, self._long_polled = self._long_polled, False
            return paced

    def nodes(self, states: Iterable[str] | None = None) -> list[RMNode]:
        snap = self._snapshot(states)
        return self.rm.nodes(states) if snap is None else snap[1]

    def node(self, node_id: str) -> RMNode | None:
        snap = self._snapshot(None, node_id=node_id)
        if snap is None:
            return self.rm.node(node_id)
        return next((n for n in snap[1] if n.node_id == node_id), None)

    def cluster_metrics(self) -> dict[str, Any]:
        # A light poll's first call: it waits for the agent's next read of the RM (a long poll), so the
        # driver sees a change as soon as the agent does; it asks the doomed states too, which the poll
        # asks next: one request for both.
        snap = self._snapshot(DOOMED_QUERY, wait=True)
        return self.rm.cluster_metrics() if snap is None else {"activeNodes": snap[0]}

    def close(self) -> None:
        self._http.close()
        self.rm.close()

    def _snapshot(self, states: Iterable[str] | None, *, wait: bool = False,
                  node_id: str | None = None) -> tuple[int, list[RMNode]] | None:
        key = None if states is None else tuple(sorted({s.upper() for s in states}))
        now = time.monotonic()
        with self._lock:
            hit = self._cached.get(key) if node_id is None else None
            if hit is not None and now - hit[0] < 0.25 and not wait:  # one poll's several calls
                return hit[1], hit[2]
            if now < self._skip_until:
                return None
            last = self._last_polled_at if wait else None
        query = ([] if key is None else ["states=" + ",".join(key)]) + \
            ([] if node_id is None else [f"node={quote(node_id, safe=':')}"]) + \
            ([] if last is None else [f"newer_than={last!r}"])
        path = "/v1/nodes" + ("?" + "&".join(query) if query else "")
        # A long poll is held by the agent; connecting is not.
        timeout = httpx.Timeout(self._timeout, read=self._timeout + (
            0.0 if last is None else long_poll_hold(self._agent_interval)))
        try:
            resp = self._http.get(self.agent_url + path, timeout=timeout)
            resp.raise_for_status()
            why = verify(self._secret, "GET", path, resp.content, resp.headers)
            if why is not None:
                raise AgentError(f"answered with a node list that is not the agent's ({why})")
            data = resp.json()
            polled_at, interval = data["polled_at"], float(data["interval_s"])
            if polled_at is None or time.time() - float(polled_at) > 3 * interval + 5:
                raise AgentError(f"its view of the RM is stale (last read {polled_at})")
            if (None if data["states"] is None else tuple(data["states"])) != key:
                raise AgentError(f"answered for states {data['states']}, not {key}")
            active = data["active_nodes"]
            if isinstance(active, bool) or not isinstance(active, int):
                raise AgentError(f"active_nodes {active!r} is not a count")
            nodes = [parse_node(item) for item in data["nodes"]["node"]]
            if any(n is None for n in nodes):
                raise AgentError("a node without id or state")
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AgentError) as e:
            with self._lock:
                self._skip_until = now + self._retry_after
                self._cached.clear()
                was, self.on_agent = self.on_agent, False
                self.fallbacks += 1
            log.log(logging.WARNING if was or self.fallbacks == 1 else logging.DEBUG,
                    "decom: reading node states from the RM itself: the decom agent at %s %s (asked again in "
                    "%g s)", display_url(self.agent_url), str(e)[:200], self._retry_after)
            return None
        found = [n for n in nodes if n is not None]
        with self._lock:
            if node_id is None:
                self._cached[key] = (time.monotonic(), active, found)
            self._last_polled_at, self._agent_interval = float(polled_at), interval
            if last is not None:  # a later lookup in the same poll does not undo it
                self._long_polled = True
            was, self.on_agent = self.on_agent, True
        if not was:
            log.info("decom: reading node states from the decom agent at %s", display_url(self.agent_url))
        return active, found
