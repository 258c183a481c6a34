"""decom's layout is its architecture: these tests keep the parts apart and the imports acyclic."""

from __future__ import annotations

import ast
from pathlib import Path

import decom

PACKAGE = Path(decom.__file__).resolve().parent


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """decom module -> the decom modules it imports (at any depth of its body, lazy imports too)."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            found |= {c for c in candidates if c in modules and c != name}
        graph[name] = found
    return graph


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_import_cycle_among_decom_modules() -> None:
    graph = _imports()
    # A package importing its own submodules (its __init__ re-exporting them) is not a cycle.
    edges = {m: {t for t in ts if not t.startswith(m + ".")} for m, ts in graph.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            visit(m)


def test_the_parts_keep_apart() -> None:
    """The driver side, the shared-cluster side and the agent don't import each other (driver and agent
    share only their wire contract); the YARN client and the shared modules import none of them; nothing
    but the CLI imports the CLI."""
    graph = _imports()
    allowed = {
        "_driver": {"_driver", "_yarn", "_errors", "_redact", "_units", "_version", "_http", "_jar",
                    "_agent_contract"},
        "_agent": {"_agent", "_yarn", "_errors", "_redact", "_units", "_http", "_jar", "_agent_contract"},
        "_agent_contract": {"_errors"},
        "_jar": {"_errors", "_version"},
        "_sessions": {"_sessions", "_yarn", "_errors", "_redact", "_units", "_http"},
        "_yarn": {"_yarn", "_errors", "_redact", "_units", "_http"},
        "_http": {"_errors", "_redact"},
        "_units": {"_errors"},
        "_redact": set(),
        "_errors": set(),
    }
    wrong = sorted(f"{m} imports {t}" for m, targets in graph.items() for t in targets
                   if _part(m) in allowed and _part(t) not in allowed[_part(m)] | {_part(m)})
    assert wrong == []
    assert {_part(m) for m in graph} >= {"_driver", "_sessions", "_yarn", "_cli", "_agent"}
