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
from collections.abc import Callable
from typing import Any

import httpx

from .._agent_contract import HEARTBEAT_S, AppReport, read_secret, sign
from .._errors import AgentError
from .._redact import display_url

__all__ = ["AgentLink"]

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
