"""Recognise the common notebook (sparkmagic / Livy / YARN) errors and say what to do.

Given the error text a user pasted, :func:`diagnose` returns one :class:`Diagnosis` per problem it
recognises, with the cause and the actions; given a ResourceManager and/or Livy client it adds the
live numbers (free memory, waiting apps, idle sessions, the session's state in Livy).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._errors import DecomError, LivySessionNotFoundError
from .._redact import redact
from .._units import format_mb
from .._yarn import ResourceManagerClient
from .._yarn.nodes import DECOMMISSIONED, DECOMMISSIONING, LOST, RUNNING, SHUTDOWN, UNHEALTHY
from .inventory import collect_inventory
from .livy import LivyClient

__all__ = ["Diagnosis", "diagnose", "RULES"]


@dataclass(frozen=True)
class Diagnosis:
    id: str
    title: str
    #: The part of the error text that was recognised (credentials masked).
    matched: str
    cause: str
    actions: list[str]
    #: Live facts from the RM / Livy, when clients were given.
    live: list[str] = field(default_factory=list)
    session_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Context:
    rm: ResourceManagerClient | None
    livy: LivyClient | None
    session_id: int | None
    match: re.Match[str]
    #: The --rm/--livy options to repeat in suggested commands.
    where: str
    rule: str = ""


LiveFn = Callable[[_Context], list[str]]


@dataclass(frozen=True)
class _Rule:
    id: str
    title: str
    patterns: tuple[re.Pattern[str], ...]
    cause: str
    actions: tuple[str, ...]
    live: LiveFn | None = None


def _cluster_facts(ctx: _Context, *, idle_hint: bool = True) -> list[str]:
    if ctx.rm is None:
        return []
    try:
        inv = collect_inventory(ctx.rm, ctx.livy)
    except DecomError as e:
        return [f"could not read the cluster: {redact(str(e))}"]
    c = inv.cluster
    lines = [f"cluster: {format_mb(c.allocated_mb)} of {format_mb(c.total_mb)} memory used "
             f"({format_mb(c.available_mb)} free), {c.allocated_vcores} of {c.total_vcores} vcores used "
             f"({c.available_vcores} free), {c.active_nodes} active node(s)"]
    if c.largest_free_mb is not None:
        lines.append(f"most free on one node: {format_mb(c.largest_free_mb)} and {c.largest_free_vcores} "
                     "vcore(s) (a container must fit on one node)")
    if c.apps_pending:
        lines.append(f"{c.apps_pending} app(s) waiting for resources (ACCEPTED, not running yet)"
                     + (f", asking for {format_mb(c.pending_mb)} more" if c.pending_mb else ""))
    running = [s for s in inv.sessions if s.yarn_state == "RUNNING"]
    if running:
        held = sum(s.memory_mb for s in running)
        lines.append(f"{len(running)} interactive session(s) hold {format_mb(held)} "
                     f"({sum(s.containers for s in running)} containers)")
    idle = sorted((s for s in running if s.idle_s is not None and not s.busy), key=lambda s: -(s.idle_s or 0))
    for s in idle[:5]:
        lines.append(f"  idle {(s.idle_s or 0) / 60:.0f} min: {s.app_id} {s.name} ({s.owner or '?'}), "
                     f"{format_mb(s.memory_mb)} in {s.containers} container(s)")
    if idle and idle_hint:
        lines.append(f"to see what ending idle sessions frees: decom reap --idle 30m{ctx.where} (a dry run; "
                     "add --yes to end them)")
    waiting = [s for s in inv.sessions if s.livy_state in ("not_started", "starting")]
    for s in waiting:
        lines.append(f"Livy session {s.livy_id} is {s.livy_state}" + (f" ({s.app_id} {s.yarn_state})"
                                                                       if s.app_id and s.yarn_state else ""))
    return lines


def _session_facts(ctx: _Context) -> list[str]:
    lines: list[str] = []
    if ctx.livy is not None and ctx.session_id is not None:
        try:
            s = ctx.livy.session(ctx.session_id)
            lines.append(f"Livy at {ctx.livy.url} has session {s.id} in state {s.state}"
                         + (f" (YARN app {s.app_id})" if s.app_id else ""))
        except LivySessionNotFoundError:
            if ctx.rule == "session-not-found":
                lines.append(f"Livy at {ctx.livy.url} confirms: no session {ctx.session_id} (it ended, timed "
                             "out or Livy restarted)")
            else:
                lines.append(f"Livy at {ctx.livy.url} has no session {ctx.session_id} now")
        except DecomError as e:
            lines.append(f"could not ask Livy: {redact(str(e))}")
        try:
            live = [s for s in ctx.livy.sessions() if s.state not in ("dead", "killed", "error", "success")]
            lines.append(f"Livy has {len(live)} live session(s) now")
        except DecomError:
            pass
    return lines


def _startup_facts(ctx: _Context) -> list[str]:
    return _session_facts(ctx) + _cluster_facts(ctx)


def _node_facts(ctx: _Context) -> list[str]:
    if ctx.rm is None:
        return []
    try:
        nodes = ctx.rm.nodes([DECOMMISSIONING, DECOMMISSIONED, LOST, UNHEALTHY, SHUTDOWN])
    except DecomError as e:
        return [f"could not read the nodes: {redact(str(e))}"]
    if not nodes:
        return ["no node is DECOMMISSIONING, DECOMMISSIONED, LOST, UNHEALTHY or SHUTDOWN now"]
    return [f"node {n.node_id} is {n.state}" for n in nodes[:10]]


def _livy_facts(ctx: _Context) -> list[str]:
    if ctx.livy is None:
        return []
    try:
        n = len(ctx.livy.sessions())
    except DecomError as e:
        return [redact(str(e))]
    return [f"Livy at {ctx.livy.url} answers now ({n} session(s)): the problem was passing, or is between the "
            "notebook and Livy (URL in sparkmagic's config.json, firewall, proxy)"]


def _biggest_node(ctx: _Context) -> list[str]:
    if ctx.rm is None:
        return []
    try:
        nodes = ctx.rm.nodes([RUNNING])
    except DecomError as e:
        return [f"could not read the nodes: {redact(str(e))}"]
    if not nodes:
        return ["no RUNNING node"]
    biggest = max(n.used_memory_mb + n.avail_memory_mb for n in nodes)
    return [f"the biggest RUNNING node has {format_mb(biggest)} for containers (the largest container YARN can "
            "give is also capped by yarn.scheduler.maximum-allocation-mb)"]


def _p(*patterns: str) -> tuple[re.Pattern[str], ...]:
    return tuple(re.compile(p, re.IGNORECASE | re.DOTALL) for p in patterns)


RULES: tuple[_Rule, ...] = (
    _Rule(
        "session-not-found", "The Livy session is gone (HTTP 404 \"Session 'N' not found.\")",
        _p(r"Session '?(?P<sid>\d+)'? not found", r"Invalid status code '404'.*?/sessions/(?P<sid>\d+)"),
        "Livy no longer knows this notebook's session: it timed out after being idle "
        "(livy.server.session.timeout, 1 h by default), was deleted (by a user, `decom reap`, or an "
        "administrator), its Spark app died or was killed in YARN, or Livy restarted without session recovery.",
        ("Restart the notebook kernel (Kernel > Restart), or run %%cleanup -f / %reload_ext sparkmagic.magics: "
         "sparkmagic then creates a new session. Variables of the old session are lost: re-run the cells.",
         "If sessions time out too soon, raise livy.server.session.timeout in livy.conf (the Livy server).",
         "If it died, see why: decom sessions --livy URL, or the YARN app's diagnostics in the RM UI."),
        _session_facts),
    _Rule(
        "startup-timeout", "The session did not start in time (\"did not start up in N seconds\")",
        _p(r"Session (?P<sid>\d+) did not start up in \d+ seconds", r"did not start up in \d+ seconds"),
        "sparkmagic waits livy_session_startup_timeout_seconds (60 by default) for the session to become idle. "
        "Usually YARN has no room for the session's driver (its ApplicationMaster) and executors: other "
        "sessions hold the cluster, often idle ones, or one uncapped session took every executor.",
        ("Find the sessions holding the cluster: decom sessions --rm URL [--livy URL].",
         "End idle ones: decom reap --idle 30m --rm URL [--livy URL] (a dry run), then again with --yes; or "
         "`yarn application -kill <appId>` / the RM's REST kill for one app.",
         "Cap every session so one cannot take the whole cluster: decom sparkmagic-config --max-executors N "
         "(size N with decom capacity).",
         "If the cluster is just slow to start sessions, raise livy_session_startup_timeout_seconds in "
         "~/.sparkmagic/config.json.",
         "The timed-out session may still start later and hold resources: check decom sessions and end it."),
        _startup_facts),
    _Rule(
        "yarn-no-resources", "YARN has no room for the application",
        _p(r"is added to the scheduler and is not yet activated",
           r"AM resource limit exceeded", r"Queue's AM resource limit",
           r"waiting for AM container to be allocated", r"maximum-am-resource-percent",
           r"Initial job has not accepted any resources",
           r"insufficient (?:YARN )?resources", r"not enough (?:YARN )?resources",
           r"Application is Activated, waiting for resources to be assigned for AM"),
        "The ResourceManager accepted the app but cannot place its containers: the cluster (or the queue, or "
        "the share of it ApplicationMasters may use: maximum-am-resource-percent) is full.",
        ("See who holds it: decom sessions --rm URL; end idle sessions with decom reap --idle 30m --rm URL --yes.",
         "Cap sessions (decom sparkmagic-config --max-executors N) so several users fit; decom capacity "
         "--users U --executors-per-user E tells how many workers U users need.",
         "Or add nodes, or ask for smaller executors (executorMemory / executorCores)."),
        _cluster_facts),
    _Rule(
        "request-too-big", "A container bigger than YARN allows",
        _p(r"Required (?:executor|AM) memory.*?above the max threshold \((\d+) MB\)",
           r"greater than maximum allowed allocation", r"exceeds the maximum allowed"),
        "The executor (or driver/AM) memory plus its overhead (max(384 MB, 10%)) is more than one container may "
        "have (yarn.scheduler.maximum-allocation-mb, at most a node's memory).",
        ("Lower executorMemory/driverMemory (or spark.executor.memoryOverhead) in the session config, e.g. "
         "decom sparkmagic-config --max-executors N --executor-memory 4g.",),
        _biggest_node),
    _Rule(
        "session-dead", "The Livy session died",
        _p(r"Session (?P<sid>\d+) unexpectedly reached final status '(dead|error|killed)'",
           r"session (?P<sid>\d+) (?:is|was) (?:in state )?'?(dead|error|killed)'?"),
        "The session's Spark app ended: killed (by a user, an idle reaper or YARN preemption), its driver "
        "failed to start (bad conf, missing jar, not enough memory), or its node was lost.",
        ("Read the session log: curl <livy>/sessions/N/log, and the YARN app's diagnostics in the RM UI.",
         "Restart the notebook kernel to get a new session."),
        _session_facts),
    _Rule(
        "container-memory", "YARN killed a container for using too much memory",
        _p(r"Container killed by YARN for exceeding (?:physical )?memory limits",
           r"is running beyond physical memory limits",
           r"Consider boosting spark\.(?:yarn\.)?executor\.memoryOverhead"),
        "The executor's JVM plus its Python workers and off-heap memory used more than its container "
        "(executor memory + memoryOverhead).",
        ("Raise spark.executor.memoryOverhead (e.g. 1g, or 2g for heavy Python UDFs) in session_configs.conf, "
         "or use more, smaller partitions.",)),
    _Rule(
        "node-lost", "Executors lost with their node (decommissioned or lost)",
        _p(r"Container released on a \*lost\* node", r"Container marked as failed.{0,200}?(?:lost|decommission)",
           r"ExecutorLostFailure.{0,300}?(?:lost node|decommission)", r"executor decommission",
           r"FetchFailed(?:Exception)?"),
        "A node went away (autoscaling scale-in, spot reclaim, graceful decommission) with executors and "
        "shuffle files on it; Spark retries the tasks and recomputes lost shuffle output.",
        ("Enable decom in the session (decom.configure(builder); decom.enable(spark)) so Spark stops "
         "scheduling on DECOMMISSIONING nodes and recomputes lost output early.",
         "See the node states: decom nodes --rm URL."),
        _node_facts),
    _Rule(
        "livy-unreachable", "The notebook cannot reach Livy",
        _p(r"Max retries exceeded with url: /sessions", r"port=8998\).*?(?:refused|timed out|NewConnectionError)",
           r"livy.*?(?:Connection refused|Failed to establish a new connection|Read timed out)"),
        "The Livy server is down, restarting, or not reachable at the URL in sparkmagic's config.json.",
        ("Check the URL in ~/.sparkmagic/config.json (kernel_python_credentials.url) and that Livy runs "
         "(port 8998 by default).",
         "After a Livy restart without session recovery, every notebook needs a kernel restart."),
        _livy_facts),
    _Rule(
        "queue", "The YARN queue refused the application",
        _p(r"cannot submit applications to queue (\S+)", r"Queue (\S+) does not exist",
           r"to unknown queue:? (\S+)"),
        "The session asks for a queue that does not exist or that the user may not submit to.",
        ("Set a valid \"queue\" in session_configs (sparkmagic) or the Livy session body; ask the cluster "
         "administrator for the queue's ACL (yarn.scheduler.capacity.<queue>.acl_submit_applications).",)),
    _Rule(
        "too-many-sessions", "Livy refused a new session",
        _p(r"Rejected, too many sessions are being created", r"livy\.server\.session\.max-creation"),
        "Livy limits how many sessions may be starting at once (livy.server.session.max-creation).",
        ("Wait and retry; end sessions stuck starting (decom sessions --livy URL), or raise the limit.",),
        _cluster_facts),
    _Rule(
        "driver-memory", "The driver ran out of memory",
        _p(r"is bigger than spark\.driver\.maxResultSize", r"java\.lang\.OutOfMemoryError",
           r"GC overhead limit exceeded"),
        "collect()/toPandas() of a large result, or a large broadcast, filled the driver's heap.",
        ("Bring less data to the driver (limit(), write to storage instead of collect); or raise driverMemory "
         "(and spark.driver.maxResultSize) in session_configs, then restart the kernel.",)),
)


def diagnose(text: str, rm: ResourceManagerClient | None = None, livy: LivyClient | None = None, *,
             where: str = "") -> list[Diagnosis]:
    """Every problem of :data:`RULES` found in ``text``, most specific first; ``[]`` when none.
    ``where`` is appended to suggested commands (e.g. " --rm http://rm:8088")."""
    found: list[Diagnosis] = []
    for rule in RULES:
        match = next((m for p in rule.patterns if (m := p.search(text))), None)
        if match is None:
            continue
        sid = match.group("sid") if "sid" in match.re.groupindex else None
        session_id = int(sid) if sid else None
        live: list[str] = []
        if rule.live is not None and (rm is not None or livy is not None):
            live = rule.live(_Context(rm, livy, session_id, match, where, rule.id))
        found.append(Diagnosis(rule.id, rule.title, redact(match.group(0))[:300], rule.cause, list(rule.actions),
                               live, session_id))
    return found
