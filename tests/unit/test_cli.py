"""The decom command line, with the RM client on httpx.MockTransport (and one closed local port)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from functools import partial
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

import decom
import decom._cli.main as cli
import decom._cli.options as cli_options
import decom._driver.api
from decom import ShimNotFoundError
from decom._yarn import ResourceManagerClient
from tests.fake_rm import FakeRM


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRM:
    rm = FakeRM(metrics=False)
    rm.set("h1:8041", "RUNNING", numContainers=3, rack="/r1")
    rm.set("h2:8041", "DECOMMISSIONING", numContainers=1, rack="/r1")
    rm.set("h3:8041", "LOST", numContainers=0, rack="/r1")
    monkeypatch.setattr(cli_options, "ResourceManagerClient",
                        partial(ResourceManagerClient, transport=rm.transport()))
    return rm


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_nodes_table(fake: FakeRM) -> None:
    result = CliRunner().invoke(cli.main, ["nodes", "--rm", "rm:8088"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["ID", "HOST", "STATE", "CONTAINERS", "RACK", "LAST", "HEALTH"]
    assert lines[1].split()[:4] == ["h2:8041", "h2", "DECOMMISSIONING", "1"]
    assert [line.split()[2] for line in lines[1:4]] == ["DECOMMISSIONING", "LOST", "RUNNING"]
    assert "ago" in lines[1] and "3 node(s)" in result.output
    assert fake.requests[0].url.host == "rm"


def test_nodes_json_and_state_filter(fake: FakeRM) -> None:
    result = CliRunner().invoke(cli.main, ["nodes", "--rm", "http://rm:8088", "--json",
                                           "--state", "lost", "--state", "DECOMMISSIONING,LOST"])
    assert result.exit_code == 0, result.output
    assert fake.requests[0].url.params["states"] == "LOST,DECOMMISSIONING"
    data = json.loads(result.output)
    assert {d["node_id"]: d["state"] for d in data} == {"h2:8041": "DECOMMISSIONING",
                                                         "h3:8041": "LOST"}
    assert data[0]["num_containers"] == 1


def test_nodes_without_rm_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    result = CliRunner().invoke(cli.main, ["nodes"])
    assert result.exit_code == 2
    assert "no ResourceManager given" in result.output and "--rm" in result.output


def test_nodes_rm_down_exits_2() -> None:
    port = closed_port()
    result = CliRunner().invoke(cli.main, ["nodes", "--rm", f"127.0.0.1:{port}",
                                           "--timeout", "2s"])
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}: connection refused" in result.output


def test_rm_from_hadoop_conf_dir(fake: FakeRM, tmp_path: Any,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "yarn-site.xml").write_text(
        "<configuration><property><name>yarn.resourcemanager.webapp.address</name>"
        "<value>siterm:8088</value></property></configuration>")
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    result = CliRunner().invoke(cli.main, ["nodes"])
    assert result.exit_code == 0, result.output
    assert fake.requests[0].url.host == "siterm"


def test_watch_prints_changes(fake: FakeRM) -> None:
    def step(req: httpx.Request) -> None:
        polls = sum(1 for r in fake.requests if "states" in r.url.params)
        if polls == 2:
            fake.set("h1:8041", "DECOMMISSIONING", numContainers=3)
        if polls == 3:
            fake.set("h2:8041", "DECOMMISSIONED", numContainers=1)

    fake.on_request = step
    result = CliRunner().invoke(cli.main, ["watch", "--rm", "rm:8088", "--interval", "10ms",
                                           "--count", "4"])
    assert result.exit_code == 0, result.output
    changes = [line.split()[1:] for line in result.stdout.splitlines()]
    assert changes == [["h2", "-", "->", "DECOMMISSIONING"], ["h3", "-", "->", "LOST"],
                       ["h1", "RUNNING", "->", "DECOMMISSIONING"],
                       ["h2", "DECOMMISSIONING", "->", "DECOMMISSIONED"]]


def test_watch_rm_down_exits_2() -> None:
    result = CliRunner().invoke(cli.main, ["watch", "--rm", f"127.0.0.1:{closed_port()}",
                                           "--count", "1"])
    assert result.exit_code == 2 and "connection refused" in result.output


def test_jar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(decom._driver.api, "jar_path", lambda: "/x/decom-shim.jar")
    result = CliRunner().invoke(cli.main, ["jar"])
    assert result.exit_code == 0 and result.output == "/x/decom-shim.jar\n"

    def missing() -> str:
        raise ShimNotFoundError("no jar here")

    monkeypatch.setattr(decom._driver.api, "jar_path", missing)
    result = CliRunner().invoke(cli.main, ["jar"])
    assert result.exit_code == 1 and "no jar here" in result.output


def test_python_m_decom_jar() -> None:
    try:
        expected = decom.jar_path()
    except ShimNotFoundError:
        pytest.skip("no shim jar built in this checkout")
    out = subprocess.run([sys.executable, "-m", "decom", "jar"], capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == expected
