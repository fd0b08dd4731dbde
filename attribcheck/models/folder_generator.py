"""A Generator over images already collected from a black-box suspect (an API, say).

The folder holds `queries.jsonl`: one {"prompt", "seed", "file"} object per image (other
keys are ignored). The folder is untrusted: every row is validated when the folder is
opened, and `file` must name a regular file inside the folder, symlinks resolved, so a row
cannot make the audit read `/etc/passwd` or the owner's own key images (which would be
attributed 12 out of 12). Images keep their transparency (HxWx4) when they have one: only
the distance step knows the key's background to composite them onto.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Sequence

import numpy as np

from attribcheck import images
from attribcheck.errors import AttribcheckError, InputError, IntegrityError
from attribcheck.safe_files import read_text_bounded, regular_file

MANIFEST = "queries.jsonl"
SHOWN = 3  # missing queries named in an error, before the count


class FolderGenerator:
    def __init__(self, folder: str | Path, name: str | None = None, max_side: int | None = None):
        self.folder = Path(folder)
        self.name = name or self.folder.name
        self.manifest = self.folder / MANIFEST
        self.max_side = max_side
        if not self.manifest.exists():
            raise InputError("not found: collect the suspect's images first", self.manifest)
        self._root = self.folder.resolve()
        self._files: dict[tuple[str, int], Path] = {}
        text = read_text_bounded(self.manifest)  # a regular file (never a FIFO), of bounded size
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                self._add(n, line)
        if not self._files:
            raise InputError("no queries", self.manifest)

    def _add(self, n: int, line: str) -> None:
        where = f"{self.manifest} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", where) from e
        except RecursionError:
            raise InputError("JSON nested too deep", where) from None
        except ValueError as e:  # an integer of 5,000 digits
            raise InputError(f"not valid JSON ({str(e).splitlines()[0][:120]})", where) from None
        if not isinstance(row, dict):
            raise InputError("must be a JSON object with prompt, seed and file", where)
        prompt, seed, file = row.get("prompt"), row.get("seed"), row.get("file")
        if not isinstance(prompt, str):
            raise InputError(f"{prompt!r} is not a string", where, "prompt")
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise InputError(f"{seed!r} is not an integer", where, "seed")
        if not isinstance(file, str) or not file:
            raise InputError(f"{file!r} is not a file name", where, "file")
        path = self._inside(file, where)
        previous = self._files.get((prompt, seed))
        if previous is not None and previous != path:
            raise InputError(f"({prompt!r}, {seed}) was already answered by {previous.relative_to(self._root)}; "
                             f"one image per query", where, "file")
        self._files[(prompt, seed)] = path

    def _inside(self, file: str, where: str) -> Path:
        """The resolved path of `file`, which must stay inside the folder."""
        if (PurePosixPath(file).is_absolute() or PureWindowsPath(file).is_absolute() or PureWindowsPath(file).drive
                or ".." in PurePosixPath(file.replace("\\", "/")).parts):
            raise IntegrityError(f"{file!r} points outside the suspect's folder", where, "file")
        path = (self._root / file).resolve()  # follows symlinks, so one that escapes is caught
        if not path.is_relative_to(self._root):
            raise IntegrityError(f"{file!r} resolves outside the suspect's folder (a symlink?)", where, "file")
        if not path.exists():
            raise InputError(f"{file!r} is not a file in the suspect's folder", where, "file")
        regular_file(path, where, "file")  # a FIFO or a device would hang the read
        if path == self.manifest.resolve():
            raise InputError(f"{file!r} is the manifest, not an image", where, "file")
        return path

    def file_for(self, prompt: str, seed: int) -> Path | None:
        """Where the answer to (prompt, seed) came from: errors about an image name it."""
        return self._files.get((prompt, int(seed)))

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[np.ndarray]:
        """The collected images, HxWx3 RGB, or HxWx4 RGBA for files with transparency."""
        pairs = [(p, int(s)) for p, s in zip(prompts, seeds)]
        missing = [q for q in pairs if q not in self._files]
        if missing:
            shown = ", ".join(repr(q) for q in missing[:SHOWN]) + (", ..." if len(missing) > SHOWN else "")
            raise InputError(f"{len(missing)} of {len(pairs)} queries were never collected: {shown} "
                             f"(every query to ask: attribcheck keys queries --keys <key set> --out queries.jsonl)",
                             self.manifest, "prompt/seed")
        out = []
        for q in pairs:
            path = self._files[q]
            try:  # checked again here: the file may have been swapped since the folder was opened
                out.append(images.load(path, keep_alpha=True, max_side=self.max_side))
            except AttribcheckError as e:  # the same class, said of the row that names the file
                raise type(e)(f"cannot read {path.relative_to(self._root)}: {e.message}", self.manifest,
                              "file") from None
            except (OSError, ValueError) as e:
                raise InputError(f"cannot read {path.relative_to(self._root)}: {str(e).splitlines()[0]}",
                                 self.manifest, "file") from e
        return out


def collect(generator, prompts: Sequence[str], seeds: Sequence[int], folder: str | Path) -> Path:
    """Query `generator` for every (prompt, seed) pair and store the answers as a folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    imgs = generator.generate(list(prompts), list(seeds))
    rows = []
    for i, (p, s, im) in enumerate(zip(prompts, seeds, imgs)):
        name = f"{i:05d}.png"
        images.save(im, folder / name)
        rows.append(json.dumps({"prompt": p, "seed": int(s), "file": name}, allow_nan=False) + "\n")
    from attribcheck.outputs import write_atomic

    write_atomic(folder / MANIFEST, "".join(rows), MANIFEST)  # last: a folder with a manifest is whole
    return folder
