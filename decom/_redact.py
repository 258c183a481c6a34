"""Keep credentials out of what decom prints: URLs with user:password, auth headers, tokens."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

__all__ = ["redact", "redact_json", "display_url", "SECRET_KEY"]

_MASK = "***"
# scheme://user:password@host -> scheme://***@host (also a bare user@, which can be a token).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@")
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|cookie)(\"?\s*[:=]\s*\"?)"
    r"(?:(basic|bearer|negotiate|digest|token)\s+)?[^\s,;\"'}]+")
_SECRET_PARAM = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|access_token|api[_-]?key|delegation|signature|sig)"
    r"(\"?\s*[=:]\s*\"?)([^&\s\"',}]+)")
#: JSON keys whose values are secrets (sparkmagic's kernel_*_credentials.password, ...).
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|authorization)")


def redact(text: str) -> str:
    """``text`` with URL user info, Authorization-style headers and secret parameters masked."""
    text = _USERINFO.sub(lambda m: m.group(1) + _MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) + " " if m.group(3) else "")
                            + _MASK, text)
    return _SECRET_PARAM.sub(lambda m: m.group(1) + m.group(2) + _MASK, text)


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {k: (_MASK if isinstance(k, str) and SECRET_KEY.search(k) and v not in ("", None)
                    else redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def display_url(url: str, with_path: bool = True) -> str:
    """scheme://host:port[/path] of ``url``: never its user info, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme or 'http'}://{host}" + (f":{port}" if port else "") + (
        parts.path.rstrip("/") if with_path else "")
