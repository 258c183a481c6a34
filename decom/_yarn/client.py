"""The YARN ResourceManager REST client: node states, applications, HA fail-over, kill.

Facts this relies on (checked against Hadoop 3.5.0's ``webapp.dao.NodeInfo``): a node carries
``id`` ("host:port"), ``nodeHostName``, ``nodeHTTPAddress`` (empty for inactive nodes), ``state``,
``rack``, ``lastHealthUpdate`` (epoch ms), ``numContainers``, ``usedMemoryMB``, ``availMemoryMB``,
``usedVirtualCores``, ``availableVirtualCores``, ``healthReport`` and ``version``. Stock YARN's REST
does **not** expose the remaining graceful-decommission timeout (the Java ``NodeReport`` has it,
the REST ``NodeInfo`` has not): :attr:`RMNode.decommissioning_timeout` is read from a
``decommissioningTimeout`` field when an RM (a vendor build) sends one, and is ``None`` otherwise.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import httpx

from .._errors import ResourceManagerError
from .._http import HttpClient, HttpSettings, origin
from .._redact import display_url, redact
from .discovery import dedupe_addresses, normalize_address
from .nodes import RMNode, parse_node

__all__ = [
    "RMNode",
    "ResourceManagerClient",
    "ResourceManagerUnreachableError",
]

log = logging.getLogger("decom.yarn")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_MAX_HOPS = 3
_APP_ID = re.compile(r"^application_\d+_\d+$")
_NODE_ID = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d+$")


class ResourceManagerUnreachableError(ResourceManagerError):
    """No configured ResourceManager gave an answer (refused, timed out, 5xx, bad redirect)."""


class _BadReplyError(ResourceManagerError):
    """An RM answered, but not with what a YARN ResourceManager sends for this request."""


# ---- replies -------------------------------------------------------------------------------------


def _items(data: object, outer: str, inner: str) -> list[Any] | None:
    """``{"nodes": {"node": [...]}}`` -> the list; ``null``/missing inner -> []; None if malformed.
    Jettison-style replies give a lone element as an object instead of a one-element list."""
    if not isinstance(data, dict) or outer not in data:
        return None
    box = data[outer]
    if box is None:
        return []
    if not isinstance(box, dict):
        return None
    items = box.get(inner)
    if items is None:
        return []
    if isinstance(items, dict):
        return [items]
    if isinstance(items, list):
        return items
    return None


# ---- the client ----------------------------------------------------------------------------------


def _display(base: str) -> str:
    """An address as messages show it: scheme, host and port only (never user info or query)."""
    return display_url(base, with_path=False)


class ResourceManagerClient:
    """Talks to one YARN cluster's ResourceManager(s) over REST; thread-safe.

    ``addresses`` are the RMs' web addresses (``http://rm1:8088``; a missing scheme means http),
    in the order to try them. The client remembers the one that last answered (the active RM of an
    HA pair), follows a standby's 307 only to a configured RM or the same host, and fails over on
    connection errors, time-outs and 5xx. Every failure raises :class:`ResourceManagerError`.
    """

    def __init__(self, addresses: Sequence[str], *, timeout: float = 5.0, auth: str = "simple",
                 user: str = "", ca_bundle: str = "",
                 transport: httpx.BaseTransport | None = None) -> None:
        if isinstance(addresses, str):
            addresses = addresses.split(",")
        given = [a.strip() for a in addresses if a and a.strip()]
        usable = dedupe_addresses(normalize_address(a) for a in given)
        if not usable:
            shown = ", ".join(repr(redact(a)) for a in given)
            raise ResourceManagerError(
                "no usable ResourceManager address" + (f" in {shown}" if shown else "") + ": give its web "
                "address, e.g. http://rm-host:8088 (comma-separated for HA), in spark.decom.yarn.rm.addresses "
                "(the CLI: --rm), or set HADOOP_CONF_DIR to the directory holding yarn-site.xml")
        # User info in an address becomes Basic auth for that RM: it is never part of a URL decom requests
        # or shows (it would reach httpx's request log). The RM follows no redirect itself (_send does,
        # to a configured RM or the same host) and ignores proxy variables.
        self._http = HttpClient(HttpSettings(
            service="the ResourceManager", error=ResourceManagerError, urls=tuple(usable), timeout=timeout,
            auth=auth or "simple", user=user, ca_bundle=ca_bundle, trust_env=False, follow_redirects=False,
            auth_key="spark.decom.yarn.auth", ca_bundle_key="spark.decom.yarn.tls.caBundle"),
            transport=transport)
        self._addresses = list(self._http.bases)
        self._lock = threading.Lock()
        self._active: str | None = None

    # ---- public ---------------------------------------------------------------------------------

    @property
    def addresses(self) -> list[str]:
        """The configured RMs as messages show them (scheme://host:port)."""
        return [_display(a) for a in self._addresses]

    @property
    def active_address(self) -> str | None:
        """The RM that answered last (scheme://host:port), or None before any answer."""
        with self._lock:
            return _display(self._active) if self._active else None

    @property
    def timeout(self) -> float:
        return self._http.timeout

    def nodes(self, states: Iterable[str] | None = None) -> list[RMNode]:
        """``GET /ws/v1/cluster/nodes[?states=A,B]``: the RM's nodes in these states (its default
        set when None)."""
        params = {"states": ",".join(s.strip().upper() for s in states)} if states is not None \
            else None
        data, base = self._get_json("/ws/v1/cluster/nodes", params)
        items = _items(data, "nodes", "node")
        if items is None:
            raise self._not_rm(base, "/ws/v1/cluster/nodes", "no nodes.node list")
        out: list[RMNode] = []
        for item in items:
            node = parse_node(item)
            if node is None:
                raise self._not_rm(base, "/ws/v1/cluster/nodes", "a node without id or state")
            out.append(node)
        return out

    def node(self, node_id: str) -> RMNode | None:
        """``GET /ws/v1/cluster/nodes/{id}``: one node, or None when the RM no longer knows it."""
        if not isinstance(node_id, str) or not _NODE_ID.match(node_id):
            raise ResourceManagerError(f"{node_id!r} is not a YARN node id (host:port)")
        path = f"/ws/v1/cluster/nodes/{node_id}"
        resp, base = self._send("GET", path)
        if resp.status_code == 404:
            return None
        data, base = self._json(resp, base, path)
        found = parse_node(data.get("node")) if isinstance(data, dict) else None
        if found is None:
            raise self._not_rm(base, path, "no node object with id and state")
        return found

    def apps(self, states: Iterable[str] | None = None,
             application_types: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """``GET /ws/v1/cluster/apps?states=..&applicationTypes=..``: the apps as the RM sends them
        (id, name, user, queue, state, startedTime, elapsedTime, allocatedMB, ...)."""
        params: dict[str, str] = {}
        if states is not None:
            params["states"] = ",".join(s.strip().upper() for s in states)
        if application_types is not None:
            params["applicationTypes"] = ",".join(t.strip() for t in application_types)
        data, base = self._get_json("/ws/v1/cluster/apps", params or None)
        items = _items(data, "apps", "app")
        if items is None or not all(isinstance(a, dict) and isinstance(a.get("id"), str)
                                    for a in items):
            raise self._not_rm(base, "/ws/v1/cluster/apps", "no apps.app list of applications")
        return items

    def cluster_info(self) -> dict[str, Any]:
        """``GET /ws/v1/cluster/info``. A standby RM answers this itself (``haState``: STANDBY):
        the other RMs are then asked, and the active one's answer is returned when there is one."""
        path = "/ws/v1/cluster/info"
        data, base = self._get_json(path)
        info = self._cluster_info(data, base)
        if str(info.get("haState", "")).upper() != "STANDBY":
            return info
        for other in self._addresses:
            if other == base:
                continue
            try:
                data2, base2 = self._get_json(path, only=other)
                info2 = self._cluster_info(data2, base2)
            except ResourceManagerError:
                continue
            if str(info2.get("haState", "")).upper() == "ACTIVE":
                return info2
        return info

    def cluster_metrics(self) -> dict[str, Any]:
        """``GET /ws/v1/cluster/metrics``: node counts by state (activeNodes, lostNodes, ...)."""
        data, base = self._get_json("/ws/v1/cluster/metrics")
        if not isinstance(data, dict) or not isinstance(data.get("clusterMetrics"), dict):
            raise self._not_rm(base, "/ws/v1/cluster/metrics", "no clusterMetrics object")
        metrics: dict[str, Any] = data["clusterMetrics"]
        return metrics

    def kill_app(self, app_id: str, *, wait: float = 30.0, retry_interval: float = 0.5) -> None:
        """``PUT /ws/v1/cluster/apps/{id}/state {"state":"KILLED"}``, repeated while the RM answers
        202 (kill in progress) for at most ``wait`` seconds; returns once the RM answers 200."""
        if not isinstance(app_id, str) or not _APP_ID.match(app_id):
            raise ResourceManagerError(
                f"{app_id!r} is not a YARN application id (application_<clusterTimestamp>_<n>)")
        path = f"/ws/v1/cluster/apps/{app_id}/state"
        deadline = time.monotonic() + max(0.0, wait)
        delay = max(0.01, retry_interval)
        while True:
            resp, base = self._send("PUT", path, body={"state": "KILLED"})
            if resp.status_code == 200:
                return
            if resp.status_code != 202:
                raise self._status_error(resp, base, f"kill {app_id}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise ResourceManagerError(
                    f"the ResourceManager at {_display(base)} is still killing {app_id} after "
                    f"{wait:g} s (HTTP 202 each time): check the application in the RM UI, or "
                    "call kill again with a longer wait")
            time.sleep(min(delay, left))
            delay = min(delay * 2, 2.0)

    def app_proxy_json(self, app_id: str, path: str) -> object:
        """``GET /proxy/{id}/{path}``: JSON from a running application's own web UI through the
        RM's web proxy (for a Spark app: its status REST API, e.g. ``api/v1/applications/{id}/jobs``).
        Raises ResourceManagerError when the proxy or the application does not answer with JSON."""
        if not isinstance(app_id, str) or not _APP_ID.match(app_id):
            raise ResourceManagerError(
                f"{app_id!r} is not a YARN application id (application_<clusterTimestamp>_<n>)")
        full = f"/proxy/{app_id}/{path.lstrip('/')}"
        resp, base = self._send("GET", full)
        if resp.status_code != 200:
            raise self._status_error(resp, base, f"GET {full}")
        try:
            return json.loads(resp.content.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _BadReplyError(f"{_display(base)}{full} did not answer with JSON (the application's web "
                                 "UI is off, or not a Spark UI)") from None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ResourceManagerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- HTTP -----------------------------------------------------------------------------------

    def _candidates(self) -> list[str]:
        with self._lock:
            active = self._active
        if active is None:
            return list(self._addresses)
        return [active] + [a for a in self._addresses if a != active]

    def _redirect_target(self, current: str, resp: httpx.Response) -> str | None:
        location = resp.headers.get("location", "")
        if not location:
            return None
        target = resp.request.url.join(location)
        if target.scheme not in ("http", "https") or not target.host:
            return None
        base = normalize_address(f"{target.scheme}://{target.netloc.decode('ascii', 'replace')}")
        if not base:
            return None
        # Keep a configured address's path prefix (a proxy in front of the RM).
        where = origin(target)
        for configured in self._addresses:
            if origin(configured) == where:
                return configured
        return base if where[:2] == origin(current)[:2] else None

    def _send(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: object = None, only: str | None = None) -> tuple[httpx.Response, str]:
        """The first non-5xx answer, trying the active RM then the others, following allowed
        redirects. Raises ResourceManagerUnreachableError when none answers."""
        problems: list[str] = []
        for first in [only] if only else self._candidates():
            base = first
            for _hop in range(_MAX_HOPS + 1):
                try:
                    resp = self._http.request(method, base + path, params=params, json=body)
                except httpx.RequestError as e:
                    problems.append(f"{_display(base)}: {self._http.problem(e)}")
                    break
                if resp.status_code in _REDIRECTS:
                    target = self._redirect_target(base, resp)
                    if target is None:
                        where = resp.headers.get("location", "")
                        shown = _display(str(resp.request.url.join(where))) if where else "nowhere"
                        problems.append(
                            f"{_display(base)}: redirected (HTTP {resp.status_code}) to {shown}, "
                            "which is not a configured ResourceManager: add it to "
                            "spark.decom.yarn.rm.addresses")
                        break
                    base = target
                    continue
                if resp.status_code >= 500:
                    problems.append(f"{_display(base)}: HTTP {resp.status_code}"
                                    f"{self._rm_message(resp)}")
                    break
                with self._lock:
                    self._active = base
                return resp, base
            else:
                problems.append(f"{_display(first)}: more than {_MAX_HOPS} redirects")
        raise ResourceManagerUnreachableError(
            "no YARN ResourceManager answered (" + "; ".join(problems) + "): check that the RM "
            "is up and that spark.decom.yarn.rm.addresses (or yarn-site.xml under "
            "HADOOP_CONF_DIR) names its web address")

    def _get_json(self, path: str, params: Mapping[str, str] | None = None, *,
                  only: str | None = None) -> tuple[object, str]:
        resp, base = self._send("GET", path, params=params, only=only)
        return self._json(resp, base, path)

    def _json(self, resp: httpx.Response, base: str, path: str) -> tuple[object, str]:
        if resp.status_code != 200:
            raise self._status_error(resp, base, f"GET {path}")
        try:
            text = resp.content.decode("utf-8")
            return json.loads(text), base
        except UnicodeDecodeError:
            raise self._not_rm(base, path, "not UTF-8") from None
        except ValueError as e:
            if not resp.content.strip():
                reason = "an empty body"
            elif isinstance(e, json.JSONDecodeError):
                reason = f"not JSON: {e.msg} at character {e.pos}"
            else:
                reason = "not JSON"
            raise self._not_rm(base, path, reason) from None

    def _cluster_info(self, data: object, base: str) -> dict[str, Any]:
        if not isinstance(data, dict) or not isinstance(data.get("clusterInfo"), dict):
            raise self._not_rm(base, "/ws/v1/cluster/info", "no clusterInfo object")
        info: dict[str, Any] = data["clusterInfo"]
        return info

    # ---- messages -------------------------------------------------------------------------------

    def _rm_message(self, resp: httpx.Response) -> str:
        """The RM's RemoteException message, scrubbed and short, as ': message'."""
        try:
            data = json.loads(resp.content.decode("utf-8"))
            remote = data.get("RemoteException") if isinstance(data, dict) else None
            message = remote.get("message") if isinstance(remote, dict) else None
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, str) or not message.strip():
            return ""
        return ": " + self._http.scrub(message.strip())[:300]

    def _not_rm(self, base: str, path: str, reason: str) -> ResourceManagerError:
        return _BadReplyError(
            f"the answer of {_display(base)}{path} is not a YARN ResourceManager reply ({reason}): "
            "check that spark.decom.yarn.rm.addresses points at the RM web address (port 8088, "
            "https 8090), not a proxy, NodeManager or other service")

    def _status_error(self, resp: httpx.Response, base: str, what: str) -> ResourceManagerError:
        code = resp.status_code
        at = _display(base)
        if code == 401:
            return ResourceManagerError(
                f"the ResourceManager at {at} wants authentication for {what} (HTTP 401): the "
                "cluster is secured; set spark.decom.yarn.auth=kerberos (pip install "
                "decom[kerberos]) and make sure a Kerberos ticket is available")
        if code == 403:
            return ResourceManagerError(
                f"the ResourceManager at {at} refused to {what} (HTTP 403 Forbidden): the user "
                "decom acts as may not do this; set spark.decom.yarn.user to the application's "
                "owner or a YARN admin (yarn.admin.acl), or use spark.decom.yarn.auth=kerberos")
        if code == 404:
            hint = "check the application id" if what.startswith("kill") else \
                "check that the address is the RM web address (a ResourceManager of Hadoop 2.8+)"
            return _BadReplyError(
                f"the ResourceManager at {at} answered HTTP 404 to {what}"
                f"{self._rm_message(resp)}: {hint}")
        return _BadReplyError(f"the ResourceManager at {at} answered HTTP {code} to {what}"
                              f"{self._rm_message(resp)}")

