"""A suspect behind an HTTP API: one request per (prompt, seed), the image in the response.

    [[suspects]]
    name = "vendor-api"
    kind = "http"
    expect = "innocent"
    [suspects.options]
    url = "https://api.example.com/v1/generate"
    body = { prompt = "{prompt}", seed = "{seed}", steps = 50 }   # JSON; "{seed}" alone stays an integer
    response = "json-base64"            # or "bytes": the body is the image file
    image_field = "data.0.b64_json"     # json-base64: where the base64 image is (dots, list indices)
    headers_env = { Authorization = "VENDOR_API_AUTH" }   # header values read from the environment
    timeout_s = 60                      # per request, all of it: connecting, the headers, the body
    retries = 3                         # on timeouts, 429 and 5xx, with exponential backoff
    backoff_s = 1.0
    rate_per_s = 2                      # at most this many requests per second
    model_version = "2025-01"           # part of the cache key: change it when the API's model changes

The server is untrusted. A response is refused, never guessed at, when it: redirects anywhere
(no redirect is followed), has the wrong content type, is larger than `max_bytes` (read no
further), is not whole within `timeout_s` (a server that dribbles is cut off), holds no PNG,
JPEG or WebP image of the format its content type (or data URL) names, or one over the pixel
limit or twice the protocol's side, or is not the JSON shape configured. A refused answer is a DegenerateOutputError (the suspect answered, but nothing a
verdict can be read from) or an InputError (the request is wrong: 4xx, unreachable), so the
suspect gets an error row, never a verdict built on it.

Every response is saved as evidence: `<evidence>/<suspect>/<run time>-<n>-<request sha>.{json,body}` (what
was asked, when, the status, headers and the body's sha256; the body itself), in the folder
`evidence` names (relative to the manifest; default: `$ATTRIBCHECK_CACHE/http-evidence`).
"""
from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from attribcheck import images
from attribcheck.errors import DegenerateOutputError, InputError



MAX_BACKOFF_S = 600.0


class HttpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    url: str = Field(pattern=r"^https?://[^\s]+$")
    method: Literal["POST", "GET"] = "POST"
    body: dict = {"prompt": "{prompt}", "seed": "{seed}"}  # POST: JSON body; GET: query parameters
    headers: dict[str, str] = {}
    headers_env: dict[str, str] = {}  # header -> environment variable holding its value (secrets)
    response: Literal["json-base64", "bytes"] = "json-base64"
    image_field: str = Field("image", min_length=1)
    timeout_s: float = Field(60.0, gt=0, le=3600)
    retries: int = Field(3, ge=0, le=20)
    backoff_s: float = Field(1.0, ge=0, le=600)
    rate_per_s: Optional[float] = Field(None, ge=1 / 3600)  # at least one request an hour: no endless wait
    max_bytes: int = Field(32 * 2**20, ge=1024, le=2**30)
    evidence: Optional[str] = None
    model_version: str = ""

    @field_validator("headers", "headers_env")
    @classmethod
    def _header_names(cls, v: dict) -> dict:
        for k, val in v.items():
            if not k or any(c in k + str(val) for c in "\r\n"):
                raise ValueError(f"header {k!r}: no line breaks, no empty names")
        return v


def fill(template: Any, prompt: str, seed: int) -> Any:
    """The request body for one query: "{prompt}" and "{seed}" replaced wherever they occur;
    a value that is exactly "{seed}" becomes the integer."""
    if isinstance(template, dict):
        return {k: fill(v, prompt, seed) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, prompt, seed) for v in template]
    if template == "{seed}":
        return int(seed)
    if isinstance(template, str):
        return template.replace("{prompt}", prompt).replace("{seed}", str(int(seed)))
    return template


def _json(body: bytes) -> Any:
    """A response's JSON; nesting too deep for the parser is no JSON we asked for."""
    try:
        return json.loads(body)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def pick(data: Any, path: str) -> Any:
    """`data.0.b64_json` in a parsed JSON document, or KeyError."""
    for part in path.split("."):
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict) and part in data:
            data = data[part]
        else:
            raise KeyError(path)
    return data


class RateLimiter:
    """At most `rate` calls per second (the clock and sleep are injectable for tests)."""

    def __init__(self, rate: float | None, clock=time.monotonic, sleep=time.sleep):
        self.interval = 1.0 / rate if rate else 0.0
        self.clock, self.sleep = clock, sleep
        self.next = None
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = self.clock()
            if self.next is not None and now < self.next:
                self.sleep(self.next - now)
                now = self.next
            self.next = now + self.interval


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise InputError(f"answered {code}, a redirect to {newurl}: redirects are not followed", req.full_url,
                         "options.url")


class _Retry(Exception):
    pass


class Deadline:
    """One wall-clock limit for a whole request: connecting, the headers and the body. Socket
    timeouts are per operation, so a server that dribbles a byte every half second never trips
    them; at the deadline a timer shuts the request's connection down, which ends any read.
    It holds a duplicate of each socket's descriptor: TLS takes the original socket object
    over, but a shutdown through any descriptor ends the connection for all of them."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds
        self.expired = False
        self._dups: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return max(0.001, self.end - time.monotonic())

    def watch(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._dups.append(sock.dup())
            if self.expired:
                self._shut(self._dups[-1])
        return sock

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._dups:
                self._shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._dups:
                sock.close()
            self._dups.clear()


def _watched(base: type, deadline: Deadline):
    """An http.client connection class whose socket the deadline can shut, made before any
    byte (of TLS or HTTP) crosses it; connecting itself waits at most the time left."""

    class Watched(base):
        def __init__(self, *args, **kwargs):
            kwargs["timeout"] = deadline.left()
            super().__init__(*args, **kwargs)
            # typeshed's http.client leaves out the private _create_connection this wraps
            create = self._create_connection  # type: ignore[has-type]
            self._create_connection = lambda *a, **k: deadline.watch(create(*a, **k))

    return Watched


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def http_open(self, req):
        return self.do_open(_watched(http.client.HTTPConnection, self.deadline), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, deadline: Deadline):
        super().__init__()
        self.deadline = deadline

    def https_open(self, req):
        return self.do_open(_watched(http.client.HTTPSConnection, self.deadline), req,
                            # the handler's own TLS context: typeshed leaves out the private attribute
                            context=self._context)  # type: ignore[attr-defined]


class HttpGenerator:
    def __init__(self, options: HttpOptions, name: str = "http", evidence: str | Path | None = None,
                 sleep=time.sleep, max_side: int | None = None):
        self.name = name
        self.o = options
        self.evidence = Path(evidence) / name if evidence is not None else None
        self.limiter = RateLimiter(options.rate_per_s, sleep=sleep)
        self.sleep = sleep
        self.max_side = max_side
        self.requests = 0
        self._n = 0
        self._started = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")

    def _headers(self) -> dict:
        h = {"User-Agent": "attribcheck", **self.o.headers}
        for header, env in self.o.headers_env.items():
            if env not in os.environ:
                raise InputError(f"environment variable {env} (for header {header}) is not set", self.name,
                                 "options.headers_env")
            h[header] = os.environ[env]
        return h

    def _request(self, prompt: str, seed: int) -> urllib.request.Request:
        body = fill(self.o.body, prompt, seed)
        headers = self._headers()
        if self.o.method == "GET":
            from urllib.parse import urlencode

            sep = "&" if "?" in self.o.url else "?"
            return urllib.request.Request(self.o.url + sep + urlencode(body), headers=headers, method="GET")
        headers.setdefault("Content-Type", "application/json")
        return urllib.request.Request(self.o.url, data=json.dumps(body).encode(), headers=headers, method="POST")

    def _fetch(self, req) -> tuple[int, dict, bytes]:
        """One attempt: status, headers, body (at most max_bytes), all within timeout_s from
        the first byte sent, or _Retry / InputError / DegenerateOutputError."""
        self.limiter.wait()
        self.requests += 1
        deadline = Deadline(self.o.timeout_s)
        opener = urllib.request.build_opener(_NoRedirect, _HTTP(deadline), _HTTPS(deadline))
        try:
            return self._exchange(opener, req, deadline)
        except _Retry:
            raise
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if deadline.expired:
                raise _Retry(f"no whole answer within timeout_s {self.o.timeout_s}") from None
            raise _Retry(f"{type(e).__name__}: {getattr(e, 'reason', e)}") from None
        finally:
            deadline.cancel()

    def _exchange(self, opener, req, deadline: Deadline) -> tuple[int, dict, bytes]:
        try:
            resp = opener.open(req, timeout=deadline.left())
        except urllib.error.HTTPError as e:
            e.close()
            if e.code == 429 or e.code >= 500:
                raise _Retry(f"HTTP {e.code}") from None
            raise InputError(f"answered HTTP {e.code} {e.reason}", self.o.url, "options") from None
        with resp:
            if not 200 <= resp.status < 300:  # 1xx/3xx that reached us
                raise InputError(f"answered HTTP {resp.status}", self.o.url, "options")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > self.o.max_bytes:
                raise DegenerateOutputError(f"a {length}-byte response, over max_bytes {self.o.max_bytes}",
                                            self.o.url, "options.max_bytes")
            body = resp.read(self.o.max_bytes + 1)
            if deadline.expired:  # the socket was shut mid-body: what we hold is a fragment
                raise _Retry(f"no whole answer within timeout_s {self.o.timeout_s}")
            if len(body) > self.o.max_bytes:
                raise DegenerateOutputError(f"a response over max_bytes {self.o.max_bytes}", self.o.url,
                                            "options.max_bytes")
            return resp.status, dict(resp.headers.items()), body

    def _save(self, prompt: str, seed: int, req, status: int, headers: dict, body: bytes) -> None:
        if self.evidence is None:
            return
        self.evidence.mkdir(parents=True, exist_ok=True)
        self._n += 1
        rid = hashlib.sha256(json.dumps([prompt, int(seed)]).encode()).hexdigest()[:16]
        # never overwritten: a later run's answers sit beside the earlier ones
        stem = self.evidence / f"{self._started}-{self._n:05d}-{rid}"
        from attribcheck.outputs import write_atomic

        write_atomic(stem.with_suffix(".body"), body, "evidence")
        safe_headers = {k: v for k, v in headers.items() if k.lower() not in ("set-cookie",)}
        write_atomic(stem.with_suffix(".json"), json.dumps({
            "prompt": prompt, "seed": int(seed), "url": req.full_url, "method": req.get_method(),
            "request_body": (req.data or b"").decode(), "status": status, "headers": safe_headers,
            "body_sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
            "received": datetime.now(timezone.utc).isoformat(timespec="seconds")}, indent=2) + "\n", "evidence")

    def _image(self, headers: dict, body: bytes) -> np.ndarray:
        ctype = next((v for k, v in headers.items() if k.lower() == "content-type"), "").split(";")[0].strip().lower()
        expect = None  # the format the response names for its image; the bytes must agree
        if self.o.response == "json-base64":
            if ctype != "application/json":
                raise DegenerateOutputError(f"content type {ctype or 'none'!r}, expected application/json",
                                            self.o.url, "options.response")
            try:
                raw = pick(_json(body), self.o.image_field)
                if not isinstance(raw, str):
                    raise TypeError
                if raw.startswith("data:"):
                    head, raw = raw.split(",", 1)
                    named = head[5:].split(";")[0].strip().lower()
                    if named not in images.CONTENT_TYPES:
                        raise DegenerateOutputError(f"a {named or 'untyped'!r} data URL, expected one of "
                                                    f"{', '.join(images.CONTENT_TYPES)}", self.o.url,
                                                    "options.image_field")
                    expect = images.CONTENT_TYPES[named]
                data = base64.b64decode(raw, validate=True)
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, IndexError,
                    RecursionError) as e:
                if isinstance(e, DegenerateOutputError):
                    raise
                raise DegenerateOutputError(f"no base64 image at {self.o.image_field!r} in the JSON response",
                                            self.o.url, "options.image_field") from None
        else:
            if ctype not in images.CONTENT_TYPES:
                raise DegenerateOutputError(f"content type {ctype or 'none'!r}, expected one of "
                                            f"{', '.join(images.CONTENT_TYPES)}", self.o.url, "options.response")
            expect, data = images.CONTENT_TYPES[ctype], body
        return images.decode(data, self.o.url, "options.response", expect=expect, keep_alpha=True,
                             max_side=self.max_side, error=DegenerateOutputError)

    def ask(self, prompt: str, seed: int) -> np.ndarray:
        req = self._request(prompt, seed)
        last = ""
        for attempt in range(self.o.retries + 1):
            if attempt:  # doubling, but never more than MAX_BACKOFF_S at a time (20 retries of 600 s doubled is years)
                self.sleep(min(self.o.backoff_s * 2 ** (attempt - 1), MAX_BACKOFF_S))
            try:
                status, headers, body = self._fetch(req)
            except _Retry as e:
                last = str(e)
                continue
            self._save(prompt, seed, req, status, headers, body)
            return self._image(headers, body)
        raise InputError(f"no answer after {self.o.retries + 1} attempts (last: {last})", self.o.url, "options.url")

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        if len(prompts) != len(seeds):
            raise ValueError("prompts and seeds pair up: give as many of each")
        return [self.ask(p, int(s)) for p, s in zip(prompts, seeds)]


def evidence_folder(spec) -> Path:
    o: HttpOptions = spec.options
    if o.evidence is not None:
        return (Path(spec.base) / o.evidence) if spec.base is not None else Path(o.evidence)
    from attribcheck.cache import default_root

    return default_root() / "http-evidence"


def open_http(spec, protocol, runtime) -> HttpGenerator:
    # answers over twice the protocol's size are refused before the cache stores them
    return HttpGenerator(spec.options, spec.name, evidence_folder(spec),
                         max_side=images.answer_side_limit(protocol.height, protocol.width))


def http_identity(spec) -> dict:
    """What decides an API's answers, as far as we can see it: where and how it is asked, and
    the model version the user states (an API can change its model without telling)."""
    o: HttpOptions = spec.options
    return {"url": o.url, "method": o.method, "body": o.body, "response": o.response,
            "image_field": o.image_field, "model_version": o.model_version}
