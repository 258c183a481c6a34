"""`decom status`: figures from Spark's /metrics/json and from the event log; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from decom._cli.main import main
from decom._driver.status import StatusError, counters_from_event_log, counters_from_metrics

GAUGE = "app-1.driver.plugin.io.decom.DecomPlugin."


def test_metrics_document_gives_the_decom_gauges_only() -> None:
    doc = {"gauges": {GAUGE + "executorsExcluded": {"value": 3}, GAUGE + "fetchFailures": {"value": 0},
                      "app-1.driver.BlockManager.memory.maxMem_MB": {"value": 434}}}
    assert counters_from_metrics(doc, "ui") == {"source": "ui", "executorsExcluded": 3, "fetchFailures": 0}


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
        "not json",
    ]) + "\n")
    figures = counters_from_event_log(str(log))
    assert figures["events"] == 5 and figures["span_s"] == 21.0
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
