"""The shim's wire contract, Python side: the checked-in samples in tests/contract/ (which the Scala
WireContractSuite must render exactly) parse into decom's typed report, and the controller's report
shows them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from decom import Controller, DecomConfig
from decom._driver.config import JVM_KEYS, KEYS
from decom._driver.shim import Action, ActionResult, NodeLetGo, ShimProtocolError, ShimReport
from tests.support import RecordingShim

CONTRACT = Path(__file__).resolve().parent.parent / "contract"


def sample(name: str) -> dict[str, object]:
    data = json.loads((CONTRACT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_report_sample_parses_into_typed_fields() -> None:
    report = ShimReport.parse(json.dumps(sample("report.json")))
    assert report.version == "contract"
    assert (report.retry_policy.mode, report.retry_policy.user_limit, report.retry_policy.spark_limit) == (
        "plugin", 4, 20)
    assert (report.fetch_failures, report.fetch_failures_exempt) == (3, 2)
    node = report.node("198.18.0.11")
    assert node is not None and node.excluded and node.decommissioned_at == 5000
    assert node.executors_excluded == ("1", "2") and node.executors_released == ("2",)
    assert (node.outputs_unregistered, node.shuffles, node.exempted_stage_attempts) == (7, (0, 2), ("3.0",))
    assert (node.outputs_migrated, node.outputs_orphaned, node.bytes_migrated, node.let_go_at) == (1, 1, 2048, 6000)
    executor = report.node("executor:7")
    assert executor is not None and executor.kind == "executor" and not executor.excluded
    assert (executor.outputs_migrated, executor.bytes_migrated, executor.let_go_at) == (0, 0, None)
    assert executor.unexclude_reason == Action.UNEXCLUDE.reason, "the reason the controller sends comes back"
    assert [(s.stage, s.counted_attempts, s.exempt_attempts, s.aborted) for s in report.stages] == [
        (3, (1,), (0,), False)]
    assert [(e.id, e.nm_port, e.alive) for e in report.executors] == [("1", 8041, False), ("3", None, True)]
    assert report.events[0]["action"] == "excluded"


@pytest.mark.parametrize("action", list(Action))
def test_the_action_samples_parse(action: Action) -> None:
    result = ActionResult.parse(action, json.dumps(sample("actions.json")[action.method]))
    assert result.action is action and result.targets
    assert result.to_json() == sample("actions.json")[action.method], "the event log keeps the shim's form"


def test_a_report_from_another_build_is_a_typed_error_that_says_what_to_do() -> None:
    broken = sample("report.json")
    broken["fetchFailures"] = 3  # an older shim's shape
    with pytest.raises(ShimProtocolError, match="different builds.*python -m decom jar"):
        ShimReport.parse(json.dumps(broken))
    node = dict(sample("report.json")["nodes"][0])  # type: ignore[index]
    node["outputsUnregistered"] = True
    with pytest.raises(ShimProtocolError, match="outputsUnregistered=True"):
        ShimReport.parse({**sample("report.json"), "nodes": [node]})
    older = {k: v for k, v in sample("report.json")["nodes"][0].items()  # type: ignore[index]
             if k not in ("outputsMigrated", "outputsOrphaned", "bytesMigrated", "letGoAt")}  # a jar before issue 14
    with pytest.raises(ShimProtocolError, match="outputsMigrated=None where this decom package expects int"):
        ShimReport.parse({**sample("report.json"), "nodes": [older]})


def test_the_conf_keys_both_sides_read_agree() -> None:
    jvm = sample("config_keys.json")["jvm"]
    assert isinstance(jvm, list)
    python = {k.key for k in KEYS}
    # spark.decom.* keys only the shim reads: the Python config must know them (not flag them as typos).
    assert sorted(k for k in jvm if k.startswith("spark.decom.") and k not in python) == sorted(JVM_KEYS)
    # Keys both sides read (the exemption switch, decom on/off): same name on both.
    assert python & set(jvm) == {"spark.stage.attempt.ignoreOnDecommissionFetchFailure", "spark.decom.enabled"}
    assert not DecomConfig.resolve({k: "1" for k in JVM_KEYS}).errors


class SampleShim(RecordingShim):
    """Answers the report sample, as a real shim that had acted would."""

    def report(self) -> ShimReport:
        return ShimReport.parse(json.dumps(sample("report.json")))

    def exclude(self, hosts: Sequence[str], executors: Sequence[str], timeout_s: float,
                reason: str) -> ActionResult:
        super().exclude(hosts, executors, timeout_s, reason)
        return ActionResult.parse(Action.EXCLUDE, json.dumps(sample("actions.json")["exclude"]))


def test_the_controller_report_shows_the_typed_shim_report() -> None:
    c = Controller(SampleShim(), DecomConfig())
    c.decommissioning(hosts=["198.18.0.11"])
    node = c.report()["nodes"]["198.18.0.11"]
    assert node["excluded"] is True and node["executors_released"] == ["2"] and node["shuffles"] == [0, 2]
    assert (node["outputs_migrated"], node["outputs_orphaned"], node["bytes_migrated"]) == (1, 1, 2048)
    assert node["let_go_at"] == 6.0, "epoch seconds, like the report's other times"
    assert c.report()["fetch_failures"] == {"total": 3, "exempt": 2}
    assert c.report()["retry_policy"]["userLimit"] == 4
    assert c.report()["shim"]["events"][0]["action"] == "excluded", "the shim's own JSON stays in the report"


def test_the_nodes_let_go_sample_parses() -> None:
    got = NodeLetGo.parse_all(json.dumps(sample("let_go.json")))
    assert got == (NodeLetGo("198.18.0.11", 7000, outputs_migrated=2, outputs_orphaned=1, outputs_unregistered=1,
                             bytes_migrated=5 * 1024**3),)
    assert got[0].to_json() == {k: v for k, v in sample("let_go.json")["nodes"][0].items()  # type: ignore[index]
                                if k != "key"}, "the event log keeps the shim's form"
    with pytest.raises(ShimProtocolError, match="nodes let go has at='7000'"):
        NodeLetGo.parse_all({"nodes": [{**got[0].to_json(), "key": "n1", "at": "7000"}]})


def test_the_timeouts_sample_parses() -> None:
    from decom._driver.shim import NodeTimeout

    got = NodeTimeout.parse_all(json.dumps(sample("timeouts.json")))
    assert got == (NodeTimeout("198.18.0.12:45454", "198.18.0.12", 15),
                   NodeTimeout("198.18.0.13:45454", "198.18.0.13", None))
