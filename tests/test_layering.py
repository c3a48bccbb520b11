"""The import directions of docs/ARCHITECTURE.md, checked on the source (AST, lazy
imports inside functions included):

    cli -> tools (compile, cost, bench, study, demo, float_check) -> sim -> export -> hw
        -> passes -> ir,   with model, data and frontend beside them; design (the reader
        of a compiled OUTDIR) -> ir, used by sim and the tools;
    leaves (errors, atomic, device, energy_table, metrics, figures) import no other hwgen module.
"""

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "hwgen"

LEAVES = {"hwgen.errors", "hwgen.atomic", "hwgen.device", "hwgen.energy_table", "hwgen.metrics",
          "hwgen.figures"}
# layer -> (hwgen layers it may import besides itself and the leaves, third-party roots it
# must not import)
RULES = {
    "hwgen.ir": ((), {"torch", "amaranth", "cocotb", "scipy", "matplotlib", "sklearn"}),
    "hwgen.passes": (("hwgen.ir",), {"torch", "amaranth", "cocotb"}),
    "hwgen.hw": (("hwgen.ir",), {"torch", "cocotb"}),
    "hwgen.export": (("hwgen.hw", "hwgen.ir"), {"torch", "cocotb"}),
    "hwgen.design": (("hwgen.ir",), {"torch", "amaranth", "cocotb", "scipy", "matplotlib"}),
    "hwgen.sim": (("hwgen.export", "hwgen.hw", "hwgen.ir", "hwgen.data", "hwgen.model",
                   "hwgen.frontend", "hwgen.design"), set()),
    "hwgen.data": ((), {"amaranth", "cocotb"}),
    "hwgen.model": (("hwgen.ir", "hwgen.data"), {"amaranth", "cocotb"}),
    "hwgen.frontend": (("hwgen.ir", "hwgen.model", "hwgen.passes"), {"amaranth", "cocotb"}),
}
for leaf in LEAVES:
    RULES[leaf] = ((), {"torch", "amaranth", "cocotb"})


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of everything `module` imports, at any depth of its code."""
    out = set()
    base = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                root = base[:len(base) - node.level + 1]
                name = ".".join(root + ([node.module] if node.module else []))
            else:
                name = node.module
            out.add(name)
            out.update(f"{name}.{a.name}" for a in node.names)   # `from . import x`
    return out


def layer_of(name: str) -> str | None:
    for layer in sorted(RULES, key=len, reverse=True):
        if name == layer or name.startswith(layer + "."):
            return layer
    return None


def violations(module: str, source: str, is_package: bool = False) -> list[str]:
    layer = layer_of(module)
    if layer is None:                      # a tool module: may import anything
        return []
    allowed, banned = RULES[layer]
    bad = []
    for name in sorted(imports_of(source, module, is_package)):
        root = name.split(".")[0]
        if root in banned:
            bad.append(f"{module} imports {name} ({layer} must not use {root})")
        if root != "hwgen" or name == "hwgen":
            continue
        target = layer_of(name)
        if target is None:          # a tool module (compile, cost, cli, ...): above every layer
            if name != "hwgen.__version__":
                bad.append(f"{module} imports {name} (a tool module, above {layer})")
            continue
        if target == layer or target in LEAVES or target in allowed:
            continue
        bad.append(f"{module} imports {name} ({layer} may import only {', '.join(allowed) or 'leaves'})")
    return bad


def sources():
    for path in sorted(PKG.rglob("*.py")):
        yield module_name(path), path.read_text(), path.name == "__init__.py"


def test_every_import_goes_down_the_layers():
    bad = [v for m, s, pkg in sources() for v in violations(m, s, pkg)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, line", [
    ("hwgen.ir.interp", "from ..passes import lower"),          # ir -> passes
    ("hwgen.ir.core", "import torch"),                           # ir -> torch
    ("hwgen.hw.top", "from ..model.net import site_groups"),     # hw -> model
    ("hwgen.hw.controller", "from hwgen.passes.fold import fold_thresholds"),
    ("hwgen.passes.tile", "from ..hw.plan import read_plan"),    # passes -> hw
    ("hwgen.export", "from .compile import compile_model"),      # export -> a tool
    ("hwgen.device", "from .ir.core import IR"),                 # a leaf -> ir
    ("hwgen.design", "from .passes import run_pipeline"),       # design -> passes
    ("hwgen.design", "import torch"),                            # design -> torch
    ("hwgen.atomic", "from .design import load_design"),        # a leaf -> design
])
def test_a_planted_back_edge_is_caught(module, line):
    path = PKG.joinpath(*module.split(".")[1:]).with_suffix(".py")
    source = path.read_text() + "\n\ndef _planted():\n    " + line + "\n"
    assert violations(module, path.read_text()) == []
    assert violations(module, source), f"{line!r} in {module} was not caught"


def test_the_ir_imports_neither_torch_nor_amaranth_at_run_time():
    import subprocess
    code = ("import sys, hwgen.ir.interp, hwgen.ir.fast, hwgen.ir.verify, hwgen.ir.dump, "
            "hwgen.design; "
            "bad = [m for m in ('torch', 'amaranth', 'cocotb') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
