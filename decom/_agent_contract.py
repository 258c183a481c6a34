"""What a decom driver tells the cluster agent, and how it is signed. Used by both sides.

The contract (README, "The decom agent"):

- ``POST /v1/apps/<app id>`` with :class:`AppReport` as JSON: the app follows decommissions with decom
  and lets go of these DECOMMISSIONING nodes (the full set, not a change). A driver sends it when it
  starts, whenever its set changes, and every :data:`HEARTBEAT_S` seconds, so an agent that restarted
  knows every app again within one heartbeat. Resending is harmless: the last report wins.
- Every request is signed: header ``X-Decom-Timestamp`` (epoch seconds) and ``X-Decom-Signature``, the
  hex HMAC-SHA256 of ``"<timestamp>\\n<method> <path>\\n<body>"`` with the shared secret. The agent refuses
  (401) a bad signature, and a timestamp more than :data:`MAX_SKEW_S` from its clock, and changes nothing.
- Answers: 200 with ``{"accepted": true}``; 400 for a malformed report (the message says what);
  401 unauthenticated. A driver retries anything else (agent down, 5xx) with backoff.
- While the agent is down nothing is released: the nodes wait for their apps to end, or for YARN's
  timeout, exactly as without the agent.
- Node states: ``GET /v1/nodes?states=A,B&newer_than=<polled_at>``, answered (signed by the agent over the
  path with its query) with the agent's next read of the RM, or after :data:`LONG_POLL_MAX_S`. A driver
  asks it instead of the RM, and asks the RM itself while the agent does not answer, answers unsigned or
  has a view older than 3 of its intervals.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._errors import AgentError

__all__ = ["AppReport", "WireError", "sign", "verify", "read_secret", "HEARTBEAT_S", "LONG_POLL_MAX_S", "MAX_SKEW_S",
           "long_poll_hold"]

#: How often a driver repeats its report while nothing changes.
HEARTBEAT_S = 10.0
#: The longest the agent holds a driver's long poll of ``GET /v1/nodes`` (``newer_than``) when it has not
#: read the RM meanwhile (also at most 3 of its intervals).
LONG_POLL_MAX_S = 10.0


def long_poll_hold(interval: float) -> float:
    """How long the agent holds a long poll, and so how long a driver waits for it: 3 of the agent's
    intervals, :data:`LONG_POLL_MAX_S` at most."""
    return min(3 * interval, LONG_POLL_MAX_S)
#: How far a request's timestamp may be from the agent's clock (replays older than this are refused).
MAX_SKEW_S = 300.0
TIMESTAMP_HEADER = "X-Decom-Timestamp"
SIGNATURE_HEADER = "X-Decom-Signature"
_APP_ID = re.compile(r"^application_\d+_\d+$")
_HOST = re.compile(r"^[A-Za-z0-9._\-\[\]:]{1,255}$")
_MAX_NODES = 100_000


class WireError(AgentError):
    """A message that is not what the contract says (the text says which field and why)."""


@dataclass(frozen=True)
class AppReport:
    """One app's state as its driver reports it to the agent."""

    app_id: str
    #: The DECOMMISSIONING nodes (hosts, or YARN node ids) the app holds nothing on any more.
    let_go: frozenset[str] = frozenset()
    #: The driver's clock when it sent this (epoch seconds); later reports win.
    sent_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"app_id": self.app_id, "let_go": sorted(self.let_go), "sent_at": self.sent_at}

    @classmethod
    def parse(cls, body: bytes, path_app_id: str | None = None) -> AppReport:
        """The report in a request body; :class:`WireError` naming the problem otherwise."""
        try:
            data = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise WireError(f"the body is not JSON ({e})") from None
        if not isinstance(data, dict):
            raise WireError("the body must be a JSON object {\"app_id\", \"let_go\", \"sent_at\"}")
        app_id = data.get("app_id")
        if not isinstance(app_id, str) or not _APP_ID.match(app_id):
            raise WireError(f"app_id={app_id!r}: a YARN application id is expected (application_<ts>_<n>)")
        if path_app_id is not None and path_app_id != app_id:
            raise WireError(f"the body's app_id {app_id} is not the one in the path ({path_app_id})")
        nodes = data.get("let_go", [])
        if not isinstance(nodes, list) or len(nodes) > _MAX_NODES or \
                not all(isinstance(n, str) and _HOST.match(n) for n in nodes):
            raise WireError("let_go must be a list of host names or YARN node ids (host:port)")
        sent_at = data.get("sent_at", 0.0)
        if isinstance(sent_at, bool) or not isinstance(sent_at, int | float):
            raise WireError(f"sent_at={sent_at!r}: epoch seconds expected")
        return cls(app_id, frozenset(nodes), float(sent_at))


def _mac(secret: bytes, timestamp: str, method: str, path: str, body: bytes) -> str:
    msg = timestamp.encode() + b"\n" + f"{method.upper()} {path}".encode() + b"\n" + body
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def sign(secret: bytes, method: str, path: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The headers that authenticate one request."""
    ts = str(int(time.time() if now is None else now))
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: _mac(secret, ts, method, path, body)}


def verify(secret: bytes, method: str, path: str, body: bytes, headers: Any, now: float | None = None) -> str | None:
    """None when the request is authentic; else why not (for the log: never the secret or a signature)."""
    ts = headers.get(TIMESTAMP_HEADER)
    sig = headers.get(SIGNATURE_HEADER)
    if not ts or not sig:
        return "unsigned request"
    try:
        when = int(ts)
    except ValueError:
        return "malformed timestamp"
    if abs((time.time() if now is None else now) - when) > MAX_SKEW_S:
        return f"timestamp more than {MAX_SKEW_S:.0f} s from the agent's clock (replayed, or a clock off)"
    try:
        same = hmac.compare_digest(_mac(secret, ts, method, path, body).encode(), str(sig).encode())
    except (TypeError, UnicodeEncodeError):
        same = False
    if not same:
        return "bad signature (not the agent's shared secret)"
    return None


def read_secret(path: str | Path, what: str) -> bytes:
    """The shared secret in a file (surrounding whitespace ignored). The file should be readable by its
    owner only; an empty, missing or unreadable file is an error naming ``what`` (the setting) and the fix."""
    p = Path(path)
    try:
        secret = p.read_bytes().strip()
    except OSError as e:
        raise AgentError(f"{what}={p}: cannot read the shared secret ({e.strerror or e}); give a file "
                         "readable by this user holding the secret the agent was started with") from None
    if len(secret) < 16:
        raise AgentError(f"{what}={p}: the shared secret must be at least 16 bytes (e.g. `openssl rand -hex 32 "
                         f"> {p}`)")
    return secret
