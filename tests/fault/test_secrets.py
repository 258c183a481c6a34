"""Credentials never appear in what decom prints: user:password in an RM address (e.g. a Knox gateway),
the simple-auth user name (user.name), a Kerberos/SPNEGO token. A fake RM on 127.0.0.1 echoes every
credential it receives back in its error messages and redirects; every message, log line (decom, httpx,
httpcore, at DEBUG) and CLI output is searched. The same with real Spark (decom's report and event log,
Spark's event log and environment page) is in tests/spark/test_faults_during_job.py.
"""

from __future__ import annotations

import base64
import io
import sys
import types
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from click.testing import CliRunner

import decom._cli.main as cli
from decom import ResourceManagerError
from decom._driver.api import _redact_userinfo
from decom._driver.poller import NodePoller
from decom._redact import SPARK_REDACTION_DEFAULT, USERINFO_REDACTION
from decom._yarn import ResourceManagerClient
from tests.support import FakeRM, RMHandler, capture_logs, closed_port

PASSWORD = "pw-Secret-93c1e"
USER = "alice-4b7e2"
KRB = "YIIKrb5TokenQUJDREVGR0hJSktMTU5PUA"
TOKEN = base64.b64encode(f"rmadmin:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, USER, KRB, TOKEN)


@pytest.fixture
def rm() -> Iterator[FakeRM]:
    server = FakeRM(metrics=False).start()
    server.set("h1:8041", "RUNNING")
    yield server
    server.release.set()
    server.stop()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    with capture_logs() as buf:
        yield buf


def echo(code: int) -> Callable[[RMHandler], bool]:
    """An error that repeats every credential the request carried (a chatty proxy or RM)."""

    def answer(h: RMHandler) -> bool:
        user = parse_qs(urlsplit(h.path).query).get("user.name", [""])[0]
        h.send_json(code, {"RemoteException": {"message": f"denied: Authorization: {h.headers.get('Authorization')}"
                                               f" user.name={user} url={h.path} user {user}"}})
        return True

    return answer


def redirect_elsewhere(h: RMHandler) -> bool:
    h.send_response(307)
    h.send_header("Location", f"http://rmadmin:{PASSWORD}@198.18.0.250:8088{h.path}")
    h.send_header("Content-Length", "0")
    h.end_headers()
    return True


def auth_cookie(h: RMHandler) -> bool:
    """What a real RM with simple auth answers: its signed hadoop.auth cookie names the user."""
    body = b'{"nodes": null}'
    h.send_response(200)
    h.send_header("Set-Cookie", f'hadoop.auth="u={USER}&p={USER}&t=simple&e=1795356000000&s=c2lnbmF0dXJl"; '
                                "Path=/; HttpOnly")
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
    return True


def garbage(h: RMHandler) -> bool:
    h.send_raw(200, f"<html>{h.headers.get('Authorization')} {h.path}</html>".encode())
    return True


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked: {text[:600]}"


def url(rm: FakeRM) -> str:
    return f"http://rmadmin:{PASSWORD}@127.0.0.1:{rm.port}"


@pytest.mark.parametrize("behaviour", [echo(500), echo(401), echo(403), echo(404), echo(400), redirect_elsewhere,
                                       garbage, auth_cookie, None],
                         ids=["500", "401", "403", "404", "400", "307", "garbage", "cookie", "ok"])
def test_basic_auth_and_user_name_stay_out_of_errors_and_logs(rm: FakeRM, logs: io.StringIO,
                                                              behaviour: Any) -> None:
    rm.behaviour = behaviour
    seen: dict[str, Any] = {}

    def record(h: RMHandler) -> bool:
        seen["auth"] = h.headers.get("Authorization")
        seen["path"] = h.path
        return behaviour(h) if behaviour is not None else False

    rm.behaviour = record
    message = ""
    with ResourceManagerClient([url(rm)], timeout=2, user=USER) as client:
        try:
            client.nodes()
        except ResourceManagerError as e:
            message = str(e)
        assert_clean(message, logs.getvalue(), repr(client.addresses), str(client.active_address))
    assert seen["auth"] == f"Basic {TOKEN}", "the credentials were not sent as Basic auth"
    assert f"user.name={USER}" in seen["path"], "the user name was not sent"
    assert "HTTP Request: GET" in logs.getvalue() and "receive_response_headers" in logs.getvalue()
    assert behaviour in (None, auth_cookie) or message, "no error to check"


def test_connection_refused_and_poller_status(logs: io.StringIO) -> None:
    rec: list[Any] = []
    client = ResourceManagerClient([f"http://rmadmin:{PASSWORD}@127.0.0.1:{closed_port()}"], timeout=1, user=USER)
    poller = NodePoller(client, 1.0, rec.append)
    with pytest.raises(ResourceManagerError) as e:
        poller.poll_once()
    assert_clean(str(e.value), logs.getvalue(), repr(poller.status()))
    assert "connection refused" in str(e.value)


def test_an_unusable_address_with_credentials_is_shown_without_them() -> None:
    with pytest.raises(ResourceManagerError) as e:
        ResourceManagerClient([f"ftp://rmadmin:{PASSWORD}@rm:21"])
    assert_clean(str(e.value))
    assert "'ftp://***@rm:21'" in str(e.value)


def test_kerberos_token_stays_out_of_errors_and_logs(rm: FakeRM, logs: io.StringIO,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeSpnego(httpx.Auth):  # stands in for httpx_gssapi.HTTPSPNEGOAuth: a ticket's token
        def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
            request.headers["Authorization"] = f"Negotiate {KRB}"
            yield request

    monkeypatch.setitem(sys.modules, "httpx_gssapi", types.SimpleNamespace(HTTPSPNEGOAuth=FakeSpnego))
    seen: list[str] = []

    def record(h: RMHandler) -> bool:
        seen.append(str(h.headers.get("Authorization")))
        return echo(500)(h)

    rm.behaviour = record
    with ResourceManagerClient([rm.url], timeout=2, auth="kerberos") as client:
        with pytest.raises(ResourceManagerError) as e:
            client.nodes()
    assert seen and seen[0] == f"Negotiate {KRB}"
    assert "Negotiate ***" in str(e.value)
    assert_clean(str(e.value), logs.getvalue())


@pytest.mark.parametrize("argv", [["nodes"], ["nodes", "--json"], ["watch", "--count", "2", "--interval", "10ms"]])
@pytest.mark.parametrize("behaviour", [None, echo(500), echo(403), garbage], ids=["ok", "500", "403", "garbage"])
def test_cli_output_has_no_credentials(rm: FakeRM, logs: io.StringIO, argv: list[str], behaviour: Any) -> None:
    rm.set("h2:8041", "DECOMMISSIONING")
    rm.behaviour = behaviour
    result = CliRunner().invoke(cli.main, [*argv, "--rm", url(rm), "--user", USER, "--timeout", "2s"])
    assert result.exit_code == (0 if behaviour is None else 2), result.output
    assert_clean(result.output, logs.getvalue())
    if behaviour is None:
        assert "h2" in result.output


def test_configure_makes_spark_redact_url_credentials(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Spark shows every conf value in its UI and event log unless spark.redaction.regex matches the key or
    the value; decom.configure() adds URL user info to it, keeping what the builder or spark-defaults set."""
    import re

    monkeypatch.delenv("SPARK_HOME", raising=False)
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    options: dict[str, Any] = {}
    _redact_userinfo(options)
    _redact_userinfo(options)
    assert options["spark.redaction.regex"] == f"{SPARK_REDACTION_DEFAULT}|{USERINFO_REDACTION}"
    pattern = re.compile(options["spark.redaction.regex"])
    assert pattern.search(f"http://rmadmin:{PASSWORD}@rm:8088") and not pattern.search("http://rm:8088,http://rm2:8088")
    assert pattern.search("spark.ssl.keyPassword"), "Spark's own default must stay"
    (tmp_path / "spark-defaults.conf").write_text("spark.redaction.regex   (?i)mycorp\\.key\n")
    options = {}
    _redact_userinfo(options)
    assert options["spark.redaction.regex"] == f"(?i)mycorp\\.key|{USERINFO_REDACTION}"
    options = {"spark.redaction.regex": "(?i)secret"}
    _redact_userinfo(options)
    assert options["spark.redaction.regex"] == f"(?i)secret|{USERINFO_REDACTION}"
