"""The node and driver commands: ``decom jar``, ``nodes``, ``watch``, ``status``, ``dist``, ``bench``."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import time
from datetime import datetime, timezone

import click

from .._errors import DecomError, ResourceManagerError
from .._units import format_duration
from .._version import PACKAGE_DIR
from .._yarn import NODE_STATES, NodeStatus
from .._yarn.nodes import (
    DECOMMISSIONED,
    DECOMMISSIONING,
    LOST,
    NEW,
    REBOOTED,
    RUNNING,
    SHUTDOWN,
    UNHEALTHY,
)
from .._yarn.poller import NodePoller
from .options import client_from_options, exits_on, fail, parse_seconds, rm_options, table

__all__ = ["COMMANDS"]


# ---- decom jar -----------------------------------------------------------------------------------


@click.command()
def jar() -> None:
    """Print the path of the decom shim jar (for spark-submit --jars)."""
    from .._driver.api import jar_path

    try:
        click.echo(jar_path())
    except DecomError as e:
        raise fail(str(e), 1) from None


# ---- decom nodes ---------------------------------------------------------------------------------


def _ago(ms: int, now: float) -> str:
    return "-" if ms <= 0 else format_duration(now - ms / 1000.0) + " ago"


def _states(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        for s in value.split(","):
            s = s.strip().upper()
            if s and s not in out:
                out.append(s)
    return out


#: decom nodes lists the nodes going away first.
_STATE_ORDER = {s: i for i, s in enumerate(
    (DECOMMISSIONING, LOST, SHUTDOWN, DECOMMISSIONED, UNHEALTHY, REBOOTED, NEW, RUNNING))}


@click.command()
@rm_options
@click.option("--json", "as_json", is_flag=True, help="Print the nodes as JSON.")
@click.option("--state", "state", multiple=True, metavar="STATE",
              help="Only nodes in this state (repeatable, or comma-separated). Default: all.")
def nodes(rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str, as_json: bool,
          state: tuple[str, ...]) -> None:
    """List the cluster's NodeManagers and their YARN states.

    LAST HEALTH is the node's last health report to the RM: YARN's REST API has no
    "time in state".
    """
    states = _states(state) or list(NODE_STATES)
    unknown = [s for s in states if s not in NODE_STATES]
    if unknown:
        raise click.BadParameter(f"unknown node state {', '.join(unknown)}: use one or more of "
                                 f"{', '.join(NODE_STATES)}", param_hint="--state")
    with client_from_options(rm, timeout, auth, user, ca_bundle) as client, exits_on(ResourceManagerError):
        found = client.nodes(states)
    found.sort(key=lambda n: (_STATE_ORDER.get(n.state, 99), n.node_id))
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(n) for n in found], indent=2))
        return
    if not found:
        click.echo(f"no nodes in state {','.join(states)}")
        return
    now = time.time()
    rows = [["ID", "HOST", "STATE", "CONTAINERS", "RACK", "LAST HEALTH"]]
    rows += [[n.node_id, n.host, n.state, str(n.num_containers), n.rack or "-",
              _ago(n.last_health_update, now)] for n in found]
    click.echo(table(rows))
    counts: dict[str, int] = {}
    for n in found:
        counts[n.state] = counts.get(n.state, 0) + 1
    click.echo(f"\n{len(found)} node(s): " + ", ".join(f"{v} {k}" for k, v in counts.items()))


# ---- decom watch ---------------------------------------------------------------------------------


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _watch_line(status: NodeStatus, old: str) -> str:
    line = f"{_stamp(time.time())}  {status.target}  {old} -> {status.state}"
    if status.deadline is not None:
        line += f"  (forced out by {_stamp(status.deadline)})"
    return line


@click.command()
@rm_options
@click.option("--interval", default="1s", show_default=True, help="Time between polls.")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Stop after this many polls.")
@click.option("--full/--light", "full", default=False, show_default=True,
              help="Ask for RUNNING nodes on every poll, or only when something changed.")
def watch(rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str, interval: str,
          count: int | None, full: bool) -> None:
    """Print one line per node state change: time, node, old -> new.

    The first poll prints every node that is not RUNNING (old state "-"). Uses the same diffing
    as the driver's poller: a node is its host, or host:port when a host runs several
    NodeManagers.
    """
    every = max(0.05, parse_seconds(interval, "--interval"))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("decom.poller")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    stop = threading.Event()
    polls = 0
    try:
        with client_from_options(rm, timeout, auth, user, ca_bundle) as client:
            poller = NodePoller(client, every, lambda changes: None, light=not full)
            while True:
                started = time.monotonic()
                before = poller.states()
                first = polls == 0
                polls += 1
                try:
                    changes = poller.poll_once()
                except ResourceManagerError as e:
                    if first:
                        raise fail(str(e)) from None
                    changes = []  # logged once by the poller; keep watching
                for status in changes:
                    old = "-" if first else before.get(status.target, "-")
                    click.echo(_watch_line(status, old))
                if count is not None and polls >= count:
                    break
                if stop.wait(max(0.0, every - (time.monotonic() - started))):
                    break
    except KeyboardInterrupt:
        pass
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(args: tuple[str, ...]) -> None:
    """Run the scale-in benchmark on the YARN lab (python -m bench.yarn_bench).

    Takes the benchmark's own options, e.g. ``decom bench --scenario mid-reduce --quick --json``
    (``decom bench --help`` lists them). It needs a decom source checkout: the repository's
    ``bench/`` and ``yarnlab/`` (not part of the installed package), root and network namespaces.
    """
    import subprocess
    from pathlib import Path

    candidates = [Path.cwd(), PACKAGE_DIR.parent]
    root = next((c for c in candidates
                 if (c / "bench" / "yarn_bench.py").is_file() and (c / "yarnlab" / "__init__.py").is_file()), None)
    if root is None:
        raise fail("decom bench needs a decom source checkout: the repository's bench/ and yarnlab/ "
                    "directories were not found (looked in the current directory and next to the decom "
                    "package). Clone the decom repository and run `decom bench` from its top directory.",
                    code=2)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "bench.yarn_bench", *args], cwd=str(root), env=env)
    if proc.returncode:
        raise click.exceptions.Exit(proc.returncode)


# ---- decom dist ----------------------------------------------------------------------------------


@click.command()
@click.option("--out", "out", default="dist", show_default=True, metavar="DIR",
              help="Where to write decom.zip and the shim jar.")
def dist(out: str) -> None:
    """Write decom.zip and the shim jar: an unmodified PySpark job then runs with decom via

    spark-submit --py-files DIR/decom.zip --jars DIR/decom-shim-VERSION.jar
    --conf spark.plugins=io.decom.DecomPlugin job.py

    (or the same keys in spark-defaults.conf: spark.submit.pyFiles, spark.jars, spark.plugins).
    """
    from .._driver.dist import build_dist

    try:
        zpath, jar_file = build_dist(out)
    except DecomError as e:
        raise fail(str(e), 2) from None
    click.echo(zpath)
    click.echo(jar_file)


# ---- decom status --------------------------------------------------------------------------------


@click.command()
@rm_options
@click.option("--ui", "ui", default=None, metavar="URL",
              help="The driver's Spark UI, e.g. http://driver-host:4040, or the RM's proxy of it (reads its "
                   "/metrics/json, following redirects). http://user:password@... for Basic auth; --auth, "
                   "--user and --ca-bundle apply too.")
@click.option("--app", "app_id", default=None, metavar="APP_ID",
              help="A YARN application id: its Spark UI is reached through the RM's web proxy.")
@click.option("--event-log", "event_log", default=None, metavar="FILE",
              help="Summarise the JSON event log a driver wrote (spark.decom.eventLog).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str, ui: str | None,
           app_id: str | None, event_log: str | None, as_json: bool) -> None:
    """decom's counters in a running driver (its Spark UI metrics), or from its event log."""
    from .._driver.status import StatusError, counters_from_event_log, counters_from_metrics, counters_from_ui

    if sum(x is not None for x in (ui, app_id, event_log)) != 1:
        raise fail("give exactly one of --ui URL, --app APP_ID (with --rm) or --event-log FILE", 2)
    try:
        if event_log is not None:
            figures = counters_from_event_log(event_log)
        elif ui is not None:
            figures = counters_from_ui(ui, timeout=parse_seconds(timeout, "--timeout"), auth=auth, user=user,
                                       ca_bundle=ca_bundle)
        else:
            with client_from_options(rm, timeout, auth, user, ca_bundle) as client, exits_on(ResourceManagerError):
                data = client.app_proxy_json(str(app_id), "metrics/json/")
            figures = counters_from_metrics(data, f"{app_id} (through the RM's web proxy)")
    except StatusError as e:
        raise fail(str(e), 2) from None
    if as_json:
        click.echo(json.dumps(figures, indent=2, sort_keys=True))
        return
    click.echo(f"source: {figures.pop('source')}")
    rows = [["FIGURE", "VALUE"]] + [[k, str(v)] for k, v in figures.items()]
    click.echo(table(rows))


COMMANDS = (jar, nodes, watch, bench, dist, status)
