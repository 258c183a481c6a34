"""The control plane against a real YARN ResourceManager: real REST, real graceful decommission through
RMAdminCLI, real RM restart and HA failover. The controller's shim is a recorder here, so the test can
assert exactly which actions each node got; the shim itself is proven on Spark in tests/spark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from decom import Controller, DecomConfig
from decom._driver.poller import NodePoller
from decom._yarn import ResourceManagerClient
from tests.support import RecordingShim

pytestmark = pytest.mark.yarn


def wait_until(what: str, cond: Callable[[], bool], timeout: float = 180.0, *, lab: Any = None,
               controller: Controller | None = None) -> None:
    """Wait for cond; a timeout says what the RM and the controller saw, so a CI failure explains itself."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            seen = {"rm": lab.node_states() if lab is not None else None,
                    "controller": {h: n["state"] for h, n in controller.report()["nodes"].items()}
                    if controller is not None else None}
            raise TimeoutError(f"not within {timeout:.0f} s: {what}; {seen}")
        time.sleep(0.1)


@pytest.fixture()
def control_plane(lab: Any) -> Iterator[tuple[Controller, RecordingShim, NodePoller]]:
    shim = RecordingShim()
    controller = Controller(shim, DecomConfig.resolve({}, {"poll_interval": "0.2s"}))
    poller = NodePoller(ResourceManagerClient([lab.rm_url], timeout=2.0), 0.2, controller.on_node_states,
                        owns_client=True)
    controller.attach_poller(poller)
    poller.start()
    yield controller, shim, poller
    controller.stop()


def state_of(controller: Controller, host: str) -> str | None:
    node = controller.report()["nodes"].get(host)
    return node["state"] if node else None


def test_graceful_decommission_and_recommission_give_each_action_once(lab: Any, control_plane: Any) -> None:
    from yarnlab.sparkapp import SparkApp

    controller, shim, _ = control_plane
    # 2g executors: a node (4 GB) holds one, so the two land on two nodes and one is not the AM's.
    with SparkApp(lab, executors=2, conf={"spark.executor.memory": "2g"}) as app:
        # A node holding a running executor stays DECOMMISSIONING until the container ends.
        am, hosts = app.am_host(), app.current_executors()
        target = next((h for h in hosts if h != am), None)
        assert target is not None, f"every executor is on the AM's node {am}: {hosts}"
        lab.decommission([target], timeout=300)
        wait_until("controller sees DECOMMISSIONING", lambda: state_of(controller, target) == "DECOMMISSIONING",
                   lab=lab, controller=controller)
        assert lab.node_states()[target] == "DECOMMISSIONING"
        assert shim.actions_for(target) == ["exclude"]
    # The app is gone, so are its containers: YARN finishes the decommission.
    wait_until("controller sees DECOMMISSIONED", lambda: state_of(controller, target) == "DECOMMISSIONED",
               lab=lab, controller=controller)
    lab.recommission([target])
    wait_until("controller sees RUNNING again", lambda: state_of(controller, target) == "RUNNING",
               lab=lab, controller=controller)
    time.sleep(1.0)  # a few more polls: nothing may be repeated
    assert shim.actions_for(target) == ["exclude", "decommissioned", "unexclude"]
    others = {h for _, hs, _, _ in shim.calls for h in hs} - {target}
    assert not others, f"actions on nodes YARN did not decommission: {shim.calls}"
    transitions = [t["state"] for t in controller.report()["nodes"][target]["transitions"]]
    assert transitions == ["DECOMMISSIONING", "DECOMMISSIONED", "RUNNING"]


def test_poller_recovers_by_itself_after_an_rm_restart(lab: Any, control_plane: Any,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    controller, shim, poller = control_plane
    wait_until("first poll", lambda: poller.status()["polls"] > 0)
    assert poller.status()["errors"] == 0
    lab.restart_rm(down_seconds=3)
    assert poller.status()["errors"] >= 1, "the poller never saw the RM down (3 s at 0.2 s a poll)"
    target = lab.nodes[-1].host
    lab.decommission([target], timeout=60)  # no containers: straight through to DECOMMISSIONED
    wait_until("controller sees the decommission after the restart",
               lambda: state_of(controller, target) == "DECOMMISSIONED", timeout=180)
    assert poller.status()["consecutive_errors"] == 0 and poller.status()["last_success"] is not None
    assert "decommissioned" in shim.actions_for(target)
    unreachable = [r for r in caplog.records if r.levelname == "WARNING" and "decom" in r.getMessage()]
    assert len(unreachable) <= 1, "one warning for the outage, not one per poll"
    lab.recommission([target])
    wait_until("RUNNING after recommission", lambda: state_of(controller, target) == "RUNNING", timeout=180)
