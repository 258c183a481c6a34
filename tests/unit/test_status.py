"""`decom status`: figures from Spark's /metrics/json and from the event log; clear errors."""

from __future__ import annotations

import base64
import json
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from decom._cli.main import main
from decom._driver.status import COUNTERS, StatusError, counters_from_event_log, counters_from_metrics
from tests.support import capture_logs, closed_port

GAUGE = "app-1.driver.plugin.io.decom.DecomPlugin."


def test_metrics_document_gives_the_decom_gauges_only() -> None:
    doc = {"gauges": {GAUGE + "executorsExcluded": {"value": 3}, GAUGE + "fetchFailures": {"value": 0},
                      "app-1.driver.BlockManager.memory.maxMem_MB": {"value": 434}}}
    assert counters_from_metrics(doc, "ui") == {"source": "ui", "executorsExcluded": 3, "fetchFailures": 0}


def test_the_counters_show_in_the_shims_order_newer_ones_after() -> None:
    doc = {"gauges": {GAUGE + name: {"value": i} for i, name in enumerate(reversed((*COUNTERS, "aNewerCounter")))}}
    assert list(counters_from_metrics(doc, "ui")) == ["source", *COUNTERS, "aNewerCounter"]
    assert COUNTERS[-4:] == ("outputsMigrated", "outputsOrphaned", "bytesMigrated", "nodesLetGo")


@pytest.mark.parametrize("doc, message", [
    ({"gauges": {"app.driver.BlockManager.x": {"value": 1}}}, "no decom metrics: is spark.plugins"),
    ({"counters": {}}, "not Spark's /metrics/json"),
    ([], "not Spark's /metrics/json"),
])
def test_metrics_without_decom_say_what_to_fix(doc: object, message: str) -> None:
    with pytest.raises(StatusError, match=message):
        counters_from_metrics(doc, "ui")


def _line(t: float, action: str, target: str, **detail: object) -> str:
    return json.dumps({"time": t, "action": action, "target": target, "detail": detail})


def test_event_log_is_summarised(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join([
        _line(10.0, "transition", "n1", **{"from": "", "to": "DECOMMISSIONING"}),
        _line(10.2, "exclude", "n1", executors=["1"]),
        _line(30.0, "transition", "n1", **{"from": "DECOMMISSIONING", "to": "DECOMMISSIONED"}),
        _line(30.1, "decommissioned", "n1"),
        _line(31.0, "transition", "n2", **{"from": "", "to": "DECOMMISSIONING"}),
        _line(31.5, "node-let-go", "n2", at=31500, outputsMigrated=1, outputsOrphaned=0, outputsUnregistered=0,
              bytesMigrated=100),
        # Excluded again and let go again: the shim's figures per node are cumulative, the last one counts.
        _line(31.9, "node-let-go", "n2", at=31900, outputsMigrated=3, outputsOrphaned=1, outputsUnregistered=0,
              bytesMigrated=300),
        _line(31.0, "node-let-go", "n1", at=31000, outputsMigrated=2, outputsOrphaned=0, outputsUnregistered=4,
              bytesMigrated=200),
        "not json",
    ]) + "\n")
    figures = counters_from_event_log(str(log))
    assert figures["action_node-let-go"] == 3 and figures["nodes_let_go"] == 2
    assert (figures["outputs_migrated"], figures["outputs_orphaned"], figures["bytes_migrated"]) == (5, 1, 500)
    assert figures["events"] == 8 and figures["span_s"] == 21.9
    assert figures["nodes_now_decommissioned"] == 1 and figures["nodes_now_decommissioning"] == 1
    assert figures["action_transition"] == 3 and figures["action_exclude"] == 1
    assert figures["unreadable_lines"] == 1


def test_cli_event_log_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text(_line(1.0, "exclude", "n1") + "\n")
    ok = CliRunner().invoke(main, ["status", "--event-log", str(log)])
    assert ok.exit_code == 0 and "action_exclude" in ok.output
    none = CliRunner().invoke(main, ["status"])
    assert none.exit_code == 2 and "exactly one of --ui" in none.output
    missing = CliRunner().invoke(main, ["status", "--event-log", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2 and "cannot read the event log" in missing.output
    empty = tmp_path / "empty.jsonl"
    empty.write_text("garbage\n")
    bad = CliRunner().invoke(main, ["status", "--event-log", str(empty)])
    assert bad.exit_code == 2 and "holds no decom events (1 unreadable lines)" in bad.output


def test_cli_table_shows_the_migration_counters(ui: FakeUI, monkeypatch: pytest.MonkeyPatch) -> None:
    gauges = {GAUGE + name: {"value": 0} for name in COUNTERS}
    gauges.update({GAUGE + "outputsMigrated": {"value": 12}, GAUGE + "bytesMigrated": {"value": 5 * 1024**3},
                   GAUGE + "nodesLetGo": {"value": 1}})
    monkeypatch.setitem(METRICS, "gauges", gauges)
    code, out, _ = status("--ui", f"http://127.0.0.1:{ui.port}", "--auth", "none")
    assert code == 0, out
    rows = [line.split() for line in out.splitlines()[2:]]
    assert [r[0] for r in rows] == list(COUNTERS)
    assert ["outputsMigrated", "12"] in rows and ["bytesMigrated", "5368709120"] in rows and ["nodesLetGo", "1"] in rows
    assert ["outputsOrphaned", "0"] in rows


def test_cli_ui_that_is_not_spark(unused_http_server: str) -> None:
    result = CliRunner().invoke(main, ["status", "--ui", unused_http_server, "--timeout", "2s"])
    assert result.exit_code == 2 and "a running Spark driver's UI?" in result.output


@pytest.fixture
def unused_http_server() -> object:
    """A 127.0.0.1 HTTP server that answers 404 to everything (like a web server that isn't Spark)."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotSpark(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), NotSpark)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


# ---- decom status --ui: auth, CA bundle, redirects (a real server on 127.0.0.1) ------------------

PASSWORD = "pw-Ui-7f31c"
BASIC_USER = "uiadmin-2d9e"
SIMPLE_USER = "carol-5a0b1"
TOKEN = base64.b64encode(f"{BASIC_USER}:{PASSWORD}".encode()).decode()
METRICS = {"gauges": {GAUGE + "executorsExcluded": {"value": 2}}}


class FakeUI:
    """A Spark UI on 127.0.0.1 that records each request (path, Authorization). ``/proxy/app/...`` redirects,
    as the RM's web proxy does, to ``redirect_to`` (this server's own /metrics/json/ unless set)."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[tuple[str, str | None]] = []
        self.redirect_to: str | None = None
        self.status = 200
        ui = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                ui.seen.append((self.path, self.headers.get("Authorization")))
                if self.path.startswith("/proxy/app/"):
                    self.send_response(302)
                    self.send_header("Location", ui.redirect_to or "/metrics/json/")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(METRICS if ui.status == 200 else {"echo": str(self.headers)}).encode()
                self.send_response(ui.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def ui() -> Iterator[FakeUI]:
    server = FakeUI()
    yield server
    server.stop()


def status(*args: str) -> tuple[int, str, str]:
    with capture_logs() as logs:
        result = CliRunner().invoke(main, ["status", *args, "--timeout", "2s"])
    return result.exit_code, result.output, logs.getvalue()


def assert_clean(*texts: str) -> None:
    for text in texts:
        for secret in (PASSWORD, TOKEN, BASIC_USER, SIMPLE_USER):
            assert secret not in text, f"{secret!r} leaked: {text[:600]}"


def test_ui_user_info_becomes_basic_auth_and_is_never_shown(ui: FakeUI) -> None:
    code, out, logs = status("--ui", f"http://{BASIC_USER}:{PASSWORD}@127.0.0.1:{ui.port}/", "--auth", "none")
    assert code == 0, out
    assert "executorsExcluded" in out and f"source: http://127.0.0.1:{ui.port}\n" in out
    assert ui.seen == [("/metrics/json/", f"Basic {TOKEN}")]
    assert "HTTP Request: GET" in logs
    assert_clean(out, logs)


def test_ui_simple_auth_sends_user_name_and_keeps_it_out_of_output(ui: FakeUI) -> None:
    code, out, logs = status("--ui", f"http://127.0.0.1:{ui.port}", "--user", SIMPLE_USER)
    assert code == 0, out
    assert ui.seen == [(f"/metrics/json/?user.name={SIMPLE_USER}", None)]
    assert_clean(out, logs)
    code, _, _ = status("--ui", f"http://127.0.0.1:{ui.port}", "--auth", "none")
    assert code == 0 and ui.seen[-1] == ("/metrics/json/", None)


def test_ui_follows_the_proxys_redirect(ui: FakeUI) -> None:
    code, out, logs = status("--ui", f"http://{BASIC_USER}:{PASSWORD}@127.0.0.1:{ui.port}/proxy/app/",
                             "--auth", "none", "--json")
    assert code == 0, out
    assert json.loads(out)["executorsExcluded"] == 2
    # Same origin: the credentials go along.
    assert ui.seen == [("/proxy/app/metrics/json/", f"Basic {TOKEN}"), ("/metrics/json/", f"Basic {TOKEN}")]
    assert_clean(out, logs)


def test_ui_redirect_to_another_origin_does_not_carry_the_credentials(ui: FakeUI) -> None:
    driver = FakeUI()
    try:
        ui.redirect_to = f"http://127.0.0.1:{driver.port}/metrics/json/"
        code, out, logs = status("--ui", f"http://{BASIC_USER}:{PASSWORD}@127.0.0.1:{ui.port}/proxy/app",
                                 "--auth", "none")
    finally:
        driver.stop()
    assert code == 0, out
    assert ui.seen == [("/proxy/app/metrics/json/", f"Basic {TOKEN}")]
    assert driver.seen == [("/metrics/json/", None)]
    assert_clean(out, logs)


@pytest.mark.parametrize("code_", [401, 403, 500])
def test_ui_errors_show_neither_user_info_nor_user_name(ui: FakeUI, code_: int) -> None:
    ui.status = code_
    code, out, logs = status("--ui", f"http://{BASIC_USER}:{PASSWORD}@127.0.0.1:{ui.port}", "--user", SIMPLE_USER)
    assert code == 2 and f"HTTP {code_}" in out, out
    assert ("wants credentials" in out) == (code_ != 500)
    assert_clean(out, logs)


def test_ui_unreachable_with_credentials_says_so_without_them() -> None:
    port = closed_port()
    code, out, logs = status("--ui", f"http://{BASIC_USER}:{PASSWORD}@127.0.0.1:{port}", "--user", SIMPLE_USER)
    assert code == 2 and f"cannot reach the Spark UI at http://127.0.0.1:{port}: connection refused" in out, out
    assert_clean(out, logs)


def test_ui_ca_bundle_is_used_and_a_bad_one_is_a_clear_error(ui: FakeUI, tmp_path: Path) -> None:
    code, out, _ = status("--ui", f"https://127.0.0.1:{ui.port}", "--ca-bundle", str(tmp_path / "nope.pem"))
    assert code == 2 and "--ca-bundle=" in out and "is not a readable PEM CA bundle" in out, out
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("not a certificate\n")
    code, out, _ = status("--ui", f"https://127.0.0.1:{ui.port}", "--ca-bundle", str(not_pem))
    assert code == 2 and "is not a readable PEM CA bundle" in out, out
    assert ui.seen == []


def test_ui_over_https_trusts_the_ca_bundle(tmp_path: Path) -> None:
    """A Spark UI with a self-signed certificate: refused without --ca-bundle (the message names the fix),
    read with it."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("no openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = FakeUI(tls=context)
    try:
        code, out, _ = status("--ui", f"https://127.0.0.1:{server.port}")
        assert code == 2 and "TLS certificate is not trusted" in out and "--ca-bundle" in out, out
        code, out, _ = status("--ui", f"https://127.0.0.1:{server.port}", "--ca-bundle", str(cert))
        assert code == 0 and "executorsExcluded" in out, out
    finally:
        server.stop()
