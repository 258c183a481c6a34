"""``decom agent run`` (the daemon, in the foreground) and ``decom agent status``."""

from __future__ import annotations

import json
import logging
import shlex
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click
import httpx

from .._errors import AgentError
from .options import EXIT_USAGE, client_from_options, fail, parse_seconds, rm_options

__all__ = ["COMMANDS"]


@click.group()
def agent() -> None:
    """The decom agent: one per cluster, next to the ResourceManager, with the operator's admin rights.

    It finishes a DECOMMISSIONING node's graceful decommission as soon as no running app needs it (decom
    drivers say so), instead of when every app that ran there ends."""


def _bind(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    try:
        return host.strip("[]") or "127.0.0.1", int(port)
    except ValueError:
        raise click.BadParameter(f"{value!r}: give HOST:PORT, e.g. 127.0.0.1:8788", param_hint="--bind") from None


@agent.command("run")
@rm_options
@click.option("--exclude-file", required=True, type=click.Path(path_type=Path),
              help="YARN's XML exclude file (yarn.resourcemanager.nodes.exclude-path; its name ends in .xml).")
@click.option("--secret-file", required=True, type=click.Path(path_type=Path),
              help="The shared secret drivers sign their reports with (spark.decom.agent.secretFile).")
@click.option("--bind", default="127.0.0.1:8788", show_default=True, help="Where the HTTP endpoint listens.")
@click.option("--interval", default="1s", show_default=True,
              help="How often the RM's nodes are read; drivers on the agent see changes at this pace "
                   "(spark.decom.poll.interval is 1 s by default).")
@click.option("--other-apps", type=click.Choice(["wait", "release"]), default="wait", show_default=True,
              help="Apps on a node that don't report to the agent (no decom): wait for them to end, or not.")
@click.option("--dry-run", is_flag=True, help="Log and record what would be released; change nothing.")
@click.option("--rmadmin", default="yarn rmadmin", show_default=True, help="The rmadmin command to run.")
@click.option("--timeouts-cmd", default="", help="A command printing the DECOMMISSIONING nodes' timeouts as JSON "
              "(default: the decom jar's RPC reader with pyspark's Hadoop client and HADOOP_CONF_DIR).")
@click.option("--records", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Append every release as a JSON line to this file.")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep the apps' reports and the releases to restore here, so a restart loses neither.")
def run(rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str, exclude_file: Path, secret_file: Path,
        bind: str, interval: str, other_apps: str, dry_run: bool, rmadmin: str, timeouts_cmd: str,
        records: Path | None, state_file: Path | None) -> None:
    """Run the agent in the foreground (logs to stderr; stop with SIGTERM or Ctrl-C)."""
    from .._agent import Agent, AgentServer, ExcludeFile, OtherApps, YarnAdmin, default_timeouts_command
    from .._agent_contract import read_secret

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per RM poll would drown the agent's own
    host, port = _bind(bind)
    seconds = parse_seconds(interval, "--interval", positive=True)
    client = client_from_options(rm, timeout, auth, user, ca_bundle)
    try:
        secret = read_secret(secret_file, "--secret-file")
        if exclude_file.suffix != ".xml":
            raise AgentError(f"--exclude-file {exclude_file}: the agent needs YARN's XML exclude file (per-host "
                             "timeouts exist only there, and Hadoop reads XML only from a name ending in .xml)")
        admin = YarnAdmin(shlex.split(rmadmin), shlex.split(timeouts_cmd) if timeouts_cmd
                          else default_timeouts_command())
        the_agent = Agent(client, admin, ExcludeFile(exclude_file), interval=seconds,
                          other_apps=OtherApps(other_apps), dry_run=dry_run, records=records,
                          state_file=state_file)
        server = AgentServer(the_agent, secret, host, port).start()
    except (AgentError, OSError) as e:
        raise fail(str(e), EXIT_USAGE) from None
    click.echo(f"decom agent: listening on {server.url}", err=True)
    done = threading.Event()

    def stop(*_: Any) -> None:
        the_agent.stop()
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker = threading.Thread(target=the_agent.run, name="decom-agent-poll", daemon=True)
    worker.start()
    done.wait()
    worker.join(timeout=30)
    server.stop()
    admin.close()
    client.close()


@agent.command("status")
@click.option("--url", default="http://127.0.0.1:8788", show_default=True, help="The agent's endpoint.")
@click.option("--json", "as_json", is_flag=True, help="Print the agent's status as JSON.")
def status(url: str, as_json: bool) -> None:
    """What the agent sees (DECOMMISSIONING nodes, apps reporting, what holds each node) and has done."""
    try:
        resp = httpx.get(url.rstrip("/") + "/v1/status", timeout=10, trust_env=False)
        resp.raise_for_status()
        data = resp.json()
    except (httpx.HTTPError, ValueError) as e:
        raise fail(f"no decom agent answered at {url}: {e}") from None
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    click.echo(f"rm: {data['rm']}  interval: {data['interval_s']}s  other apps: {data['other_apps']}"
               f"{'  DRY RUN' if data['dry_run'] else ''}  exclude file: {data['exclude_file']}")
    if data.get("last_error"):
        click.echo(f"last error: {data['last_error']}")
    click.echo(f"DECOMMISSIONING: {', '.join(data['nodes_decommissioning']) or 'none'}")
    for host, why in sorted(data["waiting"].items()):
        click.echo(f"  {host} waits: {json.dumps(why, sort_keys=True)}")
    click.echo(f"apps reporting: {len(data['apps'])}")
    for app, info in data["apps"].items():
        click.echo(f"  {app} lets go of: {', '.join(info['let_go']) or '-'}")
    click.echo(f"releases: {len(data['releases'])}")
    for r in data["releases"]:
        click.echo(f"  {r['host']} at {r['at']:.0f}{' (dry run)' if r['dry_run'] else ''}: apps agreed "
                   f"{r['apps_agreed']}, other apps {r['other_apps']}")


COMMANDS = (agent,)
