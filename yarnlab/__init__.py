"""yarnlab: a real Apache Hadoop YARN cluster on one machine, one network namespace per node.

    from yarnlab import YarnLab
    with YarnLab(nodes=4, shuffle_service=True) as lab:
        lab.decommission(["198.18.0.11"], timeout=30)

See yarnlab/lab.py for the API (and the modules it is built from) and `python -m yarnlab --help`
for the CLI.
"""

from .errors import LabError, LabUnavailable
from .lab import YarnLab
from .layout import Node
from .ops import ALL_NODE_STATES
from .supervisor import cleanup_stale, read_state

__all__ = ["ALL_NODE_STATES", "LabError", "LabUnavailable", "Node", "YarnLab", "cleanup_stale", "read_state"]
