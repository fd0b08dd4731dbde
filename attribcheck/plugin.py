"""The attribcheck pytest plugin (`pytest11` entry point).

A test that requests `attrib_suspect` (or `attrib_verdict`) runs once per suspect of every
manifest in scope; one that requests only manifest-level fixtures (`attrib_source_verdict`,
`attrib_auditor`, ...) runs once per manifest. Manifests come from `--attrib-manifest`, or
else every `*.toml` with an `[audit]` table next to the test module.

Nothing heavy is imported at module load: pytest imports every installed plugin in every
run, and a user's unrelated test session must not pay for torch.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import NamedTuple

import pytest

CASE = "_attrib_case"  # the hidden parameter every attribcheck fixture hangs off
# Recorded per verdict with record_property; the controller rebuilds its rows from them.
FIELDS = ("conf", "matches", "k", "p_value", "p0", "alpha", "delta_0", "verdict", "strategy")
HEAD = ("manifest", "suspect", "expect")
OPTIONAL = ("statistical_verdict", "p_infringing")  # present when a statistical test ran

MANIFESTS = pytest.StashKey[dict]()  # manifest path -> Manifest (alpha override applied)
AUDITORS = pytest.StashKey[dict]()  # manifest path -> Auditor
VERDICTS = pytest.StashKey[dict]()  # (manifest path, suspect name or None for the source) -> Verdict
STATISTICAL = pytest.StashKey[dict]()  # manifest path -> StatisticalAuditor
ROWS = pytest.StashKey[dict]()  # (manifest name, suspect name) -> row, read back from reports


class Case(NamedTuple):
    manifest: Path
    suspect: str | None  # None: a manifest-level test


def pytest_addoption(parser):
    g = parser.getgroup("attribcheck", "attribcheck (training-data attribution audits)")
    g.addoption("--attrib-manifest", action="append", default=[], metavar="PATH",
                help="audit manifest (repeatable); default: every *.toml manifest beside the test module")
    g.addoption("--attrib-alpha", type=float, default=None, metavar="FLOAT",
                help="override every manifest's significance level alpha")
    g.addoption("--attrib-json", default=None, metavar="PATH",
                help="write all verdicts as JSON at the end of the session")
    g.addoption("--attrib-strict", action="store_true", default=False,
                help="an inconclusive verdict fails its test (default: it passes with a warning)")
    g.addoption("--attrib-device", default=None, metavar="DEVICE",
                help="device the models sample on (cpu, cuda, cuda:N); default: the key set's sampler")


def pytest_configure(config):
    config.addinivalue_line("markers", "attrib_audit: an attribution audit test (added by attribcheck)")
    if not config.pluginmanager.hasplugin("xdist"):
        # we mark params with xdist_group; keep --strict-markers happy without xdist
        config.addinivalue_line("markers", "xdist_group(name): pytest-xdist loadgroup group")
    for key in (MANIFESTS, AUDITORS, VERDICTS, STATISTICAL, ROWS):
        config.stash[key] = {}
    config.pluginmanager.register(_Collector(config), "attribcheck-collector")


# -- manifests and parametrization -----------------------------------------------------------

def _is_manifest(path: Path) -> bool:
    """A *.toml with an [audit] table. A file that does not parse is an error, not a skip:
    silently dropping a broken manifest would pass a suite that audited nothing."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        return "audit" in tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise pytest.UsageError(f"attribcheck: {path} is not valid TOML: {e}") from e


def _load_manifest(config, path: Path):
    cache = config.stash[MANIFESTS]
    path = path.resolve()
    if path not in cache:
        from attribcheck.manifest import Manifest

        m = Manifest.load(path)
        if config.getoption("attrib_alpha") is not None:
            m.alpha = config.getoption("attrib_alpha")
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
def attrib_auditor(request, attrib_manifest):
    """The manifest's Auditor, built once per session (with --attrib-device applied)."""
    cache = request.config.stash[AUDITORS]
    if attrib_manifest.path not in cache:
        from attribcheck.audit.run import auditor_for

        auditor = auditor_for(attrib_manifest)
        device = request.config.getoption("attrib_device")
        if device:
            # a copy: the loaded key set's sampler is part of its (already verified) content
            auditor.keyset.sampler = dataclasses.replace(auditor.keyset.sampler, device=device)
        cache[attrib_manifest.path] = auditor
    return cache[attrib_manifest.path]


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


def _record(node, manifest, expect: str, verdict) -> None:
    # Goes to junit (xunit1) and, inside reports, to the xdist controller's summary.
    props = [("manifest", manifest.name), ("suspect", verdict.name), ("expect", expect)]
    node.user_properties.extend(props + [(f, getattr(verdict, f)) for f in FIELDS])


@pytest.fixture
def attrib_verdict(request, attrib_manifest, attrib_auditor, attrib_suspect):
    """The current suspect's Verdict, audited once per session; recorded as test properties."""
    cache = request.config.stash[VERDICTS]
    key = (attrib_manifest.path, attrib_suspect.name)
    if key not in cache:
        from attribcheck.audit.run import audit_suspect

        cache[key] = audit_suspect(attrib_auditor, attrib_suspect)
    _record(request.node, attrib_manifest, attrib_suspect.expect, cache[key])
    return cache[key]


@pytest.fixture
def attrib_source_verdict(request, attrib_manifest, attrib_auditor):
    """The source audited against its own keys: the key set's self-check."""
    cache = request.config.stash[VERDICTS]
    key = (attrib_manifest.path, None)
    if key not in cache:
        from attribcheck.manifest import SuspectSpec, open_generator

        spec = SuspectSpec(name="source", path=attrib_manifest.source, expect="infringing",
                           kind=attrib_manifest.source_kind)
        cache[key] = attrib_auditor.audit(open_generator(spec, attrib_auditor.keyset.sampler), spec.name)
    _record(request.node, attrib_manifest, "infringing", cache[key])
    return cache[key]


@pytest.fixture
def attrib_statistical_verdict(request, attrib_manifest, attrib_auditor, attrib_verdict):
    """The current suspect's StatisticalVerdict: the key set's shadow-model discriminator on the
    same distances the instance-level verdict measured (no further queries). Tests requesting
    it run only for manifests whose key set has a discriminator."""
    cache = request.config.stash[STATISTICAL]
    if attrib_manifest.path not in cache:
        from attribcheck.statistical.fit import StatisticalAuditor

        cache[attrib_manifest.path] = StatisticalAuditor.for_keyset(
            attrib_manifest.keys, attrib_auditor.keyset, attrib_manifest.discriminator,
            threshold=attrib_manifest.threshold)
    v = cache[attrib_manifest.path].verdict(attrib_verdict.name, attrib_verdict.distances)
    request.node.user_properties.extend([("statistical_verdict", v.verdict), ("p_infringing", v.p_infringing)])
    return v


# -- reporting (controller side) -------------------------------------------------------------

def _rows_from(properties) -> list[dict]:
    """Rows from a report's user_properties: each verdict is a block that starts at `manifest`."""
    rows, row = [], None
    for name, value in properties:
        if name == "manifest":
            row = {"manifest": value}
            rows.append(row)
        elif row is not None and name in HEAD + FIELDS + OPTIONAL:
            row[name] = value
    return [r for r in rows if all(f in r for f in HEAD + FIELDS)]


class _Collector:
    """Reads verdict rows out of every test report. On the xdist controller this sees the
    reports workers send (user_properties travel with them), so the summary is complete."""

    def __init__(self, config):
        self.config = config

    def pytest_runtest_logreport(self, report):
        for row in _rows_from(report.user_properties):
            # the instance and the statistical test of one suspect each bring part of its row
            self.config.stash[ROWS].setdefault((row["manifest"], row["suspect"]), {}).update(row)


def _sorted_rows(config) -> list[dict]:
    return [config.stash[ROWS][k] for k in sorted(config.stash[ROWS])]


def pytest_sessionfinish(session):
    config = session.config
    path = config.getoption("attrib_json")
    if path and not hasattr(config, "workerinput"):
        rows = [{"manifest": r["manifest"], "name": r["suspect"], "expect": r["expect"],
                 **{f: r[f] for f in FIELDS + OPTIONAL if f in r}} for r in _sorted_rows(config)]
        out = config.invocation_params.dir / path
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"verdicts": rows}, indent=2) + "\n")


def _styled(verdict: str, expect: str):
    """The rule of attribcheck.assertions: red = contradicts the expectation, yellow =
    inconclusive, green = as expected."""
    from rich.text import Text

    from attribcheck.audit.verdict import ATTRIBUTED, CLEAN, INCONCLUSIVE

    contradiction = ATTRIBUTED if expect == "innocent" else CLEAN
    style = "red" if verdict == contradiction else "yellow" if verdict == INCONCLUSIVE else "green"
    return Text(verdict, style=style)


def pytest_terminal_summary(terminalreporter, config):
    if hasattr(config, "workerinput") or not config.stash.get(ROWS, None):
        return
    import io

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text  # Text, not markup: a suspect may be named "a[b]"

    rows = _sorted_rows(config)
    table = Table(show_edge=False)
    for col, just in (("suspect", "left"), ("expect", "left"), ("verdict", "left"), ("conf", "right"),
                      ("m/K", "right"), ("p-value", "right")):
        table.add_column(col, justify=just, overflow="fold")  # a name is wrapped, never cut
    for r in rows:
        table.add_row(Text(f"{r['manifest']}::{r['suspect']}"), r["expect"], _styled(r["verdict"], r["expect"]),
                      f"{r['conf']:.3f}", f"{r['matches']}/{r['k']}", f"{r['p_value']:.3g}")
    tables = [table]
    stat_rows = [r for r in rows if "statistical_verdict" in r]
    if stat_rows:  # a table of its own: one line per suspect even on an 80-column terminal
        stat = Table(show_edge=False, title="statistical level (shadow discriminator)")
        for col, just in (("suspect", "left"), ("expect", "left"), ("verdict", "left"), ("P(inf)", "right")):
            stat.add_column(col, justify=just, overflow="fold")
        for r in stat_rows:
            stat.add_row(Text(f"{r['manifest']}::{r['suspect']}"), r["expect"],
                         _styled(r["statistical_verdict"], r["expect"]), f"{r['p_infringing']:.3f}")
        tables.append(stat)
    buf = io.StringIO()
    markup = terminalreporter.hasmarkup
    console = Console(file=buf, width=config.get_terminal_writer().fullwidth, force_terminal=markup,
                      color_system="standard" if markup else None)
    for t in tables:
        console.print(t)
    terminalreporter.write_sep("=", "attribcheck verdicts")
    terminalreporter.write(buf.getvalue())
