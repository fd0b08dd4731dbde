"""A library never silences other libraries for the whole process: loading a suspect quiets
diffusers and transformers for the load only, and the caller's settings come back."""
from __future__ import annotations

from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "fixtures" / "world" / "emoji" / "models" / "source"


@pytest.mark.parametrize("bar", [True, False])
def test_a_load_restores_the_callers_verbosity_and_progress_bars(bar):
    import diffusers
    import transformers

    from attribcheck.models.diffusers_generator import load_pipeline

    libs = (diffusers.utils.logging, transformers.utils.logging)
    before = [(lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libs]
    try:
        for lib in libs:
            lib.set_verbosity_info()
            (lib.enable_progress_bar if bar else lib.disable_progress_bar)()
        load_pipeline(SOURCE)
        assert [(lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libs] == [(20, bar), (20, bar)]
    finally:
        for lib, (level, enabled) in zip(libs, before):
            lib.set_verbosity(level)
            (lib.enable_progress_bar if enabled else lib.disable_progress_bar)()


def test_the_cli_logs_attribcheck_only_when_asked(tmp_path, world, capsys):
    from attribcheck.cli import main
    from tests.folder_world import HONEST, manifest_text

    m = tmp_path / "m.toml"
    m.write_text(manifest_text(world, "digits", HONEST))
    assert main(["audit", "-q", "--manifest", str(m), "--no-cache"]) == 0
    assert "attribcheck.session" not in capsys.readouterr().err
    assert main(["audit", "-q", "-v", "--manifest", str(m), "--no-cache"]) == 0
    assert "attribcheck.session: digits: auditing suspect infringer" in capsys.readouterr().err


def test_model_loads_cache_misses_and_hits_are_logged(tmp_path, caplog):
    import logging

    from attribcheck.cache import GenerationCache
    from attribcheck.models.protocol import QueryProtocol
    from attribcheck.models.spec import SuspectSpec, open_generator

    protocol = QueryProtocol(steps=2)
    spec = SuspectSpec("source", SOURCE, "infringing")
    with caplog.at_level(logging.DEBUG, logger="attribcheck"):
        open_generator(spec, protocol, cache=GenerationCache(tmp_path)).generate(["a cat"], [0])
        open_generator(spec, protocol, cache=GenerationCache(tmp_path)).generate(["a cat"], [0])
    text = [(r.name, r.getMessage()) for r in caplog.records]
    assert ("attribcheck.models.cached_generator", "source: a cache miss, opening the model") in text
    assert any(n == "attribcheck.models.diffusers_generator" and m.startswith(f"loaded {SOURCE}") for n, m in text)
    assert text[-1] == ("attribcheck.models.cached_generator", "source: 1 answers from the cache, 0 generated")
    assert sum(m.startswith("loading") for _, m in text) == 1  # the warm call opened no model


def test_an_early_stop_is_logged(caplog, world):
    import logging

    from attribcheck.audit.auditor import Auditor
    from attribcheck.audit.early_stop import audit_early
    from attribcheck.keys.keyset import KeySet
    from attribcheck.models.folder_generator import FolderGenerator

    auditor = Auditor(KeySet.load(world["keys"]))
    with caplog.at_level(logging.INFO, logger="attribcheck.audit.early_stop"):
        _, queries = audit_early(auditor, FolderGenerator(world["infringer"]), "infringer")
    assert queries.asked < queries.full
    assert caplog.records[-1].getMessage() == f"infringer: early stop after {queries.asked} of {queries.full} queries"
