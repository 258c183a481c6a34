"""Commands for a cluster shared by notebook users (Livy sessions, the AWS Glue dev-endpoint pattern).

``decom capacity``           workers needed for U users x E executors (and the inverse), per worker type
``decom sparkmagic-config``  cap executors per session in ~/.sparkmagic/config.json (backup, merge)
``decom sessions``           the interactive sessions holding the cluster: resources, age, idle time
``decom reap``               end idle sessions (dry run unless --yes), through Livy or YARN's REST kill
``decom diagnose``           what a notebook error means and what to do, with live numbers
``decom admit``              admission guard: does one more session fit the cluster now (exit 0 / 1)

Bad input exits with status 2 and one line saying what to fix; so do an unreachable RM or Livy.
"""

from __future__ import annotations

import json
import os
import sys
import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

import click

from .._errors import ConfigError, LivyError, ResourceManagerError
from .._redact import redact, redact_json
from .._sessions.admission import check_admission
from .._sessions.capacity import (
    CapacityPlan,
    FitPlan,
    WorkerSpec,
    max_executors_per_user,
    plan_capacity,
    users_that_fit,
    worker_spec,
)
from .._sessions.diagnose import diagnose as diagnose_text
from .._sessions.inventory import DEFAULT_SESSION_NAME, Session, SessionInventory, collect_inventory
from .._sessions.livy import LivyClient
from .._sessions.reap import ReapFilters, ReapOutcome, ReapPlan, ReapResult, execute_reap, plan_reap
from .._sessions.sparkmagic import DEFAULT_CONFIG_PATH, TRADE_OFF, configure_cell, update_sparkmagic_config
from .._units import format_duration, format_mb, parse_memory_mb
from .._yarn import discover_rm_addresses
from .options import EXIT_RM, EXIT_USAGE, client_from_options, exits_on, fail, parse_seconds, rm_options, table

F = TypeVar("F", bound=Callable[..., Any])


def _bad(message: str) -> click.exceptions.Exit:
    return fail(message, EXIT_USAGE)


def session_rm_options(f: F) -> F:
    """:func:`rm_options`, with the simple-auth user as ``--rm-user``: here ``--user`` filters sessions."""
    f = rm_options(f)
    params: list[click.Parameter] = f.__click_params__  # type: ignore[attr-defined]
    for i, param in enumerate(params):
        if param.name == "user":
            params[i] = click.Option(["--rm-user", "rm_user"], default="",
                                     help="user.name for the RM's simple auth (default: you).")
    return f


def _livy_option(f: F) -> F:
    return click.option(
        "--livy", "livy_url", metavar="URL", default=None,
        help="Livy server, e.g. http://livy:8998 (http://user:password@... for Basic auth). Adds Livy "
             "session ids/states and idle times from Livy's statements; reap then ends sessions through Livy.")(f)


def _livy_client(url: str | None, timeout: str, auth: str, ca_bundle: str) -> LivyClient | None:
    if not url:
        return None
    try:
        return LivyClient(url, timeout=parse_seconds(timeout, "--timeout"),
                          auth="kerberos" if auth == "kerberos" else "none", ca_bundle=ca_bundle)
    except LivyError as e:
        raise fail(str(e)) from None


def _where(rm: str | None, livy_url: str | None) -> str:
    """The --rm/--livy options to repeat in a suggested command (credentials masked)."""
    out = f" --rm {redact(rm)}" if rm else ""
    return out + (f" --livy {redact(livy_url)}" if livy_url else "")


def _ints(values: tuple[str, ...], option: str) -> list[int]:
    out: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part:
                continue
            try:
                out.append(int(part))
            except ValueError:
                raise _bad(f"{option} {value!r}: use whole numbers, e.g. {option} 3,10,50") from None
    return out


# ---- decom capacity ------------------------------------------------------------------------------


def _worker_line(spec: WorkerSpec) -> str:
    what = f"{spec.name}: {spec.vcpus} vCPU, {format_mb(spec.memory_mb)} per worker"
    if spec.slots == 1:
        return what + "; one executor or one driver per worker"
    return what + f"; {spec.slots} executor-sized containers (or drivers) per worker"


def _plan_json(plan: CapacityPlan) -> dict[str, Any]:
    return {"users": plan.users, "executors_per_user": plan.executors_per_user, "workers": plan.workers,
            "executors": plan.executors, "drivers": plan.users, "containers": plan.containers,
            "vcpus": plan.vcpus, "memory_mb": plan.memory_mb, "executor_memory_mb": plan.executor_memory_mb}


def _fit_json(fit: FitPlan) -> dict[str, Any]:
    return {"workers": fit.workers, "executors_per_user": fit.executors_per_user, "users": fit.users,
            "workers_used": fit.workers_used, "workers_left": fit.workers_left}


@click.command()
@click.option("--users", "users", multiple=True, metavar="U[,U...]",
              help="Concurrent notebook users (one session each); repeatable or comma-separated (3,10,50).")
@click.option("--executors-per-user", "-e", "executors_per_user", type=int, required=True,
              help="Executors each session may have (its spark.dynamicAllocation.maxExecutors).")
@click.option("--workers", "workers", multiple=True, metavar="W[,W...]",
              help="Workers you have: how many concurrent users fit (the inverse).")
@click.option("--worker-type", default=None,
              help="AWS Glue worker type: G.025X, G.1X (default), G.2X, G.4X, G.8X, G.12X, G.16X, R.1X-R.8X.")
@click.option("--worker-memory", default=None, help="Your own nodes instead: memory per node for containers "
              "(yarn.nodemanager.resource.memory-mb), e.g. 64g. With --worker-cores.")
@click.option("--worker-cores", type=int, default=None, help="Your own nodes: vcores per node.")
@click.option("--executor-memory", default=None,
              help="Executor memory (e.g. 10g): the executor-memory total; on your own nodes also how many "
                   "executors fit per node (with 10%%/384 MB overhead).")
@click.option("--executor-cores", type=int, default=1, show_default=True,
              help="Executor cores (with --worker-memory/--worker-cores and --executor-memory).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
def capacity(users: tuple[str, ...], executors_per_user: int, workers: tuple[str, ...], worker_type: str | None,
             worker_memory: str | None, worker_cores: int | None, executor_memory: str | None,
             executor_cores: int, as_json: bool) -> None:
    """Workers a shared notebook cluster needs: users x (executors per user + 1).

    Each notebook is one Livy session, that is one Spark app: a driver plus its executors, each taking
    one AWS Glue worker. With --workers, the inverse: how many users fit. With both, whether they fit
    and the largest per-session executor cap that makes them fit.
    """
    user_counts = _ints(users, "--users")
    worker_counts = _ints(workers, "--workers")
    if not user_counts and not worker_counts:
        raise _bad("give --users U (workers needed) or --workers W (users that fit), or both")
    if worker_type is not None and (worker_memory is not None or worker_cores is not None):
        raise _bad("give either --worker-type (AWS Glue) or --worker-memory/--worker-cores (your nodes), not both")
    with exits_on(ConfigError, EXIT_USAGE):
        spec = worker_spec(worker_type, worker_memory=worker_memory, worker_cores=worker_cores,
                           executor_memory=executor_memory, executor_cores=executor_cores)
        plans = [plan_capacity(u, executors_per_user, spec) for u in user_counts]
        fits = [users_that_fit(w, executors_per_user, spec) for w in worker_counts]
        caps = [(u, w, max_executors_per_user(u, w, spec)) for u in user_counts for w in worker_counts]
    if as_json:
        click.echo(json.dumps({
            "worker": {"name": spec.name, "vcpus": spec.vcpus, "memory_mb": spec.memory_mb,
                       "containers_per_worker": spec.slots, "executor_memory_mb": spec.executor_memory_mb},
            "plans": [_plan_json(p) for p in plans], "fits": [_fit_json(f) for f in fits],
            "caps": [{"users": u, "workers": w, "fits": plan_capacity(u, executors_per_user, spec).workers <= w,
                      "max_executors_per_user": m} for u, w, m in caps]}, indent=2))
        return
    click.echo(_worker_line(spec))
    if plans:
        rows = [["USERS", "EXECUTORS/USER", "WORKERS", "EXECUTORS", "DRIVERS", "vCPU", "MEMORY", "EXECUTOR MEMORY"]]
        rows += [[str(p.users), str(p.executors_per_user), str(p.workers), str(p.executors), str(p.users),
                  str(p.vcpus), format_mb(p.memory_mb),
                  format_mb(p.executor_memory_mb) if p.executor_memory_mb is not None else "-"] for p in plans]
        click.echo("\n" + table(rows))
    if fits:
        rows = [["WORKERS", "EXECUTORS/USER", "USERS THAT FIT", "WORKERS USED", "LEFT OVER"]]
        rows += [[str(f.workers), str(f.executors_per_user), str(f.users), str(f.workers_used),
                  str(f.workers_left)] for f in fits]
        click.echo("\n" + table(rows))
    for u, w, cap in caps:
        need = plan_capacity(u, executors_per_user, spec).workers
        verdict = "fits" if need <= w else f"does NOT fit (needs {need}, {need - w} short)"
        advice = (f"at most {cap} executor(s) per user lets {u} users run at once on {w} workers"
                  if cap >= 0 else f"{w} workers cannot even hold {u} drivers")
        click.echo(f"\n{u} users x {executors_per_user} executors on {w} workers: {verdict}; {advice}.")
    click.echo("\nworkers = users x (executors per user + 1): each session is one driver plus its executors.\n"
               "Cap each session at E executors with: decom sparkmagic-config --max-executors E")


# ---- decom sparkmagic-config ---------------------------------------------------------------------


@click.command("sparkmagic-config")
@click.option("--max-executors", type=int, required=True,
              help="spark.dynamicAllocation.maxExecutors of every new session.")
@click.option("--min-executors", type=int, default=None, help="spark.dynamicAllocation.minExecutors too.")
@click.option("--executor-memory", default=None, help="executorMemory of the sessions, e.g. 4g.")
@click.option("--executor-cores", type=int, default=None, help="executorCores of the sessions.")
@click.option("--driver-memory", default=None, help="driverMemory of the sessions, e.g. 2g.")
@click.option("--config", "config_path", default=DEFAULT_CONFIG_PATH, show_default=True,
              help="sparkmagic's config.json.")
@click.option("--dry-run", is_flag=True, help="Print the resulting config.json; write nothing.")
def sparkmagic_config(max_executors: int, min_executors: int | None, executor_memory: str | None,
                      executor_cores: int | None, driver_memory: str | None, config_path: str,
                      dry_run: bool) -> None:
    """Cap executors per notebook session in sparkmagic's config.json (session_configs).

    Merges into what is there (other keys and values are kept), writes a backup
    config.json.bak-<time> first, and writes nothing when the file already says the same. Prints the
    equivalent %%configure -f cell for a running notebook.
    """
    with exits_on(ConfigError, EXIT_USAGE):
        update = update_sparkmagic_config(config_path, max_executors=max_executors, min_executors=min_executors,
                                          executor_memory=executor_memory, executor_cores=executor_cores,
                                          driver_memory=driver_memory, dry_run=dry_run)
    if dry_run:
        click.echo(f"dry run: {update.path} would {'be created' if update.created else 'become'}"
                   + ("" if update.changed else " (no change)") + " (secrets shown as ***):")
        click.echo(json.dumps(redact_json(update.config), indent=2, ensure_ascii=False))
        click.echo("nothing written.")
    elif not update.changed:
        click.echo(f"{update.path} already has these session_configs: nothing written.")
    elif update.created:
        click.echo(f"created {update.path}")
    else:
        click.echo(f"updated {update.path} (previous file kept as {update.backup})")
    click.echo("session_configs: " + json.dumps(redact_json(update.session_configs)))
    click.echo("\nIn a running notebook, this cell does the same (it restarts that notebook's session):")
    click.echo(configure_cell(redact_json(update.session_configs)))
    click.echo("\n" + textwrap.fill(TRADE_OFF.format(n=max_executors), width=100))


# ---- decom sessions ------------------------------------------------------------------------------


def _idle_text(s: Session) -> str:
    if s.yarn_state != "RUNNING":
        return "-"
    if s.busy:
        return "busy"
    if s.idle_s is None:
        return "?"
    return f"{format_duration(s.idle_s)} ({s.idle_source})"


def _session_rows(sessions: list[Session], with_idle: bool = True) -> list[list[str]]:
    head = ["APP ID", "NAME", "LIVY", "YARN", "OWNER", "QUEUE", "CONTAINERS", "MEMORY", "VCORES", "AGE"]
    rows = [head + (["IDLE"] if with_idle else [])]
    for s in sessions:
        livy = f"{s.livy_id} {s.livy_state}" if s.livy_id is not None else "-"
        row = [s.app_id or "-", s.name, livy, s.yarn_state or "-", s.owner or "-", s.queue or "-",
               str(s.containers), f"{s.memory_mb} MB", str(s.vcores),
               format_duration(s.age_s) if s.age_s is not None else "-"]
        rows.append(row + ([_idle_text(s)] if with_idle else []))
    return rows


def _cluster_lines(inv: SessionInventory) -> list[str]:
    c = inv.cluster
    lines = [f"cluster: {format_mb(c.allocated_mb)} of {format_mb(c.total_mb)} memory used "
             f"({format_mb(c.available_mb)} free), {c.allocated_vcores} of {c.total_vcores} vcores used "
             f"({c.available_vcores} free), {c.containers} containers, {c.active_nodes} active node(s)"]
    if c.largest_free_mb is not None:
        lines.append(f"most free on one node: {format_mb(c.largest_free_mb)}, {c.largest_free_vcores} vcore(s) "
                     "(every container, the session's driver/AM first, must fit on one node)")
    running = [s for s in inv.sessions if s.yarn_state == "RUNNING"]
    lines.append(f"{len(running)} running session(s) hold {format_mb(sum(s.memory_mb for s in running))} in "
                 f"{sum(s.containers for s in running)} container(s); {inv.others.count} other app(s) hold "
                 f"{format_mb(inv.others.memory_mb)} in {inv.others.containers} container(s)")
    lines.append(f"apps waiting for resources (ACCEPTED): {c.apps_pending}"
                 + (f", asking for {format_mb(c.pending_mb)}" if c.pending_mb else "")
                 + ("  <- a new session waits here until something ends" if c.apps_pending else ""))
    return lines


def _inventory(rm: str | None, timeout: str, auth: str, rm_user: str, ca_bundle: str, livy_url: str | None,
               name: str, include_all: bool, livy_required: bool) -> SessionInventory:
    livy = _livy_client(livy_url, timeout, auth, ca_bundle)
    try:
        with client_from_options(rm, timeout, auth, rm_user, ca_bundle) as client, exits_on(ResourceManagerError):
            return collect_inventory(client, livy, name_pattern=name, include_all=include_all,
                                     livy_required=livy_required)
    except LivyError as e:
        raise fail(str(e)) from None
    finally:
        if livy is not None:
            livy.close()


def _filter_sessions(inv: SessionInventory, user: str | None, queue: str | None) -> list[Session]:
    probe = ReapFilters(0.0, name="*", user=user, queue=queue)
    return [s for s in inv.sessions if probe.matches(s)]


@click.command()
@session_rm_options
@_livy_option
@click.option("--name", default=DEFAULT_SESSION_NAME, show_default=True,
              help="YARN app names that are sessions (fnmatch pattern); Livy's sessions are always listed.")
@click.option("--user", "owner", default=None, help="Only this user's sessions (YARN user or Livy owner).")
@click.option("--queue", default=None, help="Only sessions in this YARN queue.")
@click.option("--all", "include_all", is_flag=True, help="List every active YARN app, not only sessions.")
@click.option("--json", "as_json", is_flag=True, help="Print sessions and cluster totals as JSON.")
def sessions(rm: str | None, timeout: str, auth: str, rm_user: str, ca_bundle: str, livy_url: str | None,
             name: str, owner: str | None, queue: str | None, include_all: bool, as_json: bool) -> None:
    """The interactive sessions holding the cluster, and the cluster's used/free totals.

    IDLE comes from Livy's statements (last `completed`) when --livy is given, else from the Spark app's
    status REST API through the RM's web proxy (last job's completion; "busy" while one runs); "?" when
    neither answers. Such a session is never reaped.
    """
    inv = _inventory(rm, timeout, auth, rm_user, ca_bundle, livy_url, name, include_all, livy_required=False)
    shown = _filter_sessions(inv, owner, queue)
    for warning in inv.warnings:
        click.echo(f"decom: warning: {warning}", err=True)
    if as_json:
        data = inv.to_json()
        data["sessions"] = [s.to_json() for s in shown]
        click.echo(json.dumps(data, indent=2))
        return
    if shown:
        click.echo(table(_session_rows(shown)))
    else:
        click.echo(f"no session (no active YARN app named {name}" + (", no Livy session" if livy_url else "") + ")")
    click.echo("")
    for line in _cluster_lines(inv):
        click.echo(line)


# ---- decom reap ----------------------------------------------------------------------------------


def _mb(mb: int) -> str:
    """Exact MB (what the RM UI shows), with GB alongside once it is large."""
    return f"{mb} MB" if mb < 1024 else f"{mb} MB ({format_mb(mb)})"


def _freed_text(freed: tuple[int, int, int]) -> str:
    return f"{freed[0]} container(s), {_mb(freed[1])}, {freed[2]} vcore(s)"


def _print_plan(plan: ReapPlan, dry_run: bool, via_livy: bool) -> None:
    n = len(plan.targets)
    click.echo(f"{'would end' if dry_run else 'ending'} {n} idle session(s) ({plan.filters.describe()}):")
    rows = _session_rows(plan.targets)
    for row, s in zip(rows[1:], plan.targets, strict=True):
        row.append(f"Livy DELETE {s.livy_id}" if via_livy and s.livy_id is not None else "YARN kill")
    rows[0].append("VIA")
    click.echo(table(rows))
    if plan.kept:
        click.echo("kept (they match the filters but are not idle enough to end):")
        for s, why in plan.kept:
            click.echo(f"  {s.app_id or '-'} {s.name}" + (f" (Livy {s.livy_id})" if s.livy_id is not None else "")
                       + f": {why}")


def _print_result(result: ReapResult) -> None:
    ended = [o for o in result.outcomes if o.ended]
    click.echo(f"ended {len(ended)} of {len(result.outcomes)} session(s): freed {_freed_text(result.freed)}")
    if result.after is not None:
        b, a = result.before, result.after
        click.echo(f"cluster free memory {_mb(b.available_mb)} -> {_mb(a.available_mb)}, free vcores "
                   f"{b.available_vcores} -> {a.available_vcores}, containers {b.containers} -> {a.containers}")
    if result.still_active:
        click.echo("still active in YARN after the wait (ending takes a moment more): "
                   + ", ".join(result.still_active))


def _result_json(plan: ReapPlan, result: ReapResult | None, dry_run: bool) -> dict[str, Any]:
    return {"dry_run": dry_run, "filters": dict(plan.filters.__dict__),
            "targets": [s.to_json() for s in plan.targets],
            "kept": [{**s.to_json(), "reason": why} for s, why in plan.kept],
            "would_free" if dry_run else "freed": dict(zip(("containers", "memory_mb", "vcores"),
                                                           result.freed if result else plan.freed, strict=True)),
            "outcomes": [{"app_id": o.session.app_id, "livy_id": o.session.livy_id, "ended": o.ended, "how": o.how}
                         for o in (result.outcomes if result else [])],
            "cluster_before": plan.inventory.cluster.to_json(),
            "cluster_after": result.after.to_json() if result and result.after else None,
            "still_active": result.still_active if result else []}


@click.command()
@session_rm_options
@_livy_option
@click.option("--idle", "idle", required=True, help="End sessions idle at least this long (e.g. 30m, 2h).")
@click.option("--user", "owner", default=None, help="Only this user's sessions (YARN user, Livy owner or proxy user).")
@click.option("--queue", default=None, help="Only sessions in this YARN queue.")
@click.option("--name", default=DEFAULT_SESSION_NAME, show_default=True,
              help="Only YARN apps whose name matches this fnmatch pattern.")
@click.option("--dry-run", "dry_run", is_flag=True, help="Only show what would be ended (the default).")
@click.option("--yes", "yes", is_flag=True, help="End them.")
@click.option("--wait", "wait", default="30s", show_default=True,
              help="How long to wait for the ended apps to leave YARN before printing the freed totals.")
@click.option("--json", "as_json", is_flag=True, help="Print the plan and outcome as JSON.")
def reap(rm: str | None, timeout: str, auth: str, rm_user: str, ca_bundle: str, livy_url: str | None, idle: str,
         owner: str | None, queue: str | None, name: str, dry_run: bool, yes: bool, wait: str,
         as_json: bool) -> None:
    """End idle interactive sessions: a dry run unless --yes.

    A session is ended only when it matches every filter (--name, --user, --queue), its YARN app is
    RUNNING, it is not busy, and its idle time is known and at least --idle; each one's activity is read
    once more right before it is ended. Sessions Livy lists are ended through Livy (DELETE /sessions/{id});
    the others through YARN's REST kill. Exit status: 0 done (or nothing to do), 1 some could not be
    ended, 2 bad input or RM/Livy unreachable.
    """
    if dry_run and yes:
        raise _bad("--dry-run and --yes contradict each other: give one (the default is a dry run)")
    idle_s = parse_seconds(idle, "--idle")
    wait_s = parse_seconds(wait, "--wait")
    if not name.strip():
        raise _bad("--name must not be empty: use e.g. 'livy-session-*', or '*' for every app")
    filters = ReapFilters(idle_s, name=name, user=owner, queue=queue)
    acting = yes
    livy = _livy_client(livy_url, timeout, auth, ca_bundle)
    try:
        with client_from_options(rm, timeout, auth, rm_user, ca_bundle) as client, exits_on(ResourceManagerError):
            inv = collect_inventory(client, livy, name_pattern=name, livy_required=True)
            plan = plan_reap(inv, filters)
            if not as_json:
                for warning in inv.warnings:
                    click.echo(f"decom: warning: {warning}", err=True)
            if not plan.targets:
                if as_json:
                    click.echo(json.dumps(_result_json(plan, None, not acting), indent=2))
                    return
                matched = len(plan.kept)
                click.echo(f"no session to end: {'none of the ' + str(matched) + ' matching' if matched else 'no'} "
                           f"session(s) ({filters.describe()}) "
                           f"{'is idle long enough' if matched else 'found'}; nothing done.")
                if plan.kept:
                    _print_plan(plan, True, livy is not None)
                return
            if not acting:
                if as_json:
                    click.echo(json.dumps(_result_json(plan, None, True), indent=2))
                    return
                _print_plan(plan, True, livy is not None)
                click.echo(f"dry run: nothing ended. Ending them would free {_freed_text(plan.freed)}; "
                           "run again with --yes to end them.")
                return
            if not as_json:
                _print_plan(plan, False, livy is not None)

            def report(outcome: ReapOutcome) -> None:
                if not as_json:
                    s = outcome.session
                    verb = "ended" if outcome.ended else "NOT ended"
                    click.echo(f"{verb} {s.app_id or '-'} {s.name}: {outcome.how}")

            result = execute_reap(plan, client, livy, wait=wait_s, on_outcome=report)
    except LivyError as e:
        raise fail(str(e)) from None
    finally:
        if livy is not None:
            livy.close()
    if as_json:
        click.echo(json.dumps(_result_json(plan, result, False), indent=2))
    else:
        _print_result(result)
    if result.failed and any(not o.how.startswith("kept") for o in result.failed):
        raise click.exceptions.Exit(1)


# ---- decom diagnose ------------------------------------------------------------------------------


@click.command()
@click.argument("error_text", nargs=-1, required=True)
@rm_options
@_livy_option
@click.option("--json", "as_json", is_flag=True, help="Print the diagnoses as JSON.")
def diagnose(error_text: tuple[str, ...], rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str,
             livy_url: str | None, as_json: bool) -> None:
    """Say what a notebook error means and what to do ("-" reads the text from stdin).

    Knows Livy's 404 "Session 'N' not found.", sparkmagic's "did not start up in 60 seconds", YARN's
    no-room messages, containers too big or killed for memory, lost/decommissioned nodes, Livy down,
    queue refusals and more. With --rm (or HADOOP_CONF_DIR) and/or --livy it adds the live numbers.
    Exit status 1 when nothing is recognised.
    """
    text = sys.stdin.read() if error_text == ("-",) else " ".join(error_text)
    if not text.strip():
        raise _bad("give the error text, e.g. decom diagnose \"Session '3' not found.\"")
    livy = _livy_client(livy_url, timeout, auth, ca_bundle)
    client = None
    if rm or discover_rm_addresses({}, os.environ):
        client = client_from_options(rm, timeout, auth, user, ca_bundle)
    try:
        found = diagnose_text(text, client, livy, where=_where(rm, livy_url))
    finally:
        if client is not None:
            client.close()
        if livy is not None:
            livy.close()
    if as_json:
        click.echo(json.dumps([d.to_json() for d in found], indent=2))
    elif not found:
        click.echo("decom does not recognise this error. It knows: Livy 404 \"Session 'N' not found.\", "
                   "\"did not start up in N seconds\", YARN without room for the app, containers too big or killed "
                   "for memory, executors lost with their node, Livy unreachable, queue refusals, too many "
                   "sessions starting, driver out of memory. `decom sessions --rm URL` shows who holds the cluster.")
    for i, d in enumerate([] if as_json else found):
        if i:
            click.echo("")
        click.echo(f"{d.title}")
        click.echo(f"  recognised: {d.matched}")
        click.echo(textwrap.fill(d.cause, width=100, initial_indent="  why: ", subsequent_indent="       "))
        click.echo("  what to do:")
        for n, action in enumerate(d.actions, 1):
            click.echo(textwrap.fill(action, width=100, initial_indent=f"    {n}. ", subsequent_indent="       ",
                                     break_on_hyphens=False, break_long_words=False))
        if d.live:
            click.echo("  now:")
            for line in d.live:
                click.echo(f"    {line}")
    if not found:
        raise click.exceptions.Exit(1)


# ---- decom admit ---------------------------------------------------------------------------------


@click.command()
@rm_options
@_livy_option
@click.option("--executors", "-e", type=int, required=True, help="Executors the new session starts with.")
@click.option("--executor-memory", default="1g", show_default=True, help="The session's executor memory.")
@click.option("--executor-cores", type=int, default=1, show_default=True)
@click.option("--driver-memory", default="1g", show_default=True,
              help="The driver's memory (cluster mode, Livy's usual) or the AM's (client mode: spark.yarn.am.memory).")
@click.option("--driver-cores", type=int, default=1, show_default=True)
@click.option("--check-vcores", is_flag=True,
              help="Count vcores too (DominantResourceCalculator clusters); default: memory only, like YARN's "
                   "DefaultResourceCalculator.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def admit(rm: str | None, timeout: str, auth: str, user: str, ca_bundle: str, livy_url: str | None, executors: int,
          executor_memory: str, executor_cores: int, driver_memory: str, driver_cores: int, check_vcores: bool,
          as_json: bool) -> None:
    """Admission guard: does a new session (driver + executors) fit the cluster's free room now?

    Packs the session's containers (memory + max(384 MB, 10%) overhead) into the free memory of the
    RUNNING nodes. Exit status 0: it fits; 1: it does not (with the idle sessions whose ending would make
    room); 2: bad input or the RM unreachable. Queue limits are not modelled. Use it before creating a
    session, e.g. in the script that starts notebooks.
    """
    with exits_on(ConfigError, EXIT_USAGE):
        exec_mb = parse_memory_mb(executor_memory, "--executor-memory")
        driver_mb = parse_memory_mb(driver_memory, "--driver-memory")
    livy = _livy_client(livy_url, timeout, auth, ca_bundle)
    try:
        with (client_from_options(rm, timeout, auth, user, ca_bundle) as client, exits_on(ResourceManagerError),
              exits_on(ConfigError, EXIT_USAGE)):
            check = check_admission(client, executors=executors, executor_memory_mb=exec_mb,
                                    executor_cores=executor_cores, driver_memory_mb=driver_mb,
                                    driver_cores=driver_cores, check_vcores=check_vcores)
            inventory = None
            if not check.fits:
                inventory = collect_inventory(client, livy)
                check = check_admission(client, executors=executors, executor_memory_mb=exec_mb,
                                        executor_cores=executor_cores, driver_memory_mb=driver_mb,
                                        driver_cores=driver_cores, check_vcores=check_vcores, inventory=inventory)
    finally:
        if livy is not None:
            livy.close()
    if as_json:
        click.echo(json.dumps({"fits": check.fits, "containers_mb": [c[0] for c in check.containers],
                               "needed_mb": check.needed_mb, "placed": check.placed, "free_mb_by_node": check.free_mb,
                               "reap_suggestions": [s.to_json() for s in check.reap_suggestions]}, indent=2))
    else:
        driver_c = check.containers[0][0]
        executor_c = check.containers[1][0] if executors else 0
        what = (f"a session of 1 driver ({driver_c} MB) + {executors} executor(s) of {executor_c} MB "
                f"({check.needed_mb} MB in all, overhead included)")
        most = max(check.free_mb.values(), default=0)
        if check.fits:
            click.echo(f"fits: {what} finds room on the RUNNING nodes now (most free on one node: {most} MB).")
        else:
            click.echo(f"does NOT fit: {what}; only {check.placed} of {len(check.containers)} container(s) find "
                       f"room (free: {sum(check.free_mb.values())} MB in all, {most} MB at most on one node).")
            if check.reap_suggestions:
                click.echo("ending these idle sessions would free enough memory in all (placement not guaranteed):")
                for s in check.reap_suggestions:
                    click.echo(f"  {s.app_id} {s.name} ({s.owner or '?'}): idle {format_duration(s.idle_s)}, "
                               f"{s.memory_mb} MB")
            else:
                click.echo("no idle session to end: wait for one, cap sessions (decom sparkmagic-config), or add "
                           "nodes.")
    if not check.fits:
        raise click.exceptions.Exit(1)


__all__ = ["capacity", "sparkmagic_config", "sessions", "reap", "diagnose", "admit", "session_rm_options",
           "EXIT_RM"]


COMMANDS = (capacity, sparkmagic_config, sessions, reap, diagnose, admit)
