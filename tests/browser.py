"""Headless Chromium for the evidence page's tests (Debian's `chromium`, installed by .ci/run).

`load(page)` opens a file in a fresh profile with no network and returns the attributes the
page's own check script set on <html> once loaded (images decoded, script errors, fetches the
Content-Security-Policy blocked); `screenshot(page, png)` renders it to a PNG.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
         "--hide-scrollbars", "--virtual-time-budget=10000"]


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _run(args: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    exe = executable()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def load(page: Path) -> dict[str, str]:
    """The DOM after load: the data-* attributes of <html> (what the page's check script found)."""
    res = _run(["--dump-dom", Path(page).resolve().as_uri()])
    m = re.search(r"<html([^>]*)>", res.stdout)
    if res.returncode != 0 or m is None:
        raise RuntimeError(f"chromium exited {res.returncode}: {res.stderr[-2000:]}")
    return dict(re.findall(r'(data-[a-z-]+)="([^"]*)"', m.group(1)))


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 1600) -> Path:
    res = _run([f"--screenshot={Path(png).resolve()}", f"--window-size={width},{height}", Path(page).resolve().as_uri()])
    if res.returncode != 0 or not Path(png).is_file():
        raise RuntimeError(f"chromium exited {res.returncode}: {res.stderr[-2000:]}")
    return Path(png)
