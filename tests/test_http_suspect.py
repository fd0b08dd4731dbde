"""The `http` suspect kind against a real local HTTP server (http.server in a thread) that
replays a folder suspect's images: the same verdict as the folder suspect, and hostile
answers refused."""
from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from attribcheck.errors import DegenerateOutputError, InputError
from attribcheck.models.folder_generator import FolderGenerator
from attribcheck.models.http_generator import HttpGenerator, HttpOptions, RateLimiter, fill


class Replay(BaseHTTPRequestHandler):
    folders: dict[str, FolderGenerator] = {}
    hits: dict[str, int] = {}

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str, extra: dict | None = None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _image_bytes(self, suspect: str, prompt: str, seed: int) -> bytes:
        return self.folders[suspect].file_for(prompt, seed).read_bytes()

    def do_POST(self):
        route, _, suspect = self.path.strip("/").partition("/")
        self.hits[route] = self.hits.get(route, 0) + 1
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt, seed = query["input"]["text"], query["seed"]
        if route == "json":
            img = base64.b64encode(self._image_bytes(suspect, prompt, seed)).decode()
            return self._send(200, json.dumps({"data": [{"b64": img}]}).encode(), "application/json")
        if route == "bytes":
            return self._send(200, self._image_bytes(suspect, prompt, seed), "image/png")
        if route == "wrong-type":
            return self._send(200, self._image_bytes(suspect, prompt, seed), "text/html")
        if route == "huge":
            return self._send(200, b"\x89PNG" + b"0" * 200_000, "image/png")
        if route == "not-image":
            return self._send(200, b"\x89PNG\r\n\x1a\n this is not a picture", "image/png")
        if route == "bad-json":
            return self._send(200, b'{"data": [{"b64": "@@@not base64@@@"}]}', "application/json")
        if route == "redirect":
            return self._send(302, b"", "text/plain", {"Location": "http://example.invalid/elsewhere"})
        if route == "flaky":  # fails twice, then answers
            if self.hits[route] <= 2:
                return self._send(503, b"busy", "text/plain")
            return self._send(200, self._image_bytes(suspect, prompt, seed), "image/png")
        if route == "slow":
            time.sleep(1.0)
            return self._send(200, self._image_bytes(suspect, prompt, seed), "image/png")
        return self._send(404, b"no", "text/plain")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that timed out hangs up: expected
        pass


@pytest.fixture
def server(world):
    Replay.folders = {name: FolderGenerator(world[name]) for name in ("infringer", "innocent", "source")}
    Replay.hits = {}
    httpd = Server(("127.0.0.1", 0), Replay)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


BODY = {"input": {"text": "{prompt}"}, "seed": "{seed}", "steps": 50}


def options(url: str, **kw) -> HttpOptions:
    return HttpOptions(url=url, body=BODY, **{"image_field": "data.0.b64", "retries": 0, **kw})


def manifest(world, url: str, tmp_path: Path) -> Path:
    text = f"""[audit]
name = "api"
source = '{world['source'].as_posix()}'
source_kind = "folder"
keys = '{world['keys'].as_posix()}'
r_min = 0.15  # 20 keys (tests/folder_world.py)

[[suspects]]
name = "infringer-folder"
path = '{world['infringer'].as_posix()}'
kind = "folder"
expect = "infringing"

[[suspects]]
name = "infringer-api"
kind = "http"
expect = "infringing"
[suspects.options]
url = "{url}/json/infringer"
body = {{ input = {{ text = "{{prompt}}" }}, seed = "{{seed}}", steps = 50 }}
response = "json-base64"
image_field = "data.0.b64"
evidence = "evidence"

[[suspects]]
name = "innocent-folder"
path = '{world['innocent'].as_posix()}'
kind = "folder"
expect = "innocent"

[[suspects]]
name = "innocent-api"
kind = "http"
expect = "innocent"
[suspects.options]
url = "{url}/bytes/innocent"
body = {{ input = {{ text = "{{prompt}}" }}, seed = "{{seed}}" }}
response = "bytes"
evidence = "evidence"
rate_per_s = 1000
"""
    path = tmp_path / "api.toml"
    path.write_text(text)
    return path


def test_http_suspect_gets_the_folder_suspects_verdict_and_is_cached(world, server, tmp_path):
    from attribcheck.cli import main

    m = manifest(world, server, tmp_path)
    args = ["audit", "--manifest", str(m), "--cache-dir", str(tmp_path / "cache"), "-q"]
    assert main(args + ["--json", str(tmp_path / "r1.json")]) == 0
    rows = {s["name"]: s for s in json.loads((tmp_path / "r1.json").read_text())["audits"][0]["suspects"]}
    for who in ("infringer", "innocent"):
        folder, api = rows[f"{who}-folder"], rows[f"{who}-api"]
        assert api["kind"] == "http" and api["outcome"] == "as-expected"
        assert api["instance"]["verdict"] == folder["instance"]["verdict"]
        assert [k["distance"] for k in api["keys"]] == [k["distance"] for k in folder["keys"]]
    assert rows["infringer-api"]["instance"]["verdict"] == "attributed"
    n = len(rows["infringer-api"]["keys"]) * 2  # K keys x 2 query seeds
    assert Replay.hits == {"json": n, "bytes": n}
    # every response saved as evidence: what was asked, the status, the body and its digest
    saved = sorted((tmp_path / "evidence" / "infringer-api").glob("*.json"))
    assert len(saved) == n
    record = json.loads(saved[0].read_text())
    assert record["status"] == 200 and record["seed"] in (0, 1) and "text" in json.loads(record["request_body"])["input"]
    body = saved[0].with_suffix(".body").read_bytes()
    import hashlib

    assert hashlib.sha256(body).hexdigest() == record["body_sha256"]
    # a re-run takes every answer from the generation cache, but an accusation never rests on
    # cached answers alone: the attributed API is asked again for each matched key's best seed
    assert main(args + ["--json", str(tmp_path / "r2.json")]) == 0
    matched = sum(k["matched"] for k in rows["infringer-api"]["keys"])
    assert Replay.hits == {"json": n + matched, "bytes": n}
    rows2 = {s["name"]: s for s in json.loads((tmp_path / "r2.json").read_text())["audits"][0]["suspects"]}
    assert rows2["infringer-api"]["keys"] == rows["infringer-api"]["keys"]
    # early stopping asks the API key by key and stops once the verdict is fixed: the infringing
    # API matches at its first seed, so it is attributed before every key was asked even once
    Replay.hits.clear()
    assert main(args + ["--no-cache", "--early-stop", "--json", str(tmp_path / "r3.json")]) == 0
    rows3 = {s["name"]: s for s in json.loads((tmp_path / "r3.json").read_text())["audits"][0]["suspects"]}
    early = rows3["infringer-api"]
    assert early["instance"]["verdict"] == "attributed" and early["instance"]["queries"] == Replay.hits["json"]
    assert Replay.hits["json"] < n // 2
    never = [k for k in early["keys"] if k["seeds_queried"] == []]
    assert len(never) == n // 2 - Replay.hits["json"] and all(k["best_seed"] is None for k in never)
    assert rows3["innocent-api"]["instance"]["verdict"] == "clean"  # clean needs every answer
    assert Replay.hits["bytes"] == n


def one_query(world):
    fg = FolderGenerator(world["infringer"])
    return next(iter(fg._files))


@pytest.mark.parametrize("route, error, needle", [
    ("wrong-type", DegenerateOutputError, "content type 'text/html'"),
    ("huge", DegenerateOutputError, "max_bytes"),
    ("not-image", DegenerateOutputError, "not a decodable image"),
    ("bad-json", DegenerateOutputError, "no base64 image"),
    ("redirect", InputError, "redirects are not followed"),
    ("nowhere", InputError, "HTTP 404"),
])
def test_hostile_answers_are_refused(world, server, route, error, needle):
    response = "json-base64" if route == "bad-json" else "bytes"
    gen = HttpGenerator(options(f"{server}/{route}/infringer", response=response, max_bytes=100_000), "api")
    prompt, seed = one_query(world)
    with pytest.raises(error, match=needle) as e:
        gen.generate([prompt], [seed])
    assert "\n" not in str(e.value)  # one line


def test_retries_with_backoff_then_answers(world, server):
    slept = []
    gen = HttpGenerator(options(f"{server}/flaky/infringer", response="bytes", retries=3, backoff_s=0.5), "api",
                        sleep=slept.append)
    prompt, seed = one_query(world)
    img = gen.generate([prompt], [seed])[0]
    assert img.ndim == 3 and gen.requests == 3 and slept == [0.5, 1.0]  # exponential backoff


def test_timeouts_become_an_input_error_after_the_retries(world, server):
    slept = []
    gen = HttpGenerator(options(f"{server}/slow/infringer", response="bytes", timeout_s=0.2, retries=1,
                                backoff_s=0.1), "api", sleep=slept.append)
    prompt, seed = one_query(world)
    with pytest.raises(InputError, match="no answer after 2 attempts"):
        gen.generate([prompt], [seed])
    assert gen.requests == 2


def test_an_unreachable_suspect_is_an_error_row_not_a_verdict(world, tmp_path):
    from attribcheck.audit.run import audit_suspect, auditor_for
    from attribcheck.manifest import Manifest

    text = manifest(world, "http://127.0.0.1:9", tmp_path).read_text()  # the discard port: refused
    (tmp_path / "down.toml").write_text(text.replace("rate_per_s = 1000", "rate_per_s = 1000\nretries = 0"))
    m = Manifest.load(tmp_path / "down.toml")
    spec = next(s for s in m.suspects if s.name == "innocent-api")
    result = audit_suspect(auditor_for(m), spec)
    assert result.verdict is None and result.outcome == "error" and isinstance(result.error, InputError)


def test_rate_limiter_spaces_requests():
    now = [0.0]
    slept = []

    def sleep(s):
        slept.append(round(s, 6))
        now[0] += s

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(3):
        limiter.wait()
    assert slept == [0.25, 0.25]


def test_body_template_and_options_are_validated(world, tmp_path):
    assert fill({"a": "{seed}", "b": ["x {prompt} {seed}"], "c": 3}, "cat", 7) == {"a": 7, "b": ["x cat 7"], "c": 3}
    from attribcheck.manifest import Manifest

    base = manifest(world, "http://127.0.0.1:1", tmp_path).read_text()
    for bad, field in ((base.replace('response = "bytes"', 'response = "pdf"'), "response"),
                       (base.replace('url = "http://127.0.0.1:1/bytes/innocent"', 'url = "file:///etc/passwd"'), "url"),
                       (base.replace("rate_per_s = 1000", "rate_per_s = 1000\nverify = false"), "verify")):
        (tmp_path / "bad.toml").write_text(bad)
        with pytest.raises(InputError, match=field) as e:
            Manifest.load(tmp_path / "bad.toml")
        assert "\n" not in str(e.value)
