"""Keep credentials out of what decom prints: URLs with user:password, auth headers, tokens, user names.

The one redaction module: :func:`redact` masks what looks like a credential in any text,
:func:`scrub` also masks the secrets a client knows it holds (a password, its Basic token, the
simple-auth user name), :func:`redact_json` walks JSON, :func:`display_url` shows an address.
What Spark itself must redact (its UI, event log) is a Java regex in ``spark.redaction.regex``:
``decom.configure`` extends it with :data:`USERINFO_REDACTION`, the rule of ``_USERINFO`` here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

__all__ = ["redact", "scrub", "redact_json", "display_url", "SECRET_KEY", "MASK", "USER_MASK",
           "SPARK_REDACTION_DEFAULT", "USERINFO_REDACTION"]

#: Spark's default spark.redaction.regex, and what decom adds to it: URL user info (``http://user:password@rm``
#: in spark.decom.yarn.rm.addresses), which Spark would otherwise show in its UI and event log.
SPARK_REDACTION_DEFAULT = r"(?i)secret|password|token|access[.]?key"
USERINFO_REDACTION = r"://[^/@\s]+@"

#: What a secret becomes.
MASK = "***"
#: What the simple-auth user name (Hadoop's ``user.name``) becomes in a message: it is not a password,
#: but it names who decom acts as, and a message still reads well with it.
USER_MASK = "<user>"
#: Secrets shorter than this are not searched for in text: they would mask parts of ordinary words.
MIN_SECRET = 3

# scheme://user:password@host -> scheme://***@host (also a bare user@, which can be a token).
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@")
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|x-api-key|cookie)(\"?\s*[:=]\s*\"?)"
    r"(?:(basic|bearer|negotiate|digest|token)\s+)?[^\s,;\"'}]+")
# A credential without its header name: "Negotiate YIIK...", "Basic YWxpY2U6..." (what a chatty server echoes).
_AUTH_VALUE = re.compile(r"(?i)\b(basic|negotiate|bearer|digest)(\s+)[A-Za-z0-9+/=._~\-]{6,}")
# Hadoop's simple auth: ?user.name=alice, and the hadoop.auth cookie that names the user.
_USER_PARAM = re.compile(r"(?i)(user\.name=)[^&#\s\"']*")
_AUTH_COOKIE = re.compile(r"(?i)(hadoop\.auth=)(?:\"[^\"\s;,]*\"?|[^;\"'\s,)]*)")
_SECRET_PARAM = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|access_token|api[_-]?key|delegation|signature|sig)"
    r"(\"?\s*[=:]\s*\"?)([^&\s\"',}]+)")
#: JSON keys whose values are secrets (sparkmagic's kernel_*_credentials.password, ...).
SECRET_KEY = re.compile(r"(?i)(password|passwd|secret|token|api[_-]?key|authorization)")


def redact(text: str) -> str:
    """``text`` with URL user info, Authorization-style headers and credentials, ``user.name`` values,
    the ``hadoop.auth`` cookie and secret parameters masked."""
    text = _USERINFO.sub(lambda m: m.group(1) + MASK + "@", text)
    # The cookie first: a (Set-)Cookie header's rule would stop at its value's opening quote.
    text = _AUTH_COOKIE.sub(lambda m: m.group(1) + MASK, text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + m.group(2) + (m.group(3) + " " if m.group(3) else "")
                            + MASK, text)
    text = _AUTH_VALUE.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    text = _USER_PARAM.sub(lambda m: m.group(1) + MASK, text)
    return _SECRET_PARAM.sub(lambda m: m.group(1) + m.group(2) + MASK, text)


def scrub(text: str, secrets: Iterable[str] = (), user: str = "") -> str:
    """:func:`redact` of ``text`` after each of ``secrets`` (as given and percent-encoded) became
    ``***`` and the simple-auth ``user`` name ``<user>``."""
    masks: dict[str, str] = {}
    for secret, mask in [(s, MASK) for s in secrets] + [(user, USER_MASK)]:
        for form in (secret, quote(secret, safe="")):
            if len(form) >= MIN_SECRET:
                masks.setdefault(form, mask)
    for form in sorted(masks, key=len, reverse=True):
        text = text.replace(form, masks[form])
    return redact(text)


def redact_json(value: Any) -> Any:
    """A copy of a JSON value with the values of secret-looking keys replaced by ``***``."""
    if isinstance(value, dict):
        return {k: (MASK if isinstance(k, str) and SECRET_KEY.search(k) and v not in ("", None)
                    else redact_json(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_json(v) for v in value]
    if isinstance(value, str):
        return redact(value)
    return value


def display_url(url: str, with_path: bool = True) -> str:
    """scheme://host:port[/path] of ``url``: never its user info, query or fragment. Never raises
    (it shows what a user gave, valid or not)."""
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
