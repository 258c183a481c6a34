"""A small Apache Livy REST client: list sessions, read their statements, delete a session.

Shapes relied on (Livy's REST API docs): ``GET /sessions?from=&size=`` ->
``{"from", "total", "sessions": [{"id", "name", "appId", "owner", "proxyUser", "kind", "state",
"appInfo", "log"}]}``; ``GET /sessions/{id}/statements`` -> ``{"total_statements", "statements":
[{"id", "code", "state", "output", "progress", "started", "completed"}]}`` (epoch ms, 0 until
set); ``DELETE /sessions/{id}`` -> ``{"msg": "deleted"}``; an unknown id -> HTTP 404
``{"msg": "Session 'N' not found."}``. Livy's CSRF protection wants an ``X-Requested-By`` header
on DELETE/POST: it is always sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from .._errors import LivyError, LivySessionNotFoundError
from .._http import JSON_HEADERS, HttpClient, HttpSettings
from .._redact import display_url, redact

__all__ = ["LivyClient", "LivySession", "LivyStatement", "LIVE_STATES", "BUSY_STATES", "ENDED_STATES"]

#: Session states (Livy's SessionState): a live session holds (or is getting) a Spark app.
LIVE_STATES = frozenset({"not_started", "starting", "recovering", "idle", "running", "busy", "shutting_down"})
#: States in which the session is working on a statement.
BUSY_STATES = frozenset({"running", "busy"})
ENDED_STATES = frozenset({"error", "dead", "killed", "success"})
#: Sessions on their way in or out: neither idle nor busy.
WAITING_STATES = frozenset({"not_started", "starting", "recovering", "shutting_down"})
#: Statement states in which code is still queued or running.
_STATEMENT_ACTIVE = frozenset({"waiting", "running", "cancelling"})
_PAGE = 100


@dataclass(frozen=True)
class LivySession:
    """One interactive session as Livy's ``GET /sessions`` lists it."""

    id: int
    state: str
    app_id: str | None = None
    name: str | None = None
    owner: str | None = None
    proxy_user: str | None = None
    kind: str = ""

    @property
    def user(self) -> str:
        """Who the session runs as: the proxy user when Livy impersonates, else the owner."""
        return self.proxy_user or self.owner or ""


@dataclass(frozen=True)
class LivyStatement:
    id: int
    state: str
    #: Epoch milliseconds; None until Livy sets it.
    started_ms: int | None = None
    completed_ms: int | None = None

    @property
    def active(self) -> bool:
        return self.state in _STATEMENT_ACTIVE


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_ms(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        return None
    return int(value)


class LivyClient:
    """Talks to one Livy server. User info in the URL (``http://user:pw@livy:8998``) is sent as
    HTTP Basic auth and never shown; ``auth="kerberos"`` uses SPNEGO (pip install decom[kerberos])."""

    def __init__(self, url: str, *, timeout: float = 10.0, auth: str = "none", ca_bundle: str = "",
                 transport: httpx.BaseTransport | None = None) -> None:
        text = (url or "").strip()
        if text and "://" not in text:
            text = "http://" + text
        try:
            parsed = httpx.URL(text)
        except httpx.InvalidURL as e:
            raise LivyError(f"{redact(url)!r} is not a Livy URL ({e}): use e.g. http://livy-host:8998") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise LivyError(f"{redact(url)!r} is not a Livy URL: use e.g. http://livy-host:8998")
        # User info in the URL becomes Basic auth (and wins over Kerberos). Like the RM's, this client
        # ignores proxy variables and follows no redirect.
        self._client = HttpClient(HttpSettings(
            service="Livy", error=LivyError, timeout=timeout, ca_bundle=ca_bundle, trust_env=False,
            urls=(str(parsed.copy_with(query=None, fragment=None, path=parsed.path.rstrip("/") or "/")),),
            auth="kerberos" if (auth or "none").lower() == "kerberos" else "none", follow_redirects=False,
            headers=(*JSON_HEADERS, ("X-Requested-By", "decom"))), transport=transport)
        self._base = self._client.bases[0].rstrip("/")

    @property
    def url(self) -> str:
        """The server as messages show it (no credentials)."""
        return display_url(self._base)

    def sessions(self) -> list[LivySession]:
        """Every session Livy knows (``GET /sessions``, page by page)."""
        out: list[LivySession] = []
        start = 0
        while True:
            data = self._get("/sessions", {"from": str(start), "size": str(_PAGE)})
            items = data.get("sessions") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise self._not_livy("/sessions", "no sessions list")
            for item in items:
                out.append(self._session(item, "/sessions"))
            total = data.get("total")
            start += len(items)
            if not items or not isinstance(total, int) or start >= total:
                return out

    def session(self, session_id: int) -> LivySession:
        """``GET /sessions/{id}``; :class:`LivySessionNotFoundError` when Livy does not know it."""
        path = f"/sessions/{int(session_id)}"
        return self._session(self._get(path), path)

    def statements(self, session_id: int) -> list[LivyStatement]:
        """``GET /sessions/{id}/statements``: the session's statements (code cells) so far."""
        path = f"/sessions/{int(session_id)}/statements"
        data = self._get(path)
        items = data.get("statements") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self._not_livy(path, "no statements list")
        out: list[LivyStatement] = []
        for item in items:
            if not isinstance(item, dict) or not isinstance(item.get("id"), int):
                raise self._not_livy(path, "a statement without id")
            out.append(LivyStatement(item["id"], str(item.get("state") or ""), _epoch_ms(item.get("started")),
                                     _epoch_ms(item.get("completed"))))
        return out

    def delete_session(self, session_id: int) -> None:
        """``DELETE /sessions/{id}``: Livy stops the session's Spark app."""
        self._request("DELETE", f"/sessions/{int(session_id)}")

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> LivyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP -----------------------------------------------------------------------------------

    def _session(self, item: object, path: str) -> LivySession:
        if not isinstance(item, dict) or not isinstance(item.get("id"), int) \
                or not isinstance(item.get("state"), str):
            raise self._not_livy(path, "a session without id or state")
        return LivySession(item["id"], item["state"], app_id=_opt_str(item.get("appId")),
                           name=_opt_str(item.get("name")), owner=_opt_str(item.get("owner")),
                           proxy_user=_opt_str(item.get("proxyUser")), kind=str(item.get("kind") or ""))

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._request("GET", path, params)

    def _request(self, method: str, path: str, params: dict[str, str] | None = None) -> Any:
        with self._client.errors(f"Livy at {self.url}"):
            resp = self._client.request(method, self._base + path, params=params)
        message = self._message(resp)
        if resp.status_code == 404 and path.startswith("/sessions/"):
            raise LivySessionNotFoundError(message or f"Session '{path.split('/')[2]}' not found.")
        if resp.status_code == 401:
            raise LivyError(f"Livy at {self.url} wants authentication (HTTP 401): put user:password in the "
                            "URL (http://user:password@host:8998) or use --auth kerberos")
        if resp.status_code == 403:
            raise LivyError(f"Livy at {self.url} refused {method} {path} (HTTP 403){': ' + message if message else ''}"
                            ": the user may not do this (Livy's access control lists)")
        if resp.status_code >= 300:
            raise LivyError(f"Livy at {self.url} answered HTTP {resp.status_code} to {method} {path}"
                            f"{': ' + message if message else ''}")
        if not resp.content.strip():
            return {}
        try:
            return json.loads(resp.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise self._not_livy(path, "not JSON") from None

    def _message(self, resp: httpx.Response) -> str:
        try:
            data = json.loads(resp.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return ""
        msg = data.get("msg") if isinstance(data, dict) else None
        return self._client.scrub(msg.strip())[:300] if isinstance(msg, str) else ""

    def _not_livy(self, path: str, reason: str) -> LivyError:
        return LivyError(f"the answer of {self.url}{path} is not an Apache Livy reply ({reason}): check that "
                         "--livy points at the Livy server (port 8998 by default)")
