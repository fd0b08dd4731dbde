"""The attribcheck pytest plugin (`pytest11` entry point).

A test that requests `attrib_suspect` (or `attrib_verdict`) runs once per suspect of every
manifest in scope; one that requests only manifest-level fixtures (`attrib_source_verdict`,
`attrib_auditor`, ...) runs once per manifest. Manifests come from `--attrib-manifest`, or
else every `*.toml` with an `[audit]` table next to the test module.

Nothing heavy is imported at module load: pytest imports every installed plugin in every
run, and a user's unrelated test session must not pay for torch.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import pytest

if TYPE_CHECKING:
    from rich.console import JustifyMethod

CASE = "_attrib_case"  # the hidden parameter every attribcheck fixture hangs off
# Recorded per verdict with record_property, for junit (xunit1) readers.
FIELDS = ("conf", "matches", "k", "p_value", "p0", "alpha", "delta_0", "verdict", "strategy")
# The whole report row travels to the xdist controller in this property.
ROW = "attrib_report"

MANIFESTS = pytest.StashKey[dict]()  # manifest path -> Manifest (alpha override applied)
NAMES = pytest.StashKey[dict]()  # [audit] name -> manifest path (names must be unique)
SESSIONS = pytest.StashKey[dict]()  # manifest path -> AuditSession (attribcheck.session): its results
ROWS = pytest.StashKey[dict]()  # (manifest name, suspect name) -> {"audit": ..., "suspect": ...}
RUNTIME = pytest.StashKey[object]()  # the Runtime every model runs under


class Case(NamedTuple):
    manifest: Path
    suspect: str | None  # None: a manifest-level test


def pytest_addoption(parser):
    g = parser.getgroup("attribcheck", "attribcheck (training-data attribution audits)")
    g.addoption("--attrib-manifest", action="append", default=[], metavar="PATH",
                help="audit manifest (repeatable); default: every *.toml manifest beside the test module")
    g.addoption("--attrib-alpha", type=float, default=None, metavar="FLOAT",
                help="override every manifest's significance level alpha, in (0, 1)")
    g.addoption("--attrib-json", default=None, metavar="PATH",
                help="write the audit report (attribcheck/schemas/report.schema.json) at the end of the session")
    from attribcheck.evidence.pytest_plugin import add_options

    add_options(g)  # --attrib-report DIR, --attrib-report-redact
    from attribcheck.baseline.pytest_plugin import add_options as baseline_options

    baseline_options(g)  # --attrib-baseline, --attrib-baseline-update, tolerances
    g.addoption("--attrib-strict", action="store_true", default=False,
                help="an inconclusive verdict fails its test (default: it passes with a warning)")
    g.addoption("--attrib-device", default="cpu", metavar="DEVICE",
                help="device the models sample on: cpu, cuda, cuda:N (default: cpu)")
    g.addoption("--attrib-batch-size", type=int, default=64, metavar="N",
                help="images generated per batch; does not change any image (default: 64)")
    g.addoption("--attrib-threads", type=int, default=None, metavar="N",
                help="torch CPU threads per process (default: $OMP_NUM_THREADS, else the cores shared "
                     "among the xdist workers)")
    g.addoption("--attrib-cache-dir", default=None, metavar="DIR",
                help="generation cache folder (default: $ATTRIBCHECK_CACHE or ~/.cache/attribcheck)")
    g.addoption("--attrib-no-cache", action="store_true", default=False,
                help="generate every answer afresh; read and write no generation cache")
    g.addoption("--attrib-early-stop", action="store_true", default=False,
                help="stop querying a suspect once its verdict can no longer change (the same verdict, "
                     "fewer queries; the report marks what was not asked)")


def pytest_configure(config):
    config.addinivalue_line("markers", "attrib_audit: an attribution audit test (added by attribcheck)")
    if not config.pluginmanager.hasplugin("xdist"):
        # we mark params with xdist_group; keep --strict-markers happy without xdist
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist loadgroup group")
    for key in (MANIFESTS, NAMES, SESSIONS, ROWS):
        config.stash[key] = {}
    alpha = config.getoption("attrib_alpha")
    if alpha is not None and not 0 < alpha < 1:  # also rejects nan
        raise pytest.UsageError(f"--attrib-alpha {alpha}: must lie in (0, 1)")
    from pydantic import ValidationError

    from attribcheck.models.protocol import Runtime

    try:
        config.stash[RUNTIME] = Runtime(device=_worker_device(config.getoption("attrib_device")),
                                        batch_size=config.getoption("attrib_batch_size"),
                                        threads=config.getoption("attrib_threads") or _default_threads())
    except ValidationError as e:
        from attribcheck.errors import from_validation

        raise pytest.UsageError(f"attribcheck: {from_validation(e, 'options')}") from None
    if not hasattr(config, "workerinput"):  # output paths checked before the first query
        _check_outputs(config)
    config.pluginmanager.register(_Collector(config), "attribcheck-collector")
    from attribcheck.evidence.pytest_plugin import register

    # the evidence page, pytest-html extras: handed what they read, so they never import this module
    register(config, entries=lambda: entries(config), session_of=lambda path: config.stash[SESSIONS].get(path),
             runtime=config.stash[RUNTIME])
    from attribcheck.baseline.pytest_plugin import register as register_baselines

    register_baselines(config)


def _check_outputs(config) -> None:
    from attribcheck.errors import AttribcheckError
    from attribcheck.outputs import check_file, check_folder

    base = config.invocation_params.dir
    try:
        if config.getoption("attrib_json"):
            check_file(base / config.getoption("attrib_json"), "--attrib-json")
        if config.getoption("attrib_report"):
            from attribcheck.evidence.write import INDEX

            check_folder(base / config.getoption("attrib_report"), "--attrib-report", INDEX)
    except AttribcheckError as e:
        raise pytest.UsageError(f"attribcheck: {e}") from None


def _default_threads() -> int:
    import os

    from attribcheck.models.protocol import default_threads

    return default_threads(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))


def _worker_device(device: str) -> str:
    """Under xdist with several GPUs, `--attrib-device cuda` puts worker i on cuda:i."""
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if device != "cuda" or not worker:
        return device  # torch is imported only here, for a bare cuda under xdist
    import torch

    from attribcheck.models.protocol import worker_device

    return worker_device(device, worker, torch.cuda.device_count())


def _generation_cache(config):
    """The GenerationCache of this run, or None under --attrib-no-cache."""
    if config.getoption("attrib_no_cache"):
        return None
    from attribcheck.cache import GenerationCache

    d = config.getoption("attrib_cache_dir")
    return GenerationCache(config.invocation_params.dir / d if d else None)


# -- manifests and parametrization -----------------------------------------------------------

# Raised while collecting, it shows as its one-line message (no traceback) and stops the run.
_CollectError = pytest.Collector.CollectError


def _is_manifest(path: Path) -> bool:
    """A *.toml with an [audit] table. A file that does not parse is an error, not a skip:
    silently dropping a broken manifest would pass a suite that audited nothing."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    from attribcheck.errors import AttribcheckError
    from attribcheck.safe_files import read_text_bounded

    try:  # a regular file of bounded size (a FIFO would hang collection), within the parser's stack
        return "audit" in tomllib.loads(read_text_bounded(path))
    except AttribcheckError as e:
        raise _CollectError(f"attribcheck: {e}") from None
    except (ValueError, RecursionError) as e:  # TOMLDecodeError, a 5,000-digit integer, nesting
        raise _CollectError(f"attribcheck: {path} is not valid TOML: {str(e).splitlines()[0][:200] or 'nested too deep'}") from None


def _load_manifest(config, path: Path):
    cache = config.stash[MANIFESTS]
    path = path.resolve()
    if path not in cache:
        from attribcheck.errors import AttribcheckError
        from attribcheck.manifest import Manifest

        try:
            m = Manifest.load(path)
        except AttribcheckError as e:  # one line naming the file and the field, no traceback
            raise _CollectError(f"attribcheck: {e}") from None
        if config.getoption("attrib_alpha") is not None:
            m.alpha = config.getoption("attrib_alpha")
        other = config.stash[NAMES].setdefault(m.name, path)
        if other != path:
            raise _CollectError(f"attribcheck: {path}: audit.name: {m.name!r} is also the name of {other}; "
                                    f"audit names must be unique (they key the report)")
        cache[path] = m
    return cache[path]


def _manifests_for(config, test_dir: Path) -> list:
    given = config.getoption("attrib_manifest")
    if given:
        base = config.invocation_params.dir
        paths = [base / p for p in given]
        for p in paths:
            if not p.is_file():
                raise pytest.UsageError(f"--attrib-manifest {p}: no such file")
    else:
        paths = [p for p in sorted(test_dir.glob("*.toml")) if _is_manifest(p)]
    return [_load_manifest(config, p) for p in dict.fromkeys(p.resolve() for p in paths)]


def pytest_generate_tests(metafunc):
    if CASE not in metafunc.fixturenames:
        return
    manifests = _manifests_for(metafunc.config, Path(metafunc.module.__file__).parent)
    per_suspect = "attrib_suspect" in metafunc.fixturenames
    if "attrib_statistical_verdict" in metafunc.fixturenames:
        manifests = [m for m in manifests if m.statistical]  # only key sets with a discriminator
    params = []
    for m in manifests:
        # one xdist worker per manifest under --dist loadgroup: models load once per worker
        marks = [pytest.mark.attrib_audit, pytest.mark.xdist_group(m.name)]
        if per_suspect:
            params += [pytest.param(Case(m.path, s.name), id=f"{m.name}::{s.name}", marks=marks)
                       for s in m.suspects]
        else:
            params.append(pytest.param(Case(m.path, None), id=m.name, marks=marks))
    if not params:
        params = [pytest.param(None, id="no-manifest", marks=pytest.mark.skip(
            reason="attribcheck: no suspects; pass --attrib-manifest or put a *.toml manifest beside the test"))]
    metafunc.parametrize(CASE, params)


# -- fixtures --------------------------------------------------------------------------------

@pytest.fixture
def _attrib_case():
    # Only reached when pytest_generate_tests did not parametrize (it always does): fail loudly.
    pytest.fail("attribcheck: this test was not parametrized over a manifest")


@pytest.fixture
def attrib_manifest(request, _attrib_case):
    """The Manifest of the current parameter (with --attrib-alpha applied)."""
    return _load_manifest(request.config, _attrib_case.manifest)


@pytest.fixture
def attrib_runtime(request):
    """The Runtime (device, batch size, threads) every model runs under; never part of a key."""
    return request.config.stash[RUNTIME]


def _fail(manifest, what: str, exc: BaseException):
    """One line, no traceback: the input is at fault, not the test."""
    from attribcheck.audit.run import error_info

    info = error_info(exc)
    pytest.fail(f"{manifest.name}::{what}: {info.kind} error: {info.message}", pytrace=False)


@pytest.fixture
def attrib_auditor(request, attrib_manifest):
    """The manifest's Auditor, built once per session. A key set that fails to load fails
    every test of its manifest with the one-line reason (and an error entry in the report)."""
    session = _session(request.config, attrib_manifest)
    auditor = session.load()
    if auditor is None:
        _record_row(request.node, session, None)
        _fail(attrib_manifest, "keys", session.load_error)
    return auditor


@pytest.fixture
def attrib_strict(request) -> bool:
    """Whether an inconclusive verdict fails (`--attrib-strict`)."""
    return request.config.getoption("attrib_strict")


@pytest.fixture
def attrib_keyset(attrib_auditor):
    """The manifest's KeySet, as the auditor uses it."""
    return attrib_auditor.keyset


@pytest.fixture
def attrib_suspect(attrib_manifest, _attrib_case):
    """The SuspectSpec of the current parameter (requesting it parametrizes over suspects)."""
    return next(s for s in attrib_manifest.suspects if s.name == _attrib_case.suspect)


def _session(config, manifest):
    """The manifest's AuditSession, one per pytest session (per xdist worker)."""
    sessions = config.stash[SESSIONS]
    if manifest.path not in sessions:
        from attribcheck.evidence.pytest_plugin import keep_images
        from attribcheck.session import AuditSession, SessionOptions

        sessions[manifest.path] = AuditSession(manifest, SessionOptions(
            config.stash[RUNTIME], _generation_cache(config), keep_images=keep_images(config),
            early_stop=config.getoption("attrib_early_stop"), on_start=_progress_line(config)))
    return sessions[manifest.path]


def _progress_line(config):
    """A line on the terminal as each audit starts (a cold suite spends minutes per model behind
    one dot); none under -q or on an xdist worker, whose terminal nobody sees."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(config, "workerinput") or config.get_verbosity() < 0:
        return None

    def line(name, spec, role, done, total):
        reporter.write_line(f"attribcheck {name}: auditing {role} {spec.name} ({done + 1}/{total})")

    return line


def _record_row(node, session, result) -> None:
    """The report row (to the controller) and the verdict's fields (to junit)."""
    manifest = session.manifest
    entry = session.entry([result] if result else [])
    node.user_properties.append((ROW, json.dumps(entry, allow_nan=False)))
    if result is not None and result.verdict is not None:
        v = result.verdict
        node.user_properties.extend([("manifest", manifest.name), ("suspect", v.name),
                                     ("expect", result.spec.expect)] + [(f, getattr(v, f)) for f in FIELDS])
    if result is not None and result.images:
        from attribcheck.evidence.pytest_plugin import record

        record(node, manifest, result)  # the best answers, toward the evidence page


def _result(request, manifest, spec, role: str):
    session = _session(request.config, manifest)
    result = session.result(spec, role)
    _record_row(request.node, session, result)
    if result.error is not None:
        _fail(manifest, spec.name, result.error)
    return result


@pytest.fixture
def attrib_verdict(request, attrib_manifest, attrib_auditor, attrib_suspect):
    """The current suspect's Verdict, audited once per session; recorded as test properties.
    A suspect that cannot be audited (unreadable, degenerate outputs) fails with one line."""
    return _result(request, attrib_manifest, attrib_suspect, "suspect").verdict


@pytest.fixture
def attrib_source_verdict(request, attrib_manifest, attrib_auditor):
    """The source audited against its own keys: the key set's self-check."""
    return _result(request, attrib_manifest, attrib_manifest.source_spec, "source").verdict


@pytest.fixture
def attrib_statistical_verdict(request, attrib_manifest, attrib_auditor, attrib_suspect, attrib_verdict):
    """The current suspect's StatisticalVerdict: the key set's shadow-model discriminator on the
    same distances the instance-level verdict measured (no further queries). Tests requesting
    it run only for manifests whose key set has a discriminator."""
    from attribcheck.errors import AttribcheckError

    session = _session(request.config, attrib_manifest)
    try:
        session.statistical()
    except AttribcheckError as e:
        _record_row(request.node, session, None)
        _fail(attrib_manifest, "discriminator", e)
    result = session.result(attrib_suspect)
    if result.queries is not None:  # the option the user chose, not a pass: the reason says so
        pytest.skip("--attrib-early-stop: the statistical level needs every key's distance under every seed; "
                    "run without it for this level")
    session.with_statistical(result)
    _record_row(request.node, session, result)
    if result.statistical is None:
        _fail(attrib_manifest, attrib_suspect.name, result.error)
    return result.statistical


@pytest.fixture
def attrib_baseline(request, attrib_manifest, attrib_auditor):
    """A callable that records (`--attrib-baseline-update`) or checks the manifest's regression
    baseline (`baselines/<name>.json` beside it) over every suspect and the source self-check;
    see attribcheck.baseline.pytest_plugin."""
    from attribcheck.baseline.pytest_plugin import check

    session = _session(request.config, attrib_manifest)

    def run():
        _audit_all(request, session)
        return check(request, session)

    return run


def _audit_all(request, session) -> None:
    """Audit every suspect and the source for a manifest-level test, in the order that keeps
    xdist workers apart: from the last suspect backwards (the per-suspect tests go forwards),
    and a suspect another worker is computing right now (its cache lock is held) after the
    rest, when it will be in the cache. Each is still computed once, whichever worker asks."""
    cache = session.options.cache
    deferred = []
    for spec, role in reversed(session.specs()):
        if cache is not None and not session.audited(spec, role):
            from attribcheck.models.spec import open_generator

            try:
                gen = open_generator(spec, session.auditor.keyset.protocol, session.options.runtime, cache)
            except Exception:  # noqa: BLE001 - the audit itself reports it
                gen = None
            if getattr(gen, "busy", None) is not None and gen.busy():
                deferred.append((spec, role))
                continue
        session.result(spec, role)
    for spec, role in deferred:
        session.result(spec, role)


# -- reporting (controller side) -------------------------------------------------------------

class _Collector:
    """Reads report rows out of every test report. On the xdist controller this sees the
    reports workers send (user_properties travel with them), so the summary is complete."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        rows = self.config.stash[ROWS]
        for name, value in report.user_properties:
            if name != ROW:
                continue
            entry = json.loads(value)
            suspects = entry.pop("suspects")
            for s in suspects or [None]:
                # the instance and the statistical test of one suspect each bring part of its row
                slot = rows.setdefault((entry["name"], s["name"] if s else ""), {"audit": entry, "suspect": None})
                slot["audit"] = {**slot["audit"], **entry}
                if s is not None:
                    slot["suspect"] = {**(slot["suspect"] or {}), **{k: v for k, v in s.items() if v is not None}}


def entries(config) -> list[dict]:
    """The report's audits: one entry per manifest, its suspects in name order, source last."""
    by_audit: dict[str, dict] = {}
    for (audit, _), slot in sorted(config.stash[ROWS].items()):
        entry = by_audit.setdefault(audit, {**slot["audit"], "suspects": []})
        entry.update({k: v for k, v in slot["audit"].items() if v is not None})
        if slot["suspect"] is not None:
            entry["suspects"].append(slot["suspect"])
    for entry in by_audit.values():
        entry["suspects"].sort(key=lambda s: (s["role"] == "source", s["name"]))
    return list(by_audit.values())


def pytest_sessionfinish(session):
    config = session.config
    path = config.getoption("attrib_json")
    if path and not hasattr(config, "workerinput"):
        from attribcheck.report import new_report

        report = new_report(entries(config), config.stash[RUNTIME])
        report.write(config.invocation_params.dir / path)


def _styled(outcome: str, text: str):
    """red = contradicts the expectation or could not be audited, yellow = inconclusive,
    green = as expected (the rule of attribcheck.assertions)."""
    from rich.text import Text

    style = {"contradiction": "red", "error": "red", "inconclusive": "yellow"}.get(outcome, "green")
    return Text(text, style=style)


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput") or not config.stash.get(ROWS, None):
        return
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # Text, not markup: a suspect may be named "a[b]"

    rows = entries(config)
    table = Table(show_edge=False)
    just: JustifyMethod
    for col, just in (("suspect", "left"), ("expect", "left"), ("verdict", "left"), ("conf", "right"),
                      ("m/K", "right"), ("p-value", "right")):
        table.add_column(col, justify=just, overflow="fold")  # a name is wrapped, never cut
    stat = Table(show_edge=False, title="statistical level (shadow discriminator)")
    for col, just in (("suspect", "left"), ("expect", "left"), ("verdict", "left"), ("P(inf)", "right")):
        stat.add_column(col, justify=just, overflow="fold")
    for e in rows:
        if e.get("error"):
            table.add_row(Text(f"{e['name']}"), "", _styled("error", "error"), "", "", "")
        for s in e["suspects"]:
            name, v = Text(f"{e['name']}::{s['name']}"), s.get("instance")
            if v is None:
                table.add_row(name, s["expect"], _styled("error", "error"), "", "", "")
            else:
                table.add_row(name, s["expect"], _styled(s["outcome"], v["verdict"]), f"{v['conf']:.3f}",
                              f"{v['matches']}/{v['k']}", f"{v['p_value']:.3g}")
            if s.get("statistical"):  # a table of its own: one line per suspect at 80 columns
                sv = s["statistical"]
                stat.add_row(name, s["expect"], _styled(s["statistical_outcome"], sv["verdict"]),
                             f"{sv['p_infringing']:.3f}")
    buf = io.StringIO()
    markup = terminalreporter.hasmarkup
    console = Console(file=buf, width=config.get_terminal_writer().fullwidth, force_terminal=markup,
                      color_system="standard" if markup else None)
    console.print(table)
    if stat.row_count:
        console.print(stat)
    for e in rows:  # what each key set can detect: the bar every verdict above was held to
        if e.get("keyset") and e.get("p0") is not None:
            m = e.get("min_conf_attributable")
            bar = f"attributed from conf >= {m:.3f}" if m is not None else "no conf can be attributed"
            if not e["keyset"].get("public_check"):  # said by the key set's record, not its power
                bar = "no suspect can be attributed: the keys were not checked against public training data"
            clean = [s for s in e.get("suspects", []) if (s.get("instance") or {}).get("verdict") == "clean"
                     and s["instance"].get("r_min") is not None]
            if clean:  # what each clean verdict rules out: its rate's upper bound lies below r_min
                from attribcheck.audit.score import RATE_CONFIDENCE

                bar += (f"; clean rules out an infringer inheriting r_min = {clean[0]['instance']['r_min']:g} of the "
                        f"keys ({RATE_CONFIDENCE:.0%} bound on each clean suspect's rate: "
                        + ", ".join(f"{s['name']} {s['instance']['rate_bound']:.3f}" for s in clean) + ")")
            console.print(Text(f"{e['name']}: K={e['keyset']['k']}, delta_0={e['keyset']['delta_0']:.4f}, "
                               f"p0={e['p0']:.3f} from {len(e.get('p0_models', []))} innocent models, "
                               f"alpha={e.get('alpha')}: {bar}"))
            own = [s["name"] for s in e.get("suspects", []) if (s.get("instance") or {}).get("postprocess")]
            if own:  # their keys, delta_0 and p0 were seen through their steps: the bar differs
                console.print(Text(f"  {len(own)} suspect(s) with a declared postprocess have their own delta_0 and "
                                   f"p0 (in the report): {', '.join(own)}"))
    terminalreporter.write_sep("=", "attribcheck verdicts")
    terminalreporter.write(buf.getvalue())
