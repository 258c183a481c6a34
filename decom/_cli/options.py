"""What every ``decom`` command shares: the ResourceManager options, the client they build, and how an
expected error becomes one stderr line and an exit status instead of a traceback."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from .._errors import ConfigError, ResourceManagerError
from .._units import parse_duration
from .._yarn import ResourceManagerClient, discover_rm_addresses

__all__ = ["EXIT_RM", "EXIT_USAGE", "rm_options", "client_from_options", "fail", "exits_on", "parse_seconds", "table"]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status when no ResourceManager is configured or none answers.
EXIT_RM = 2
#: Exit status of bad input (same as click's usage errors).
EXIT_USAGE = 2


def rm_options(f: F) -> F:
    """The options of every command that talks to the ResourceManager."""
    options = [
        click.option("--rm", "rm", metavar="URL[,URL...]", default=None,
                     help="ResourceManager web address(es), e.g. http://rm:8088 (comma-separated "
                          "for HA). Default: from yarn-site.xml under HADOOP_CONF_DIR."),
        click.option("--timeout", "timeout", default="5s", show_default=True,
                     help="HTTP timeout of one request (e.g. 5s, 500ms)."),
        click.option("--auth", type=click.Choice(["simple", "kerberos", "none"]),
                     default="simple", show_default=True,
                     help="simple: user.name; kerberos: SPNEGO (pip install decom[kerberos])."),
        click.option("--user", default="", help="user.name for simple auth (default: you)."),
        click.option("--ca-bundle", "ca_bundle", default="",
                     help="CA bundle (PEM) for an https ResourceManager."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def fail(message: str, code: int = EXIT_RM) -> click.exceptions.Exit:
    click.echo(f"decom: {message}", err=True)
    return click.exceptions.Exit(code)


def parse_seconds(value: str, name: str, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value, name)
    except ConfigError as e:
        raise click.BadParameter(str(e), param_hint=name) from None
    if positive and seconds <= 0:
        raise click.BadParameter(f"{name}={value!r} must be more than 0, e.g. 5s", param_hint=name)
    return seconds


def client_from_options(rm: str | None, timeout: str = "5s", auth: str = "simple",
                        user: str = "", ca_bundle: str = "") -> ResourceManagerClient:
    """A client for ``--rm`` (or the addresses found through HADOOP_CONF_DIR / YARN_CONF_DIR);
    exits with status 2 and a clear message when there is none."""
    addresses = [a for a in (rm or "").split(",") if a.strip()] or \
        discover_rm_addresses({}, os.environ)
    if not addresses:
        raise fail("no ResourceManager given: pass --rm http://<rm-host>:8088, or set "
                    "HADOOP_CONF_DIR to the directory holding yarn-site.xml")
    try:
        return ResourceManagerClient(addresses, timeout=parse_seconds(timeout, "--timeout", positive=True),
                                     auth=auth, user=user, ca_bundle=ca_bundle)
    except ResourceManagerError as e:
        raise fail(str(e)) from None


@contextmanager
def exits_on(error: type[Exception], code: int = EXIT_RM) -> Iterator[None]:
    """An expected error becomes its message on stderr and exit `code`, not a traceback."""
    try:
        yield
    except error as e:
        raise fail(str(e), code) from None


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)
