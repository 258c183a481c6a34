"""ResourceManagerClient and discover_rm_addresses, against httpx.MockTransport (no network)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from decom import ResourceManagerError
from decom._yarn import (
    ResourceManagerClient,
    ResourceManagerUnreachableError,
    RMNode,
    discover_rm_addresses,
)

SECRET_USER = "s3cr3t-user"


def node(node_id: str, state: str = "RUNNING", **extra: object) -> dict[str, object]:
    host = node_id.rsplit(":", 1)[0]
    out: dict[str, object] = {
        "rack": "/default-rack", "state": state, "id": node_id, "nodeHostName": host,
        "nodeHTTPAddress": f"{host}:8042" if state == "RUNNING" else "",
        "lastHealthUpdate": 1_700_000_000_000, "version": "3.5.0", "healthReport": "",
        "numContainers": 2, "usedMemoryMB": 2048, "availMemoryMB": 6144,
        "usedVirtualCores": 2, "availableVirtualCores": 6,
    }
    out.update(extra)
    return out


def nodes_reply(*items: dict[str, object]) -> dict[str, object]:
    return {"nodes": {"node": list(items)}}


Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, addresses: list[str] | None = None,
           **kw: object) -> ResourceManagerClient:
    kw.setdefault("user", SECRET_USER)
    return ResourceManagerClient(addresses or ["http://rm1:8088"],
                                 transport=httpx.MockTransport(handler), **kw)  # type: ignore[arg-type]


# ---- discovery -----------------------------------------------------------------------------------


def write_site(directory: Path, props: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    body = "".join(f"<property><name>{k}</name><value>{v}</value></property>"
                   for k, v in props.items())
    path = directory / "yarn-site.xml"
    path.write_text(f'<?xml version="1.0"?><configuration>{body}</configuration>')
    return path


def test_explicit_addresses_win_and_get_a_scheme(tmp_path: Path) -> None:
    write_site(tmp_path, {"yarn.resourcemanager.webapp.address": "other:8088"})
    conf = {"spark.decom.yarn.rm.addresses": " rm1:8088, https://rm2:8090/ ,rm1:8088"}
    assert discover_rm_addresses(conf, {"HADOOP_CONF_DIR": str(tmp_path)}) == [
        "http://rm1:8088", "https://rm2:8090"]


def test_yarn_site_webapp_address_with_variables(tmp_path: Path) -> None:
    write_site(tmp_path, {"yarn.resourcemanager.hostname": "rm.example",
                          "yarn.resourcemanager.webapp.address":
                              "${yarn.resourcemanager.hostname}:18088"})
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path)}) == [
        "http://rm.example:18088"]


def test_yarn_site_ha_ids(tmp_path: Path) -> None:
    write_site(tmp_path, {
        "yarn.resourcemanager.ha.enabled": "true",
        "yarn.resourcemanager.ha.rm-ids": "rm1, rm2,rm3",
        "yarn.resourcemanager.webapp.address.rm1": "m1:8088",
        "yarn.resourcemanager.webapp.address.rm2": "m2:8088",
        "yarn.resourcemanager.hostname.rm3": "m3",  # no web address: hostname + default port
    })
    assert discover_rm_addresses({}, {"YARN_CONF_DIR": str(tmp_path)}) == [
        "http://m1:8088", "http://m2:8088", "http://m3:8088"]


def test_yarn_site_https_only(tmp_path: Path) -> None:
    write_site(tmp_path, {
        "yarn.http.policy": "HTTPS_ONLY",
        "yarn.resourcemanager.ha.enabled": "true",
        "yarn.resourcemanager.ha.rm-ids": "a,b",
        "yarn.resourcemanager.webapp.address.a": "m1:8088",
        "yarn.resourcemanager.webapp.https.address.a": "m1:8090",
        "yarn.resourcemanager.hostname.b": "m2",
    })
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path)}) == [
        "https://m1:8090", "https://m2:8090"]


def test_hostname_fallback_and_wildcard(tmp_path: Path) -> None:
    write_site(tmp_path / "a", {"yarn.resourcemanager.hostname": "rmhost"})
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path / "a")}) == [
        "http://rmhost:8088"]
    write_site(tmp_path / "b", {"yarn.resourcemanager.hostname": "rmhost",
                                "yarn.resourcemanager.webapp.address": "0.0.0.0:8088"})
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path / "b")}) == [
        "http://rmhost:8088"]


def test_spark_hadoop_keys_alone_and_over_yarn_site(tmp_path: Path) -> None:
    conf = {"spark.hadoop.yarn.resourcemanager.webapp.address": "sparkrm:8088"}
    assert discover_rm_addresses(conf, {}) == ["http://sparkrm:8088"]
    write_site(tmp_path, {"yarn.resourcemanager.webapp.address": "siterm:8088"})
    assert discover_rm_addresses(conf, {"HADOOP_CONF_DIR": str(tmp_path)}) == [
        "http://sparkrm:8088"]
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path)}) == [
        "http://siterm:8088"]


def test_nothing_found_and_broken_xml(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert discover_rm_addresses({}, {}) == []
    assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path / "missing")}) == []
    (tmp_path / "yarn-site.xml").write_text("<configuration><property>")
    with caplog.at_level(logging.WARNING, logger="decom"):
        assert discover_rm_addresses({}, {"HADOOP_CONF_DIR": str(tmp_path)}) == []
    assert "yarn-site.xml" in caplog.text


# ---- nodes ---------------------------------------------------------------------------------------


def test_nodes_parses_fields_states_and_user() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json=nodes_reply(
            node("h1:8041"),
            node("h2:8041", "DECOMMISSIONING", decommissioningTimeout=120),
            node("h3:8041", "FROBNICATING", nodeHostName=None),
        ))

    got = client(handler).nodes(["decommissioning", "RUNNING"])
    assert seen[0].url.path == "/ws/v1/cluster/nodes"
    assert seen[0].url.params["states"] == "DECOMMISSIONING,RUNNING"
    assert seen[0].url.params["user.name"] == SECRET_USER
    assert got[0] == RMNode(
        node_id="h1:8041", host="h1", state="RUNNING", rack="/default-rack",
        http_address="h1:8042", num_containers=2, last_health_update=1_700_000_000_000,
        decommissioning_timeout=None, used_memory_mb=2048, avail_memory_mb=6144, used_vcores=2,
        avail_vcores=6, health_report="", version="3.5.0")
    assert got[1].decommissioning_timeout == 120
    assert got[2].state == "FROBNICATING" and got[2].host == "h3"  # unknown state kept as-is


def test_single_node_lookup() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/ws/v1/cluster/nodes/h1:8041":
            return httpx.Response(200, json={"node": node("h1:8041", "RUNNING")})
        if req.url.path == "/ws/v1/cluster/nodes/h2:8041":
            return httpx.Response(200, json={"node": None})
        return httpx.Response(404, json={"RemoteException": {"message": "not found"}})

    rm = client(handler)
    found = rm.node("h1:8041")
    assert found is not None and found.state == "RUNNING"
    assert rm.node("gone:8041") is None
    with pytest.raises(ResourceManagerError, match="not a YARN ResourceManager reply"):
        rm.node("h2:8041")
    with pytest.raises(ResourceManagerError, match="not a YARN node id"):
        rm.node("../apps:1/x")


@pytest.mark.parametrize("reply", [
    {"nodes": None}, {"nodes": {}}, {"nodes": {"node": None}}, {"nodes": {"node": []}}])
def test_nodes_none(reply: object) -> None:
    assert client(lambda r: httpx.Response(200, json=reply)).nodes() == []


def test_single_node_as_object() -> None:
    reply = {"nodes": {"node": node("h1:1", "LOST")}}
    got = client(lambda r: httpx.Response(200, json=reply)).nodes()
    assert [(n.node_id, n.state) for n in got] == [("h1:1", "LOST")]


def test_no_auth_and_no_user_name() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"nodes": None})

    client(handler, auth="none").nodes()
    assert "user.name" not in seen[0].url.params


@pytest.mark.parametrize("body", [
    b"<html>hello</html>",
    b'{"nodes": {"node": [{"id": "h1:1", "state": "DECOMMISSIONED"}',
    b"",
    '{"nodes": {"node": [{"id": "h\u00e9:1", "state": "LOST"}]}}'.encode("latin-1"),
    b"[]",
    b'{"nodes": "many"}',
    b'{"nodes": {"node": [{"state": "LOST"}]}}',
    b'{"nodes": {"node": [{"id": "h1:1", "state": 7}]}}',
    b'{"apps": null}',
    b"\xff\xfe\x00garbage",
])
def test_garbage_is_not_an_rm_reply(body: bytes) -> None:
    rm = client(lambda r: httpx.Response(200, content=body))
    with pytest.raises(ResourceManagerError, match="is not a YARN ResourceManager reply"):
        rm.nodes()


# ---- HA, fail-over and redirects -----------------------------------------------------------------


def test_failover_on_5xx_and_connection_errors_remembers_the_active() -> None:
    hits: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hits.append(req.url.host)
        if req.url.host == "rm1":
            raise httpx.ConnectError("[Errno 111] Connection refused", request=req)
        if req.url.host == "rm2":
            return httpx.Response(503, json={"RemoteException": {"message": "busy"}})
        return httpx.Response(200, json={"nodes": None})

    rm = client(handler, ["rm1:8088", "rm2:8088", "rm3:8088"])
    assert rm.nodes() == []
    assert hits == ["rm1", "rm2", "rm3"]
    assert rm.active_address == "http://rm3:8088"
    rm.nodes()
    assert hits[3:] == ["rm3"]


def test_all_down_names_every_address_and_the_fix() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.host == "rm1":
            raise httpx.ReadTimeout("timed out", request=req)
        return httpx.Response(500)

    with pytest.raises(ResourceManagerUnreachableError) as info:
        client(handler, ["rm1:8088", "rm2:8088"], timeout=0.5).nodes()
    msg = str(info.value)
    assert "rm1:8088: no answer within 0.5 s" in msg and "rm2:8088: HTTP 500" in msg
    assert "spark.decom.yarn.rm.addresses" in msg and SECRET_USER not in msg


def test_standby_redirect_to_a_configured_rm_is_followed() -> None:
    hits: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hits.append(f"{req.url.host}:{req.url.port}")
        if req.url.host == "rm1":
            return httpx.Response(307, headers={
                "Location": f"http://rm2:8088/ws/v1/cluster/nodes?user.name={SECRET_USER}"})
        return httpx.Response(200, json=nodes_reply(node("h1:1", "LOST")))

    rm = client(handler, ["rm1:8088", "rm2:8088"])
    assert [n.state for n in rm.nodes()] == ["LOST"]
    assert hits == ["rm1:8088", "rm2:8088"]
    assert rm.active_address == "http://rm2:8088"


def test_redirect_to_same_host_other_port_is_followed() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.port == 8088:
            return httpx.Response(307, headers={"Location": "http://rm1:9088/ws/v1/cluster/nodes"})
        return httpx.Response(200, json={"nodes": None})

    rm = client(handler, ["rm1:8088"])
    assert rm.nodes() == []
    assert rm.active_address == "http://rm1:9088"


def test_redirect_elsewhere_is_never_followed() -> None:
    hits: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        hits.append(req.url.host)
        return httpx.Response(307, headers={
            "Location": f"http://evil.example:80/steal?user.name={SECRET_USER}"})

    with pytest.raises(ResourceManagerError) as info:
        client(handler, ["rm1:8088"]).nodes()
    assert hits == ["rm1"]
    msg = str(info.value)
    assert "http://evil.example" in msg and "not a configured ResourceManager" in msg
    assert SECRET_USER not in msg


def test_cluster_info_prefers_the_active_rm() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        state = "STANDBY" if req.url.host == "rm1" else "ACTIVE"
        return httpx.Response(200, json={"clusterInfo": {"haState": state, "id": 1}})

    assert client(handler, ["rm1:8088", "rm2:8088"]).cluster_info()["haState"] == "ACTIVE"


# ---- auth, TLS and messages ----------------------------------------------------------------------


def test_401_and_403_explain_the_fix_without_the_user() -> None:
    body = {"RemoteException": {"message": f"User {SECRET_USER} cannot view"}}
    with pytest.raises(ResourceManagerError, match="spark.decom.yarn.auth=kerberos") as info:
        client(lambda r: httpx.Response(401, json=body)).nodes()
    assert SECRET_USER not in str(info.value)
    with pytest.raises(ResourceManagerError, match="403 Forbidden") as info:
        client(lambda r: httpx.Response(403, json=body)).nodes()
    assert SECRET_USER not in str(info.value)


def test_rm_message_is_scrubbed_of_the_user() -> None:
    body = {"RemoteException": {"message": f"bad request from {SECRET_USER}"}}
    with pytest.raises(ResourceManagerError) as info:
        client(lambda r: httpx.Response(400, json=body)).nodes()
    assert "bad request from <user>" in str(info.value)


def test_kerberos_without_httpx_gssapi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "httpx_gssapi", None)
    with pytest.raises(ResourceManagerError, match=r"pip install decom\[kerberos\]"):
        ResourceManagerClient(["rm1:8088"], auth="kerberos")


def test_bad_ca_bundle_and_bad_addresses(tmp_path: Path) -> None:
    with pytest.raises(ResourceManagerError, match="caBundle"):
        ResourceManagerClient(["https://rm1:8090"], ca_bundle=str(tmp_path / "nope.pem"))
    with pytest.raises(ResourceManagerError, match="no usable ResourceManager address"):
        ResourceManagerClient(["", " ", "ftp://x"])
    with pytest.raises(ResourceManagerError, match="unknown ResourceManager auth"):
        ResourceManagerClient(["rm1"], auth="ntlm")


# ---- apps and kill -------------------------------------------------------------------------------


def test_apps() -> None:
    seen: list[httpx.Request] = []
    app = {"id": "application_1_0001", "name": "livy-session-3", "user": "u", "state": "RUNNING"}

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"apps": {"app": app}})

    got = client(handler).apps(states=["running", "ACCEPTED"], application_types=["SPARK"])
    assert got == [app]
    assert seen[0].url.params["states"] == "RUNNING,ACCEPTED"
    assert seen[0].url.params["applicationTypes"] == "SPARK"
    assert client(lambda r: httpx.Response(200, json={"apps": None})).apps() == []
    with pytest.raises(ResourceManagerError, match="not a YARN ResourceManager reply"):
        client(lambda r: httpx.Response(200, json={"apps": {"app": [1]}})).apps()


def test_kill_repeats_while_202() -> None:
    calls: list[tuple[str, object]] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append((req.method, json.loads(req.content)))
        return httpx.Response(202 if len(calls) < 3 else 200, json={"state": "KILLED"})

    client(handler).kill_app("application_1700000000000_0042", retry_interval=0.01)
    assert calls == [("PUT", {"state": "KILLED"})] * 3


def test_kill_errors() -> None:
    with pytest.raises(ResourceManagerError, match="refused to kill application_1_0002"):
        client(lambda r: httpx.Response(403)).kill_app("application_1_0002")
    with pytest.raises(ResourceManagerError, match="still killing"):
        client(lambda r: httpx.Response(202)).kill_app("application_1_0002", wait=0.05,
                                                      retry_interval=0.01)
    with pytest.raises(ResourceManagerError, match="not a YARN application id"):
        client(lambda r: httpx.Response(200)).kill_app("../../nodes")
