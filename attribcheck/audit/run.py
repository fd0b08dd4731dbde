"""Run a manifest's audit: one Auditor, every suspect."""
from __future__ import annotations

from attribcheck.audit.auditor import Auditor
from attribcheck.audit.verdict import Verdict
from attribcheck.keys.keyset import KeySet
from attribcheck.manifest import Manifest, SuspectSpec, open_generator


def auditor_for(manifest: Manifest) -> Auditor:
    keyset = KeySet.load(manifest.keys)
    return Auditor(keyset, alpha=manifest.alpha, delta_0=manifest.delta_0)


def audit_suspect(auditor: Auditor, spec: SuspectSpec) -> Verdict:
    return auditor.audit(open_generator(spec, auditor.keyset.sampler), spec.name)


def audit_manifest(manifest: Manifest) -> list[tuple[SuspectSpec, Verdict]]:
    auditor = auditor_for(manifest)
    return [(spec, audit_suspect(auditor, spec)) for spec in manifest.suspects]
