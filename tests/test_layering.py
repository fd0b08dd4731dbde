"""The code's shape, checked: no import cycles (module-level or inside functions); the core
(`audit/`, `keys/`, `models/`, `metrics/`, `statistical/`) imports nothing from the session, the
plugins, the CLI or the lab; every file the library writes goes through attribcheck.outputs."""
from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "attribcheck"
CORE = ("audit", "keys", "models", "metrics", "statistical")
ABOVE = ("attribcheck.session", "attribcheck.plugin", "attribcheck.cli", "attribcheck.lab",
         "attribcheck.evidence.pytest_plugin", "attribcheck.baseline.pytest_plugin")


def _modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(path: Path, known: dict) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("attribcheck"):
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("attribcheck"))
    return {m for m in found if m in known}


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: _imports(p, mods) - {m} for m, p in mods.items()}


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n, stack + [n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_core_imports_nothing_above_it():
    bad = [(m, n) for m, deps in _graph().items() if m.split(".")[1:2] and m.split(".")[1] in CORE
           for n in deps if n.startswith(ABOVE)]
    assert not bad, bad


WRITES = re.compile(r"\.write_text\(|\.write_bytes\(|\b(os\.fd)?open\([^)]*['\"][wax]b?\+?['\"]")


def test_every_file_is_written_through_outputs():
    # the lab writes training artifacts (weights through diffusers/safetensors) into its own cache
    offenders = [f"{p.relative_to(PACKAGE.parent)}:{i}" for p in PACKAGE.rglob("*.py")
                 if p.name != "outputs.py" and "lab" not in p.relative_to(PACKAGE).parts
                 for i, line in enumerate(p.read_text().splitlines(), 1) if WRITES.search(line)]
    assert not offenders, offenders
