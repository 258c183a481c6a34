"""The lab network: one bridge on the host, one network namespace per node, veth pairs between.

Only 198.18.0.0/24 is used (bridge 198.18.0.1, node k at 198.18.0.(10+k)); the namespaces get no
default route, so nothing in them can reach any other address.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from .errors import LabError, LabUnavailable

SUBNET_PREFIX = "198.18.0."
PREFIX_LEN = 24
BRIDGE = "decombr0"
BRIDGE_IP = SUBNET_PREFIX + "1"
NETNS_PREFIX = "decom-n"
NODE_IF = "eth0"  # name of the node's end of its veth pair, inside its namespace
MAX_NODES = 40


def node_ip(k: int) -> str:
    if not 1 <= k <= MAX_NODES:
        raise ValueError(f"node index {k} out of 1..{MAX_NODES}")
    return f"{SUBNET_PREFIX}{10 + k}"


def netns_name(k: int) -> str:
    return f"{NETNS_PREFIX}{k}"


def veth_host(k: int) -> str:
    return f"decomv{k}"  # <= 15 chars


def _ip(*args: str, check: bool = True, netns: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", netns, "ip", *args] if netns else ["ip", *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {r.stderr.strip() or r.stdout.strip()}")
    return r


def _sysctl(key: str, value: str, netns: str | None = None) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    if netns is None:
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError:
            pass
        return
    subprocess.run(["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"],
                   capture_output=True, timeout=30)


def preflight() -> None:
    """Raise LabUnavailable with the reason if this machine cannot host the lab."""
    if os.name != "posix" or not os.path.exists("/proc/self/ns/net"):
        raise LabUnavailable("the lab needs Linux network namespaces")
    if os.geteuid() != 0:
        raise LabUnavailable("the lab needs root (it creates network namespaces and a bridge)")
    if shutil.which("ip") is None:
        raise LabUnavailable("`ip` (iproute2) is not installed")
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise LabUnavailable(f"`ip netns` is unavailable: {r.stderr.strip()}")


def link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True, timeout=30).returncode == 0


def netns_exists(name: str) -> bool:
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    return any(line.split()[0] == name for line in r.stdout.splitlines() if line.strip())


def create_bridge(extra_ips: tuple[str, ...] = ()) -> None:
    if link_exists(BRIDGE):
        raise LabError(
            f"link {BRIDGE} already exists: another lab is up, or a crashed one left it behind "
            "(`python -m yarnlab down` removes what .lab/state.json records)"
        )
    _ip("link", "add", BRIDGE, "type", "bridge")
    _sysctl(f"net.ipv6.conf.{BRIDGE}.disable_ipv6", "1")
    _ip("addr", "add", f"{BRIDGE_IP}/{PREFIX_LEN}", "dev", BRIDGE)
    for extra in extra_ips:
        _ip("addr", "add", f"{extra}/{PREFIX_LEN}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def delete_bridge() -> None:
    if link_exists(BRIDGE):
        _ip("link", "del", BRIDGE, check=False)


@dataclass(frozen=True)
class NodeNet:
    index: int
    ip: str
    netns: str
    veth: str


def create_node(k: int) -> NodeNet:
    ns, veth, ip = netns_name(k), veth_host(k), node_ip(k)
    if netns_exists(ns):
        raise LabError(f"network namespace {ns} already exists (`python -m yarnlab down` cleans up)")
    if link_exists(veth):
        raise LabError(f"link {veth} already exists (`python -m yarnlab down` cleans up)")
    _ip("netns", "add", ns)
    peer = f"{veth}p"
    _ip("link", "add", veth, "type", "veth", "peer", "name", peer)
    _ip("link", "set", peer, "netns", ns)
    _ip("link", "set", peer, "name", NODE_IF, netns=ns)
    _sysctl("net.ipv6.conf.all.disable_ipv6", "1", netns=ns)
    _sysctl(f"net.ipv6.conf.{veth}.disable_ipv6", "1")
    _ip("link", "set", veth, "master", BRIDGE)
    _ip("link", "set", veth, "up")
    _ip("addr", "add", f"{ip}/{PREFIX_LEN}", "dev", NODE_IF, netns=ns)
    _ip("link", "set", NODE_IF, "up", netns=ns)
    _ip("link", "set", "lo", "up", netns=ns)
    return NodeNet(k, ip, ns, veth)


def netns_pids(ns: str) -> list[int]:
    r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30)
    return [int(x) for x in r.stdout.split() if x.strip().isdigit()]


def delete_node(ns: str, veth: str) -> None:
    if link_exists(veth):
        _ip("link", "del", veth, check=False)
    if netns_exists(ns):
        _ip("netns", "del", ns, check=False)


def set_node_link(ns: str, up: bool) -> None:
    _ip("link", "set", NODE_IF, "up" if up else "down", netns=ns)
