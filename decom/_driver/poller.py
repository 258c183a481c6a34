"""Starts the driver's ResourceManager poller (:class:`decom._yarn.poller.NodePoller`) for the controller:
the RM itself, or the cluster agent first when ``spark.decom.agent.url`` is set."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from .._errors import ResourceManagerError
from .._yarn import ResourceManagerClient, discover_rm_addresses
from .._yarn.poller import DOOMED_QUERY, FULL_QUERY, NodePoller, NodeSource, NodeStateSink
from .config import DecomConfig

__all__ = ["start_poller", "NodePoller", "NodeSource", "NodeStateSink", "DOOMED_QUERY", "FULL_QUERY"]

log = logging.getLogger("decom.poller")


def start_poller(controller: NodeStateSink, config: DecomConfig,
                 spark_conf: Mapping[str, str]) -> NodePoller | None:
    """Start polling the ResourceManager for ``controller``, or return None (with one INFO line)
    when no RM is configured or found: nodes are then reported by hand."""
    addresses = list(config.rm_addresses) or discover_rm_addresses(spark_conf)
    if not addresses:
        log.info("decom: no ResourceManager configured: nodes are reported by hand")
        return None
    try:
        client = ResourceManagerClient(addresses, timeout=config.poll_timeout, auth=config.auth,
                                       user=config.user, ca_bundle=config.ca_bundle)
    except ResourceManagerError as e:
        log.error("decom: not polling the ResourceManager: %s. Nodes are reported by hand", e)
        return None
    source: NodeSource = client
    if config.agent_url:  # the cluster agent reads the RM once for every driver; the RM while it is down
        from .._agent_contract import read_secret
        from .._errors import AgentError
        from .agent_link import AgentFirstNodes

        try:
            secret = read_secret(config.agent_secret_file, "spark.decom.agent.secretFile")
            source = AgentFirstNodes(config.agent_url, client, secret)
        except AgentError as e:
            log.error("decom: reading node states from the RM, not the decom agent: %s", e)
    # Every poll, also without changes: the controller then asks the shim which nodes it let go of.
    poller = NodePoller(source, config.poll_interval, controller.on_node_states,
                        owns_client=True, every_poll=True)
    controller.attach_poller(poller)
    poller.start()
    log.info("decom: polling the YARN ResourceManager at %s every %g s",
             ", ".join(client.addresses), poller.status()["interval_s"])
    return poller
