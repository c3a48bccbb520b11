"""Files: atomic, deterministic output (write to a temporary sibling, then rename), the one
file hash every stage names its inputs and outputs by, and the one rule on what an output
may replace.

The rule: hwgen never destroys what it did not write. An existing output file may be
overwritten only when its content marks it as an earlier hwgen output (`is_own_file`); an
output folder may be replaced only when it is empty or an earlier `hwgen compile` output
(its manifest.json, and no file in it that is neither listed there nor an hwgen output
itself). Everything else is refused with one line before any work, and nothing changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path

from .errors import HwgenError

__all__ = ["sha256_file", "write_bytes", "write_text", "atomic_dir", "is_own_file",
           "check_output_file", "check_output_dir", "MANIFEST", "MANIFEST_FORMAT",
           "NPZ_MARK", "PNG_SOFTWARE", "TEXT_MARK"]

MANIFEST = "manifest.json"           # what marks a folder as `hwgen compile`'s
MANIFEST_FORMAT = "hwgen-manifest"
NPZ_MARK = "hwgen_format"            # the array every .npz hwgen writes carries
PNG_SOFTWARE = "hwgen"               # the PNG `Software` text chunk of hwgen's figures
TEXT_MARK = "hwgen"                  # the first line of a text output (.md, .txt, .log) names it

_REFUSE = "choose an empty or new folder, or remove it"


def sha256_file(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- what hwgen wrote ---------------------------------------------------------------------------

def _png_software(path: Path) -> str | None:
    """The PNG's `Software` tEXt value, or None (matplotlib writes text chunks before IDAT)."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:
            head = f.read(8)
            if len(head) < 8:
                return None
            n, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            data = f.read(n)
            f.seek(4, os.SEEK_CUR)                        # the chunk's CRC
            if kind == b"tEXt" and b"\0" in data:
                key, _, value = data.partition(b"\0")
                if key == b"Software":
                    return value.decode("latin-1")


def is_own_file(path) -> bool:
    """Whether the regular file `path` is recognisably an earlier hwgen output, by its
    content: a JSON object whose "format" starts with "hwgen", a PNG whose `Software` text
    is "hwgen", an .npz holding the array `hwgen_format`, a model.pt (torch's zip) whose
    pickle holds the "hwgen-model" tag, or a .md/.txt/.log text whose first line names
    hwgen. Anything else, or anything unreadable, is not."""
    path = Path(path)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            d = json.loads(path.read_bytes())
            return isinstance(d, dict) and str(d.get("format", "")).startswith("hwgen")
        if suffix == ".png":
            return _png_software(path) == PNG_SOFTWARE
        if suffix == ".npz":
            with zipfile.ZipFile(path) as z:
                return f"{NPZ_MARK}.npy" in z.namelist()
        if suffix == ".pt":
            with zipfile.ZipFile(path) as z:
                pkl = [n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
                return len(pkl) == 1 and b"hwgen-model" in z.read(pkl[0])
        if suffix in (".md", ".txt", ".log"):
            with open(path, "rb") as f:
                return TEXT_MARK.encode() in f.readline(4096)
    except (OSError, ValueError, zipfile.BadZipFile):
        return False
    return False


def check_output_file(path) -> None:
    """Raise HwgenError (one line) unless `path` is free for an output file: absent, or an
    earlier hwgen output (`is_own_file`)."""
    path = Path(path)
    if path.is_dir():
        raise HwgenError(f"{path}: is a folder; give a file name for this output")
    if os.path.lexists(path) and not (path.is_file() and not path.is_symlink()
                                      and is_own_file(path)):
        raise HwgenError(f"{path}: exists and is not an earlier hwgen output; choose a new "
                         f"file name, or remove it")


def _foreign(path: Path) -> str | None:
    """The first entry of folder `path` that hwgen did not write (relative), or None. A
    folder without a valid manifest.json is foreign as a whole ('.')."""
    try:
        man = json.loads((path / MANIFEST).read_text())
    except (OSError, ValueError):
        return "."
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT \
            or not isinstance(man.get("files"), dict):
        return "."
    listed = set(man["files"]) | {MANIFEST}
    for root, dirs, files in os.walk(path):        # symlinks are not followed
        base = Path(root)
        for name in sorted(dirs):
            if (base / name).is_symlink():
                return (base / name).relative_to(path).as_posix()
        for name in sorted(files):
            p = base / name
            rel = p.relative_to(path).as_posix()
            if p.is_symlink() or not p.is_file():
                return rel
            if rel not in listed and not is_own_file(p):
                return rel
    return None


def check_output_dir(path, inputs=()) -> None:
    """Raise HwgenError (one line) unless folder `path` may be (re)placed by an output: it
    must not be the current folder or one above it, nor hold any of `inputs`; if it exists
    it must be empty or an earlier `hwgen compile` output holding nothing foreign."""
    path = Path(path)
    real = path.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise HwgenError(f"{path}: is the current folder or one above it; give a new folder "
                         f"for the output")
    for src in inputs:
        s = Path(src).resolve()
        if real == s or real in s.parents:
            raise HwgenError(f"{path}: holds the input {src}; give an output folder that "
                             f"does not contain it")
    if not os.path.lexists(path):
        return
    if path.is_symlink() or not path.is_dir():
        raise HwgenError(f"{path}: exists and is not a folder; {_REFUSE}")
    if not any(path.iterdir()):
        return
    bad = _foreign(path)
    if bad == ".":
        raise HwgenError(f"{path}: is not empty and is not an earlier hwgen output (no "
                         f"{MANIFEST}); {_REFUSE}")
    if bad is not None:
        raise HwgenError(f"{path}: holds {bad}, which hwgen did not write; {_REFUSE}")


# -- writing -----------------------------------------------------------------------------------

def write_bytes(path, data: bytes) -> None:
    """Write `data` to `path` atomically; refused (HwgenError) if `path` exists and is not
    an earlier hwgen output."""
    path = Path(path)
    check_output_file(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())     # mkstemp makes 0600; outputs are for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path, text: str) -> None:
    write_bytes(path, text.encode())


@contextmanager
def atomic_dir(path, inputs=()):
    """Yield a new temporary folder next to `path`; on success it takes `path`'s place.

    `path` is checked first (`check_output_dir`; `inputs` are the files the output is made
    from) and again just before the swap. The swap moves the old folder aside, renames the
    new one in and then removes the old; if the rename fails the old folder is put back.
    On any error or interrupt the temporary folder is removed and `path` is as it was."""
    check_output_dir(path, inputs)
    path = Path(os.path.abspath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp.", dir=path.parent))
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        check_output_dir(path, inputs)       # it may have changed while the output was made
        _swap(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap(new: Path, path: Path) -> None:
    """Put folder `new` at `path`, keeping the old `path` until the new one is in place."""
    old = None
    try:
        if os.path.lexists(path):
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old)           # rename onto the empty placeholder
        os.replace(new, path)
    finally:
        if old is not None:
            if not os.path.lexists(path):
                os.replace(old, path)       # the new folder did not get in: restore the old
            else:
                shutil.rmtree(old, ignore_errors=True)
