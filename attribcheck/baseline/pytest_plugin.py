"""Baselines in the pytest plugin: the options, and the check `suites/test_baseline.py` runs
once per manifest (through the `attrib_baseline` fixture).

- `--attrib-baseline-update`: audit every suspect of the manifest (and the source) and write
  `baselines/<audit name>.json` beside the manifest; the test passes and the summary names
  the file (syrupy's `--snapshot-update`).
- otherwise, when that file exists (or `--attrib-baseline` asks for it): compare, and fail
  with the diff table past tolerance. `--attrib-baseline` without a file fails with the
  command that creates it; without either, the test is skipped with that command.
"""
from __future__ import annotations

import shlex
import warnings
from pathlib import Path

import pytest

WRITTEN = "attrib_baseline"  # user property: the baseline file a test wrote


def add_options(group) -> None:
    from attribcheck.baseline.compare import TOL_CONF, TOL_DISTANCE
    from attribcheck.baseline.selfcheck import RESELECT

    group.addoption("--attrib-baseline", action="store_true", default=False,
                    help="compare every manifest against its baseline (baselines/<name>.json beside it); a missing "
                         "one fails (default: compare where a baseline exists)")
    group.addoption("--attrib-baseline-update", action="store_true", default=False,
                    help="(re-)record each manifest's baseline: verdicts, conf and per-key distances of every "
                         "suspect and of the source self-check")
    group.addoption("--attrib-baseline-tol-distance", type=float, default=TOL_DISTANCE, metavar="D",
                    help=f"largest per-key distance drift that passes (default: {TOL_DISTANCE}, the drift between "
                         f"CPU and GPU runs of one model)")
    group.addoption("--attrib-baseline-tol-conf", type=float, default=TOL_CONF, metavar="C",
                    help=f"largest conf drift that passes, absolute (default: {TOL_CONF}: one key in ten may cross "
                         f"delta_0); a changed verdict always fails")
    group.addoption("--attrib-reselect-below", type=float, default=RESELECT, metavar="SHARE",
                    help=f"advise re-selecting the key set when the source reproduces less than this share of its "
                         f"keys (default: {RESELECT})")


def register(config) -> None:
    for opt in ("attrib_baseline_tol_distance", "attrib_baseline_tol_conf", "attrib_reselect_below"):
        v = config.getoption(opt)
        if not 0 <= v <= 1:  # also rejects nan
            raise pytest.UsageError(f"--{opt.replace('_', '-')} {v}: must lie in [0, 1]")
    config.pluginmanager.register(_Written(), "attribcheck-baselines")


def update_command(config) -> str:
    """The command line of this run, asking for the update instead of a comparison."""
    args = [a for a in config.invocation_params.args if a not in ("--attrib-baseline", "--attrib-baseline-update")]
    return shlex.join(["python3", "-m", "pytest", *args, "--attrib-baseline-update"])


def check(request, session) -> None:
    """Record or compare one manifest's baseline over its AuditSession's results (audited once
    per session and shared with the suite's other tests)."""
    from attribcheck.baseline import store
    from attribcheck.baseline.compare import Tolerance, compare, table
    from attribcheck.baseline.selfcheck import advice
    from attribcheck.baseline.snapshot import snapshot
    from attribcheck.errors import AttribcheckError

    config = request.config
    if config.getoption("attrib_baseline_update") and config.getoption("attrib_early_stop", False):
        pytest.fail("a baseline records every key's distance over every query seed: record it without "
                    "--attrib-early-stop (a run with it compares verdicts only)", pytrace=False)
    manifest, auditor = session.manifest, session.auditor
    current = snapshot(session.entry([session.result(spec, role) for spec, role in session.specs()]))
    path = store.path_for(manifest)
    shown = _shown(path, config)
    command = update_command(config)
    if config.getoption("attrib_baseline_update"):
        store.write(path, current)
        request.node.user_properties.append((WRITTEN, shown))
        return
    if not path.is_file():
        msg = f"{manifest.name}: no baseline at {shown}; create it with: {command}"
        if config.getoption("attrib_baseline"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    try:
        old = store.load(path)
    except AttribcheckError as e:
        pytest.fail(f"{manifest.name}: {e}; re-record it with: {command}", pytrace=False)
    tol = Tolerance(config.getoption("attrib_baseline_tol_distance"), config.getoption("attrib_baseline_tol_conf"))
    drifts = compare(old, current, tol)
    note = advice(old.get("source"), current.get("source"), auditor.delta_0, config.getoption("attrib_reselect_below"))
    if drifts:
        pytest.fail(f"{manifest.name}: {len(drifts)} difference{'s' if len(drifts) > 1 else ''} from the baseline "
                    f"{shown} past tolerance (distance {tol.distance:g}, conf {tol.conf:g}):\n{table(drifts)}\n"
                    + (f"{note}\n" if note else "")
                    + f"If the change is intended, review it and re-record: {command}", pytrace=False)
    if note:
        from attribcheck.assertions import AttributionWarning

        warnings.warn(AttributionWarning(f"{manifest.name}: {note}"), stacklevel=2)


def _shown(path: Path, config) -> str:
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


class _Written:
    """Names the baselines written in this run at the end (on the xdist controller too)."""

    def __init__(self):
        self.paths: list[str] = []

    def pytest_runtest_logreport(self, report):
        for name, value in report.user_properties:
            if name == WRITTEN and value not in self.paths:
                self.paths.append(value)

    def pytest_terminal_summary(self, terminalreporter, config):
        if self.paths and not hasattr(config, "workerinput"):
            terminalreporter.write_sep("=", "attribcheck baselines written")
            for p in self.paths:
                terminalreporter.write_line(p)
