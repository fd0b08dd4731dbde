"""The evidence page: one self-contained HTML document (inline CSS, images as data: URIs, a
Content-Security-Policy that forbids every fetch), readable by the person who must decide
whether to accuse someone.

Per audit: what the key set is and how to read the verdicts; a summary table; per suspect
the verdict, why (`Verdict.reason()`), the figures, the statistical level where it exists,
and per key the key image beside the source's and the suspect's best-of-seeds answers, the
distance against delta_0, strongest evidence (smallest distance) first. A suspect that
could not be audited is an error row, never missing.

Everything that comes from outside (suspect names, captions, error messages, paths) goes
through `html.escape`; images are only ever base64 PNG (checked by `encode.data_uri`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

from attribcheck.audit.score import RATE_CONFIDENCE
from attribcheck.audit.verdict import Verdict
from attribcheck.evidence.encode import data_uri
from attribcheck.evidence.keyview import KeyView
from attribcheck.keys.keyset import NOT_PUBLIC_CHECKED

# No fetch of any kind: a page that tried would be a page that can leak or break offline.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

VERDICT_CLASS = {"attributed": "v-attr", "clean": "v-clean", "inconclusive": "v-inc", "error": "v-err"}
OUTCOME_TEXT = {"as-expected": "as expected", "contradiction": "contradicts the expectation",
                "inconclusive": "inconclusive: neither side supported", "error": "could not be audited"}

CSS = """
.ac{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d232b}
.ac h1{font-size:22px;margin:0 0 4px}.ac h2{font-size:19px;margin:28px 0 6px}
.ac h3{font-size:16px;margin:0;display:inline}
.ac .meta,.ac .muted{color:#5b6672;font-size:12.5px}
.ac .banner{background:#fff4d6;border:1px solid #e8c25b;padding:6px 10px;border-radius:6px;margin:8px 0}
.ac .how{background:#f4f6f8;border-radius:6px;padding:8px 12px;margin:8px 0;max-width:980px}
.ac table.sum{border-collapse:collapse;margin:8px 0 4px}
.ac table.sum th,.ac table.sum td{padding:4px 10px;border-bottom:1px solid #e3e7eb;text-align:left;white-space:nowrap}
.ac table.sum td.n{text-align:right;font-variant-numeric:tabular-nums}
.ac .badge{display:inline-block;padding:1px 8px;border-radius:10px;font-weight:600;font-size:12.5px;color:#fff}
.ac .v-attr{background:#b3261e}.ac .v-clean{background:#1e7b3a}.ac .v-inc{background:#a86a00}.ac .v-err{background:#5b6672}
.ac .o-contradiction,.ac .o-error{color:#b3261e;font-weight:600}.ac .o-inconclusive{color:#a86a00}
.ac .o-as-expected{color:#1e7b3a}
.ac article{border:1px solid #d5dbe1;border-radius:8px;padding:10px 14px;margin:14px 0;max-width:1200px}
.ac article.err{border-color:#b3261e;background:#fdf3f2}
.ac .reason{margin:6px 0;font-size:15px}
.ac dl.fig{display:flex;flex-wrap:wrap;gap:4px 18px;margin:6px 0}
.ac dl.fig div{display:flex;gap:5px}.ac dl.fig dt{color:#5b6672}.ac dl.fig dd{margin:0;font-weight:600;font-variant-numeric:tabular-nums}
.ac .stat{background:#f4f6f8;border-radius:6px;padding:6px 10px;margin:6px 0}
.ac .keys{display:flex;flex-wrap:wrap;gap:8px;margin-top:8px}
.ac .key{border:1px solid #d5dbe1;border-radius:6px;padding:6px;width:244px;box-sizing:border-box}
.ac .key.hit{border-color:#b3261e;box-shadow:inset 3px 0 0 #b3261e}
.ac .imgs{display:flex;gap:4px}
.ac figure{margin:0;text-align:center;font-size:11px;color:#5b6672}
.ac figure img,.ac figure .none{width:72px;height:72px;image-rendering:pixelated;display:block;
 border:1px solid #c9d0d6;background:#fff;box-sizing:border-box}
.ac figure .none{display:flex;align-items:center;justify-content:center;font-size:10px;background:#eef1f4;padding:3px}
.ac .cap{font-size:12.5px;margin-top:4px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.ac .dist{font-size:12.5px;font-variant-numeric:tabular-nums;display:flex;justify-content:space-between}
.ac .bar{position:relative;height:6px;background:#e3e7eb;border-radius:3px;margin-top:3px}
.ac .bar i{position:absolute;left:0;top:0;bottom:0;border-radius:3px;background:#7d8a96}
.ac .key.hit .bar i{background:#b3261e}
.ac .bar b{position:absolute;top:-3px;bottom:-3px;width:2px;background:#1d232b}
.ac table.rk{border-collapse:collapse;font-variant-numeric:tabular-nums}
.ac table.rk td,.ac table.rk th{padding:2px 10px;border-bottom:1px solid #e3e7eb;text-align:right}
"""

# Reads back in a headless browser: every image decoded, no script error, nothing the CSP blocked.
CHECK_JS = """
(function(){var d=document.documentElement,errs=0,blocked=0;
window.addEventListener('error',function(){errs++;d.setAttribute('data-js-errors',errs)},true);
document.addEventListener('securitypolicyviolation',function(){blocked++;d.setAttribute('data-csp-blocked',blocked)});
window.addEventListener('load',function(){var imgs=document.images,ok=0;
for(var i=0,n=imgs.length;i<n;i++){if(imgs[i].complete&&imgs[i].naturalWidth>0)ok++}
d.setAttribute('data-images-total',imgs.length);d.setAttribute('data-images-ok',ok);
d.setAttribute('data-js-errors',errs);d.setAttribute('data-csp-blocked',blocked);
d.setAttribute('data-loaded','1')});})();
"""


@dataclass
class Evidence:
    """What one page shows."""

    entries: list[dict]  # the audit report's entries (attribcheck.report.AuditEntry as dicts)
    keyviews: dict[str, KeyView]  # audit name -> what may be shown of its key set
    answers: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (audit, suspect) -> key id -> b64
    created: str = ""
    tool: str = ""
    runtime: str = ""
    redacted: bool = False


def _num(x, fmt: str) -> str:
    return "–" if x is None else format(x, fmt)


def _badge(verdict: str) -> str:
    return f'<span class="badge {VERDICT_CLASS.get(verdict, "v-err")}">{escape(verdict)}</span>'


def _outcome(outcome: str) -> str:
    return f'<span class="o-{escape(outcome)}">{escape(OUTCOME_TEXT.get(outcome, outcome))}</span>'


def _anchor(audit: str, suspect: str) -> str:
    return "s-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{audit}--{suspect}")


def _verdict(entry: dict, row: dict) -> Verdict:
    v = row["instance"]
    return Verdict(name=row["name"], verdict=v["verdict"], conf=v["conf"], matches=v["matches"], k=v["k"],
                   p0=v["p0"], p_value=v["p_value"], alpha=v["alpha"], delta_0=v["delta_0"],
                   strategy=(entry.get("keyset") or {}).get("strategy", ""), innocent_level=v["innocent_level"],
                   departure=v.get("departure"), withheld=v.get("withheld"), **{f: v[f] for f in ("rate_bound", "r_min", "source_rate")
                                                    if v.get(f) is not None})


def _statistical_reason(entry: dict, row: dict) -> str:
    from attribcheck.statistical.verdict import StatisticalVerdict

    s = row["statistical"]
    sv = StatisticalVerdict(row["name"], s["verdict"], s["p_infringing"], s["threshold"], s["cv_accuracy"],
                            s["min_cv_accuracy"], s["shadows"], row["instance"]["k"] if row.get("instance") else 0,
                            (entry.get("keyset") or {}).get("strategy", ""), s.get("departure"),
                            s.get("missed_infringing", 0), s.get("missed_innocent", 0))
    return sv.reason()


def headline(v: dict) -> str:
    """The verdict in plain words, for the person who decides."""
    m, k, p, alpha = v["matches"], v["k"], v["p_value"], v["alpha"]
    if v.get("departure"):
        return f"No verdict is read from these answers: {v['departure']}."
    if v["verdict"] == "attributed":
        return (f"Reproduces {m} of {k} keys. An innocent model would reproduce that many by chance with "
                f"probability {p:.2g}, below the accepted risk alpha = {alpha:g}.")
    bound, r_min = v.get("rate_bound"), v.get("r_min")
    if v["innocent_level"] is None:
        return (f"Reproduces {m} of {k} keys, but no innocent model was measured on these keys: nothing shows "
                f"what an innocent model reproduces, so neither an accusation nor a clearance is supported.")
    innocent = round(v["innocent_level"] * k)
    rate = (f"an infringer inheriting {r_min:.0%} of the keys{_of_source(v)}" if r_min is not None
            else "an infringer")
    if v["verdict"] == "clean":
        return (f"Reproduces {m} of {k} keys: no more than held-out innocent models do (up to {innocent} of {k}). "
                f"This rules out {rate} ({RATE_CONFIDENCE:.0%} upper bound on its rate: {_num(bound, '.3f')}).")
    if m / k <= v["innocent_level"]:
        return (f"Reproduces {m} of {k} keys, no more than held-out innocent models do (up to {innocent} of {k}), "
                f"but {k} keys cannot rule out {rate} ({RATE_CONFIDENCE:.0%} upper bound on its rate: {_num(bound, '.3f')}). "
                f"Neither an accusation nor a clearance is supported.")
    return (f"Reproduces {m} of {k} keys: more than held-out innocent models do (up to {innocent} of {k}), but "
            f"not enough to rule out chance (probability {p:.2g}, alpha = {alpha:g}). No accusation is supported.")


def _of_source(v: dict) -> str:
    s = v.get("source_rate")
    return "" if s is None or s >= 1 else f" the source reproduces ({round(s * v['k'])} of {v['k']})"


def _figures(pairs) -> str:
    return '<dl class="fig">' + "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in pairs) + "</dl>"


def _img(b64: str | None, label: str, missing: str, title: str = "") -> str:
    """A captioned image, or a grey box saying why there is none."""
    if b64 is None:
        return f'<figure><div class="none">{escape(missing)}</div>{escape(label)}</figure>'
    tip = f' title="{escape(title)}"' if title else ""
    return f'<figure><img src="{data_uri(b64)}" alt="{escape(label)}"{tip}>{escape(label)}</figure>'


def _bar(distance: float, delta_0: float) -> str:
    """The distance on a scale of 0 to 3 x delta_0, with a tick at delta_0."""
    top = 3 * delta_0
    width = min(distance, top) / top * 100
    return f'<div class="bar"><i style="width:{width:.1f}%"></i><b style="left:{100 / 3:.1f}%"></b></div>'


def _key_cards(entry: dict, row: dict, view: KeyView, answers: dict, source_answers: dict | None) -> str:
    v = row["instance"]
    d0 = v["delta_0"]
    keys = sorted(row.get("keys", []), key=lambda k: (k["distance"], k["id"]))  # strongest evidence first
    is_source = row.get("role") == "source"
    if view.redacted:
        rows = "".join(
            f'<tr><td>{escape(view.label(k["id"]))}</td><td>{k["distance"]:.3f}</td>'
            f'<td>{"&lt;" if k["matched"] else "&ge;"} {d0:g}</td><td>{"match" if k["matched"] else "miss"}</td></tr>'
            for k in keys)
        return ('<table class="rk"><tr><th>key</th><th>distance</th><th>delta_0</th><th></th></tr>'
                f"{rows}</table>")
    cards = []
    for k in keys:
        kid = k["id"]
        seed = k.get("best_seed")
        asked = k.get("seeds_queried")  # early stopping: the seeds asked; [] never asked
        if asked == []:
            cards.append(f'<div class="key"><div class="cap">{escape(view.captions.get(kid, ""))}</div>'
                         f'<div class="dist"><span>not asked: the verdict was final without it</span>'
                         f'<b>early stop</b></div></div>')
            continue
        tip = f"best of the query seeds: seed {seed}" if seed is not None else ""
        if asked:
            tip += f" (seeds asked before stopping early: {', '.join(map(str, asked))})"
        figs = [_img(view.images.get(kid), "key", "key image unavailable", "the key image")]
        if not is_source:
            src = (source_answers or {}).get(kid)
            figs.append(_img(src, "source", "source not audited in this run", "the source model's best answer"))
        who = "source" if is_source else "suspect"
        figs.append(_img(answers.get(kid), who + (f" s{seed}" if seed is not None else ""), "no image kept", tip))
        cap = view.captions.get(kid, "")
        sign = "&lt;" if k["matched"] else "&ge;"
        what = "MATCH" if k["matched"] else "miss"
        cards.append(
            f'<div class="key{" hit" if k["matched"] else ""}"><div class="imgs">{"".join(figs)}</div>'
            f'<div class="cap" title="{escape(cap)} ({escape(view.label(kid))})">{escape(cap)}</div>'
            f'<div class="dist"><span>distance {k["distance"]:.3f} {sign} δ₀ {d0:g}</span><b>{what}</b></div>'
            f'{_bar(k["distance"], d0)}</div>')
    return f'<div class="keys">{"".join(cards)}</div>'


def suspect_html(entry: dict, row: dict, view: KeyView, answers: dict | None = None,
                 source_answers: dict | None = None) -> str:
    """One suspect's block: verdict, reason, figures, statistical level, keys."""
    audit, name = entry["name"], row["name"]
    title = "source self-check" if row.get("role") == "source" else f"expected {row.get('expect', '?')}"
    head = (f'<article id="{_anchor(audit, name)}"{" class=err" if row.get("instance") is None else ""}>'
            f'<h3>{escape(name)}</h3> ')
    if row.get("instance") is None:
        err = row.get("error") or {"kind": "error", "message": "no verdict recorded"}
        return (head + f'{_badge("error")} <span class="muted">{escape(title)}</span>'
                f'<p class="reason">Could not be audited ({escape(err["kind"])} error): {escape(err["message"])}</p>'
                f'<p class="muted">kind {escape(str(row.get("kind", "")))}; no verdict is read from a suspect '
                f'whose files or answers cannot be used.</p></article>')
    v = row["instance"]
    verdict = _verdict(entry, row)
    parts = [head, _badge(v["verdict"]), f' <span class="muted">{escape(title)}: </span>', _outcome(row["outcome"]),
             f'<p class="reason">{escape(headline(v))}</p>',
             f'<div class="muted">rule: {escape(verdict.reason())}.</div>',
             _figures([("conf", f"{v['conf']:.3f}"), ("m/K", f"{v['matches']}/{v['k']}"),
                       ("p-value", _num(v["p_value"], ".3g")), ("p0", f"{v['p0']:.3f}"), ("alpha", f"{v['alpha']:g}"),
                       ("delta_0", f"{v['delta_0']:g}"), ("innocent level", _num(v["innocent_level"], ".3f")),
                       (f"rate bound ({RATE_CONFIDENCE:.0%})", _num(v.get("rate_bound"), ".3f")), ("r_min", _num(v.get("r_min"), "g"))]
                      + ([("queries", f"{v.get('queries')} of {v.get('queries_full')} (stopped early; same verdict)")]
                         if v.get("early_stop") else []))]
    s = row.get("statistical")
    if s is not None:
        guard = "passed" if s["cv_accuracy"] >= s["min_cv_accuracy"] else "failed: no statistical verdict"
        parts.append(
            f'<div class="stat"><b>Statistical level</b> (shadow-model discriminator) {_badge(s["verdict"])} '
            f'<span class="muted">{escape(_statistical_reason(entry, row))}.</span>'
            + _figures([("P(infringing)", f"{s['p_infringing']:.3f}"), ("threshold", f"{s['threshold']:g}"),
                        ("guard", f"leave-one-out {s['cv_accuracy']:.2f} vs {s['min_cv_accuracy']:g} ({guard})"),
                        ("shadows", str(s["shadows"]))]) + "</div>")
    fp = row.get("fingerprint")
    parts.append(f'<div class="muted">kind {escape(str(row.get("kind", "")))}'
                 + (f"; weights sha256 {escape(fp[:16])}…" if fp else "") + "</div>")
    parts.append(_key_cards(entry, row, view, answers or {}, source_answers))
    parts.append("</article>")
    return "".join(parts)


def _how_to_read(entry: dict, view: KeyView) -> str:
    ks = entry.get("keyset") or {}
    seeds = len(ks.get("query_seeds", [])) or "the"
    metric = (ks.get("metric") or {}).get("name", "distance")
    d0 = ks.get("delta_0")
    return (f'<div class="how">Each suspect was asked for the caption of every key with {seeds} query seeds; '
            f"its best answer per key is shown beside the key image and the source model's best answer. "
            f"A key is <b>matched</b> when that answer lies within δ₀ = {_num(d0, 'g')} ({escape(str(metric))}) of "
            f"the key image. <b>attributed</b>: the suspect matches more keys than an innocent model would by "
            f"chance (binomial test against p0, the innocent models' match rate, at level alpha). "
            f"<b>clean</b>: it matches no more keys than held-out innocent models do, and so few that an "
            f"infringer inheriting r_min of the keys is ruled out (a {RATE_CONFIDENCE:.0%} upper bound on its rate "
            f"lies below r_min). "
            f"<b>inconclusive</b>: neither. Suspects (by p-value) and keys (by distance) are sorted strongest "
            f"evidence first.</div>")


def ordered(rows: list[dict]) -> list[dict]:
    """Suspects strongest evidence first: those that could not be audited (they need action),
    then by p-value, smallest first; the source's self-check last."""
    def rank(r):
        v = r.get("instance")
        return (r.get("role") == "source", v is not None, v["p_value"] if v else 0.0, r["name"])

    return sorted(rows, key=rank)


def _summary(entry: dict) -> str:
    rows = []
    for r in ordered(entry.get("suspects", [])):
        v, s = r.get("instance"), r.get("statistical")
        link = f'<a href="#{_anchor(entry["name"], r["name"])}">{escape(r["name"])}</a>'
        expect = "self-check" if r.get("role") == "source" else escape(r.get("expect", ""))
        if v is None:
            rows.append(f"<tr><td>{link}</td><td>{expect}</td><td>{_badge('error')}</td><td>{_outcome('error')}</td>"
                        "<td></td><td></td><td></td><td></td></tr>")
            continue
        rows.append(f"<tr><td>{link}</td><td>{expect}</td><td>{_badge(v['verdict'])}</td><td>{_outcome(r['outcome'])}</td>"
                    f'<td class="n">{v["conf"]:.3f}</td><td class="n">{v["matches"]}/{v["k"]}</td>'
                    f'<td class="n">{v["p_value"]:.3g}</td>'
                    f'<td class="n">{_num(s and s["p_infringing"], ".3f")}</td></tr>')
    return ('<table class="sum"><tr><th>suspect</th><th>expected</th><th>verdict</th><th>outcome</th><th>conf</th>'
            f'<th>m/K</th><th>p-value</th><th>P(infringing)</th></tr>{"".join(rows)}</table>')


def _audit_html(ev: Evidence, entry: dict) -> str:
    name = entry["name"]
    view = ev.keyviews.get(name) or KeyView.missing(ev.redacted)
    ks = entry.get("keyset") or {}
    out = [f'<h2>Audit {escape(name)}</h2><div class="meta">manifest {escape(entry.get("manifest", ""))}']
    if ks:
        out.append(f"; key set: {escape(str(ks.get('strategy', '')))}, K = {ks.get('k')}, "
                   f"content hash {escape(str(ks.get('content_hash', ''))[:16])}…; alpha {_num(entry.get('alpha'), 'g')}")
        if ks.get("public_check"):  # what an accusation rests on besides the keys
            out.append(f"; public data: {escape(ks['public_check'])}")
    out.append("</div>")
    if ks and not ks.get("public_check"):
        out.append(f'<p class="reason">No accusation: {escape(NOT_PUBLIC_CHECKED)}.</p>')
    if entry.get("error"):
        e = entry["error"]
        out.append(f'<article class="err"><p class="reason">This audit could not run ({escape(e["kind"])} error): '
                   f"{escape(e['message'])}</p></article>")
    out.append(_how_to_read(entry, view))
    out.append(_summary(entry))
    rows = ordered(entry.get("suspects", []))
    source = ev.answers.get((name, "source")) if view.show_answers() else None
    for r in rows:
        answers = ev.answers.get((name, r["name"]), {}) if view.show_answers() else {}
        out.append(suspect_html(entry, r, view, answers, source))
    return "".join(out)


def render(ev: Evidence) -> str:
    title = "attribcheck evidence: " + ", ".join(e["name"] for e in ev.entries)
    banner = ('<div class="banner"><b>Redacted</b> for sharing: no key captions, key images or model answers '
              "are shown (a matched answer is a copy of its key). The key set's content hash identifies the keys; "
              "the owner's full report can be checked against it.</div>") if ev.redacted else ""
    body = "".join(_audit_html(ev, e) for e in ev.entries) or "<p>No audit ran.</p>"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)}</title><script>{CHECK_JS}</script><style>{CSS}</style></head>"
            f'<body class="ac"><h1>Training-data attribution: evidence</h1>'
            f'<div class="meta">{escape(ev.created)} · {escape(ev.tool)} · {escape(ev.runtime)}</div>'
            f"{banner}{body}</body></html>\n")
