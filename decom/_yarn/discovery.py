"""Where the ResourceManager is: ``spark.decom.yarn.rm.addresses``, else yarn-site.xml (HADOOP_CONF_DIR,
YARN_CONF_DIR) under the Spark conf's ``spark.hadoop.*`` keys, the way Spark builds its Hadoop conf."""

from __future__ import annotations

import logging
import os
import re
import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["discover_rm_addresses", "normalize_address", "dedupe_addresses", "ADDRESSES_KEY"]

log = logging.getLogger("decom.yarn")
ADDRESSES_KEY = "spark.decom.yarn.rm.addresses"


def normalize_address(address: str) -> str:
    """``rm1:8088`` -> ``http://rm1:8088``; keeps a path prefix (proxies), drops a trailing /."""
    text = address.strip()
    if not text:
        return ""
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 - a port that is not a number raises ValueError
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc}{parts.path.rstrip('/')}"


_VAR = re.compile(r"\$\{([^}$\s]+)\}")


def _expand(value: str, props: Mapping[str, str], env: Mapping[str, str]) -> str | None:
    """Hadoop's ``${key}`` / ``${env.NAME}`` substitution; None when a variable stays unresolved."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name.startswith("env."):
            return env.get(name[4:], m.group(0))
        return props.get(name, m.group(0))

    for _ in range(20):
        expanded = _VAR.sub(sub, value)
        if expanded == value:
            break
        value = expanded
    return None if _VAR.search(value) else value.strip()


def _read_site(path: Path) -> dict[str, str]:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        log.warning("decom: cannot read %s (%s); ignoring it for ResourceManager discovery",
                    path, e)
        return {}
    props: dict[str, str] = {}
    for prop in root.iter("property"):
        name = (prop.findtext("name") or "").strip()
        if name:
            props[name] = (prop.findtext("value") or "").strip()
    return props


def _addresses_from_props(props: Mapping[str, str], env: Mapping[str, str]) -> list[str]:
    def get(key: str) -> str | None:
        raw = props.get(key)
        return _expand(raw, props, env) if raw else None

    https = (get("yarn.http.policy") or "HTTP_ONLY").upper() == "HTTPS_ONLY"
    scheme, port = ("https", 8090) if https else ("http", 8088)
    addr_key = "yarn.resourcemanager.webapp.https.address" if https else \
        "yarn.resourcemanager.webapp.address"
    ids: list[str] = []
    if (get("yarn.resourcemanager.ha.enabled") or "").lower() == "true":
        ids = [i.strip() for i in (get("yarn.resourcemanager.ha.rm-ids") or "").split(",")
               if i.strip()]
    out: list[str] = []
    for suffix in [f".{i}" for i in ids] or [""]:
        host = get("yarn.resourcemanager.hostname" + suffix)
        addr = get(addr_key + suffix)
        if not addr and host:
            addr = f"{host}:{port}"
        if not addr:
            continue
        if addr.startswith("0.0.0.0:"):
            # A bind-all address: Hadoop's clients then use the RM host name, else the local host.
            addr = f"{host if host and host != '0.0.0.0' else socket.gethostname()}:{addr[8:]}"
        normalized = normalize_address(f"{scheme}://{addr}")
        if normalized:
            out.append(normalized)
    return out


def discover_rm_addresses(spark_conf: Mapping[str, str],
                          env: Mapping[str, str] = os.environ) -> list[str]:
    """The ResourceManager web addresses to poll, active-candidate order, or ``[]`` when unknown.

    ``spark.decom.yarn.rm.addresses`` wins. Otherwise the first ``yarn-site.xml`` found under
    ``HADOOP_CONF_DIR`` then ``YARN_CONF_DIR``, with the Spark conf's ``spark.hadoop.*`` keys laid
    over it the way Spark builds its Hadoop configuration (so they alone also suffice). HA lists
    one address per ``yarn.resourcemanager.ha.rm-ids`` entry; ``yarn.http.policy=HTTPS_ONLY``
    switches to the https addresses; without a web address, ``yarn.resourcemanager.hostname[.id]``
    plus the default port (8088, https 8090) is used.
    """
    explicit = spark_conf.get(ADDRESSES_KEY, "")
    if explicit and explicit.strip():
        return dedupe_addresses(normalize_address(a) for a in explicit.split(","))
    props: dict[str, str] = {}
    for var in ("HADOOP_CONF_DIR", "YARN_CONF_DIR"):
        conf_dir = env.get(var, "").strip()
        if conf_dir and (Path(conf_dir) / "yarn-site.xml").is_file():
            props.update(_read_site(Path(conf_dir) / "yarn-site.xml"))
            break
    prefix = "spark.hadoop."
    props.update({k[len(prefix):]: str(v) for k, v in spark_conf.items() if k.startswith(prefix)})
    return dedupe_addresses(_addresses_from_props(props, env))


def dedupe_addresses(addresses: Iterable[str]) -> list[str]:
    out: list[str] = []
    for a in addresses:
        if a and a not in out:
            out.append(a)
    return out
