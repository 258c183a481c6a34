"""Two ResourceManagers (rm1 at 198.18.0.1, rm2 at 198.18.0.2), no ZooKeeper: manual failover
(yarn.resourcemanager.ha.automatic-failover.enabled=false, `rmadmin -transitionToActive`), with
the file-system state store shared by both."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from yarnlab import YarnLab

pytestmark = pytest.mark.yarn


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def raw_get(url: str) -> tuple[int, str | None]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
    try:
        with opener.open(url, timeout=10) as r:
            return int(r.status), r.headers.get("Location")
    except urllib.error.HTTPError as e:
        return int(e.code), e.headers.get("Location")


@pytest.mark.long  # the HA lab's own check: make test fails over through test_control_plane_ha
def test_ha_standby_redirects_and_manual_failover(ha_lab: YarnLab) -> None:
    lab = ha_lab
    assert lab.active_rm == "rm1"
    assert lab.rest("/ws/v1/cluster/info", rm_id="rm1")["clusterInfo"]["haState"] == "ACTIVE"
    assert lab.rest("/ws/v1/cluster/info", rm_id="rm2")["clusterInfo"]["haState"] == "STANDBY"
    assert raw_get(lab.rm_url_of("rm1") + "/isActive")[0] == 200
    assert raw_get(lab.rm_url_of("rm2") + "/isActive")[0] == 405  # "I am not Active!"
    code, loc = raw_get(lab.rm_url_of("rm2") + "/ws/v1/cluster/nodes")
    assert code == 307 and loc == lab.rm_url_of("rm1") + "/ws/v1/cluster/nodes"

    lab.failover("rm2")
    assert lab.active_rm == "rm2"
    lab.wait_for_nodes({n.host: "RUNNING" for n in lab.nodes}, timeout=120)
    code, loc = raw_get(lab.rm_url_of("rm1") + "/ws/v1/cluster/nodes")
    assert code == 307 and loc == lab.rm_url_of("rm2") + "/ws/v1/cluster/nodes"

    # rmadmin finds the active RM through the HA client configuration
    lab.decommission([lab.nodes[0].host], timeout=10)
    lab.wait_for_nodes({lab.nodes[0].host: "DECOMMISSIONED"}, timeout=60)
    lab.recommission([lab.nodes[0].host], timeout=120)

    # the active RM dies: forced manual failover back to rm1, the nodes re-register there
    lab.stop_rm("rm2", kill=True)
    lab.failover("rm1")
    lab.wait_for_nodes({n.host: "RUNNING" for n in lab.nodes}, timeout=120)
    lab.start_rm("rm2")
    assert lab.rest("/ws/v1/cluster/info", rm_id="rm2")["clusterInfo"]["haState"] == "STANDBY"
