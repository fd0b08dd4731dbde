"""What a page may show of a key set: everything (the owner's own copy), or, redacted for
sharing outside the owner's company, nothing an infringer could use to fine-tune the keys
away.

Redacted means: no caption, no key image, no key id (an id may be derived from the data), and
no answer image either, the source's or a suspect's: a matched answer lies within delta_0 of
its key, so it *is* the key at the metric's resolution. What stays is what
`KeySet.redacted()` keeps (each key's position and the source's distance) and the key set's
content hash, which commits the page to one key set: the full report, disclosed later under
agreement, can be checked against it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from attribcheck.evidence.encode import b64_png


@dataclass
class KeyView:
    redacted: bool
    content_hash: str = ""
    order: list[str] = field(default_factory=list)  # key ids in key-set order
    captions: dict[str, str] = field(default_factory=dict)  # key id -> caption; empty when redacted
    images: dict[str, str] = field(default_factory=dict)  # key id -> base64 PNG; empty when redacted
    r_source: list[float] = field(default_factory=list)  # the source's distance at selection, per position

    @classmethod
    def of(cls, keyset, redact: bool) -> "KeyView":
        ids = [k.id for k in keyset.keys]
        if redact:
            shown = keyset.redacted()
            return cls(True, shown["content_hash"], ids, r_source=[k["r_source"] for k in shown["keys"]])
        return cls(False, keyset.content_hash(), ids, {k.id: k.caption for k in keyset.keys},
                   {k.id: b64_png(k.image) for k in keyset.keys}, [k.r_source for k in keyset.keys])

    @classmethod
    def missing(cls, redact: bool) -> "KeyView":
        """The key set could not be read: rows show what the report row holds, no images."""
        return cls(redact)

    def label(self, key_id: str) -> str:
        """How the page names a key: its id, or under redaction its position in the key set."""
        if self.redacted:
            return f"key {self.order.index(key_id) + 1}" if key_id in self.order else "key"
        return key_id

    def show_answers(self) -> bool:
        return not self.redacted
