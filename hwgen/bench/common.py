"""What every bench shares: one JSON record per run, a text table, atomic output.

A record is `{"format": "hwgen-bench", "version": 1, "bench": NAME, "label": ..., "context":
{...}, ...the bench's own fields}`. The context says what was measured where: the git
commit of the hwgen sources (null outside a checkout) and whether they had uncommitted
changes, the versions, the CPU count and the load average at the start and at the end of
the run (the machine is shared, so a figure taken under load is an upper bound on time).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from .. import __version__
from ..atomic import write_text
from ..errors import HwgenError

__all__ = ["FORMAT", "VERSION", "new_record", "finish", "table", "fmt", "git_state"]

FORMAT = "hwgen-bench"
VERSION = 1


def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the checkout hwgen is imported from, or (None, None)."""
    src = Path(__file__).resolve().parents[2]

    def git(*args):
        return subprocess.run(["git", "-C", str(src), *args], capture_output=True, text=True,
                              timeout=10, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        dirty = bool(git("status", "--porcelain", "--untracked-files=no").strip())
    except (OSError, subprocess.SubprocessError):
        return None, None
    return commit or None, dirty


def _load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def new_record(bench: str, label: str | None = None) -> dict:
    """A record for one run of `bench`, with its context (load taken now)."""
    commit, dirty = git_state()
    return {
        "format": FORMAT, "version": VERSION, "bench": bench, "label": label,
        "context": {
            "commit": commit, "dirty": dirty, "hwgen": __version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": None,
            "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "load_avg_start": _load(), "load_avg_end": None,
        },
    }


def finish(rec: dict, text: str, json_path=None) -> str:
    """Take the end load, write the record to `json_path` (atomically) if given, and return
    `text` (ending in a newline) for the command line to print."""
    rec["context"]["load_avg_end"] = _load()
    if "torch" in sys.modules:
        rec["context"]["torch_threads"] = sys.modules["torch"].get_num_threads()
    if json_path:
        try:
            write_text(json_path, json.dumps(rec, sort_keys=True, indent=1, allow_nan=False) + "\n")
        except OSError as e:
            raise HwgenError(f"writing {json_path} failed: {e}") from None
    return text if text.endswith("\n") else text + "\n"


def fmt(v, digits: int = 3) -> str:
    """A number for a table: ints with thousands separators, floats to `digits` decimals
    (or 3 significant figures when small), None as '-'."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if v != 0 and abs(v) < 10 ** -digits * 100:
        return f"{v:.3g}"
    return f"{v:,.{digits}f}"


def table(header: list[str], rows: list[list], title: str | None = None) -> str:
    """Rows as aligned text; numbers right-aligned, other cells left-aligned."""
    cells = [[c if isinstance(c, str) else fmt(c) for c in r] for r in rows]
    numeric = [all(not isinstance(r[j], str) for r in rows) if rows else False
               for j in range(len(header))]
    width = [max([len(header[j])] + [len(r[j]) for r in cells]) for j in range(len(header))]

    def line(r):
        return "  ".join(c.rjust(w) if num else c.ljust(w)
                         for c, w, num in zip(r, width, numeric)).rstrip()

    out = ([title] if title else []) + [line(header), "-" * min(sum(width) + 2 * len(width) - 2, 88)]
    out += [line(r) for r in cells]
    return "\n".join(out) + "\n"
