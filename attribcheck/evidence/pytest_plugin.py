"""The evidence page from a pytest run (`--attrib-report DIR`, `--attrib-report-redact`) and,
when pytest-html is installed and `--html` given, each audit test's row as a pytest-html extra.

Under xdist the best-seed answers travel to the controller like the report rows do, as a
JSON user property (`attrib_evidence`, base64 PNGs, sent once per suspect per worker); the
controller takes it off the report before junit sees it, so junit XML does not carry images.
Registered by attribcheck.plugin at configure time; nothing here is imported otherwise.
"""
from __future__ import annotations

import json

import pytest

EVIDENCE = "attrib_evidence"
SENT = pytest.StashKey[set]()  # (audit, suspect) whose answers this process already recorded
VIEWS = pytest.StashKey[dict]()  # audit name -> KeyView, for pytest-html extras


def add_options(group) -> None:
    group.addoption("--attrib-report", default=None, metavar="DIR",
                    help="write the evidence report (one self-contained HTML page: verdicts, reasons, and per key "
                         "the key image beside the source's and the suspect's best answers) to DIR/index.html")
    group.addoption("--attrib-report-redact", action="store_true", default=False,
                    help="the evidence report (and pytest-html extras) without key captions, key images or model "
                         "answers, for sharing outside your company")


def _html_active(config) -> bool:
    return config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))


def keep_images(config) -> bool:
    """Whether audits keep each key's best answer: only when a page will show it."""
    wanted = bool(config.getoption("attrib_report")) or _html_active(config)
    return wanted and not config.getoption("attrib_report_redact")


def register(config, entries, session_of, runtime=None) -> None:
    """`entries()`: the report's audits so far; `session_of(manifest path)`: that manifest's
    AuditSession (or None); `runtime`: the Runtime the models ran under. Handed in by
    attribcheck.plugin, which this module never imports."""
    if config.getoption("attrib_report"):
        config.pluginmanager.register(EvidencePage(config, entries, runtime), "attribcheck-evidence")
    if _html_active(config):
        config.pluginmanager.register(HtmlExtras(config, session_of), "attribcheck-html-extras")


def record(node, manifest, result) -> None:
    """Send a suspect's best answers toward the controller's page (once per suspect)."""
    config = node.config
    if not config.getoption("attrib_report") or not result.images:
        return
    sent = config.stash.setdefault(SENT, set())
    key = (manifest.name, result.spec.name)
    if key in sent:
        return
    sent.add(key)
    from attribcheck.evidence.write import encode_answers

    payload = {"audit": manifest.name, "suspect": result.spec.name, "images": encode_answers(result.images)}
    node.user_properties.append((EVIDENCE, json.dumps(payload)))


class EvidencePage:
    def __init__(self, config, entries, runtime=None):
        self.config = config
        self.entries = entries
        self.runtime = runtime
        self.answers: dict[tuple[str, str], dict[str, str]] = {}

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report):
        if hasattr(self.config, "workerinput"):
            return  # a worker sends the property on to the controller
        kept = []
        for name, value in report.user_properties:
            if name == EVIDENCE:
                d = json.loads(value)
                self.answers[(d["audit"], d["suspect"])] = d["images"]
            else:
                kept.append((name, value))
        report.user_properties = kept  # images stay out of junit XML

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        config = self.config
        if hasattr(config, "workerinput"):
            return
        from attribcheck.evidence.write import write_page

        path = write_page(config.invocation_params.dir / config.getoption("attrib_report"), self.entries(),
                          self.answers, config.getoption("attrib_report_redact"), runtime=self.runtime)
        self.written = path

    def pytest_terminal_summary(self, terminalreporter):
        if getattr(self, "written", None):
            terminalreporter.write_line(f"attribcheck evidence report: {self.written}")


class HtmlExtras:
    """Each audit test's row (verdict, reason, figures, keys) as a pytest-html extra."""

    def __init__(self, config, session_of):
        self.config = config
        self.session_of = session_of

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        if report.when == "call" or (report.when == "setup" and report.failed):
            fragment = self._fragment(item)
            if fragment:
                from pytest_html import extras

                report.extras = [*getattr(report, "extras", []), extras.html(fragment)]
        return report

    def _fragment(self, item) -> str | None:
        rows = [json.loads(v) for n, v in item.user_properties if n == "attrib_report"]
        if not rows:
            return None
        from pathlib import Path

        from attribcheck.evidence.keyview import KeyView
        from attribcheck.evidence.page import CSS, suspect_html
        from attribcheck.evidence.write import encode_answers

        entry = rows[-1]
        if not entry.get("suspects"):
            err = entry.get("error") or {}
            from html import escape

            return (f'<div class="ac"><b>{escape(entry["name"])}</b>: could not be audited: '
                    f'{escape(err.get("message", ""))}</div>')
        redact = self.config.getoption("attrib_report_redact")
        manifest = Path(entry["manifest"])
        session = self.session_of(manifest)
        auditor = session.load() if session is not None else None
        views = self.config.stash.setdefault(VIEWS, {})
        if entry["name"] not in views:
            views[entry["name"]] = KeyView.of(auditor.keyset, redact) if auditor is not None else KeyView.missing(redact)
        view = views[entry["name"]]
        row = entry["suspects"][0]
        results = {(r.role, r.spec.name if r.role == "suspect" else None): r
                   for r in (session.results() if session is not None else [])}
        key = ("source", None) if row["role"] == "source" else ("suspect", row["name"])
        answers = encode_answers(results[key].images) if key in results and not redact else {}
        src = results.get(("source", None))
        source_answers = encode_answers(src.images) if src is not None and not redact else None
        return f'<div class="ac"><style>{CSS}</style>{suspect_html(entry, row, view, answers, source_answers)}</div>'
