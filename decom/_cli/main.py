"""The ``decom`` command line. Each command group lives in its own module and is added here.

To add a command, write it with ``@click.command()`` in the module of its part and list it in that
module's ``COMMANDS``; a command that talks to the ResourceManager takes ``@rm_options`` and builds
its client with :func:`~.options.client_from_options`, which also maps "no RM configured" and RM
failures to exit status 2 with one stderr line.
"""

from __future__ import annotations

import click

from .._version import __version__
from . import agent, cluster, sessions

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="decom")
def main() -> None:
    """decom: decommission-aware scheduling for Apache Spark on YARN."""


for _command in cluster.COMMANDS + sessions.COMMANDS + agent.COMMANDS:
    main.add_command(_command)
