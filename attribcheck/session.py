"""Auditing one manifest: the one place the CLI (`attribcheck audit`) and the pytest plugin
(`pytest suites/`) both go through, so they load, order, report and judge the same way.

An `AuditSession` loads the manifest's key set (and discriminator) once, audits the source
and each suspect once, on demand (the plugin asks suspect by suspect, the CLI asks for all),
and turns the results into the report's entry. `exit_code` is the one outcome policy: what
fails `attribcheck audit` is what fails `pytest suites/`.
"""
from __future__ import annotations

import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Callable

from attribcheck.audit.auditor import Auditor
from attribcheck import pins
from attribcheck.audit.run import SuspectResult, audit_entry, audit_suspect, auditor_for, statistical_for
from attribcheck.errors import AttribcheckError
from attribcheck.manifest import Manifest
from attribcheck.models.spec import SuspectSpec
from attribcheck.models.protocol import Runtime
from attribcheck.report import AuditEntry, ErrorInfo, SuspectReport

logger = logging.getLogger(__name__)

EXIT_OK, EXIT_CONTRADICTION, EXIT_INCONCLUSIVE, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3, 4
SOURCE, SUSPECT = "source", "suspect"
# error kinds raised on the user's input (attribcheck.errors); any other error is a bug of ours
INPUT_KINDS = frozenset({"input", "integrity", "degenerate-output"})


@dataclass
class SessionOptions:
    runtime: Runtime = field(default_factory=Runtime)
    cache: object | None = None  # a GenerationCache, or None: every answer generated afresh
    keep_images: bool = False  # each key's best answer, for an evidence page
    early_stop: bool = False
    # called as (manifest name, spec, role, done, total) before each audit starts: progress for
    # whoever shows it (the CLI's bar, the plugin's terminal line)
    on_start: Callable[..., None] | None = None


class AuditSession:
    def __init__(self, manifest: Manifest, options: SessionOptions | None = None):
        self.manifest = manifest
        self.options = options or SessionOptions()
        self.load_error: BaseException | None = None
        self.statistical_error: BaseException | None = None
        self.artifacts: dict[str, str] = {}
        self._auditor: Auditor | None = None
        self._statistical: object | None = None
        self._statistical_loaded = False
        self._results: dict[tuple[str, str | None], SuspectResult] = {}

    # -- loading ---------------------------------------------------------------------------

    def load(self):
        """The manifest's Auditor, or None when its artifacts cannot be read (`load_error` says
        why). Pins are checked first: nothing is queried from an artifact that differs."""
        if self._auditor is None and self.load_error is None:
            try:
                self.artifacts = pins.verify(self.manifest)  # content hashes; a pinned manifest refuses a change
                self._auditor = auditor_for(self.manifest)
            except AttribcheckError as e:
                self.load_error = e
        return self._auditor

    @property
    def auditor(self):
        auditor = self.load()
        if auditor is None:
            raise self.load_error  # type: ignore[misc]
        return auditor

    def statistical(self):
        """The StatisticalAuditor of the manifest's discriminator, or None when it has none; a
        discriminator that cannot be read raises its error (kept for every later call)."""
        if not self._statistical_loaded:
            self._statistical_loaded = True
            try:
                self._statistical = statistical_for(self.manifest, self.auditor.keyset)
            except AttribcheckError as e:
                self.statistical_error = e
        if self.statistical_error is not None:
            raise self.statistical_error
        return self._statistical

    # -- auditing --------------------------------------------------------------------------

    def specs(self) -> list[tuple[SuspectSpec, str]]:
        """Everything this manifest audits: the source's self-check first, then the suspects."""
        return [(self.manifest.source_spec, SOURCE)] + [(s, SUSPECT) for s in self.manifest.suspects]

    @staticmethod
    def key(spec: SuspectSpec, role: str) -> tuple[str, str | None]:
        return (role, spec.name if role == SUSPECT else None)

    def audited(self, spec: SuspectSpec, role: str = SUSPECT) -> bool:
        return self.key(spec, role) in self._results

    def result(self, spec: SuspectSpec, role: str = SUSPECT) -> SuspectResult:
        """One suspect's (or the source's) result, audited once per session; its errors stay in it."""
        key = self.key(spec, role)
        if key not in self._results:
            logger.info("%s: auditing %s %s", self.manifest.name, role, spec.name)
            o = self.options
            if o.on_start is not None:
                o.on_start(self.manifest.name, spec, role, len(self._results), len(self.specs()))
            # a suspect's statistical verdict is read inside the audit, before its answers are
            # confirmed without the cache: an accusation at either level never rests on the cache
            stat = None
            if role == SUSPECT:
                try:
                    stat = self.statistical()
                except AttribcheckError:
                    pass  # statistical_error: the entry's error; the instance level still runs
            self._results[key] = audit_suspect(self.auditor, spec, o.runtime, stat, role=role,
                                               keep_images=o.keep_images, cache=o.cache, early_stop=o.early_stop)
        return self._results[key]

    def with_statistical(self, result: SuspectResult) -> SuspectResult:
        """`result` with its statistical verdict, when the manifest has a discriminator and
        every key's distance was measured (not early stopped)."""
        from attribcheck.audit.run import statistical_verdict

        stat = self.statistical()
        if stat is not None and result.verdict is not None and result.queries is None and result.statistical is None:
            try:
                result.statistical = statistical_verdict(result, stat)
            except Exception as e:  # noqa: BLE001 - reported as the suspect's error, never lost
                result.error = e
        return result

    def run(self, executor: Executor | None = None) -> list[SuspectResult]:
        """Audit everything (source first); an unreadable key set gives no results and `load_error`.

        With an Executor (attribcheck/executors.py: local processes, a Dask cluster), each
        suspect not yet audited goes to a worker, which audits it as `result` would, in a session
        of its own (`_audit_one`: its own models, nothing but the result travels back); the
        results are kept here and read in the manifest's order, so the report is the one a
        single process writes. A worker that fails gives that suspect its error row; the others
        keep theirs. `on_start` is then called as each result comes back."""
        if self.load() is None:
            return []
        if executor is not None:
            self._gather(executor)
        out = []
        for spec, role in self.specs():
            result = self.result(spec, role)
            if role == SUSPECT:  # the self-check is the instance level's; the plugin asks no more
                try:
                    self.with_statistical(result)
                except AttribcheckError:
                    pass  # statistical_error: the entry's error
            out.append(result)
        return out

    def _gather(self, executor: Executor) -> None:
        from concurrent.futures import as_completed
        from dataclasses import replace

        todo = [(spec, role) for spec, role in self.specs() if not self.audited(spec, role)]
        options = replace(self.options, on_start=None)  # progress stays here (a callback need not pickle)
        futures: dict = {}  # future -> (spec, role)
        try:
            for spec, role in todo:
                futures[executor.submit(_audit_one, self.manifest, options, spec, role)] = (spec, role)
            for future in as_completed(futures):
                spec, role = futures[future]
                try:
                    result = future.result()
                except Exception as e:  # noqa: BLE001 - the worker died or its result did not travel
                    logger.error("%s: %s %s: its worker failed: %s", self.manifest.name, role, spec.name, e)
                    result = SuspectResult(spec, role, error=e)
                self._results[self.key(spec, role)] = result
                if self.options.on_start is not None:
                    self.options.on_start(self.manifest.name, spec, role, len(self._results), len(self.specs()))
        finally:  # on ^C or an error here, nothing more starts
            for future in futures:
                future.cancel()

    def results(self) -> list[SuspectResult]:
        return [self._results[self.key(s, r)] for s, r in self.specs() if self.audited(s, r)]

    # -- reporting -------------------------------------------------------------------------

    def report_entry(self, results: list[SuspectResult] | None = None) -> AuditEntry:
        """This manifest's entry of the report. Each row is built on its own: a row that does
        not fit the report's schema becomes that suspect's error row, and every other row is
        still written."""
        results = self.results() if results is None else results
        error = self.load_error or self.statistical_error
        entry = audit_entry(self.manifest, self._auditor, results, error, row=lambda r: _checked_row(r, self._auditor))
        if self.artifacts:
            entry.artifacts = dict(self.artifacts)
        return entry

    def entry(self, results: list[SuspectResult] | None = None) -> dict:
        """`report_entry` as JSON data (the plugin's user_properties, the CLI's report): the
        fields that were set, so a partial entry merged into another never blanks them."""
        return self.report_entry(results).model_dump(exclude_unset=True)


def _audit_one(manifest: Manifest, options: SessionOptions, spec: SuspectSpec, role: str) -> SuspectResult:
    """A worker's suspect (AuditSession.run with an executor): audited by a session of its own,
    exactly as `AuditSession.result` audits it in one process."""
    session = AuditSession(manifest, options)
    if session.load() is None:
        return SuspectResult(spec, role, error=session.load_error)
    return session.result(spec, role)


def _checked_row(result: SuspectResult, auditor: Auditor | None) -> SuspectReport:
    from pydantic import ValidationError

    try:
        return result.report(auditor)
    except (ValidationError, ValueError) as e:
        first = str(e).strip().splitlines()
        logger.error("%s: its report row does not fit the report schema: %s", result.spec.name, first)
        return SuspectReport(name=result.spec.name, role=result.role, expect=result.spec.expect, kind=result.spec.kind,
                             fingerprint=result.fingerprint, outcome="error", error=ErrorInfo(
                                 kind="error", message=f"the report row could not be written ({first[0] if first else e}); "
                                                       f"please report this as a bug"))


# -- the outcome policy ----------------------------------------------------------------------

def outcomes(entries: list[dict]) -> list[str]:
    """Every outcome the entries hold: each suspect's instance outcome and, where there is one,
    its statistical outcome; an entry that could not be audited is an error."""
    out = []
    for e in entries:
        if e.get("error"):
            out.append("error:" + (e["error"].get("kind") or "error"))
        for s in e.get("suspects", []):
            out.append("error:" + s["error"]["kind"] if s.get("outcome") == "error" and s.get("error") else s["outcome"])
            if s.get("statistical_outcome"):
                out.append(s["statistical_outcome"])
    return out


def exit_code(entries: list[dict], strict: bool = False) -> int:
    """0 all as expected; 1 a contradiction at either level (an innocent attributed, an infringer
    cleared, the source not attributed to its own keys); 2 inconclusive under `strict`; 3 an
    input or integrity error; 4 an internal error (a bug: please report it). The worst wins."""
    found = outcomes(entries)
    errors = {o.split(":", 1)[1] for o in found if o.startswith("error:")}
    if errors - INPUT_KINDS:
        return EXIT_INTERNAL
    if errors:
        return EXIT_INPUT
    if "contradiction" in found:
        return EXIT_CONTRADICTION
    if strict and "inconclusive" in found:
        return EXIT_INCONCLUSIVE
    return EXIT_OK
