"""Past one process: key selection's generations and a manifest's suspects fanned out over a
`concurrent.futures.Executor` (local processes, a Dask cluster) give what one process gives,
resume from the cache after a kill, and lose no suspect to another's failure."""
from __future__ import annotations

import json
import shutil
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest

from attribcheck.cli import main
from tests.folder_world import HONEST, manifest_text
from tests.test_statistical_level import fitted  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
EMOJI = ROOT / "fixtures" / "world" / "emoji"


class Inline(Executor):
    """Runs each unit as it is submitted, in this process; a unit for which `fail(args)` holds
    fails as a worker would; after `kill_after` units, every submission raises, as a run killed
    half way."""

    def __init__(self, kill_after: int | None = None, fail=lambda args: False):
        self.kill_after, self.fail, self.submitted = kill_after, fail, 0

    def submit(self, fn, /, *args, **kwargs):
        if self.kill_after is not None and self.submitted >= self.kill_after:
            raise KeyboardInterrupt("killed")
        self.submitted += 1
        f: Future = Future()
        try:
            if self.fail(args):
                raise MemoryError("the worker ran out of memory")
            f.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 - what a worker's failure looks like to the caller
            f.set_exception(e)
        return f


# -- the executors live in the core --------------------------------------------------------------

def test_the_executors_live_in_the_core_and_the_lab_reexports_them():
    from attribcheck import executors
    from attribcheck.lab.shadows import executors as lab

    assert lab.local_executor is executors.local_executor and lab.dask_executor is executors.dask_executor
    assert executors.executor_for(1) is None  # one worker: this process, as before
    from attribcheck.errors import InputError

    with pytest.raises(InputError, match="--workers"):
        executors.executor_for(0)
    with pytest.raises(InputError, match="--dask: no Dask scheduler reached at 'nonsense'"):
        executors.executor_for(2, "nonsense")


def test_local_workers_take_one_gpu_each(monkeypatch):
    import multiprocessing

    import torch

    from attribcheck import executors

    chosen: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this process keeps its threads
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    started = multiprocessing.get_context("spawn").Value("i", 0)
    for _ in range(3):  # three workers started (one replaced) on two GPUs
        executors._init_worker(1, started)
    assert chosen == [0, 1, 0]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    executors._init_worker(1, started)
    assert chosen == [0, 1, 0]  # one GPU: left as the runtime names it


# -- key selection -------------------------------------------------------------------------------

CAPTIONS = ["libra", "aries", "fireworks", "closed book", "turtle", "a cat on a red sofa"]


def _select(cache=None, executor=None):
    """Strategy 2 on the tiny world's emoji source, the base filtering, a held-out innocent
    calibrating: 6 candidates x 3 source seeds, 2 query seeds. Returns (key set, fan-out)."""
    from attribcheck.keys.fanout import Fanout, ModelRef
    from attribcheck.keys.select import GenerationSelector, SelectionContext
    from attribcheck.keys.thresholds import Thresholds
    from attribcheck.models.protocol import QueryProtocol, Runtime
    from attribcheck.models.spec import SuspectSpec, open_generator

    protocol, runtime = QueryProtocol(steps=20), Runtime(threads=1)
    fanout = Fanout(executor) if executor is not None else None

    def open_(name):
        spec = SuspectSpec(name, EMOJI / "models" / name, "innocent")
        if cache is None:
            return open_generator(spec, protocol, runtime)
        ref = ModelRef(spec, protocol, runtime, str(cache))
        return fanout.open(ref) if fanout is not None else ref.open()

    ctx = SelectionContext(source=open_("source"), references={"base": open_("base")},
                           calibration={"ref-calibration": open_("ref-calibration")}, protocol=protocol,
                           query_seeds=[0, 1], prompts_per_batch=2, fanout=fanout, thresholds=Thresholds(mode="fixed"))
    return GenerationSelector(k=30, n=3).select(ctx, CAPTIONS), fanout


def _same_keyset(a, b, atol: float = 0.0) -> None:
    """The same keys, images and selection record; distances equal (or within `atol`)."""
    def close(u, v) -> bool:
        return bool(np.allclose(u, v, rtol=0, atol=atol)) if atol else u == v

    sa, sb = dict(a.selection), dict(b.selection)
    qa, qb = sa.pop("reference_r"), sb.pop("reference_r")
    assert a.delta_0 == b.delta_0 and sa == sb and len(a) == len(b) and qa.keys() == qb.keys()
    assert all(close([*qa[n].values()], [*qb[n].values()]) for n in qa)
    for x, y in zip(a.keys, b.keys):
        assert (x.id, x.caption, x.r_references.keys()) == (y.id, y.caption, y.r_references.keys())
        assert close(x.r_source, y.r_source) and close([*x.r_references.values()], [*y.r_references.values()])
        assert np.array_equal(x.image, y.image)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The key set one process selects through the cache, read back warm: what every fan-out
    must reproduce bit for bit (its selection reads every answer from the cache). The cold run,
    from the pipeline's own arrays, gives the same keys and images; its distances may differ in
    the last bit (the pipeline's images are not C-contiguous, and numpy's sums follow memory order)."""
    cache = tmp_path_factory.mktemp("alone")
    cold, _ = _select(cache)
    warm, _ = _select(cache)
    assert warm.candidates == len(CAPTIONS) and warm.selection["counts"]["candidates"] == len(CAPTIONS)
    _same_keyset(cold, warm, atol=1e-12)
    return warm


def test_selection_with_one_and_two_workers_is_the_selection_of_one_process(alone, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from attribcheck.executors import local_executor

    assert len(alone) >= 2  # keys to compare, not an empty set
    # one worker (a thread: no start-up), then two spawned processes, each with a cold cache
    for workers, executor in ((1, ThreadPoolExecutor(1)), (2, local_executor(2))):
        with executor as ex:
            ks, fanout = _select(tmp_path / f"cache{workers}", ex)
        _same_keyset(ks, alone)
        assert fanout.generated > 0 and fanout.generated == fanout.asked  # every image generated, once
    # what the workers cached is what this process read: a re-run generates nothing
    again, fanout = _select(tmp_path / "cache2", ThreadPoolExecutor(2))
    _same_keyset(again, alone)
    assert fanout.generated == 0 and fanout.asked > 0


def test_a_killed_selection_resumes_from_the_cache_without_regenerating(alone, tmp_path):
    from attribcheck.cache import GenerationCache

    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        _select(cache, Inline(kill_after=2))  # killed after two units of the source's generations
    done = GenerationCache(cache).info().entries
    assert done == 2 * 2 * 3  # 2 units of the source's generations: 2 prompts x 3 seeds
    ks, fanout = _select(cache, Inline())
    _same_keyset(ks, alone)
    assert fanout.generated == fanout.asked - done  # nothing generated twice
    assert GenerationCache(cache).info().entries == fanout.asked  # every (model, prompt, seed) once


def test_a_worker_error_reaches_the_caller_and_nothing_more_starts(tmp_path):
    ex = Inline(fail=lambda args: args[1] == CAPTIONS[2:4])  # the second unit's worker dies
    with pytest.raises(MemoryError):
        _select(tmp_path / "cache", ex)
    assert ex.submitted == 3  # the source's three units were submitted; no later request started


class Seeded:
    """A model in no time: an image from (prompt, seed)."""

    name = "seeded"

    def generate(self, prompts, seeds):
        return [np.random.default_rng([int(s), sum(map(ord, p))]).random((8, 8, 3)).astype(np.float32)
                for p, s in zip(prompts, seeds)]


def test_progress_with_eta_and_a_cache_too_small_for_a_request_is_said(tmp_path, caplog):
    """Each unit done is a progress tick (the CLI's bar shows its ETA) and a log line per tenth
    with the ETA. Answers evicted before this process reads them back are generated again
    here, in one process: correct, but the fan-out is lost; the log says which bound to raise."""
    import logging

    caplog.set_level(logging.INFO, logger="attribcheck.keys.fanout")
    from attribcheck.keys.fanout import Fanout, ModelRef
    from attribcheck.models import kinds
    from attribcheck.models.protocol import QueryProtocol
    from attribcheck.models.spec import SuspectSpec

    kinds.register(kinds.SuspectKind("seeded-fanout", lambda spec, p, r: Seeded(), identity=lambda spec: {"s": 1}),
                   replace=True)
    try:
        for bound, warned in ((10**9, False), (1000, True)):
            fanout = Fanout(Inline())
            ref = ModelRef(SuspectSpec("m", None, "innocent", kind="seeded-fanout"), QueryProtocol(), None,
                           str(tmp_path / str(bound)), bound)
            model = fanout.open(ref)
            caplog.clear()
            ticks: list[tuple] = []
            fanout.prefetch(model, ["a", "b", "c"], [0, 1], "source generations", 2, lambda *t: ticks.append(t))
            assert fanout.generated == fanout.asked == 6
            assert len(ticks) == 2 and ticks[-1] == ("source generations", 3, 3)  # a tick per unit (2 + 1 prompts)
            assert "source generations: 3/3 prompts x 2 seeds" in caplog.text and "ETA 0 s" in caplog.text
            assert ("ATTRIBCHECK_CACHE_MAX_BYTES" in caplog.text) is warned
    finally:
        kinds.unregister("seeded-fanout")


def test_cli_keys_select_with_two_workers_selects_what_one_process_does(tmp_path):
    from attribcheck.data.dataset import CaptionDataset, Sample
    from attribcheck.keys.keyset import KeySet
    from attribcheck.models.protocol import QueryProtocol

    CaptionDataset([Sample("s0", "unused", np.zeros((16, 16, 3), np.float32))]).save(tmp_path / "data")
    # the world's own Strategy 2 keys (memorized at its 50 steps): 5 of 8, a verdict's minimum, pass
    captions = [k.caption for k in KeySet.load(EMOJI / "keys" / "generation").keys][:8]
    (tmp_path / "prompts.txt").write_text("\n".join(captions) + "\n")
    (tmp_path / "protocol.json").write_text(json.dumps(QueryProtocol(steps=50).to_dict()))
    models = EMOJI / "models"
    args = ["keys", "select", "-q", "--source", str(models / "source"), "--data", str(tmp_path / "data"),
            "--reference", str(models / "base"), "--calibration", str(models / "ref-calibration"),
            "--prompts", str(tmp_path / "prompts.txt"), "--thresholds", "fixed", "--k", "5", "--query-seeds", "2",
            "--protocol", str(tmp_path / "protocol.json"), "--threads", "1"]
    assert main([*args, "--out", str(tmp_path / "one"), "--cache-dir", str(tmp_path / "c1")]) == 0
    assert main([*args, "--out", str(tmp_path / "two"), "--cache-dir", str(tmp_path / "c2"), "--workers", "2"]) == 0
    one, two = KeySet.load(tmp_path / "one"), KeySet.load(tmp_path / "two")
    assert len(one) == 5
    _same_keyset(one, two, atol=1e-12)  # one process computed its distances on the pipeline's own arrays


def test_cli_keys_select_refuses_workers_without_a_cache(tmp_path, capsys):
    args = ["keys", "select", "-q", "--source", str(EMOJI / "models" / "source"), "--data", str(tmp_path),
            "--thresholds", "fixed", "--out", str(tmp_path / "keys"), "--workers", "2", "--no-cache"]
    assert main(args) == 3
    assert "--no-cache" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # an option without its address: a usage error
        main(args[:-1] + ["--dask"])
    assert usage.value.code == 3


# -- many suspects -------------------------------------------------------------------------------

def _manifest(tmp_path, world, keys) -> Path:
    """The folder world's suspects, the statistical level on, and one suspect whose folder lost
    an answer (its error must not cost the others theirs)."""
    broken = tmp_path / "broken"
    shutil.copytree(world["infringer"], broken)
    next(p for p in sorted(broken.iterdir()) if p.suffix == ".png").unlink()
    m = tmp_path / "m.toml"
    m.write_text(manifest_text({**world, "keys": keys, "broken": broken}, "digits",
                               {**HONEST, "broken": "infringing"}))
    return m


def _report(path: Path) -> dict:
    report = json.loads(path.read_text())
    for volatile in ("created", "duration_s", "started", "finished"):
        report.pop(volatile, None)
    return report


def test_audit_with_two_workers_or_a_dask_cluster_writes_the_report_of_one(tmp_path, world, fitted):  # noqa: F811
    keys, _, _ = fitted
    m = _manifest(tmp_path, world, keys)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    rc1 = main(["audit", "-q", "--manifest", str(m), "--json", str(one), "--no-cache"])
    rc2 = main(["audit", "-q", "--manifest", str(m), "--json", str(two), "--no-cache", "--workers", "2"])
    from distributed import LocalCluster

    dask = tmp_path / "dask.json"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        rc3 = main(["audit", "-q", "--manifest", str(m), "--json", str(dask), "--no-cache",
                    "--dask", cluster.scheduler_address])
    assert rc1 == rc2 == rc3 == 3  # the broken suspect's input error
    a, b = _report(one), _report(two)
    assert a == b == _report(dask)
    rows = {r["name"]: r for r in b["audits"][0]["suspects"]}
    assert [r["name"] for r in b["audits"][0]["suspects"]] == ["source", "infringer", "innocent", "partial", "broken"]
    assert rows["broken"]["outcome"] == "error" and rows["infringer"]["instance"]["verdict"] == "attributed"
    assert rows["infringer"]["statistical"]["verdict"] == "attributed"


def test_audit_on_a_dask_cluster_and_a_dead_worker_loses_no_other_suspect(tmp_path, world, fitted):  # noqa: F811
    from distributed import Client, LocalCluster

    from attribcheck.manifest import Manifest
    from attribcheck.session import AuditSession

    keys, _, _ = fitted
    m = Manifest.load(_manifest(tmp_path, world, keys))
    alone = AuditSession(m)
    entry = alone.entry(alone.run())
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        session = AuditSession(m)
        assert session.entry(session.run(client.get_executor())) == entry
    # a worker that dies (its future raises) is that suspect's error row, and only its
    session = AuditSession(m)
    results = session.run(Inline(fail=lambda args: args[2].name == "innocent"))
    rows = {r["name"]: r for r in session.entry(results)["suspects"]}
    assert rows["innocent"]["outcome"] == "error" and "MemoryError" in rows["innocent"]["error"]["message"]
    assert {n: r for n, r in rows.items() if n != "innocent"} == {
        r["name"]: r for r in entry["suspects"] if r["name"] != "innocent"}
