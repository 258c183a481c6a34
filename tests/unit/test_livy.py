"""LivyClient against a fake Livy built from Livy's documented JSON (httpx.MockTransport)."""

from __future__ import annotations

import base64
import socket

import httpx
import pytest

import decom._sessions.livy as livy_mod
from decom._errors import LivyError, LivySessionNotFoundError
from decom._sessions.livy import LivyClient
from tests.fake_rm import NOW_MS, FakeApp
from tests.unit.shared_cluster_fakes import FakeLivy, FakeSession, statement


def client(fake: FakeLivy, url: str = "http://livy:8998") -> LivyClient:
    return LivyClient(url, transport=httpx.MockTransport(fake.handle))


def test_sessions_all_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(livy_mod, "_PAGE", 2)
    fake = FakeLivy(*[FakeSession(i, FakeApp(i, f"livy-session-{i}")) for i in range(5)],
                    FakeSession(7, None, state="starting", owner="bob"))
    found = client(fake).sessions()
    assert [s.id for s in found] == [0, 1, 2, 3, 4, 7]
    assert [r.url.params["from"] for r in fake.requests] == ["0", "2", "4"]
    assert found[0].app_id == FakeApp(0, "x").id and found[0].state == "idle" and found[0].user == "alice"
    assert found[5].app_id is None and found[5].state == "starting" and found[5].user == "bob"


def test_empty_livy() -> None:
    assert client(FakeLivy()).sessions() == []


def test_statements() -> None:
    session = FakeSession(3, FakeApp(3, "livy-session-3"), statements=[
        statement(0, completed_ms=NOW_MS - 60_000), statement(1, state="running", completed_ms=0)])
    found = client(FakeLivy(session)).statements(3)
    assert [(s.id, s.state, s.active) for s in found] == [(0, "available", False), (1, "running", True)]
    assert found[0].completed_ms == NOW_MS - 60_000 and found[1].completed_ms is None


def test_unknown_session_is_404_with_livys_message() -> None:
    c = client(FakeLivy(FakeSession(1, None)))
    with pytest.raises(LivySessionNotFoundError, match=r"^Session '42' not found\.$"):
        c.session(42)
    with pytest.raises(LivySessionNotFoundError):
        c.statements(42)
    with pytest.raises(LivySessionNotFoundError):
        c.delete_session(42)


def test_delete_sends_csrf_header_and_removes_the_session() -> None:
    fake = FakeLivy(FakeSession(1, FakeApp(1, "livy-session-1")), FakeSession(2, None))
    c = client(fake)
    c.delete_session(1)
    assert fake.deleted == [1]
    assert fake.requests[-1].method == "DELETE" and fake.requests[-1].headers["x-requested-by"]
    assert [s.id for s in c.sessions()] == [2]


def test_dead_sessions_are_listed_with_their_state() -> None:
    fake = FakeLivy(FakeSession(4, FakeApp(4, "livy-session-4", state="KILLED"), state="dead"))
    (s,) = client(fake).sessions()
    assert s.state == "dead" and s.app_id is not None


def test_basic_auth_from_url_never_shown() -> None:
    seen: list[str] = []

    def handle(req: httpx.Request) -> httpx.Response:
        seen.append(req.headers.get("authorization", ""))
        return httpx.Response(401, text="")

    c = LivyClient("http://alice:s3cret@livy:8998/", transport=httpx.MockTransport(handle))
    assert c.url == "http://livy:8998"
    with pytest.raises(LivyError) as info:
        c.sessions()
    assert seen == ["Basic " + base64.b64encode(b"alice:s3cret").decode()]
    assert "s3cret" not in str(info.value) and "HTTP 401" in str(info.value)


def test_unreachable_livy_message_has_no_credentials() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = LivyClient(f"http://bob:pa55word@127.0.0.1:{port}", timeout=2)
    with pytest.raises(LivyError) as info:
        c.sessions()
    text = str(info.value)
    assert "pa55word" not in text and "bob" not in text
    assert f"127.0.0.1:{port}" in text and "connection refused" in text


def test_not_livy() -> None:
    c = LivyClient("http://rm:8088", transport=httpx.MockTransport(
        lambda req: httpx.Response(200, text="<html>ResourceManager</html>")))
    with pytest.raises(LivyError, match="not an Apache Livy reply"):
        c.sessions()


def test_server_error_carries_livys_msg() -> None:
    c = LivyClient("http://livy:8998", transport=httpx.MockTransport(
        lambda req: httpx.Response(500, json={"msg": "java.lang.IllegalStateException: boom"})))
    with pytest.raises(LivyError, match="HTTP 500 to GET /sessions: java.lang.IllegalStateException: boom"):
        c.sessions()


@pytest.mark.parametrize("url", ["", "ftp://livy", "http://", "http://livy:notaport"])
def test_bad_url(url: str) -> None:
    with pytest.raises(LivyError):
        LivyClient(url)
