"""`python -m attribcheck.bench threads` on the tiny model, one timed image, one count (each
count is a child process that imports torch and diffusers: CI pays for one)."""
import json

from attribcheck.lab.bench.__main__ import main


def test_the_threads_bench_times_each_count_against_one_thread(tmp_path, monkeypatch):
    monkeypatch.setattr("attribcheck.models.protocol.available_cores", lambda: 1)
    out = tmp_path / "threads.json"
    assert main(["threads", "--images", "1", "--json", str(out)]) == 0
    r = json.loads(out.read_text())
    assert [row["threads"] for row in r["rows"]] == [1]
    assert r["rows"][0]["time_vs_one_thread"] == 1.0
    assert all(row["seconds_per_image"] > 0 and row["load_before"] >= 0 for row in r["rows"])
    assert r["default_threads"] >= 1 and r["cores"] == 1
