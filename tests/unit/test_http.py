"""decom's one HTTP layer (decom._http) and its one redaction module (decom._redact)."""

from __future__ import annotations

import base64
import logging
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from decom._errors import DecomError, LivyError
from decom._http import HttpClient, HttpSettings, origin
from decom._redact import redact, scrub


class SomeServiceError(DecomError):
    """The caller's own error type: what the mapper must raise."""


PASSWORD = "pw-Http-8c2d1"
USER = "dave-31f7a"
TOKEN = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()


def client(handler: Callable[[httpx.Request], httpx.Response], **kw: object) -> HttpClient:
    settings = HttpSettings(**{"service": "the Thing", "error": SomeServiceError, "timeout": 2.0, **kw})  # type: ignore[arg-type]
    return HttpClient(settings, transport=httpx.MockTransport(handler))


def raising(exc: Exception) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


# ---- the scrubber --------------------------------------------------------------------------------


def test_scrub_masks_the_given_secrets_and_the_user_name() -> None:
    text = f"denied {PASSWORD} for {USER}, token {TOKEN}; as url {PASSWORD.replace('-', '%2D')}"
    out = scrub(text, [PASSWORD, TOKEN], USER)
    assert out == "denied *** for <user>, token ***; as url " + PASSWORD.replace("-", "%2D")
    # Percent-encoded forms of a secret are masked too (quote() leaves '-' alone, '@' not).
    assert scrub("x p%40ss y", ["p@ss"]) == "x *** y"
    # Too short to search for without masking parts of words.
    assert scrub("stops at ab", ["ab"], "op") == "stops at ab"


@pytest.mark.parametrize("text, expected", [
    ("GET http://alice:s3cret@rm:8088/ws", "GET http://***@rm:8088/ws"),
    ("GET http://rm:8088/ws?user.name=alice&x=1", "GET http://rm:8088/ws?user.name=***&x=1"),
    ('Set-Cookie: hadoop.auth="u=alice&p=alice&t=simple"; Path=/', "Set-Cookie: ***; Path=/"),
    ("Cookie: hadoop.auth=u=alice&t=simple", "Cookie: ***"),
    ("(b'Set-Cookie', b'hadoop.auth=\"u=alice&t=simple\"')", "(b'Set-Cookie', b'hadoop.auth=***')"),
    ("Authorization: Negotiate YIIKrb5TokenQUJD", "Authorization: Negotiate ***"),
    ("the proxy said: Negotiate YIIKrb5TokenQUJD failed", "the proxy said: Negotiate *** failed"),
    ("spark.password=hunter22 rest", "spark.password=*** rest"),
])
def test_redact_is_the_one_set_of_rules(text: str, expected: str) -> None:
    assert redact(text) == expected


# ---- building clients ----------------------------------------------------------------------------


def test_user_info_becomes_basic_auth_for_its_origin_only() -> None:
    seen: list[tuple[str, str | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((str(request.url), request.headers.get("authorization")))
        return httpx.Response(200)

    c = client(handler, urls=(f"http://admin:{PASSWORD}@rm1:8088/pre", "http://rm2:8088"), auth="none")
    assert c.bases == ("http://rm1:8088/pre", "http://rm2:8088")
    c.request("GET", c.bases[0] + "/x")
    c.request("GET", c.bases[1] + "/x")
    assert seen == [("http://rm1:8088/pre/x", f"Basic {TOKEN}"), ("http://rm2:8088/x", None)]


def test_simple_auth_sends_user_name_and_kerberos_without_the_package_says_what_to_install(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[httpx.URL] = []
    c = client(lambda r: seen.append(r.url) or httpx.Response(200), auth="simple", user=USER)
    c.request("GET", "http://rm:8088/ws", params={"states": "RUNNING"})
    assert dict(seen[0].params) == {"user.name": USER, "states": "RUNNING"}
    monkeypatch.setitem(sys.modules, "httpx_gssapi", None)
    with pytest.raises(SomeServiceError, match=r"^spark\.x\.auth=kerberos needs the httpx-gssapi package: "
                                               r"pip install decom\[kerberos\]$"):
        client(lambda r: httpx.Response(200), auth="kerberos", auth_key="spark.x.auth")


def test_kerberos_is_spnego_and_user_info_wins_over_it(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeSpnego(httpx.Auth):
        def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
            request.headers["Authorization"] = "Negotiate abc"
            yield request

    monkeypatch.setitem(sys.modules, "httpx_gssapi", types.SimpleNamespace(HTTPSPNEGOAuth=FakeSpnego))
    seen: list[str | None] = []
    c = client(lambda r: seen.append(r.headers.get("authorization")) or httpx.Response(200),
               urls=(f"http://admin:{PASSWORD}@livy:8998",), auth="kerberos")
    c.request("GET", "http://livy:8998/sessions")
    c.request("GET", "http://other:8998/sessions")
    assert seen == [f"Basic {TOKEN}", "Negotiate abc"]


def test_set_up_errors_are_the_callers_type(tmp_path: Path) -> None:
    with pytest.raises(SomeServiceError, match=r"^--ca-bundle='.*nope.pem' is not a readable PEM CA bundle \("):
        client(lambda r: httpx.Response(200), ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(SomeServiceError, match="the Thing request timeout must be more than 0 s"):
        client(lambda r: httpx.Response(200), timeout=0)
    with pytest.raises(SomeServiceError, match="unknown Thing auth 'ntlm': set --auth to simple, kerberos or none"):
        client(lambda r: httpx.Response(200), auth="ntlm")
    with pytest.raises(LivyError) as info:
        HttpClient(HttpSettings(service="Livy", error=LivyError, urls=(f"http://admin:{PASSWORD}@livy:port",)))
    assert PASSWORD not in str(info.value)


def test_settings_are_frozen_and_clients_ignore_proxy_variables_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = HttpSettings(service="the Thing")
    with pytest.raises(AttributeError):
        settings.timeout = 1.0  # type: ignore[misc]
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    assert HttpClient(settings).http.trust_env is False
    assert HttpClient(HttpSettings(service="the Thing", trust_env=True)).http.trust_env is True
    assert origin("HTTP://RM:80/x") == origin("http://rm") == ("http", "rm", None)


# ---- the error mapper ----------------------------------------------------------------------------


@pytest.mark.parametrize("exc, message", [
    (httpx.ConnectError("[Errno 111] Connection refused"),
     "at rm: connection refused (is the Thing running on that port?)"),
    (httpx.ReadTimeout("timed out"), "at rm: no answer within 2 s"),
    (httpx.ConnectTimeout("timed out"), "at rm: no answer within 2 s"),
    (httpx.ConnectError("[Errno -2] Name or service not known"), "at rm: cannot connect ([Errno -2] Name or service"),
    (httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate"),
     "at rm: its TLS certificate is not trusted ([SSL: CERTIFICATE_VERIFY_FAILED]"),
    (httpx.RemoteProtocolError("Server disconnected without sending a response."),
     "at rm: broken HTTP reply (Server disconnected"),
    (httpx.ReadError("[Errno 104] Connection reset by peer"), "at rm: connection dropped ([Errno 104]"),
    (httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'ftp://'."), "at rm: UnsupportedProtocol ("),
])
def test_transport_errors_become_the_callers_error(exc: Exception, message: str) -> None:
    c = client(raising(exc))
    with pytest.raises(SomeServiceError) as info, c.errors("at rm"):
        c.request("GET", "http://rm:8088/x")
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_mapper_scrubs_what_the_error_carries() -> None:
    exc = httpx.ConnectError(f"cannot reach http://admin:{PASSWORD}@rm:8088/?user.name={USER} as {USER} {TOKEN}")
    c = client(raising(exc), urls=(f"http://admin:{PASSWORD}@rm:8088",), user=USER, auth="simple")
    with pytest.raises(SomeServiceError) as info, c.errors("the RM at http://rm:8088"):
        c.request("GET", "http://rm:8088/x")
    text = str(info.value)
    for secret in (PASSWORD, USER, TOKEN, "admin"):
        assert secret not in text, text
    assert text.startswith("the RM at http://rm:8088: cannot connect (cannot reach http://***@rm:8088/?user.name=***")


def test_the_mapper_leaves_other_errors_alone() -> None:
    c = client(raising(ValueError("not httpx")))
    with pytest.raises(ValueError, match="not httpx"), c.errors("at rm"):
        c.request("GET", "http://rm:8088/x")


def test_a_get_on_a_stale_connection_is_sent_once_more_a_put_is_not() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) % 2:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200)

    c = client(handler)
    assert c.request("GET", "http://rm:8088/x").status_code == 200
    assert calls == ["GET", "GET"]
    with pytest.raises(httpx.RemoteProtocolError):
        c.request("PUT", "http://rm:8088/x", json={"state": "KILLED"})
    assert calls == ["GET", "GET", "PUT"]


def test_httpx_log_lines_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    c = client(lambda r: httpx.Response(200), user=USER, auth="simple")
    with caplog.at_level(logging.INFO, logger="httpx"):
        c.request("GET", "http://rm:8088/ws")
    assert "HTTP Request: GET http://rm:8088/ws?user.name=***" in caplog.text
    assert USER not in caplog.text
