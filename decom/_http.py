"""decom's one HTTP layer: every httpx client decom uses (the ResourceManager, Livy, the Spark UI) is built
here from an :class:`HttpSettings`, and every transport failure becomes one scrubbed, actionable message.

- URL user info (``http://user:password@host``) becomes HTTP Basic auth for that origin and is never
  part of a URL decom requests, logs or shows;
- ``auth``: ``simple`` sends Hadoop's ``user.name``, ``kerberos`` SPNEGO (httpx-gssapi), ``none`` nothing;
- a CA bundle becomes an SSL context; proxies (``trust_env``), time-outs, redirects and headers are
  settings; a GET on a kept-alive connection the server closed meanwhile is sent once more;
- :meth:`HttpClient.errors` maps httpx's transport errors to the caller's :class:`DecomError`
  (in the spirit of httpx's own ``map_exceptions``); :meth:`HttpClient.scrub` masks the client's secrets;
- httpx's and httpcore's own log lines (request URLs, response headers) are redacted.
"""

from __future__ import annotations

import base64
import getpass
import logging
import ssl
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from ._errors import DecomError
from ._redact import redact, scrub

__all__ = ["HttpSettings", "HttpClient", "Origin", "origin", "JSON_HEADERS"]

#: scheme, host, port (None for the scheme's default port), as httpx normalises them.
Origin = tuple[str, str, int | None]
JSON_HEADERS = (("Accept", "application/json"), ("User-Agent", "decom"))
_AUTHS = ("simple", "kerberos", "none")
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class HttpSettings:
    """How decom talks to one service."""

    #: The service as messages name it: "the ResourceManager", "Livy", "the Spark UI".
    service: str
    #: What set-up and transport problems raise.
    error: type[DecomError] = DecomError
    #: The service's addresses: the user info of each becomes Basic auth for its origin (the first wins).
    urls: tuple[str, ...] = ()
    timeout: float = 5.0
    #: simple (Hadoop's ``user.name``), kerberos (SPNEGO) or none. Basic auth from user info wins over it.
    auth: str = "none"
    #: The ``user.name`` of simple auth; default: the user running decom.
    user: str = ""
    #: A PEM CA bundle to trust instead of the system's.
    ca_bundle: str = ""
    #: Honour HTTP(S)_PROXY, NO_PROXY, SSL_CERT_FILE and .netrc from the environment.
    trust_env: bool = False
    follow_redirects: bool = False
    headers: tuple[tuple[str, str], ...] = JSON_HEADERS
    #: How messages name the auth and CA-bundle settings (a Spark conf key, a CLI option).
    auth_key: str = "--auth"
    ca_bundle_key: str = "--ca-bundle"


def origin(url: httpx.URL | str) -> Origin:
    """(scheme, host, port) of ``url``; the scheme's default port is None (``http://rm:80`` is ``http://rm``)."""
    u = httpx.URL(url) if isinstance(url, str) else url
    # httpx drops a default port, but not when the scheme was given in capitals (HTTP://rm:80).
    return u.scheme, u.host, None if u.port == _DEFAULT_PORTS.get(u.scheme) else u.port


def _current_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return ""


class _OriginAuth(httpx.Auth):
    """Basic auth for the origins whose URL carried user info, ``default`` (SPNEGO or none) elsewhere."""

    def __init__(self, basic: Mapping[Origin, httpx.BasicAuth], default: httpx.Auth) -> None:
        self._basic = dict(basic)
        self._default = default

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        return self._basic.get(origin(request.url), self._default).sync_auth_flow(request)


class HttpClient:
    """An httpx client for one service, built from :class:`HttpSettings`; raises ``settings.error``."""

    def __init__(self, settings: HttpSettings, *, transport: httpx.BaseTransport | None = None) -> None:
        self.settings = settings
        s = settings
        label = s.service.removeprefix("the ")
        try:
            timeout = float(s.timeout)
        except (TypeError, ValueError):
            timeout = 0.0
        if not timeout > 0:
            raise s.error(f"the {label} request timeout must be more than 0 s, not {s.timeout!r}")
        self.timeout = timeout
        self._secrets: list[str] = []
        self._user = ""
        bases: list[str] = []
        basic: dict[Origin, httpx.BasicAuth] = {}
        for url in s.urls:
            try:
                parsed = httpx.URL(url)
            except httpx.InvalidURL as e:
                raise s.error(f"{redact(url)!r} is not a URL for {s.service} ({e})") from None
            if parsed.userinfo:
                name, password = parsed.username, parsed.password
                token = base64.b64encode(f"{name}:{password}".encode()).decode()
                self._secrets += [name, password, token]
                basic.setdefault(origin(parsed), httpx.BasicAuth(name, password))
                parsed = parsed.copy_with(userinfo=b"")
                url = str(parsed)
            if url not in bases:
                bases.append(url)
        #: ``settings.urls`` without their user info (in order, without repeats).
        self.bases = tuple(bases)
        auth = (s.auth or "none").strip().lower()
        if auth not in _AUTHS:
            raise s.error(f"unknown {label} auth {s.auth!r}: set {s.auth_key} to simple, kerberos or none")
        params: dict[str, str] = {}
        default: httpx.Auth = httpx.Auth()  # the base class sends the request as it is
        if auth == "simple":
            self._user = s.user or _current_user()
            if self._user:
                params["user.name"] = self._user
        elif auth == "kerberos":
            try:
                from httpx_gssapi import HTTPSPNEGOAuth
            except ImportError:
                raise s.error(f"{s.auth_key}=kerberos needs the httpx-gssapi package: "
                              "pip install decom[kerberos]") from None
            default = HTTPSPNEGOAuth()
        verify: ssl.SSLContext | bool = True
        if s.ca_bundle:
            try:
                verify = ssl.create_default_context(cafile=s.ca_bundle)
            except (OSError, ssl.SSLError) as e:
                raise s.error(f"{s.ca_bundle_key}={s.ca_bundle!r} is not a readable PEM CA bundle "
                              f"({getattr(e, 'strerror', None) or e})") from None
        self.http = httpx.Client(
            timeout=timeout, verify=verify, auth=_OriginAuth(basic, default) if basic else default,
            params=params, headers=list(s.headers), transport=transport, trust_env=s.trust_env,
            follow_redirects=s.follow_redirects)

    def request(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
                json: Any = None) -> httpx.Response:
        """One request. A GET whose kept-alive connection the server (or a proxy) closed meanwhile is
        sent once more, on a fresh connection: it is safe to repeat."""
        try:
            return self.http.request(method, url, params=params, json=json)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError):
            if method.upper() != "GET":
                raise
            return self.http.request(method, url, params=params, json=json)

    def scrub(self, text: str) -> str:
        """``text`` without this client's password, Basic token and user name, nor any credential-like
        text (:func:`decom._redact.scrub`)."""
        return scrub(text, self._secrets, self._user)

    def problem(self, e: httpx.RequestError) -> str:
        """What went wrong, for a message: 'no answer within 5 s', 'connection refused (is ...)', ..."""
        s = self.settings
        if isinstance(e, httpx.TimeoutException):
            return f"no answer within {self.timeout:g} s"
        detail = self.scrub(str(e))[:200]
        if isinstance(e, httpx.ConnectError):
            if "refused" in detail.lower():
                return f"connection refused (is {s.service} running on that port?)"
            if "CERTIFICATE_VERIFY_FAILED" in detail:
                return (f"its TLS certificate is not trusted ({detail}): give the CA bundle that signed it "
                        f"with {s.ca_bundle_key}")
            return f"cannot connect ({detail or 'connection failed'})"
        if isinstance(e, httpx.RemoteProtocolError):
            return f"broken HTTP reply ({detail})"
        if isinstance(e, httpx.ReadError):
            return f"connection dropped ({detail})"
        if isinstance(e, httpx.TooManyRedirects):
            return f"too many redirects ({detail})"
        return f"{type(e).__name__} ({detail})" if detail else type(e).__name__

    @contextmanager
    def errors(self, where: str) -> Iterator[None]:
        """httpx's request errors (time-out, refused, dropped, broken reply, too many redirects) in the
        block become ``settings.error("<where>: <problem>")``, scrubbed."""
        try:
            yield
        except httpx.RequestError as e:
            raise self.settings.error(f"{where}: {self.problem(e)}") from None

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HttpLogRedactor(logging.Filter):
    """httpx logs every request's URL at INFO ("HTTP Request: GET http://rm:8088/...?user.name=alice"),
    httpcore every response's headers at DEBUG (Set-Cookie: hadoop.auth=..., Location): the user name
    (simple auth), user info and auth tokens must not reach the application's logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(str(a)) if isinstance(a, (str, bytes, httpx.URL)) else a
                                for a in record.args)
        return True


_LOG_REDACTOR = _HttpLogRedactor()
for _name in ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2", "httpcore.proxy",
              "httpcore.socks"):
    logging.getLogger(_name).addFilter(_LOG_REDACTOR)
