"""Run a manifest's audit, one suspect at a time, each isolated: what the CLI and the pytest
plugin both call, so both report the same thing."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from attribcheck.audit.auditor import Auditor
from attribcheck.audit.verdict import (AS_EXPECTED, CLEAN, CONTRADICTION, INCONCLUSIVE, Verdict, outcome,
                                      reproduces_own_keys)
from attribcheck.errors import AttribcheckError
from attribcheck.keys.keyset import KeySet
from attribcheck.manifest import Manifest
from attribcheck.models.spec import SuspectSpec, open_generator
from attribcheck.models.protocol import Runtime
from attribcheck.report import (AuditEntry, ErrorInfo, InstanceResult, KeyResult, KeySetInfo, StatisticalResult,
                                SuspectReport)

if TYPE_CHECKING:  # imported where they are used, lazily: a plain audit needs none of them
    from attribcheck.audit.caption_info import CaptionInfo
    from attribcheck.audit.conformance import Conformance
    from attribcheck.audit.early_stop import Queries
    from attribcheck.statistical.verdict import StatisticalVerdict



def auditor_for(manifest: Manifest) -> Auditor:
    """The manifest's Auditor. When its key set has a discriminator, the innocent shadows'
    profiles stored in it join the calibration references in bounding p0."""
    keyset = KeySet.load(manifest.keys)
    innocents = None
    if manifest.discriminator is not None:  # manifest.statistical
        from attribcheck.statistical.fit import innocent_profiles

        innocents = innocent_profiles(manifest.discriminator, keyset)
    for i, spec in enumerate(manifest.innocents):
        if keyset.reference_roles.get(spec.name) == "selection":
            from attribcheck.errors import InputError

            raise InputError(f"{spec.name} selected these keys (they were chosen for it to miss): its rate is "
                             f"biased low and cannot bound the null", manifest.path, f"innocents.{i}.name")
    return Auditor(keyset, alpha=manifest.alpha, delta_0=manifest.delta_0, innocents=innocents,
                   min_sharpness=manifest.min_sharpness, innocent_models=tuple(manifest.innocents),
                   r_min=manifest.r_min)


def statistical_for(manifest: Manifest, keyset: KeySet):
    """The manifest's StatisticalAuditor, or None when its key set has no discriminator."""
    if not manifest.statistical:
        return None
    from attribcheck.statistical.fit import StatisticalAuditor

    return StatisticalAuditor.for_keyset(manifest.keys, keyset, manifest.discriminator,
                                         threshold=manifest.threshold)


def error_info(exc: BaseException) -> ErrorInfo:
    """An exception as the report's error: its kind and one line."""
    kind = exc.kind if isinstance(exc, AttribcheckError) else "error"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ErrorInfo(kind=kind, message=text if isinstance(exc, AttribcheckError) else f"{type(exc).__name__}: {text}")


@dataclass
class SuspectResult:
    spec: SuspectSpec
    role: str = "suspect"  # or "source": the self-check
    verdict: Verdict | None = None
    statistical: StatisticalVerdict | None = None
    error: BaseException | None = None
    fingerprint: str | None = None
    # key id -> the best seed's answer, kept only when an evidence report is asked for
    # (attribcheck.evidence); never part of the JSON report
    images: dict | None = field(default=None, repr=False)
    # an early-stopped audit's queries (attribcheck.audit.early_stop.Queries); None: the full audit
    queries: Queries | None = None
    conformance: Conformance | None = None  # of its answers
    caption_info: CaptionInfo | None = None  # of its answers

    @property
    def outcome(self) -> str:
        if self.verdict is None:
            return "error"
        if self.role == "source":  # the self-check
            return AS_EXPECTED if reproduces_own_keys(self.verdict) else CONTRADICTION
        return outcome(self.verdict.verdict, self.spec.expect)

    def report(self, auditor: Auditor | None) -> SuspectReport:
        """This suspect's row of the audit report. Built as the report's models: a value that
        does not fit is a ValidationError here. Only what applies is set (the JSON boundary
        dumps the set fields: a partial row merged into another never blanks its fields)."""
        row = SuspectReport(name=self.spec.name, role=self.role, expect=self.spec.expect, kind=self.spec.kind,
                            fingerprint=self.fingerprint, outcome=self.outcome)
        if self.error is not None:
            row.error = error_info(self.error)
        v = self.verdict
        if v is not None:
            assert auditor is not None  # a verdict comes from the manifest's auditor
            instance = InstanceResult(verdict=v.verdict, conf=v.conf, matches=v.matches, k=v.k, p_value=v.p_value,
                                      p0=v.p0, alpha=v.alpha, delta_0=v.delta_0, innocent_level=v.innocent_level,
                                      departure=v.departure, withheld=v.withheld, rate_bound=v.rate_bound,
                                      r_min=v.r_min, source_rate=v.source_rate, postprocess=list(self.spec.postprocess))
            if self.conformance is not None:
                instance.sharpness, instance.min_sharpness = self.conformance.sharpness, self.conformance.min_sharpness
            if self.caption_info is not None:
                instance.caption_info = self.caption_info.to_dict()
            seeds: Sequence[int | None] = v.best_seeds or [None] * len(v.distances)
            keys = [KeyResult(id=key.id, best_seed=s, distance=d, matched=d < v.delta_0)
                    for key, d, s in zip(auditor.keyset.keys, v.distances, seeds)]
            if self.queries is not None:  # early stopped: what was asked (distances: best of these)
                instance.early_stop, instance.queries, instance.queries_full = True, self.queries.asked, self.queries.full
                for key_row, asked in zip(keys, self.queries.seeds):
                    key_row.seeds_queried = asked
                    if not asked:  # never asked: a miss at the metric's bound, no seed
                        key_row.best_seed = None
            row.instance, row.keys = instance, keys
        sv = self.statistical
        if sv is not None:
            row.statistical = StatisticalResult(
                verdict=sv.verdict, p_infringing=sv.p_infringing, threshold=sv.threshold, cv_accuracy=sv.cv_accuracy,
                min_cv_accuracy=sv.min_cv_accuracy, shadows=sv.shadows, departure=sv.departure,
                missed_infringing=sv.missed_infringing, missed_innocent=sv.missed_innocent, withheld=sv.withheld)
            row.statistical_outcome = outcome(sv.verdict, self.spec.expect)
        return row


def _fingerprint(spec: SuspectSpec) -> str | None:
    from attribcheck.fingerprint import fingerprint

    try:
        if spec.path is None and spec.repo is not None:
            from attribcheck.models.diffusers_generator import resolve_model

            return fingerprint(resolve_model(spec))
        return fingerprint(spec.path) if spec.path is not None else None
    except (OSError, AttribcheckError):
        return None


def audit_suspect(auditor: Auditor, spec: SuspectSpec, runtime: Runtime | None = None, statistical=None,
                  role: str = "suspect", keep_images: bool = False, cache=None,
                  early_stop: bool = False) -> SuspectResult:
    """Audit one suspect. Whatever goes wrong with it (its files, its outputs) becomes its
    error row; the other suspects' verdicts are not lost. `keep_images`: also keep each key's
    best-seed answer in `result.images`, for the evidence report (no further queries)."""
    result = SuspectResult(spec, role, fingerprint=_fingerprint(spec))
    try:
        plain = auditor  # the undeclared reading's, which a declaration never makes more lenient
        if spec.postprocess:  # keys and null seen through the suspect's declared steps
            from attribcheck.audit.null_through import innocent_answers, through
            from attribcheck.audit.postprocess import Postprocess

            answers = innocent_answers(auditor, auditor.innocent_models, runtime, cache)
            auditor = through(auditor, Postprocess.parse(spec.postprocess), answers)
        # cache: a GenerationCache; answers come from it where they can, a model loads only on a miss
        from attribcheck.images import answer_side_limit

        side = answer_side_limit(*auditor.keyset.images[0].shape[:2])
        generator = opened = open_generator(spec, auditor.keyset.protocol, runtime, cache, side)
        from attribcheck.audit.conformance import Watching

        h, w = auditor.keyset.images[0].shape[:2]
        generator = watching = Watching(generator, h, w)
        from attribcheck.audit.caption_info import Keeping

        generator = keeping = Keeping(generator, dict(zip(auditor.keyset.captions, auditor.keyset.images)))
        if keep_images:
            from attribcheck.audit.recording import Recording

            generator = Recording(generator)
        declared = None
        if spec.postprocess:  # read declared and untouched, in full (attribcheck.audit.declared)
            from attribcheck.audit.declared import read_declared

            declared = read_declared(plain, auditor, generator, spec.name, spec.postprocess)
            result.verdict, auditor = declared.verdict, declared.auditor
        elif early_stop:  # the same verdict from fewer queries (attribcheck.audit.early_stop)
            from attribcheck.audit.early_stop import audit_early

            from attribcheck.models import kinds

            chunk = None if kinds.get(spec.kind).batched else 1  # an API: key by key
            # nobody is cleared before the statistical level agrees, and it needs every key's
            # distance over every seed: a suspect headed for clean is asked the rest too
            complete = (lambda verdict: verdict == CLEAN) if statistical is not None else None
            result.verdict, result.queries = audit_early(auditor, generator, spec.name, chunk, complete)
            if complete is not None and result.verdict.verdict == CLEAN:
                result.queries = None  # completed: the full audit's distances, every query asked
        else:
            result.verdict = auditor.audit(generator, spec.name)
        if keep_images:
            from attribcheck.audit.recording import best_images

            result.images = best_images(generator, auditor.keyset, result.verdict.best_seeds)
        result.conformance = declared.conformance if declared else watching.result(auditor.keyset.images,
                                                                                   auditor.min_sharpness)
        assert auditor.delta_0 is not None  # set by Auditor.__post_init__
        result.caption_info = keeping.result(auditor.distance, auditor.delta_0)
        if statistical is not None and result.queries is None:  # it needs every key's full distance
            result.statistical = statistical_verdict(result, statistical)
        _read_with_care(result)
        _clean_needs_every_level(result)
        _confirm_uncached(result, auditor, opened)
    except Exception as e:  # noqa: BLE001 - isolation is the point; the error is reported
        result.error = e
    return result


def _confirm_uncached(result: SuspectResult, auditor: Auditor, generator) -> None:
    """An accusation never rests on cached answers alone: when a verdict is "attributed", the
    answers it rests on (the best seed of each matched key; of every key for the statistical
    level) are regenerated without the cache wherever the cache gave them, and must equal
    them. If not, the cache was poisoned: the suspect gets the IntegrityError as its error
    row (no verdict), and the poisoned entries are already rewritten for a re-run."""
    from attribcheck.models.cached_generator import CachedGenerator

    v, sv = result.verdict, result.statistical
    if not isinstance(generator, CachedGenerator) or v is None:
        return
    everything = sv is not None and sv.verdict == "attributed"
    if v.verdict != "attributed" and not everything:
        return
    seeds: Sequence[int | None] = v.best_seeds or [None] * len(v.distances)
    pairs = [(k.caption, int(s)) for k, d, s in zip(auditor.keyset.keys, v.distances, seeds)
             if s is not None and (everything or d < v.delta_0)]
    try:
        generator.confirm([p for p, _ in pairs], [s for _, s in pairs])
    except Exception:
        result.verdict = result.statistical = None  # an error row, never a verdict from poisoned answers
        raise


def _departure_of(result: SuspectResult) -> str | None:
    """Why no verdict is read from the answers: they depart from the protocol's form
    (audit/conformance.py) or carry no information about their captions (audit/caption_info.py)."""
    form = result.conformance.reason() if result.conformance is not None else None
    return form or (result.caption_info.reason() if result.caption_info is not None else None)


def _read_with_care(result: SuspectResult) -> None:
    """No verdict from answers that depart from the protocol (audit/conformance.py): the
    verdict becomes inconclusive, with the reason."""
    from dataclasses import replace

    from attribcheck.audit.verdict import INCONCLUSIVE

    why = _departure_of(result)
    if why:
        assert result.verdict is not None  # read after the audit gave its verdict
        result.verdict = replace(result.verdict, verdict=INCONCLUSIVE, departure=why)


def _clean_needs_every_level(result: SuspectResult) -> None:
    """A clean verdict clears a suspect only when the statistical level, where the manifest has
    one and it read these answers, puts it on the innocent side too (P(infringing) <= 1 -
    threshold); otherwise inconclusive, with the reason. Why: the instance level counts keys
    matched under delta_0, and an infringer washed by further fine-tuning can match none while
    its distance profile still leans toward the source's (bench evade: 2,000 steps at the
    suspects' own rate left 0 of 39 keys and P 0.12). The same principle as a declared
    postprocess (audit/declared.py): a second reading can take a clean verdict away, never
    give one."""
    from dataclasses import replace

    v, sv = result.verdict, result.statistical
    if v is None or v.verdict != CLEAN or sv is None or sv.departure or sv.cv_accuracy < sv.min_cv_accuracy:
        return  # a discriminator that cannot read these answers, or cannot tell its own shadows apart, says nothing
    if sv.p_infringing > 1 - sv.threshold:
        result.verdict = replace(v, verdict=INCONCLUSIVE, withheld=(
            f"{v.matches}/{v.k} keys matched and {v.rules_out().replace('it rules out', 'that would rule out')}, but "
            f"the statistical level does not clear it: P(infringing) {sv.p_infringing:.3f} > {1 - sv.threshold:.3g}"))


def statistical_verdict(result: SuspectResult, statistical):
    """The discriminator's verdict on a suspect's distances; inconclusive, with the reason, when
    its answers depart from the protocol or went through a postprocess (the discriminator was
    trained on untouched answers, so a profile measured any other way is not one it knows)."""
    from dataclasses import replace

    from attribcheck.audit.verdict import INCONCLUSIVE

    assert result.verdict is not None  # read after the audit gave its verdict
    sv = statistical.verdict(result.spec.name, result.verdict.distances)
    why = _departure_of(result) or (
        f"the discriminator was trained on untouched answers; these went through {'+'.join(result.spec.postprocess)}"
        if result.spec.postprocess else None)
    return replace(sv, verdict=INCONCLUSIVE, departure=why) if why else sv


def keyset_info(manifest: Manifest, auditor: Auditor) -> KeySetInfo:
    keyset = auditor.keyset
    return KeySetInfo(path=str(manifest.keys), content_hash=auditor.keyset_hash, strategy=keyset.strategy,
                      k=len(keyset), delta_0=keyset.delta_0, metric=keyset.distance, protocol=keyset.protocol,
                      query_seeds=list(keyset.query_seeds), public_check=auditor.public_check)


def audit_entry(manifest: Manifest, auditor: Auditor | None, results: list[SuspectResult],
                error: BaseException | None = None,
                row: Callable[[SuspectResult], SuspectReport] | None = None) -> AuditEntry:
    """One manifest's entry of the audit report. `row`: how a result becomes its row (default
    `SuspectResult.report`; the session's checks each row on its own)."""
    entry = AuditEntry(name=manifest.name, manifest=str(manifest.path))
    if auditor is not None:
        entry.keyset, entry.alpha, entry.p0_models = keyset_info(manifest, auditor), auditor.alpha, auditor.null_models
        entry.p0, entry.min_conf_attributable = auditor.p0, auditor.power().min_conf
    entry.suspects = [row(r) if row is not None else r.report(auditor) for r in results]
    if error is not None:
        entry.error = error_info(error)
    return entry


def unique_names(manifests: list[Manifest]) -> None:
    """Two manifests with one [audit] name would overwrite each other's rows in the report."""
    seen: dict[str, Path] = {}
    for m in manifests:
        if m.name in seen:
            from attribcheck.errors import InputError

            raise InputError(f"{m.name!r} is also the name of {seen[m.name]}; audit names must be unique",
                             m.path, "audit.name")
        seen[m.name] = m.path
