"""The YARN side: where the ResourceManager is (:mod:`.discovery`), YARN's node model (:mod:`.nodes`) and
the RM's REST client with HA fail-over (:mod:`.client`). Shared by the driver, the sessions tools and the
CLI; it imports neither."""

from .client import ResourceManagerClient, ResourceManagerUnreachableError
from .discovery import discover_rm_addresses
from .nodes import NODE_STATES, NodeStatus, RMNode

__all__ = ["ResourceManagerClient", "ResourceManagerUnreachableError", "discover_rm_addresses", "NODE_STATES",
           "NodeStatus", "RMNode"]
