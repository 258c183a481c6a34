"""Bad input everywhere a user types: every config key with a wrong type or value, unknown keys, broken
YAML, an RM URL that is not an RM, and the CLI's options. Each must give a clear message that names
what to fix; the driver keeps the default and runs on (strict=True raises); the CLI exits 2 without a
traceback and without sending a request or taking an action.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import decom._cli.main as cli
from decom import ConfigError, Controller, DecomConfig, ResourceManagerError
from decom._driver.config import KEYS
from decom._driver.poller import NodePoller
from decom._yarn import ResourceManagerClient
from tests.support import RecordingShim

DEFAULTS = DecomConfig()
ATTR = {k.key: k.attr for k in KEYS}

#: key -> wrong values (a wrong type, or a value the key can't take)
BAD: dict[str, list[object]] = {
    "spark.blacklist.decommissioning.enabled": ["maybe", "", "2", ["true"]],
    "spark.blacklist.decommissioning.timeout": ["forever", "-5s", "0", "1 hour", True, ["1h"]],
    "spark.resourceManager.cleanupExpiredHost": ["nah", "tru"],
    "spark.stage.attempt.ignoreOnDecommissionFetchFailure": ["perhaps", 2],
    "spark.decommissioning.timeout.threshold": ["soon", "-1", "20 s s"],
    "spark.decom.enabled": ["enabled", {"a": 1}],
    "spark.decom.yarn.rm.addresses": ["ftp://rm:21", "rm:notaport", "http://", "http://:8088"],
    "spark.decom.poll.interval": ["often", "0", "-2s", "1 sec please"],
    "spark.decom.poll.timeout": ["0", "-1s", "x", "0ms"],
    "spark.decom.yarn.auth": ["ldap", "", "kerb"],
    "spark.decom.yarn.user": ["a b", "bad\nname", ["alice", "bob"]],
    "spark.decom.yarn.tls.caBundle": ["/nonexistent/ca.pem", "/"],
    "spark.decom.yarn.rpcDeadline": ["sometimes", 2],
    "spark.decom.eventLog": ["/nonexistent/dir/decom.jsonl", "/", ["a", "b"]],
    "spark.decom.config": ["/nonexistent/decom.yaml", "/"],
    "spark.decom.migrationMargin": ["soon", "0", "-5s"],
    "spark.decom.agent.url": ["agent:8788", "ftp://agent:21", "http://agent", "http://:8788", "http://a:port"],
    "spark.decom.agent.secretFile": ["/nonexistent/agent.secret", "/"],
}
CASES = [(k, v) for k, vs in BAD.items() for v in vs]


def test_every_key_has_bad_input_cases() -> None:
    assert set(BAD) == set(ATTR), f"keys without bad-input cases: {sorted(set(ATTR) - set(BAD))}"


@pytest.mark.parametrize("key,value", CASES, ids=[f"{k}={v!r}" for k, v in CASES])
def test_wrong_value_is_named_keeps_the_default_and_strict_raises(key: str, value: object) -> None:
    c = DecomConfig.resolve({key: value} if isinstance(value, str) else {}, None if isinstance(value, str)
                            else {ATTR[key]: value})
    assert len(c.errors) == 1, c.errors
    assert key in c.errors[0], f"the message does not name the key: {c.errors[0]}"
    if key != "spark.decom.config":
        assert getattr(c, ATTR[key]) == getattr(DEFAULTS, ATTR[key]), "the bad value was used"
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        DecomConfig.resolve({key: str(value)} if isinstance(value, str) else {}, None if isinstance(value, str)
                            else {ATTR[key]: value}, strict=True)


@pytest.mark.parametrize("key,value", [(k, v) for k, v in CASES if k != "spark.decom.config"])
def test_wrong_values_in_yaml_are_named_too(tmp_path: Path, key: str, value: object) -> None:
    import yaml

    f = tmp_path / "decom.yaml"
    f.write_text(yaml.safe_dump({key: value}))
    c = DecomConfig.resolve({"spark.decom.config": str(f)})
    assert len(c.errors) >= 1 and key in " ".join(c.errors), c.errors
    assert str(f) in " ".join(c.errors), "the message does not say the value came from the YAML file"
    assert getattr(c, ATTR[key]) == getattr(DEFAULTS, ATTR[key])


@pytest.mark.parametrize("key,closest", [
    ("spark.decom.poll.intervall", "spark.decom.poll.interval"),
    ("spark.decom.pollInterval", "spark.decom.poll.interval"),
    ("spark.decom.yarn.rm.address", "spark.decom.yarn.rm.addresses"),
    ("spark.decom.eventlog", "spark.decom.eventLog"),
    ("spark.decom.yarn.tls.cabundle", "spark.decom.yarn.tls.caBundle"),
    ("spark.blacklist.decommissioning.timeuot", "spark.blacklist.decommissioning.timeout"),
    ("spark.resourceManager.cleanupExpiredHosts", "spark.resourceManager.cleanupExpiredHost"),
    ("spark.decommissioning.timeout.treshold", "spark.decommissioning.timeout.threshold"),
])
def test_unknown_key_names_the_closest_valid_one(key: str, closest: str) -> None:
    c = DecomConfig.resolve({key: "1"})
    assert c.errors == (f"unknown decom key {key!r} in the Spark conf: did you mean {closest!r}?",)
    assert c == DEFAULTS


def test_other_spark_keys_are_not_ours_to_judge() -> None:
    conf = {"spark.decommission.enabled": "true", "spark.executor.memory": "4g",
            "spark.resourceManager.somethingElseEntirely": "x", "spark.blacklist.enabled": "true"}
    assert DecomConfig.resolve(conf).errors == ()


def test_unknown_enable_option_and_yaml_key(tmp_path: Path) -> None:
    f = tmp_path / "decom.yaml"
    f.write_text("spark:\n  decom:\n    poll:\n      intervl: 2s\n")
    c = DecomConfig.resolve({"spark.decom.config": str(f)}, {"exclude_timout": "1h"})
    text = " | ".join(c.errors)
    assert "'spark.decom.poll.intervl' in YAML file" in text and "did you mean 'spark.decom.poll.interval'" in text
    assert "'exclude_timout': did you mean 'exclude_timeout'" in text


@pytest.mark.parametrize("content,fragment", [
    (b"[unclosed", "is not valid YAML"),
    (b"spark.decom.poll.interval: 2s\n\tbad: tab\n", "is not valid YAML"),
    (b"- a\n- b\n", "must be a mapping"),
    (b"just a string", "must be a mapping"),
    (b"spark.decom.poll.interval: \xff\xfe2s\n", "is not UTF-8"),
])
def test_broken_yaml_is_named_and_the_rest_runs_on_defaults(tmp_path: Path, content: bytes, fragment: str) -> None:
    f = tmp_path / "decom.yaml"
    f.write_bytes(content)
    c = DecomConfig.resolve({"spark.decom.config": str(f), "spark.decom.poll.interval": "3s"})
    assert len(c.errors) == 1 and fragment in c.errors[0] and str(f) in c.errors[0], c.errors
    assert c.poll_interval == 3, "the Spark conf still applies"
    with pytest.raises(ConfigError, match=fragment):
        DecomConfig.resolve({"spark.decom.config": str(f)}, strict=True)


def test_an_unreadable_yaml_file(tmp_path: Path) -> None:
    c = DecomConfig.resolve({"spark.decom.config": str(tmp_path)})  # a directory
    assert c.errors == (f"spark.decom.config: cannot read {str(tmp_path)!r}: Is a directory",)


def test_config_problems_are_logged_once_by_the_controller_and_nothing_is_done(
        caplog: pytest.LogCaptureFixture) -> None:
    shim = RecordingShim()
    with caplog.at_level(logging.ERROR, logger="decom"):
        Controller(shim, DecomConfig.resolve({"spark.decom.poll.interval": "often",
                                              "spark.decom.pol.interval": "2s"}))
    problems = [r.getMessage() for r in caplog.records if "configuration problem" in r.getMessage()]
    assert len(problems) == 2 and "often" in problems[0] and "did you mean" in problems[1]
    assert shim.calls == [], "a configuration problem made the controller act"


# ---- an RM URL that is not an RM -----------------------------------------------------------------


class _NotAnRM(BaseHTTPRequestHandler):
    """A web server that is not a ResourceManager: HTML for everything (nginx, a NodeManager UI...)."""

    requests = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        type(self).requests += 1
        if self.path.startswith("/json"):
            body, ctype = b'{"status": "ok", "nodes": 3}', "application/json"
        else:
            body, ctype = b"<html><body><h1>Welcome to nginx!</h1></body></html>", "text/html"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_GET  # noqa: N815


@pytest.fixture
def not_an_rm() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotAnRM)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    _NotAnRM.requests = 0
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("path", ["", "/json"])
def test_a_web_server_that_is_not_an_rm_is_named_as_such(not_an_rm: str, path: str) -> None:
    with ResourceManagerClient([not_an_rm + path], timeout=2) as client:
        with pytest.raises(ResourceManagerError, match="is not a YARN ResourceManager reply") as e:
            client.nodes()
    assert "spark.decom.yarn.rm.addresses points at the RM web address" in str(e.value)


def test_the_poller_on_a_non_rm_warns_once_and_the_controller_does_nothing(
        not_an_rm: str, caplog: pytest.LogCaptureFixture) -> None:
    shim = RecordingShim()
    controller = Controller(shim, DecomConfig())
    poller = NodePoller(ResourceManagerClient([not_an_rm], timeout=2), 0.05, controller.on_node_states,
                        max_backoff=0.1, owns_client=True)
    with caplog.at_level(logging.WARNING, logger="decom"):
        poller.start()
        deadline = 50
        while poller.status()["errors"] < 5 and deadline:
            threading.Event().wait(0.1)
            deadline -= 1
        poller.stop()
    assert poller.status()["errors"] >= 5
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is not a YARN ResourceManager reply" in warnings[0], warnings
    assert shim.calls == [] and controller.report()["nodes"] == {}


# ---- the CLI ---------------------------------------------------------------------------------------


CLI_BAD = [
    (["nodes", "--rm", "{rm}", "--timeout", "soon"], "Invalid value for --timeout", False),
    (["nodes", "--rm", "{rm}", "--timeout", "0"], "must be more than 0", False),
    (["nodes", "--rm", "{rm}", "--timeout", "-1s"], "must not be negative", False),
    (["nodes", "--rm", "{rm}", "--auth", "ldap"], "'ldap' is not one of 'simple', 'kerberos', 'none'", False),
    (["nodes", "--rm", "{rm}", "--state", "BOGUS"], "unknown node state BOGUS", False),
    (["nodes", "--rm", "{rm}", "--state", "running,decomissioning"], "unknown node state DECOMISSIONING", False),
    (["nodes", "--rm", "{rm}", "--ca-bundle", "/nonexistent/ca.pem"], "is not a readable PEM CA bundle", False),
    (["nodes", "--rm", "ftp://rm:21"], "no usable ResourceManager address in 'ftp://rm:21'", False),
    (["nodes", "--rm", "rm:notaport"], "no usable ResourceManager address in 'rm:notaport'", False),
    (["nodes", "--rm", "http://"], "no usable ResourceManager address", False),
    (["nodes", "--rm", "{rm}", "--bogus"], "No such option '--bogus'", False),
    (["watch", "--rm", "{rm}", "--interval", "x"], "Invalid value for --interval", False),
    (["watch", "--rm", "{rm}", "--count", "0"], "0 is not in the range x>=1", False),
    (["watch", "--rm", "{rm}", "--count", "many"], "'many' is not a valid integer", False),
    (["nodes", "--rm", "{rm}"], "is not a YARN ResourceManager reply", True),
    (["nodes", "--rm", "{rm}", "--json", "--state", "LOST"], "is not a YARN ResourceManager reply", True),
    (["watch", "--rm", "{rm}", "--count", "1"], "is not a YARN ResourceManager reply", True),
]


@pytest.mark.parametrize("argv,message,asks", CLI_BAD, ids=[" ".join(a) for a, _, _ in CLI_BAD])
def test_cli_bad_input_exits_2_with_a_clear_message(not_an_rm: str, argv: list[str], message: str,
                                                    asks: bool) -> None:
    result = CliRunner().invoke(cli.main, [a.replace("{rm}", not_an_rm) for a in argv])
    assert result.exit_code == 2, result.output
    assert message in result.output, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, (SystemExit, type(None)))
    assert "HOST" not in result.stdout and "->" not in result.stdout, "a result was printed"
    # Option errors are caught before any request; the non-RM cases ask it once (what else?) and stop.
    assert (_NotAnRM.requests > 0) == asks
