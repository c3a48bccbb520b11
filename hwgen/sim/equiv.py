"""Prove the simulation popcount modules equal to the synthesised ones (Yosys + ABC).

hwgen.export writes each popcount module (`hwgen_popcount_<W>`, `hwgen_popcount_xnor_<W>`)
twice: the adder tree in hwgen_top.v (what is synthesised, and what Icarus simulates) and a
behavioural body in popcount_sim.v (what Verilator simulates, as 64-bit word operations). `prove_popcount` shows
the two equal for every input:

1. Debian's Yosys (0.23) reads both texts and renames them `gold` and `gate`. Each module
   has the same registers (the group counts `c<i>` and the sum `y`, each with a clock
   enable and a sync reset); `expose -evert-dff` cuts each into a free input (its
   present state) and an output (its next state), so that the two are equal as
   sequential blocks exactly when their next-state functions of (rst, en_a, en_y, a, the
   present states) are equal (the register names and initial values, all 0, are checked
   on the text).
   The miter (`miter -equiv -flatten`: one output, 1 where any output bit differs) is
   mapped to an and-inverter graph (`techmap; aigmap`) and written as AIGER.
2. ABC (`yosys-abc`) collapses the miter to a BDD (`strash; collapse`). A BDD is
   canonical, so the miter is unsatisfiable exactly when its output collapses to the
   constant 0. (A popcount is a symmetric function: its BDD has O(W^2) nodes, where a SAT
   proof of two differently associated adder trees is hard: Yosys's `sat -prove` did not
   finish a 128-bit tree against `$countones` in minutes.)

`prove_outdir` proves every width an exported design instantiates.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["EquivFailed", "module_text", "prove_popcount", "prove_outdir"]


class EquivFailed(AssertionError):
    """The two modules differ (or the proof could not be run to its end)."""


def module_text(verilog: str, name: str) -> str:
    """The text of module `name` in `verilog`, from its `module` line to its `endmodule`."""
    m = re.search(rf"^module {re.escape(name)}\(.*?^endmodule$", verilog, re.M | re.S)
    if m is None:
        raise EquivFailed(f"module {name} not found")
    return m.group(0) + "\n"


def _tools() -> tuple[str, str]:
    yosys, abc = shutil.which("yosys"), shutil.which("yosys-abc")
    if yosys is None or abc is None:
        raise FileNotFoundError("the popcount proof needs Debian's yosys and yosys-abc on PATH")
    return yosys, abc


def prove_popcount(synth_verilog: str, sim_verilog: str, width: int, xnor: bool = False,
                   timeout: float = 300) -> dict:
    """Prove popcount module `popcount_module_name(width, xnor)` of `sim_verilog` equal to
    the one in `synth_verilog` for all inputs; raise EquivFailed if not. Returns
    {'width', 'xnor', 'and_nodes'} (the miter's size before the collapse)."""
    from ..hw.tile import popcount_module_name
    name = popcount_module_name(width, xnor)
    yosys, abc = _tools()
    regs = [{n: int(digits, 16 if base == "h" else 10) for n, base, digits in re.findall(
                r"^\s*(?:output )?reg (?:\[\d+:0\] )?(\w+) = \d+'([hd])([0-9a-fA-F]+);",
                module_text(v, name), re.M)} for v in (synth_verilog, sim_verilog)]
    if regs[0].keys() != regs[1].keys() or "y" not in regs[0]:
        raise EquivFailed(f"{name}: the two modules' registers differ: {sorted(regs[0])} "
                          f"and {sorted(regs[1])}")
    bad = {n: v for r in regs for n, v in r.items() if v != 0}
    if bad:
        raise EquivFailed(f"{name}: registers without a zero initial value: {bad}")
    with tempfile.TemporaryDirectory(prefix="hwgen-equiv-") as tmp:
        tmp = Path(tmp)
        (tmp / "gold.v").write_text(module_text(synth_verilog, name))
        (tmp / "gate.v").write_text(module_text(sim_verilog, name))
        script = (f"read_verilog gold.v; rename {name} gold; read_verilog gate.v; "
                  f"rename {name} gate; proc; opt_clean; expose -evert-dff */t:$dff; "
                  "miter -equiv -flatten gold gate miter; hierarchy -top miter; "
                  "techmap; opt_clean; aigmap; opt_clean; write_aiger -zinit miter.aig")
        r = subprocess.run([yosys, "-q", "-p", script], cwd=tmp, capture_output=True,
                           text=True, timeout=timeout)
        if r.returncode:
            raise EquivFailed(f"{name}: yosys failed building the miter:\n{r.stdout}{r.stderr}")
        r = subprocess.run([abc, "-c", "read_aiger miter.aig; strash; print_stats; collapse; "
                            "write_blif miter.blif"], cwd=tmp, capture_output=True, text=True,
                           timeout=timeout)
        blif = tmp / "miter.blif"
        if r.returncode or not blif.is_file():
            raise EquivFailed(f"{name}: abc failed:\n{r.stdout}{r.stderr}")
        nodes = re.search(r"and =\s*(\d+)", r.stdout)
        body = [l.strip() for l in blif.read_text().splitlines()
                if l.strip() and not l.startswith("#")]
        out = body[body.index(".outputs po0") + 1:] if ".outputs po0" in body else None
        # The constant 0: `.names po0` with no input, and no row or the off-set row `0`.
        if out not in ([".names po0", ".end"], [".names po0", "0", ".end"]):
            raise EquivFailed(f"{name}: the simulation module differs from the synthesised "
                              f"one (the miter's output is not the constant 0: {out})")
    return {"width": width, "xnor": xnor, "and_nodes": int(nodes.group(1)) if nodes else None}


def prove_outdir(outdir, verilog: str = "hwgen_top.v",
                 sim: str = "sim_only/popcount_sim.v") -> list[dict]:
    """Prove every popcount module of an exported design equal to its simulation variant."""
    from ..export import popcount_kinds
    outdir = Path(outdir)
    synth, simv = (outdir / verilog).read_text(), (outdir / sim).read_text()
    kinds = popcount_kinds(synth)
    if popcount_kinds(simv) != kinds:
        raise EquivFailed(f"{sim} defines (width, xnor) {popcount_kinds(simv)}, "
                          f"{verilog} {kinds}")
    return [prove_popcount(synth, simv, w, x) for w, x in kinds]
