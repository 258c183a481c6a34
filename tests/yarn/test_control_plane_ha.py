"""The poller against two real ResourceManagers in HA: it follows the active one across a failover."""

from __future__ import annotations

import time
from typing import Any

import pytest

from decom import Controller, DecomConfig
from decom._driver.poller import NodePoller
from decom._yarn import ResourceManagerClient
from tests.support import RecordingShim

pytestmark = pytest.mark.yarn


def test_poller_follows_a_manual_failover(ha_lab: Any) -> None:
    from test_control_plane import state_of, wait_until

    shim = RecordingShim()
    controller = Controller(shim, DecomConfig.resolve({}, {"poll_interval": "0.2s"}))
    urls = [ha_lab.rm_url_of(r) for r in ha_lab.rm_ids]
    poller = NodePoller(ResourceManagerClient(urls, timeout=2.0), 0.2, controller.on_node_states, owns_client=True)
    controller.attach_poller(poller)
    poller.start()
    try:
        wait_until("first poll", lambda: poller.status()["polls"] > 0)
        first_active = poller.status()["active_address"]
        new = ha_lab.failover()
        ha_lab.stop_rm([r for r in ha_lab.rm_ids if r != new][0])  # the old active is gone for good
        target = ha_lab.nodes[0].host
        ha_lab.decommission([target], timeout=60)
        wait_until("decommission seen through the new active RM",
                   lambda: state_of(controller, target) == "DECOMMISSIONED", timeout=180)
        assert poller.status()["active_address"] == ha_lab.rm_url_of(new) != first_active
        # A node with no containers may pass DECOMMISSIONING between two polls.
        actions = list(shim.calls)
        assert [a for a, *_ in actions] in (["decommissioned"], ["exclude", "decommissioned"]), actions
        assert {h for _, hs, *_ in actions for h in hs} == {target}, actions
        time.sleep(2.0)  # ten more polls through the new active RM
        assert shim.calls == actions, "an action was repeated (or a new one came) after the failover"
    finally:
        controller.stop()
