"""Ending idle sessions: which ones a reap would end and why the others are kept (:func:`plan_reap`), then
ending them through Livy, else YARN's REST kill (:func:`execute_reap`). A session whose idle time is
unknown is never ended."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass

from .._errors import DecomError, LivyError, LivySessionNotFoundError, ResourceManagerError
from .._units import format_duration
from .._yarn import ResourceManagerClient
from .inventory import (
    ACTIVE_APP_STATES,
    DEFAULT_SESSION_NAME,
    ClusterTotals,
    Session,
    SessionInventory,
    measure_activity,
    with_activity,
)
from .livy import ENDED_STATES, WAITING_STATES, LivyClient, LivySession

__all__ = ["ReapFilters", "ReapPlan", "ReapOutcome", "ReapResult", "plan_reap", "execute_reap"]


def _queue_matches(app_queue: str, wanted: str) -> bool:
    def bare(q: str) -> str:
        return q[5:] if q.startswith("root.") else q

    return bool(app_queue) and bare(app_queue) == bare(wanted)


@dataclass(frozen=True)
class ReapFilters:
    """What a session must match, every one of them, to be ended."""

    #: Idle for at least this many seconds.
    idle_s: float
    #: fnmatch pattern of the YARN app name (or Livy's name when YARN has no app).
    name: str = DEFAULT_SESSION_NAME
    #: The session's YARN user, Livy owner or Livy proxy user.
    user: str | None = None
    #: The YARN queue (``root.`` prefix optional).
    queue: str | None = None

    def matches(self, session: Session) -> bool:
        if not fnmatch.fnmatchcase(session.name, self.name):
            return False
        if self.user is not None and self.user not in {session.yarn_user, session.livy_user}:
            return False
        return self.queue is None or _queue_matches(session.queue, self.queue)

    def describe(self) -> str:
        parts = [f"idle >= {format_duration(self.idle_s)}", f"name {self.name}"]
        if self.user is not None:
            parts.append(f"user {self.user}")
        if self.queue is not None:
            parts.append(f"queue {self.queue}")
        return ", ".join(parts)


def _why_kept(session: Session, filters: ReapFilters) -> str | None:
    """None when the session (already known to match the filters) is to be ended, else why not."""
    if session.livy_state in WAITING_STATES:
        return f"Livy state {session.livy_state}"
    if session.yarn_state != "RUNNING":
        return f"its YARN app is {session.yarn_state or 'not active'}: not a running session"
    if session.busy:
        return "busy: " + ("a statement is running" if session.idle_source == "livy" else "a Spark job is running")
    if session.idle_s is None:
        return "idle time unknown (" + (session.note or "no Livy and no Spark UI") + "): never reaped"
    if session.idle_s < filters.idle_s:
        return f"idle {format_duration(session.idle_s)} < {format_duration(filters.idle_s)}"
    return None


@dataclass(frozen=True)
class ReapPlan:
    filters: ReapFilters
    #: Sessions to end: they match every filter and have been idle long enough.
    targets: list[Session]
    #: Sessions that match the name/user/queue filters but are kept, with the reason.
    kept: list[tuple[Session, str]]
    inventory: SessionInventory

    @property
    def freed(self) -> tuple[int, int, int]:
        """Containers, MB and vcores the targets hold."""
        return (sum(s.containers for s in self.targets), sum(s.memory_mb for s in self.targets),
                sum(s.vcores for s in self.targets))


def plan_reap(inventory: SessionInventory, filters: ReapFilters) -> ReapPlan:
    """Which sessions to end: those matching every filter, running, not busy, idle long enough."""
    if filters.idle_s < 0:
        raise DecomError("the idle time must not be negative")
    targets: list[Session] = []
    kept: list[tuple[Session, str]] = []
    for session in inventory.sessions:
        if not filters.matches(session):
            continue
        if session.yarn_state is None and session.livy_state in ENDED_STATES:
            continue  # a finished session Livy still remembers: nothing to end, nothing to say
        reason = _why_kept(session, filters)
        if reason is None:
            targets.append(session)
        else:
            kept.append((session, reason))
    return ReapPlan(filters, targets, kept, inventory)


@dataclass(frozen=True)
class ReapOutcome:
    session: Session
    ended: bool
    #: How it was ended ("Livy DELETE /sessions/3", "YARN REST kill") or why not.
    how: str


@dataclass(frozen=True)
class ReapResult:
    outcomes: list[ReapOutcome]
    #: Containers, MB and vcores the ended sessions held.
    freed: tuple[int, int, int]
    before: ClusterTotals
    #: The RM's totals once the ended apps left (or the wait ran out); None if not read.
    after: ClusterTotals | None
    #: Ended apps still active in YARN when the wait ran out.
    still_active: list[str]

    @property
    def failed(self) -> list[ReapOutcome]:
        return [o for o in self.outcomes if not o.ended]


def execute_reap(plan: ReapPlan, rm: ResourceManagerClient, livy: LivyClient | None = None, *,
                 wait: float = 30.0, recheck: bool = True,
                 on_outcome: Callable[[ReapOutcome], None] | None = None) -> ReapResult:
    """End the plan's targets and nothing else: through Livy (``DELETE /sessions/{id}``) when the
    session is Livy's and a client is given, else through YARN's REST kill. With ``recheck``, each
    target's activity is read again right before it is ended, and a session that became busy (or
    whose idle time fell under the threshold) is kept."""
    outcomes: list[ReapOutcome] = []
    livy_sessions: dict[int, LivySession] = {}
    if livy is not None and recheck and any(t.livy_id is not None for t in plan.targets):
        livy_sessions = {s.id: s for s in livy.sessions()}
    for target in plan.targets:
        outcome = _end_one(target, plan.filters, rm, livy, livy_sessions, recheck)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    ended = [o.session for o in outcomes if o.ended]
    freed = (sum(s.containers for s in ended), sum(s.memory_mb for s in ended), sum(s.vcores for s in ended))
    ended_ids = {s.app_id for s in ended if s.app_id}
    still: list[str] = sorted(ended_ids)
    after: ClusterTotals | None = None
    deadline = time.monotonic() + max(0.0, wait)
    try:
        while ended_ids:
            active = {str(a["id"]) for a in rm.apps(states=ACTIVE_APP_STATES)}
            still = sorted(ended_ids & active)
            if not still or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        # The RM releases containers a moment after the app ends: wait for the totals to show it.
        while True:
            after = ClusterTotals.from_metrics(rm.cluster_metrics())
            if not ended_ids or after.allocated_mb <= plan.inventory.cluster.allocated_mb - freed[1] \
                    or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    except ResourceManagerError:
        pass
    return ReapResult(outcomes, freed, plan.inventory.cluster, after, still)


def _end_one(target: Session, filters: ReapFilters, rm: ResourceManagerClient, livy: LivyClient | None,
             livy_sessions: dict[int, LivySession], recheck: bool) -> ReapOutcome:
    if recheck:
        livy_session = livy_sessions.get(target.livy_id) if target.livy_id is not None else None
        if target.livy_id is not None and livy is not None and livy_session is None:
            return ReapOutcome(target, False, f"kept: Livy no longer lists session {target.livy_id}")
        activity = measure_activity(rm, livy if livy_session is not None else None, livy_session, target.app_id,
                             target.started_ms or None)
        fresh = with_activity(target, activity, int(time.time() * 1000))
        reason = _why_kept(fresh, filters)
        if reason is not None:
            return ReapOutcome(fresh, False, f"kept after a last look: {reason}")
    if target.livy_id is not None and livy is not None:
        try:
            livy.delete_session(target.livy_id)
            return ReapOutcome(target, True, f"Livy DELETE /sessions/{target.livy_id}")
        except LivySessionNotFoundError as e:
            if not target.app_id:
                return ReapOutcome(target, False, f"Livy: {e}")
            # Livy forgot the session but its app still runs (e.g. Livy restarted): end the app.
            fallback = f" (Livy: {e})"
        except LivyError as e:
            return ReapOutcome(target, False, f"not ended: {e}")
    else:
        fallback = ""
    if not target.app_id:
        return ReapOutcome(target, False, "not ended: no YARN app id")
    try:
        rm.kill_app(target.app_id)
    except ResourceManagerError as e:
        return ReapOutcome(target, False, f"not ended: {e}")
    return ReapOutcome(target, True, "YARN REST kill" + fallback)
