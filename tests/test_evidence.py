"""The evidence report: `attribcheck audit --report DIR` and `pytest --attrib-report DIR`
write one self-contained page; redaction leaves the keys out; untrusted strings are escaped;
the page opens in a real headless Chromium with every image decoded."""
from __future__ import annotations

import json
import re
from html import escape
from pathlib import Path

import pytest

from attribcheck import images
from attribcheck.cli import EXIT_INPUT, EXIT_OK, main
from attribcheck.evidence.encode import b64_png
from attribcheck.evidence.keyview import KeyView
from attribcheck.evidence.page import Evidence, render
from attribcheck.keys.keyset import KeySet
from attribcheck.models.folder_generator import FolderGenerator
from tests import browser
from tests.folder_world import HONEST, manifest_text

pytest_plugins = ["pytester"]
SUITE = (Path(__file__).resolve().parents[1] / "suites" / "test_instance.py").read_text()


def audit(tmp_path, world, suspects, *args) -> tuple[int, str]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", suspects))
    out = tmp_path / "report"
    rc = main(["audit", "--manifest", str(m), "--report", str(out), "-q", *args])
    return rc, (out / "index.html").read_text()


def articles(page: str) -> dict[str, str]:
    """suspect name -> its <article> block."""
    return {m.group(2): m.group(0) for m in re.finditer(r'<article id="s-digits--([^"]+)"[^>]*><h3>([^<]+)</h3>.*?</article>',
                                                       page, re.S)}


@pytest.fixture
def broken(tmp_path):
    b = tmp_path / "broken"
    b.mkdir()
    (b / "queries.jsonl").write_text('{"prompt": "x", "seed": 0, "file": "/etc/passwd"}\n')
    return b


def test_cli_report_shows_each_suspect_its_keys_and_the_answers(tmp_path, world, broken):
    rc, page = audit(tmp_path, {**world, "broken": broken}, {**HONEST, "broken": "innocent"},
                     "--json", str(tmp_path / "r.json"))
    assert rc == EXIT_INPUT  # the broken suspect is an error row; the page is written all the same
    ks = KeySet.load(world["keys"])
    blocks = articles(page)
    assert set(blocks) == {"source", "infringer", "innocent", "partial", "broken"}
    assert "Could not be audited (integrity error)" in blocks["broken"] and "<img" not in blocks["broken"]
    # the infringer: all 20 keys matched, each card with the key, the source's and its own answer
    inf = blocks["infringer"]
    assert 'badge v-attr">attributed' in inf and "it reproduces more keys than an innocent model" in inf
    for label in ("conf</dt><dd>1.000", "m/K</dt><dd>20/20", "p0</dt>", "alpha</dt><dd>0.01", "delta_0</dt><dd>0.15",
                  "innocent level</dt>"):
        assert label in inf, label
    assert inf.count('<div class="key hit">') == 20 and inf.count("<img") == 60
    assert all(b64_png(k.image) in inf for k in ks.keys)  # key images, embedded
    assert "source not audited" not in inf
    # the partial copier: 4 matched keys first (strongest evidence first), then misses by distance
    part = blocks["partial"]
    d = [float(x) for x in re.findall(r"distance ([0-9.]+) ", part)]
    assert len(d) == 20 and d == sorted(d) and sum(x < 0.15 for x in d) == 4
    assert part.index("MATCH") < part.index("miss")
    assert "inconclusive" in part and 'class="o-inconclusive"' in part
    # each card shows the answer of the seed the audit found best, as the suspect gave it
    rows = {r["name"]: r for r in json.loads((tmp_path / "r.json").read_text())["audits"][0]["suspects"]}
    gen = FolderGenerator(world["partial"])
    for key, row in zip(ks.keys, rows["partial"]["keys"]):
        [answer] = gen.generate([key.caption], [row["best_seed"]])
        shown = b64_png(images.composite(answer, images.border_colour(key.image)))
        [card] = [c for c in part.split('<div class="key') if f"({key.id})\"" in c]
        assert shown in card and f"suspect s{row['best_seed']}" in card
    # the innocent's answers are other digits: its embedded answers are not the key images
    inn = blocks["innocent"]
    assert 'badge v-clean">clean' in inn and "MATCH" not in inn
    # nothing is fetched: no URL but data: ones, and a CSP that forbids every fetch
    assert not re.search(r'src="(?!data:image/png;base64,)', page) and "default-src 'none'" in page


def test_redacted_page_leaves_out_captions_key_images_and_answers(tmp_path, world):
    ks = KeySet.load(world["keys"])
    _, full = audit(tmp_path / "full", world, HONEST)
    rc, red = audit(tmp_path / "red", world, HONEST, "--redact")
    assert rc == EXIT_OK
    for k in ks.keys:
        # present in the full page (so this test can fail), absent from the redacted one
        assert k.caption in full and b64_png(k.image) in full
        assert k.caption not in red and escape(k.caption) not in red and b64_png(k.image) not in red
        assert f"({k.id})" in full and k.id not in red
    assert "<img" not in red and "data:image" not in red
    assert "Redacted" in red and ks.content_hash()[:16] in red  # commits to the key set by its hash
    # the figures and per-key distances stay
    blocks = articles(red)
    assert "m/K</dt><dd>20/20" in blocks["infringer"] and blocks["partial"].count("match</td>") == 4


def test_untrusted_strings_are_escaped():
    evil = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    row = {"name": evil, "role": "suspect", "expect": "innocent", "kind": evil, "fingerprint": None,
           "outcome": "as-expected",
           "instance": {"verdict": "clean", "conf": 0.0, "matches": 0, "k": 5, "p_value": 1.0, "p0": 0.1,
                        "alpha": 0.01, "delta_0": 0.15, "innocent_level": 0.0},
           "keys": [{"id": "k0", "best_seed": 0, "distance": 0.3, "matched": False}]}
    err = {"name": "x", "role": "suspect", "expect": "innocent", "kind": "folder", "fingerprint": None,
           "outcome": "error", "error": {"kind": "input", "message": evil}}
    entry = {"name": evil, "manifest": evil, "suspects": [row, err], "error": {"kind": "input", "message": evil}}
    view = KeyView(False, "0" * 64, ["k0"], {"k0": evil}, {})
    page = render(Evidence([entry], {evil: view}, {}, created=evil, tool=evil, runtime=evil))
    assert "<script>alert" not in page and "<img src=x" not in page and "onerror=alert(2)>" not in page
    assert escape(evil) in page
    assert page.count("<script>") == 1  # only the page's own check


def test_page_opens_in_headless_chromium(tmp_path, world):
    if browser.executable() is None:
        pytest.fail("no Chromium: apt-get install -y chromium (.ci/run installs it)")
    _, page = audit(tmp_path, world, HONEST)
    index = tmp_path / "report/index.html"
    state = browser.load(index)
    n = page.count("<img")
    assert n == 3 * 20 * 3 + 2 * 20  # 3 suspects x 20 keys x (key, source, suspect) + the source's own
    assert state == {"data-images-total": str(n), "data-images-ok": str(n), "data-js-errors": "0",
                     "data-csp-blocked": "0", "data-loaded": "1"}
    # the check can fail: a corrupt image does not decode, an outside URL is blocked
    b64 = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    bad = tmp_path / "bad.html"
    bad.write_text(page.replace(b64, "iVBORw0KGgoAAAAAAAAA", 1).replace("</body>", '<img src="http://127.0.0.1:9/x.png"></body>'))
    state = browser.load(bad)
    assert state["data-images-total"] == str(n + 1) and state["data-images-ok"] == str(n - 1)
    assert int(state["data-csp-blocked"]) >= 1
    shot = browser.screenshot(index, tmp_path / "page.png", 1000, 800)
    assert shot.stat().st_size > 10_000  # a rendered page, not a blank one


@pytest.fixture
def suite(pytester, world):
    pytester.makepyfile(test_instance=SUITE)
    pytester.path.joinpath("digits.toml").write_text(manifest_text(world, "digits", HONEST))
    return pytester


def test_pytest_report_under_xdist_and_junit_without_images(suite, world):
    pytest.importorskip("xdist")
    res = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--attrib-report", "rep",
                                     "--junitxml", "j.xml")
    res.assert_outcomes(passed=4)
    assert "attribcheck evidence report:" in res.stdout.str()
    page = (suite.path / "rep/index.html").read_text()
    blocks = articles(page)
    assert set(blocks) == {"source", "infringer", "innocent", "partial"}
    ks = KeySet.load(world["keys"])
    # every suspect's answers came back from the workers; the source's too
    assert blocks["infringer"].count("<img") == 60 and "source not audited" not in page
    assert all(b64_png(k.image) in page for k in ks.keys)
    junit = (suite.path / "j.xml").read_text()
    assert "attrib_report" in junit and "attrib_evidence" not in junit and "base64" not in junit


def test_pytest_redacted_report(suite, world):
    res = suite.runpytest("-p", "no:cacheprovider", "--attrib-report", "rep", "--attrib-report-redact")
    res.assert_outcomes(passed=4)
    page = (suite.path / "rep/index.html").read_text()
    ks = KeySet.load(world["keys"])
    assert "<img" not in page and not any(k.caption in page for k in ks.keys)
    assert set(articles(page)) == {"source", "infringer", "innocent", "partial"}


def test_pytest_html_extras_carry_the_row(suite):
    pytest.importorskip("pytest_html")
    res = suite.runpytest("-p", "no:cacheprovider", "--html", "h.html", "--self-contained-html")
    res.assert_outcomes(passed=4)
    html = (suite.path / "h.html").read_text()
    blob = json.loads(__import__("html").unescape(re.search(r'data-jsonblob="([^"]*)"', html).group(1)))
    extras = {tid: [x for r in runs for x in r.get("extras", [])] for tid, runs in blob["tests"].items()}
    inf = next(v for k, v in extras.items() if "digits::infringer" in k)
    [content] = [x["content"] for x in inf if x.get("format_type") == "html"]
    assert "infringer" in content and "attributed" in content and "MATCH" in content
    # key and suspect images; the source's where its self-check already ran (it runs after this test)
    assert content.count("<img") + content.count("source not audited in this run") == 60


def test_early_stopped_audit_says_what_was_not_asked(tmp_path, world):
    rc, page = audit(tmp_path, world, HONEST, "--early-stop")
    assert rc == EXIT_OK
    blocks = articles(page)
    assert "(stopped early; same verdict)" in blocks["infringer"]
    # every key still has a card: asked (with its best answer) or marked as not asked
    assert len(re.findall(r'<div class="key( hit)?">', blocks["infringer"])) == 20
    d = [float(x) for x in re.findall(r"distance ([0-9.]+) ", blocks["innocent"])]
    assert d == sorted(d)


def test_small_images_embed_exactly_large_ones_shrink():
    import base64
    import io

    import numpy as np
    from PIL import Image

    from attribcheck.evidence.encode import data_uri

    rng = np.random.default_rng(0)
    small = rng.random((16, 16, 3)).astype(np.float32)
    uri = data_uri(b64_png(small))
    assert uri.startswith("data:image/png;base64,")
    back = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))).convert("RGB"))
    assert np.array_equal(back, np.round(small * 255).astype(np.uint8))  # pixel for pixel
    big = np.clip(rng.normal(0.5, 0.1, (512, 512, 3)), 0, 1).astype(np.float32)
    uri = data_uri(b64_png(big))
    assert uri.startswith("data:image/jpeg;base64,") and len(uri) < 60_000
    assert Image.open(io.BytesIO(base64.b64decode(uri.split(",")[1]))).size == (192, 192)
    with pytest.raises(ValueError):
        data_uri('AAAA" onerror="x')


def test_the_headline_of_answers_that_departed_says_no_verdict_was_read():
    from attribcheck.evidence.page import headline

    v = {"verdict": "inconclusive", "matches": 5, "k": 39, "p_value": 0.009, "alpha": 0.01, "innocent_level": 0.0,
         "departure": "the answers are blurrier than the protocol's (sharpness 0.15 of the keys', under 0.6)"}
    text = headline(v)
    assert text.startswith("No verdict is read from these answers") and "sharpness 0.15" in text
    assert "Reproduces" not in headline(v) and "Reproduces 5 of 39" in headline({**v, "departure": None})
