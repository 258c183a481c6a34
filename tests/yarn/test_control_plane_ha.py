"""The poller against two real ResourceManagers in HA: it follows the active one across a failover."""

from __future__ import annotations

import time
from typing import Any

import pytest

from decom import Controller, DecomConfig
from decom._poller import NodePoller
from decom._yarn import ResourceManagerClient

pytestmark = pytest.mark.yarn


def test_poller_follows_a_manual_failover(ha_lab: Any) -> None:
    from test_control_plane import RecordingShim, state_of, wait_until

    shim = RecordingShim()
    controller = Controller(shim, DecomConfig.resolve({}, {"poll_interval": "0.2s"}))  # type: ignore[arg-type]
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
        assert shim.actions_for(target) == ["decommissioned"] or shim.actions_for(target) == [
            "exclude", "decommissioned"]
        time.sleep(1.0)
        assert shim.actions_for(target)[-1] == "decommissioned", "nothing repeated after the failover"
    finally:
        controller.stop()
