"""The node lifecycle in the controller: which shim actions each transition causes, and how often.

The shim here is tests.support.RecordingShim: what the real shim does with these calls is shown by the
local-cluster tests in tests/spark."""

from __future__ import annotations

import time

import pytest

from decom import Controller, DecomConfig, DecomError, NodeStatus
from tests.support import RecordingShim


def make(**options) -> tuple[Controller, RecordingShim]:
    shim = RecordingShim()
    return Controller(shim, DecomConfig.resolve({}, options)), shim


def test_full_lifecycle_issues_each_action_once():
    c, shim = make()
    for state in ["RUNNING", "DECOMMISSIONING", "DECOMMISSIONING", "DECOMMISSIONED",
                  "DECOMMISSIONED", "RUNNING", "RUNNING"]:
        c.on_node_states([NodeStatus("n1", state)])
    assert [x[0] for x in shim.calls] == ["exclude", "decommissioned", "unexclude"]
    assert shim.calls[0] == ("exclude", ["n1"], [], 3600.0)
    assert [t["state"] for t in c.report()["nodes"]["n1"]["transitions"]] == [
        "DECOMMISSIONING", "DECOMMISSIONED", "RUNNING"]


def test_nodes_lost_together_are_cleaned_in_one_call():
    c, shim = make()
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED"), NodeStatus("n2", "LOST"),
                      NodeStatus("n3", "SHUTDOWN"), NodeStatus("n4", "RUNNING")])
    assert shim.calls == [("decommissioned", ["n1", "n2", "n3"], [], True)]


def test_out_of_order_answer_does_not_undo_gone():
    c, shim = make()
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    assert [x[0] for x in shim.calls] == ["decommissioned"]


def test_unknown_and_unhealthy_states_cause_no_action():
    c, shim = make()
    c.on_node_states([NodeStatus("n1", "UNHEALTHY"), NodeStatus("n2", "FROBNICATED"),
                      NodeStatus("n3", "NEW")])
    assert shim.calls == [] and c.report()["nodes"] == {}


def test_deadline_inside_threshold_is_handled_as_gone():
    c, shim = make(deadline_threshold="20s")
    c.decommissioning(hosts=["spot-1"], deadline=time.time() + 3)  # inside the 5 s migration margin too
    c.decommissioning(hosts=["calm-1"], deadline=time.time() + 600)
    assert shim.calls == [("decommissioned", ["spot-1"], [], True),
                          ("exclude", ["calm-1"], [], 3600.0)]


def test_inside_the_threshold_a_node_whose_executors_cannot_move_data_is_gone_right_after_its_exclusion():
    c, shim = make(deadline_threshold="20s")
    c.decommissioning(hosts=["spot-1"], deadline=time.time() + 15)
    assert [x[0] for x in shim.calls] == ["exclude", "decommissioned"]
    assert [t["state"] for t in c.report()["nodes"]["spot-1"]["transitions"]] == ["DECOMMISSIONING", "DECOMMISSIONED"]
    c.stop()


def test_inside_the_threshold_a_node_whose_executors_move_data_is_gone_only_at_the_margin():
    c, shim = make(deadline_threshold="20s", migration_margin="14s")
    shim.moving = {"spot-1"}
    c.decommissioning(hosts=["spot-1"], deadline=time.time() + 15)
    assert [x[0] for x in shim.calls] == ["exclude"], "dropped before the executors could move their data"
    assert c.report()["nodes"]["spot-1"]["state"] == "DECOMMISSIONING"
    assert wait_for(lambda: [x[0] for x in shim.calls] == ["exclude", "decommissioned"], 5.0)
    assert c.report()["nodes"]["spot-1"]["state"] == "DECOMMISSIONED"
    c.stop()


@pytest.mark.parametrize("option,expected", [
    ({"exclude_enabled": False}, ["decommissioned"]),
    ({"cleanup_enabled": False}, ["exclude", "decommissioned-no-cleanup"]),
])
def test_emr_switches(option, expected):
    c, shim = make(**option)
    c.decommissioning(executors=["3"])
    c.decommissioned(executors=["3"])
    names = [x[0] if x[0] != "decommissioned" or x[3] else "decommissioned-no-cleanup"
             for x in shim.calls]
    assert names == expected


def test_exemption_switch_reaches_the_shim():
    _, shim = make(exempt_enabled=False)
    assert shim.exempt is False


def test_by_hand_targets_executors_and_hosts():
    c, shim = make()
    c.decommissioned(hosts=["h1"], executors=["7"])
    assert shim.calls == [("decommissioned", ["h1"], ["7"], True)]
    with pytest.raises(DecomError, match="take lists"):
        c.decommissioned(hosts="h1")


def test_poller_path_survives_shim_failures(caplog):
    shim = RecordingShim(fail=True)
    c = Controller(shim, DecomConfig())
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])  # must not raise
    assert "acting on node states failed" in caplog.text
    with pytest.raises(DecomError, match="failed in the JVM shim"):
        c.decommissioned(hosts=["n2"])
    c.stop()


def test_stopped_controller_refuses_by_hand_calls_and_ignores_the_rm():
    c, shim = make()
    c.stop()
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])
    assert shim.calls == []
    with pytest.raises(DecomError, match="stopped"):
        c.decommissioned(hosts=["n1"])


def test_event_log_gets_one_json_line_per_transition_and_action(tmp_path):
    import json

    log = tmp_path / "events.jsonl"
    c, _ = make(event_log=str(log))
    c.decommissioning(hosts=["n1"])
    c.decommissioned(hosts=["n1"])
    lines = [json.loads(x) for x in log.read_text().splitlines()]
    assert [x["action"] for x in lines] == ["transition", "exclude", "transition", "decommissioned"]


def test_deadline_approaching_later_turns_decommissioning_into_gone():
    c, shim = make(deadline_threshold="20s")
    c.decommissioning(hosts=["n1"], deadline=time.time() + 20.6)
    assert [x[0] for x in shim.calls] == ["exclude"]
    end = time.monotonic() + 5
    while len(shim.calls) < 2 and time.monotonic() < end:
        time.sleep(0.05)
    assert [x[0] for x in shim.calls] == ["exclude", "decommissioned"]
    assert c.report()["nodes"]["n1"]["state"] == "DECOMMISSIONED"


def test_recommission_cancels_the_deadline_timer():
    c, shim = make(deadline_threshold="20s")
    c.decommissioning(hosts=["n1"], deadline=time.time() + 20.5)
    c.recommissioned(hosts=["n1"])
    time.sleep(1.0)
    assert [x[0] for x in shim.calls] == ["exclude", "unexclude"]


def wait_for(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    return cond()


def test_a_failed_action_is_retried_without_a_new_rm_change(monkeypatch):
    monkeypatch.setattr("decom._driver.controller.RETRY_FIRST", 0.05)
    shim = RecordingShim(failures=2)
    c = Controller(shim, DecomConfig())
    c._retry_delay = 0.05
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])  # fails; the RM says nothing more
    assert shim.calls == [] and c.report()["pending_actions"] == {"exclude": ["n1"]}
    assert wait_for(lambda: shim.calls), "the failed exclude was never retried"
    assert shim.calls == [("exclude", ["n1"], [], 3600.0)] and shim.attempts == 3  # 1 call + 2 retries
    assert c.report()["pending_actions"] == {}
    assert c._retry_delay == 0.05, "the backoff is not reset after a success"
    c.stop()


def test_a_newer_state_supersedes_a_failed_action():
    shim = RecordingShim(failures=1)
    c = Controller(shim, DecomConfig())
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])  # fails, queued for a retry in 1 s
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])  # works before the retry is due
    assert c.report()["pending_actions"] == {}
    c._retry()  # what the timer does when it fires
    assert [x[0] for x in shim.calls] == ["decommissioned"], "a stale exclude was redone after the node left"
    c.stop()


def test_stop_cancels_retries():
    shim = RecordingShim(fail=True)
    c = Controller(shim, DecomConfig())
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])
    timer = c._retry_timer
    assert timer is not None and timer.is_alive()
    c.stop()
    assert wait_for(lambda: not timer.is_alive(), 2.0) and c.report()["pending_actions"] == {}


# ---- YARN's deadline, read over the RM's RPC ----------------------------------------------------


def test_an_rpc_timeout_inside_the_threshold_handles_the_node_as_gone_at_once():
    from decom._driver.shim import NodeTimeout

    c, shim = make(deadline_threshold="20s")
    c.on_node_states([NodeStatus("198.18.0.12", "DECOMMISSIONING")])  # REST: no deadline
    assert [x[0] for x in shim.calls] == ["exclude"]
    c.on_decommissioning_timeouts([NodeTimeout("198.18.0.12:45454", "198.18.0.12", 15)])
    assert [x[0] for x in shim.calls] == ["exclude", "decommissioned"]
    node = c.report()["nodes"]["198.18.0.12"]
    assert node["state"] == "DECOMMISSIONED" and node["deadline_source"] == "rpc"


def test_an_rpc_timeout_inside_the_threshold_gives_moving_executors_until_the_margin():
    from decom._driver.shim import NodeTimeout

    c, shim = make(deadline_threshold="20s", migration_margin="14.5s")
    shim.moving = {"198.18.0.12"}
    c.on_node_states([NodeStatus("198.18.0.12", "DECOMMISSIONING")])  # REST: no deadline; executors told
    c.on_decommissioning_timeouts([NodeTimeout("198.18.0.12:45454", "198.18.0.12", 15)])
    assert [x[0] for x in shim.calls] == ["exclude"]
    assert wait_for(lambda: [x[0] for x in shim.calls] == ["exclude", "decommissioned"], 5.0)
    c.stop()


def test_an_rpc_deadline_counts_from_first_seen_and_survives_rest_updates():
    from decom._driver.shim import NodeTimeout

    c, shim = make(deadline_threshold="20s")
    c.on_node_states([NodeStatus("n1:8041", "DECOMMISSIONING")])
    since = c.report()["nodes"]["n1:8041"]["transitions"][0]["at"]
    c.on_decommissioning_timeouts([NodeTimeout("n1:8041", "n1", 600)])
    assert c.report()["nodes"]["n1:8041"]["deadline"] == pytest.approx(since + 600)
    c.on_node_states([NodeStatus("n1:8041", "DECOMMISSIONING")])  # the REST poll says nothing of it
    assert c.report()["nodes"]["n1:8041"]["deadline"] == pytest.approx(since + 600)
    time.sleep(0.05)
    c.on_decommissioning_timeouts([NodeTimeout("n1:8041", "n1", 300)])  # an operator shortened it
    assert c.report()["nodes"]["n1:8041"]["deadline"] == pytest.approx(since + 300), "recomputed from first seen"
    assert [x[0] for x in shim.calls] == ["exclude"]
    c.on_decommissioning_timeouts([NodeTimeout("other:1", "other", 1)])  # a node decom holds nothing on
    assert [x[0] for x in shim.calls] == ["exclude"]
    c.stop()


def test_the_deadline_reader_reads_only_while_a_node_is_decommissioning_and_says_once_when_it_cannot(caplog):
    import logging

    from decom._driver.deadlines import DeadlineReader
    from decom._driver.shim import NodeTimeout

    class Source:
        def __init__(self) -> None:
            self.calls = 0
            self.fail = 2

        def decommissioning_timeouts(self):
            self.calls += 1
            if self.calls <= self.fail:
                raise RuntimeError("java.io.IOException: Failed on local exception: no Kerberos credentials\nat ...")
            return (NodeTimeout("n1:8041", "n1", 15),)

    c, shim = make(deadline_threshold="20s")
    source = Source()
    reader = DeadlineReader(source, c, interval=0.05, idle_check=0.02, retry=0.05)
    c.attach_deadline_reader(reader)
    with caplog.at_level(logging.INFO, logger="decom"):
        reader.start()
        time.sleep(0.2)
        assert source.calls == 0, "asked the RM while no node was decommissioning"
        c.on_node_states([NodeStatus("n1:8041", "DECOMMISSIONING")])
        assert wait_for(lambda: "decommissioned" in [x[0] for x in shim.calls], 5.0)
    warnings = [r.getMessage() for r in caplog.records if "cannot read decommissioning timeouts" in r.getMessage()]
    assert len(warnings) == 1 and "no Kerberos credentials" in warnings[0] and "\n" not in warnings[0]
    assert any("read over the RM's RPC again" in r.getMessage() for r in caplog.records)
    c.stop()
    assert not reader._thread.is_alive()


def test_a_deadline_by_hand_for_a_held_node_is_armed_and_wins_over_rpc():
    from decom._driver.shim import NodeTimeout

    c, shim = make(deadline_threshold="1s")
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])  # the poller: no deadline
    c.decommissioning(hosts=["n1"], deadline=time.time() + 1.5)  # spot notice, by hand
    c.on_decommissioning_timeouts([NodeTimeout("n1:8041", "n1", 3600)])  # YARN's own, later
    assert c.report()["nodes"]["n1"]["deadline_source"] == "rm"
    assert wait_for(lambda: "decommissioned" in [x[0] for x in shim.calls], 3.0), "the hand deadline never fired"
    c.stop()


def test_a_negative_yarn_timeout_means_no_deadline():
    from decom._driver.shim import NodeTimeout

    c, shim = make(deadline_threshold="20s")
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    c.on_decommissioning_timeouts([NodeTimeout("n1:8041", "n1", -1)])
    assert NodeTimeout.parse_all({"nodes": [{"nodeId": "n1:1", "host": "n1", "timeoutSeconds": -1}]})[0].timeout_s \
        is None
    assert [x[0] for x in shim.calls] == ["exclude"] and c.report()["nodes"]["n1"]["deadline"] is None
    c.stop()


# ---- nodes let go: the app holds nothing on a node any more --------------------------------------


def test_a_node_let_go_is_told_once_to_the_hooks_and_the_event_log(tmp_path, caplog):
    import json
    import logging

    from decom import NodeLetGo

    events = tmp_path / "events.jsonl"
    c, shim = make(event_log=str(events))
    heard: list[NodeLetGo] = []
    c.on_node_let_go(heard.append)
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    assert shim.let_go_asks == 1 and heard == [], "asked after the exclusion; nothing let go yet"
    gone = NodeLetGo("n1", 7000, outputs_migrated=3, outputs_orphaned=1, outputs_unregistered=0, bytes_migrated=4096)
    shim.let_go = (gone,)
    with caplog.at_level(logging.INFO, logger="decom"):
        c.on_node_states([])  # a poll without changes
        c.on_node_states([])
    assert heard == [gone]
    lines = [r.getMessage() for r in caplog.records if "node-let-go" in r.getMessage()]
    assert lines == ['decom: node-let-go n1 {"at": 7000, "bytesMigrated": 4096, "outputsMigrated": 3, '
                     '"outputsOrphaned": 1, "outputsUnregistered": 0}']
    logged = [json.loads(x) for x in events.read_text().splitlines()]
    assert [(x["action"], x["target"]) for x in logged] == [("transition", "n1"), ("exclude", "n1"),
                                                           ("node-let-go", "n1")]
    assert logged[-1]["detail"] == gone.to_json() and isinstance(logged[-1]["time"], float)
    asks = shim.let_go_asks
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONED")])  # the shim's list still holds n1
    assert heard == [gone] and shim.let_go_asks == asks, "asked again once nothing awaited"
    c.stop()


def test_a_node_excluded_again_is_told_again_when_let_go_again():
    from decom import NodeLetGo

    c, shim = make()
    heard: list[tuple[str, int]] = []
    c.on_node_let_go(lambda n: heard.append((n.key, n.at)))
    first = NodeLetGo("n1", 7000, 0, 0, 0, 0)
    shim.let_go = (first,)
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    c.on_node_states([NodeStatus("n1", "RUNNING")])
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    c.on_node_states([])  # the shim still lists the earlier let-go: not news
    assert heard == [("n1", 7000)]
    shim.let_go = (NodeLetGo("n1", 9000, 0, 0, 0, 0),)
    c.on_node_states([])
    assert heard == [("n1", 7000), ("n1", 9000)]
    c.stop()


def test_a_failing_hook_is_logged_and_breaks_neither_the_others_nor_the_next_poll(caplog):
    from decom import NodeLetGo

    c, shim = make()

    def broken(node: NodeLetGo) -> None:
        raise ValueError("the cluster agent is down")

    heard: list[str] = []
    c.on_node_let_go(broken)
    c.on_node_let_go(lambda n: heard.append(n.key))
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING"), NodeStatus("n2", "DECOMMISSIONING")])
    shim.let_go = (NodeLetGo("n1", 7000, 0, 0, 0, 0),)
    c.on_node_states([])
    assert heard == ["n1"]
    assert "node-let-go hook" in caplog.text and "broken" in caplog.text and "the cluster agent is down" in caplog.text
    shim.let_go += (NodeLetGo("n2", 8000, 0, 0, 0, 0),)
    c.on_node_states([NodeStatus("n3", "DECOMMISSIONING")])  # the next poll acts, and tells of n2
    assert heard == ["n1", "n2"] and [x[0] for x in shim.calls] == ["exclude", "exclude"]
    c.stop()


def test_the_shim_is_not_asked_while_no_excluded_node_awaits():
    c, shim = make()
    c.on_node_states([])
    c.on_node_states([NodeStatus("n1", "RUNNING"), NodeStatus("n2", "UNHEALTHY")])
    c.decommissioning(executors=["3"])  # executors are never let go
    c.on_node_states([NodeStatus("n3", "DECOMMISSIONED")])  # gone without an exclusion (spot)
    c.on_node_states([NodeStatus("n4:8041", "DECOMMISSIONING")])  # one NodeManager of a host: never let go
    c.on_node_states([NodeStatus("n5", "DECOMMISSIONING")])
    asks = shim.let_go_asks
    c.on_node_states([NodeStatus("n5", "RUNNING")])  # back in service: nothing awaits any more
    c.on_node_states([])
    assert [x[0] for x in shim.calls] == ["exclude", "decommissioned", "exclude", "exclude", "unexclude"]
    assert asks == 1 and shim.let_go_asks == 1, "asked only while n5 was excluded"
    off, off_shim = make(exclude_enabled=False)
    off.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    assert off_shim.let_go_asks == 0, "nothing excluded: nothing the shim would let go"


def test_a_shim_that_cannot_say_is_warned_of_once_and_asked_again(caplog):
    import logging

    c, shim = make()
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    shim.fail = True
    with caplog.at_level(logging.INFO, logger="decom"):
        c.on_node_states([])
        c.on_node_states([])
    warnings = [r for r in caplog.records if "nodes let go" in r.getMessage() and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and shim.let_go_asks == 3
    c.stop()


def test_a_node_let_go_then_back_in_service_is_not_let_go_when_decommissioned_anew():
    """What a cluster agent hears (nodes_let_go) is only a let-go since the node's last transition."""
    from decom import NodeLetGo

    c, shim = make()
    shim.let_go = (NodeLetGo("n1", 7000, 0, 0, 0, 0),)
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    assert c.nodes_let_go() == {"n1"}
    c.on_node_states([NodeStatus("n1", "RUNNING")])
    assert c.nodes_let_go() == frozenset()
    shim.fail = True  # the new exclusion fails and is retried: the node is not let go meanwhile
    c.on_node_states([NodeStatus("n1", "DECOMMISSIONING")])
    assert c.nodes_let_go() == frozenset()
    c.stop()
