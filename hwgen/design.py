"""A compiled design: an OUTDIR of `hwgen compile`, checked before it is used.

`load_design(outdir)` is the one reader of an OUTDIR. It reads manifest.json, checks the
sha256 of every file the manifest lists (a file edited after `hwgen compile` is refused
with one line naming it), parses ir.json and verifies the IR (hwgen.ir.verify). The
returned `Design` is what every command that uses a compiled folder works from: predict,
sim, report, summary, bench cycles / sim and the study.

`write_manifest(folder, ...)` writes the manifest over the files of a folder being made,
so the writer (hwgen.compiler) and the reader share one definition of it.

numpy and the IR only: no torch, no amaranth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any, Mapping

from .atomic import MANIFEST, MANIFEST_FORMAT, sha256_file
from .errors import HwgenError
from .ir.core import IR, loads
from .ir.verify import VerifyError, verify

__all__ = ["Design", "load_design", "read_ir", "write_manifest", "MANIFEST", "MANIFEST_VERSION"]

MANIFEST_VERSION = 1
IR_FILE, PORTS_FILE, VERILOG_FILE = "ir.json", "ports.json", "hwgen_top.v"


@dataclass(frozen=True)
class Design:
    """A checked OUTDIR. `manifest`: manifest.json as read; `files`: name -> sha256 of
    every file it lists (each checked at load); `ir`: the verified integer-stage IR;
    `options`: the compile options; `lanes`: a view of the IR's read plans (`IR.lanes`:
    None for the array, one beat per read), which is what the hardware is built from."""
    outdir: Path
    manifest: Mapping[str, Any]
    ir: IR
    options: Mapping[str, Any]

    @property
    def lanes(self) -> int | None:
        return self.ir.lanes

    @property
    def files(self) -> Mapping[str, str]:
        return self.manifest["files"]

    @property
    def has_verilog(self) -> bool:
        return VERILOG_FILE in self.files and PORTS_FILE in self.files

    @property
    def model_file(self) -> Path | None:
        """The copy of the compiled model (model.pt or model.onnx), if the design holds one."""
        for name in ("model.pt", "model.onnx"):
            if name in self.files:
                return self.outdir / name
        return None

    def path(self, name: str) -> Path:
        """OUTDIR/name for a file the manifest lists (its hash was checked at load);
        HwgenError for any other name."""
        if name not in self.files:
            hint = " (compiled with --no-verilog?)" if name in (VERILOG_FILE, PORTS_FILE) else ""
            raise HwgenError(f"{self.outdir}: has no {name}{hint}; recompile with "
                             f"`hwgen compile MODEL -o {self.outdir}`")
        return self.outdir / name


def _manifest(outdir: Path) -> dict:
    f = outdir / MANIFEST
    if not f.is_file():
        raise HwgenError(f"{outdir}: no {MANIFEST}, so not an OUTDIR of hwgen compile (run "
                         f"`hwgen compile MODEL -o {outdir}`)")
    try:
        man = json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise HwgenError(f"{f}: not valid JSON ({str(e).splitlines()[0]}); recompile") from None
    if not isinstance(man, dict) or man.get("format") != MANIFEST_FORMAT:
        raise HwgenError(f"{f}: not an hwgen manifest (format tag missing or wrong); recompile")
    files = man.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise HwgenError(f"{f}: has no file list; recompile")
    for name in files:
        p = PurePosixPath(name)
        if p.is_absolute() or ".." in p.parts or name == MANIFEST:
            raise HwgenError(f"{f}: lists {name!r}, which is not a file of the folder; recompile")
    return man


def load_design(outdir) -> Design:
    """The checked design in `outdir`; HwgenError (one line) naming the first problem: no
    folder, no manifest, a listed file missing or edited, an IR that is not valid."""
    outdir = Path(outdir)
    if not outdir.is_dir():
        what = "not a folder" if outdir.exists() else "no such folder"
        raise HwgenError(f"{outdir}: {what} (give an OUTDIR of hwgen compile)")
    man = _manifest(outdir)
    files = man["files"]
    if IR_FILE not in files:
        raise HwgenError(f"{outdir / MANIFEST}: lists no {IR_FILE}; recompile")
    for name in sorted(files):
        f = outdir / name
        if not f.is_file():
            raise HwgenError(f"{f}: missing (listed in {MANIFEST}); recompile")
        if sha256_file(f) != files[name]:
            raise HwgenError(f"{f}: sha256 differs from {MANIFEST} (edited after hwgen "
                             f"compile?); recompile")
    irf = outdir / IR_FILE
    ir = _parse_ir(irf)
    if ir.stage != "integer":
        raise HwgenError(f"{irf}: not a compiled (integer-stage) IR; recompile")
    if any(l.plan is None for l in ir.layers):
        raise HwgenError(f"{irf}: has no read plans (hwgen.passes.schedule); recompile")
    options = man.get("options") if isinstance(man.get("options"), dict) else {}
    return Design(outdir=outdir, manifest=MappingProxyType(man), ir=ir,
                  options=MappingProxyType(options))


def _parse_ir(path: Path) -> IR:
    try:
        ir = loads(path.read_text())
        verify(ir)
    except (OSError, ValueError, TypeError, KeyError, VerifyError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise HwgenError(f"{path}: not a valid hwgen IR ({msg})") from None
    return ir


def read_ir(target) -> tuple[IR, Design | None]:
    """The IR of an OUTDIR (checked, `load_design`) or of an ir.json file; an ir.json that
    sits in a compiled OUTDIR is read through it, so its hash is checked too. A lone
    ir.json is parsed and verified and may be of either stage."""
    path = Path(target)
    if path.is_dir():
        d = load_design(path)
        return d.ir, d
    if not path.is_file():
        raise HwgenError(f"{path}: no such file or folder (give an OUTDIR of hwgen compile "
                         f"or an ir.json)")
    if path.name == IR_FILE and (path.parent / MANIFEST).is_file():
        d = load_design(path.parent)
        return d.ir, d
    return _parse_ir(path), None


def write_manifest(folder, input_name: str, input_sha256: str, options: Mapping[str, Any],
                   tools: Mapping[str, Any]) -> dict:
    """Write `folder`/manifest.json over every file now in `folder` (sha256 each) and
    return it. Deterministic: sorted keys, relative names, no timestamps."""
    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): sha256_file(p)
             for p in sorted(folder.rglob("*")) if p.is_file() and p != folder / MANIFEST}
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                "input": {"name": input_name, "sha256": input_sha256},
                "options": dict(options), "tools": dict(tools), "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, sort_keys=True, indent=1) + "\n")
    return manifest
