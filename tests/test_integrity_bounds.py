"""Issue 16, items 6 and 7, from the attacker's side: everything an audit reads is bounded in
time and memory, and images are decoded strictly.

Each case plants something hostile (a dribbling server, a FIFO, a symlink to /dev/zero, a
config that asks for 17 GB, a forest of 1,000 trees, JSON nested thousands deep, a float TIFF
of NaN named .png, ...) and expects a one-line error naming the file and field within a
loose wall-time bound, never a hang, a traceback or a wrong reading.
"""
from __future__ import annotations

import base64
import io
import json
import os
import struct
import threading
import time
import zlib
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attribcheck import images
from attribcheck.errors import AttribcheckError, DegenerateOutputError, InputError, IntegrityError

SIDE = 16


@contextmanager
def within(seconds: float):
    start = time.monotonic()
    yield
    elapsed = time.monotonic() - start
    assert elapsed < seconds, f"took {elapsed:.1f} s, bound {seconds} s"


def finishes(fn, seconds: float, unblock=None):
    """fn() run in a thread: its exception (or None) if it ends within `seconds`; a test
    failure if it hangs (then `unblock()` releases the thread)."""
    box: dict = {}

    def run():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the test
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        if unblock:
            unblock()
        t.join(5)
        pytest.fail(f"hung for more than {seconds} s")
    return box.get("error")


def release_fifo(path: Path):
    """Opening the writing end lets a reader blocked in open() go on (and read EOF)."""
    def unblock():
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    return unblock


def one_line(err: BaseException) -> str:
    assert isinstance(err, AttribcheckError), f"{type(err).__name__}: {err}"
    assert "\n" not in str(err)
    return str(err)


def picture(side: int = SIDE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (side, side, 3)).astype(np.float32)


def png_bytes(img: np.ndarray | Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    (img if isinstance(img, Image.Image) else images.to_pil(img)).save(buf, format=fmt)
    return buf.getvalue()


def nan_tiff() -> bytes:
    a = np.full((SIDE, SIDE), np.nan, np.float32)
    a[::2] = np.inf
    return png_bytes(Image.fromarray(a, mode="F"), "TIFF")


def raw_png(w: int, h: int, depth: int, colour: int, rows: bytes | None = None) -> bytes:
    """A PNG written chunk by chunk: any bit depth, or a header that claims any size."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows or b"")) + chunk(b"IEND", b"")


def png16(a: np.ndarray) -> bytes:
    """A genuine 16-bit PNG: grey (HxW) or RGB (HxWx3) uint16."""
    h, w = a.shape[:2]
    colour = 0 if a.ndim == 2 else 2
    big = a.astype(">u2")
    return raw_png(w, h, 16, colour, b"".join(b"\x00" + big[y].tobytes() for y in range(h)))


def folder_with(tmp_path: Path, files: dict[str, bytes]) -> Path:
    folder = tmp_path / "answers"
    folder.mkdir()
    rows = []
    for i, (name, data) in enumerate(files.items()):
        (folder / name).write_bytes(data)
        rows.append(json.dumps({"prompt": f"p{i}", "seed": 0, "file": name}))
    (folder / "queries.jsonl").write_text("\n".join(rows) + "\n")
    return folder


def read_folder(folder: Path, n: int = 1, **kw):
    from attribcheck.models.folder_generator import FolderGenerator

    return FolderGenerator(folder, **kw).generate([f"p{i}" for i in range(n)], [0] * n)


# -- HTTP: one deadline for the whole request; a body size cap --------------------------------

class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    payload = b""  # what the image routes answer with

    def log_message(self, *args):
        pass

    def _dribble(self, data: bytes, every: float):
        for i in range(len(data)):
            self.wfile.write(data[i:i + 1])
            self.wfile.flush()
            time.sleep(every)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        route = self.path.strip("/")
        try:
            if route == "dribble-body":  # 8 s of body at a byte every 0.2 s; timeout_s is 1
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", "40")
                self.end_headers()
                self._dribble(b"\x89PNG" + b"0" * 36, 0.2)
            elif route == "dribble-headers":
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                self._dribble(b"X-Slow: " + b"a" * 40 + b"\r\n", 0.2)
                self.wfile.write(b"Content-Length: 0\r\n\r\n")
            elif route == "chunked-endless":  # no Content-Length: only max_bytes stops it
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"0" * 8192
                for _ in range(10_000):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
            else:
                ctype, _, _ = route.partition("/")
                body = self.payload
                self.send_response(200)
                self.send_header("Content-Type", ctype.replace("_", "/"))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


@pytest.fixture
def server():
    httpd = Server(("127.0.0.1", 0), Hostile)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def http_gen(url: str, **kw):
    from attribcheck.models.http_generator import HttpGenerator, HttpOptions

    o = HttpOptions(url=url, **{"response": "bytes", "retries": 0, "timeout_s": 1.0, **kw})
    return HttpGenerator(o, "api")


@pytest.mark.parametrize("route", ["dribble-body", "dribble-headers"])
def test_a_dribbling_server_is_cut_off_at_timeout_s(server, route):
    gen = http_gen(f"{server}/{route}")
    with within(3.0):  # timeout_s = 1: the whole request, not each read
        err = finishes(lambda: gen.generate(["a"], [0]), 15)
    assert "timeout_s" in one_line(err) and isinstance(err, InputError)


def test_retries_each_get_one_deadline(server):
    gen = http_gen(f"{server}/dribble-body", retries=1, backoff_s=0.1)
    with within(5.0):
        err = finishes(lambda: gen.generate(["a"], [0]), 20)
    assert "no answer after 2 attempts" in one_line(err) and gen.requests == 2


def test_an_endless_chunked_body_stops_at_max_bytes(server):
    gen = http_gen(f"{server}/chunked-endless", max_bytes=100_000, timeout_s=5.0)
    with within(5.0):
        err = finishes(lambda: gen.generate(["a"], [0]), 15)
    assert "max_bytes" in one_line(err) and isinstance(err, DegenerateOutputError)


@pytest.mark.parametrize("ctype, payload, needle", [
    ("image_png", nan_tiff(), "not a decodable image"),          # float TIFF of NaN served as PNG
    ("image_png", png_bytes(picture(), "TIFF"), "not a decodable image"),
    ("image_jpeg", png_bytes(picture()), "PNG image, but is named or served as JPEG"),
    ("image_png", png_bytes(picture(), "JPEG"), "JPEG image, but is named or served as PNG"),
    ("image_png", png_bytes(picture(), "GIF"), "not a decodable image"),
], ids=["nan-tiff", "tiff", "png-as-jpeg", "jpeg-as-png", "gif"])
def test_http_images_are_sniffed_and_matched_to_the_content_type(server, ctype, payload, needle):
    Hostile.payload = payload
    err = finishes(lambda: http_gen(f"{server}/{ctype}").generate(["a"], [0]), 10)
    assert needle in one_line(err) and isinstance(err, DegenerateOutputError)


def test_a_json_data_url_must_name_an_allowed_format(server):
    for named, payload, ok in (("image/png", png_bytes(picture()), True), ("image/gif", png_bytes(picture()), False),
                               ("image/webp", png_bytes(picture()), False)):
        Hostile.payload = json.dumps({"image": f"data:{named};base64," + base64.b64encode(payload).decode()}).encode()
        gen = http_gen(f"{server}/application_json", response="json-base64")
        err = finishes(lambda: gen.generate(["a"], [0]), 10)
        assert (err is None) == ok, err


def test_http_json_nested_thousands_deep_is_one_line(server):
    Hostile.payload = b'{"image": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    err = finishes(lambda: http_gen(f"{server}/application_json", response="json-base64").generate(["a"], [0]), 10)
    assert "no base64 image" in one_line(err)


def test_http_answers_far_over_the_protocol_size_are_refused_before_caching(server, tmp_path):
    from attribcheck.cache import GenerationCache
    from attribcheck.models.spec import SuspectSpec, open_generator
    from attribcheck.models.http_generator import HttpOptions
    from attribcheck.models.protocol import QueryProtocol

    Hostile.payload = png_bytes(picture(side=4 * SIDE))
    spec = SuspectSpec("api", None, "innocent", "http",
                       options=HttpOptions(url=f"{server}/image_png", response="bytes", retries=0, timeout_s=5,
                                          evidence=str(tmp_path / "evidence")))
    cache = GenerationCache(tmp_path / "cache")
    gen = open_generator(spec, QueryProtocol(height=SIDE, width=SIDE), None, cache)
    err = finishes(lambda: gen.generate(["a"], [0]), 10)
    assert f"over {2 * SIDE} pixels on a side" in one_line(err)
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and "lock" not in p.name]
    Hostile.payload = png_bytes(picture(side=2 * SIDE))  # twice the side is still an answer
    assert finishes(lambda: gen.generate(["a"], [0]), 10) is None


# -- only regular files are read --------------------------------------------------------------

def test_a_fifo_swapped_in_after_the_folder_opened_does_not_hang(tmp_path):
    from attribcheck.models.folder_generator import FolderGenerator

    folder = folder_with(tmp_path, {"a.png": png_bytes(picture())})
    gen = FolderGenerator(folder)
    (folder / "a.png").unlink()
    os.mkfifo(folder / "a.png")
    with within(5.0):
        err = finishes(lambda: gen.generate(["p0"], [0]), 5, release_fifo(folder / "a.png"))
    assert "FIFO" in one_line(err) and isinstance(err, IntegrityError) and "a.png" in str(err)


def test_a_fifo_named_in_the_rows_is_refused_when_the_folder_opens(tmp_path):
    folder = folder_with(tmp_path, {"a.png": png_bytes(picture())})
    (folder / "b.png").unlink(missing_ok=True)
    os.mkfifo(folder / "b.png")
    (folder / "queries.jsonl").write_text(json.dumps({"prompt": "p0", "seed": 0, "file": "b.png"}) + "\n")
    err = finishes(lambda: read_folder(folder), 5, release_fifo(folder / "b.png"))
    assert "FIFO" in one_line(err) and "b.png" in str(err)


def test_a_manifest_that_is_a_fifo_does_not_hang(tmp_path):
    from attribcheck.manifest import Manifest

    os.mkfifo(tmp_path / "audit.toml")
    err = finishes(lambda: Manifest.load(tmp_path / "audit.toml"), 5, release_fifo(tmp_path / "audit.toml"))
    assert "FIFO" in one_line(err) and "audit.toml" in str(err)


def test_bounded_reads_refuse_devices_and_oversized_files(tmp_path):
    from attribcheck.safe_files import read_bytes_bounded

    (tmp_path / "zero.json").symlink_to("/dev/zero")
    with within(2.0):
        err = finishes(lambda: read_bytes_bounded(tmp_path / "zero.json"), 5)
    assert "character device" in one_line(err) and isinstance(err, IntegrityError)
    (tmp_path / "big").write_bytes(b"0" * 5000)
    assert "over the limit of 4096" in one_line(finishes(lambda: read_bytes_bounded(tmp_path / "big", 4096), 5))
    assert read_bytes_bounded(tmp_path / "big", 5000) == b"0" * 5000


def tiny_model_folder(tmp_path: Path) -> Path:
    """A pipeline folder's configs (no weights): model_index.json and unet/vae/text_encoder configs."""
    import shutil

    src = Path(__file__).resolve().parents[1] / "fixtures" / "world" / "emoji" / "models" / "innocent-s1"
    dst = tmp_path / "model"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "profiles"))
    return dst


@pytest.fixture
def no_allocation(monkeypatch):
    """Loading that reaches diffusers' from_pretrained fails the test: the checks come first."""
    from diffusers import AutoPipelineForText2Image, DiffusionPipeline

    def refuse(*a, **k):
        raise AssertionError("reached from_pretrained: the model would have been allocated")

    monkeypatch.setattr(AutoPipelineForText2Image, "from_pretrained", refuse)
    monkeypatch.setattr(DiffusionPipeline, "from_pretrained", refuse)


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_a_model_folder_with_a_fifo_or_dev_zero_is_refused_before_loading(tmp_path, no_allocation, plant):
    from attribcheck.models.diffusers_generator import load_pipeline

    model = tiny_model_folder(tmp_path)
    target = model / "unet" / "diffusion_pytorch_model.safetensors"
    os.mkfifo(target) if plant == "fifo" else target.symlink_to("/dev/zero")
    with within(60.0):  # the first import of diffusers is most of it
        err = finishes(lambda: load_pipeline(model), 60, release_fifo(target))
    assert isinstance(err, IntegrityError) and "diffusion_pytorch_model.safetensors" in one_line(err)


# -- model configs within a parameter budget, before anything is allocated --------------------

def _edit(path: Path, **changes):
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("component, changes, field", [
    ("unet", {"block_out_channels": [16384, 16384]}, "block_out_channels"),
    ("vae", {"block_out_channels": [16384, 16384]}, "block_out_channels"),
    ("text_encoder", {"hidden_size": 65536, "intermediate_size": 65536}, "hidden_size"),
    ("unet", {"layers_per_block": 1_000_000}, "layers_per_block"),
    ("text_encoder", {"num_hidden_layers": 100_000}, "num_hidden_layers"),
    ("unet", {"block_out_channels": [32] * 1000}, "block_out_channels"),
])
def test_an_oversized_config_is_refused_before_allocation(tmp_path, no_allocation, component, changes, field):
    import resource

    from attribcheck.models.diffusers_generator import load_pipeline

    model = tiny_model_folder(tmp_path)
    _edit(model / component / "config.json", **changes)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with within(60.0):
        err = finishes(lambda: load_pipeline(model), 60)
    msg = one_line(err)
    assert isinstance(err, InputError) and f"{component}/config.json: {field}" in msg
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 500_000  # KiB: nothing allocated


def test_the_budget_counts_on_the_meta_device_and_can_be_raised(tmp_path, monkeypatch):
    from attribcheck.models import budget

    model = tiny_model_folder(tmp_path)
    n = budget.check_folder(model)
    assert 100_000 < n < 10_000_000  # the tiny world's pipeline: about a million parameters
    with pytest.raises(InputError, match="over the budget of 1,000"):
        budget.check_folder(model, max_params=1000)
    monkeypatch.setenv(budget.ENV, "1000")
    with pytest.raises(InputError, match="over the budget"):
        budget.check_folder(model)
    _edit(model / "unet" / "config.json", block_out_channels=[4096, 4096])  # 5.7 G: over, unless raised
    monkeypatch.delenv(budget.ENV)
    with pytest.raises(InputError, match="unet/config.json"):
        budget.check_folder(model)
    assert budget.check_folder(model, max_params=10**11) > budget.MAX_PARAMS  # counted, never allocated


def test_a_tiny_config_is_counted_before_it_is_built(tmp_path):
    from attribcheck.lab.tiny import TinyConfig, build_pipeline

    cfg = TinyConfig(unet_channels=(512, 512))
    with within(60.0), pytest.raises(InputError, match="unet_channels"):
        build_pipeline(cfg, str(tmp_path / "tok"), max_params=1_000_000)
    with pytest.raises(InputError, match="unet_layers_per_block"):
        build_pipeline(TinyConfig(unet_layers_per_block=10**6), str(tmp_path / "tok"))


# -- the discriminator's refit at load is bounded ---------------------------------------------

def forest_file(tmp_path: Path, n_estimators: int, shadows: int = 12) -> Path:
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 0.4, (shadows, 10))
    y = [1, 0] * (shadows // 2)
    data = {"format_version": 1, "bins": [0.0, 0.1, 0.2, 0.3, 1.0],
            "classifier": {"class": "sklearn.ensemble.RandomForestClassifier",
                           "params": {"n_estimators": n_estimators, "random_state": 0}},
            "X": X.tolist(), "y": y, "metadata": {}}
    path = tmp_path / "discriminator.json"
    path.write_text(json.dumps(data))
    return path


def test_a_forest_of_a_thousand_trees_is_refused_before_its_refit(tmp_path):
    from attribcheck.statistical.discriminator import ShadowDiscriminator

    path = forest_file(tmp_path, 1000)
    with within(5.0):
        err = finishes(lambda: ShadowDiscriminator.load(path), 120)
    assert isinstance(err, IntegrityError) and "discriminator.json: classifier" in one_line(err)
    assert finishes(lambda: ShadowDiscriminator.load(forest_file(tmp_path, 5)), 60) is None  # a small one loads


def test_thousands_of_shadows_are_refused_before_any_fit(tmp_path):
    from attribcheck.statistical.discriminator import ShadowDiscriminator

    path = forest_file(tmp_path, 5, shadows=5000)
    data = json.loads(path.read_text())
    data["classifier"] = {"class": "sklearn.svm.SVC", "params": {"probability": True, "random_state": 0}}
    path.write_text(json.dumps(data))
    with within(5.0):
        err = finishes(lambda: ShadowDiscriminator.load(path), 120)
    assert isinstance(err, IntegrityError) and "classifier" in one_line(err)


# -- nesting depth ----------------------------------------------------------------------------

DEEP = 5000


def test_deep_json_is_one_input_error(tmp_path):
    from attribcheck.safe_files import read_json_object

    path = tmp_path / "deep.json"
    path.write_text('{"a": ' * DEEP + "1" + "}" * DEEP)
    assert "nested too deep" in one_line(finishes(lambda: read_json_object(path), 10))


def test_a_deep_discriminator_file_is_one_line(tmp_path):
    from attribcheck.statistical.discriminator import ShadowDiscriminator

    path = tmp_path / "discriminator.json"
    path.write_text('{"bins": ' + "[" * DEEP + "]" * DEEP + "}")
    assert "discriminator.json" in one_line(finishes(lambda: ShadowDiscriminator.load(path), 10))


def test_deep_toml_is_one_input_error(tmp_path):
    from attribcheck.manifest import Manifest

    path = tmp_path / "audit.toml"
    path.write_text("x = " + "[" * DEEP + "]" * DEEP + "\n")
    err = finishes(lambda: Manifest.load(path), 10)
    assert "audit.toml" in one_line(err) and "nested too deep" in str(err)
    path.write_text("x = " + "{a = " * DEEP + "1" + "}" * DEEP + "\n")
    assert "nested too deep" in one_line(finishes(lambda: Manifest.load(path), 10))


def test_a_deep_row_in_queries_jsonl_is_one_line(tmp_path):
    folder = folder_with(tmp_path, {"a.png": png_bytes(picture())})
    (folder / "queries.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    err = finishes(lambda: read_folder(folder), 10)
    assert "queries.jsonl line 1" in one_line(err)


def test_every_other_untrusted_json_or_toml_reader_is_bounded(tmp_path):
    """The baseline, a profile cache entry, a protocol file and a suite's manifest at pytest
    collection: deep, huge-integer or FIFO files are one line (or, for a cache, a miss)."""
    from attribcheck import plugin
    from attribcheck.baseline import store
    from attribcheck.models.protocol import QueryProtocol
    from attribcheck.statistical.fit import _cached

    deep = '{"a": ' * DEEP + "1" + "}" * DEEP
    for text in (deep, '{"a": ' + HUGE_INT + "}"):
        (tmp_path / "b.json").write_text(text)
        assert "b.json" in one_line(finishes(lambda: store.load(tmp_path / "b.json"), 10))
        assert finishes(lambda: _cached(tmp_path / "b.json", "fp", "hash", 3), 10) is None
        assert "b.json" in one_line(finishes(lambda: QueryProtocol.load(tmp_path / "b.json"), 10))
    for name in ("p.json", "fifo.toml", "deep.toml"):
        os.mkfifo(tmp_path / name) if name != "deep.toml" else (tmp_path / name).write_text("x = " + "[" * DEEP + "]" * DEEP)
    assert "FIFO" in one_line(finishes(lambda: store.load(tmp_path / "p.json"), 5, release_fifo(tmp_path / "p.json")))
    assert "FIFO" in one_line(finishes(lambda: QueryProtocol.load(tmp_path / "p.json"), 5, release_fifo(tmp_path / "p.json")))
    assert finishes(lambda: _cached(tmp_path / "p.json", "fp", "hash", 3), 5, release_fifo(tmp_path / "p.json")) is None
    for name in ("fifo.toml", "deep.toml"):
        err = finishes(lambda: plugin._is_manifest(tmp_path / name), 5, release_fifo(tmp_path / name))
        assert type(err).__name__ == "CollectError" and name in str(err) and "\n" not in str(err)


@pytest.mark.parametrize("where", ["source.conf", "suspects.*.conf", "source.distances.*", "suspects.*.distances.*"])
def test_a_baseline_with_nan_is_refused_and_nan_never_compares_as_no_drift(tmp_path, where):
    from attribcheck.baseline import store
    from attribcheck.baseline.compare import compare

    shipped = Path(__file__).resolve().parents[1] / "suites" / "baselines" / "emoji.json"
    data = json.loads(shipped.read_text())
    honest = json.loads(shipped.read_text())
    parts = where.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        node = node[next(iter(node)) if part == "*" else part]
    last = next(iter(node)) if parts[-1] == "*" else parts[-1]
    node[last] = float("nan")
    (tmp_path / "b.json").write_text(json.dumps(data))  # a bare NaN, as a hand edit writes it
    err = finishes(lambda: store.load(tmp_path / "b.json"), 10)
    assert "b.json" in one_line(err) and "nan" in str(err).lower()
    assert compare(data, honest) and compare(honest, data)  # either side: a drift, never silence


HUGE_INT = "1" + "0" * 5000  # past Python's 4,300-digit limit: a plain ValueError from the parser


def test_an_integer_of_five_thousand_digits_is_one_input_error(tmp_path):
    from attribcheck.safe_files import read_json_object
    from attribcheck.manifest import Manifest

    (tmp_path / "a.json").write_text('{"a": ' + HUGE_INT + "}")
    assert "a.json" in one_line(finishes(lambda: read_json_object(tmp_path / "a.json"), 10))
    (tmp_path / "audit.toml").write_text("x = " + HUGE_INT + "\n")
    assert "audit.toml" in one_line(finishes(lambda: Manifest.load(tmp_path / "audit.toml"), 10))
    folder = folder_with(tmp_path, {"a.png": png_bytes(picture())})
    (folder / "queries.jsonl").write_text('{"prompt": "p0", "seed": ' + HUGE_INT + ', "file": "a.png"}\n')
    assert "queries.jsonl line 1" in one_line(finishes(lambda: read_folder(folder), 10))


def test_http_waits_are_bounded():
    from pydantic import ValidationError

    from attribcheck.models.http_generator import MAX_BACKOFF_S, HttpGenerator, HttpOptions

    with pytest.raises(ValidationError, match="rate_per_s"):  # one request every 31 years
        HttpOptions(url="http://127.0.0.1:9/", rate_per_s=1e-9)
    slept = []
    o = HttpOptions(url="http://127.0.0.1:9/", retries=20, backoff_s=600, timeout_s=0.2)
    gen = HttpGenerator(o, "api", sleep=slept.append)
    with pytest.raises(InputError, match="no answer after 21 attempts"):
        gen.generate(["a"], [0])  # nothing listens on port 9
    assert len(slept) == 20 and max(slept) == MAX_BACKOFF_S


def test_a_native_resolution_beyond_any_protocol_is_refused(tmp_path, no_allocation):
    from attribcheck.models.diffusers_generator import load_pipeline

    model = tiny_model_folder(tmp_path)
    _edit(model / "unet" / "config.json", sample_size=100_000)  # 800,000 pixels a side at the native size
    err = finishes(lambda: load_pipeline(model), 60)
    assert isinstance(err, InputError) and "unet/config.json: sample_size" in one_line(err)


# -- images decoded strictly ------------------------------------------------------------------

@pytest.mark.parametrize("name, data, needle", [
    ("a.png", nan_tiff(), "not a decodable image"),                       # NaN/inf TIFF named .png
    ("a.png", png_bytes(picture(), "TIFF"), "not a decodable image"),     # any TIFF
    ("a.png", png_bytes(picture(), "JPEG"), "JPEG image, but is named or served as PNG"),
    ("a.jpg", png_bytes(picture()), "PNG image, but is named or served as JPEG"),
    ("a.webp", png_bytes(picture()), "PNG image, but is named or served as WEBP"),
    ("a.png", png_bytes(picture(), "BMP"), "not a decodable image"),
    ("a.png", png_bytes(picture(), "GIF"), "not a decodable image"),
    ("a.png", raw_png(20_000, 20_000, 8, 2), "pixels"),                  # a decompression bomb's header
    ("a.png", raw_png(5000, 5000, 8, 2), "larger than"),
    ("a.png", png_bytes(picture())[:60], "a.png"),                       # truncated
], ids=["nan-tiff", "tiff", "jpeg-as-png", "png-as-jpg", "png-as-webp", "bmp", "gif", "bomb", "over-pixels",
        "truncated"])
def test_folder_images_are_decoded_strictly(tmp_path, name, data, needle):
    folder = folder_with(tmp_path, {name: data})
    with within(10.0):
        err = finishes(lambda: read_folder(folder), 10)
    assert needle in one_line(err) and name in str(err)


def test_png_jpeg_and_webp_named_as_they_are_read(tmp_path):
    pic = picture()
    files = {"a.png": png_bytes(pic), "b.jpg": png_bytes(pic, "JPEG"), "c.webp": png_bytes(images.to_pil(pic), "WEBP")}
    out = read_folder(folder_with(tmp_path, files), 3)
    assert np.abs(out[0] - images.to_array(images.to_pil(pic))).max() < 1e-6
    assert all(o.shape == (SIDE, SIDE, 3) and np.isfinite(o).all() for o in out)


def test_sixteen_bit_pngs_read_into_zero_one(tmp_path):
    grey = (np.arange(SIDE * SIDE).reshape(SIDE, SIDE) * 257).astype(np.uint16)  # 0 .. 65535
    rgb = np.stack([grey, grey[::-1], grey.T], axis=-1)
    out = read_folder(folder_with(tmp_path, {"g.png": png16(grey), "c.png": png16(rgb)}), 2)
    assert np.allclose(out[0], np.repeat((grey / 65535.0)[..., None], 3, -1), atol=1e-6)
    assert np.allclose(out[1], rgb / 65535.0, atol=1 / 255)  # PIL keeps 8 of the 16 bits of colour
    assert out[0].std() > 0.2  # not read as constant white


def test_a_folder_answer_over_the_side_limit_is_refused(tmp_path):
    folder = folder_with(tmp_path, {"a.png": png_bytes(picture(side=4 * SIDE))})
    err = finishes(lambda: read_folder(folder, max_side=images.answer_side_limit(SIDE, SIDE)), 10)
    assert "over 32 pixels on a side" in one_line(err)
