"""The import directions of docs/ARCHITECTURE.md, checked on the source (AST, lazy
imports inside functions included):

    cli -> tools (compile, cost, bench, study, demo, float_check) -> sim -> export -> hw
        -> passes -> ir,   with model, data and frontend beside them; design (the reader
        of a compiled OUTDIR) -> ir, used by sim and the tools;
    leaves (errors, atomic, device, energy_table, metrics, figures, config, engine) import no
    other hwgen module; api (the Python API) is a tool.

Inside the QONNX frontend package each module imports only those before it in QONNX_ORDER,
and every hwgen name imported anywhere is a module or a name in one.
"""

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "hwgen"

LEAVES = {"hwgen.errors", "hwgen.atomic", "hwgen.device", "hwgen.energy_table", "hwgen.metrics",
          "hwgen.figures", "hwgen.config", "hwgen.engine"}
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
QONNX = "hwgen.frontend.qonnx"
QONNX_ORDER = ("load", "graph", "inputs", "fold", "walk", "reference", "check")


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


def order_violations(module: str, source: str) -> list[str]:
    """Imports of a later (or unknown) module of the QONNX package by one of its modules."""
    if not module.startswith(QONNX + "."):
        return []
    mine = QONNX_ORDER.index(module.split(".")[3])
    bad = []
    for name in sorted(imports_of(source, module, False)):
        if name == QONNX or name.startswith(QONNX + "."):      # the package itself: a cycle
            sub = (name.split(".") + [""])[3]
            if sub not in QONNX_ORDER[:mine]:
                bad.append(f"{module} imports {name} (the QONNX package's order is "
                           f"{', '.join(QONNX_ORDER)})")
    return bad


def _is_module(name: str) -> bool:
    path = PKG.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def unresolved(module: str, source: str, is_package: bool = False) -> list[str]:
    """hwgen names `module` imports that are neither a module nor a name in one (a
    relative import one level short or long)."""
    return [f"{module} imports {name}: no such module"
            for name in sorted(imports_of(source, module, is_package))
            if name.split(".")[0] == "hwgen" and not (_is_module(name)
                                                      or _is_module(name.rsplit(".", 1)[0]))]


def sources():
    for path in sorted(PKG.rglob("*.py")):
        yield module_name(path), path.read_text(), path.name == "__init__.py"


def test_every_import_goes_down_the_layers():
    bad = [v for m, s, pkg in sources() for v in violations(m, s, pkg)]
    assert not bad, "\n".join(bad)


def test_the_qonnx_package_imports_in_order_and_every_import_resolves():
    mods = {m for m, _, _ in sources() if m.startswith(QONNX + ".")}
    assert mods == {f"{QONNX}.{m}" for m in QONNX_ORDER}      # the order names every module
    bad = [v for m, s, pkg in sources() for v in order_violations(m, s) + unresolved(m, s, pkg)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("module, line, check", [
    ("hwgen.frontend.qonnx.graph", "from .walk import import_qonnx", order_violations),
    ("hwgen.frontend.qonnx.load", "from .check import qonnx_vs_int", order_violations),
    ("hwgen.frontend.qonnx.fold", "from . import import_qonnx", order_violations),
    ("hwgen.frontend.qonnx.inputs", "from ..ir.interp import quantize", unresolved),
    ("hwgen.frontend.qonnx.walk", "from .missing import x", unresolved),
])
def test_a_planted_qonnx_import_is_caught(module, line, check):
    path = PKG.joinpath(*module.split(".")[1:]).with_suffix(".py")
    source = path.read_text() + "\n\ndef _planted():\n    " + line + "\n"
    assert check(module, path.read_text()) == []
    assert check(module, source), f"{line!r} in {module} was not caught"


@pytest.mark.parametrize("module, line", [
    ("hwgen.ir.interp", "from ..passes import lower"),          # ir -> passes
    ("hwgen.ir.core", "import torch"),                           # ir -> torch
    ("hwgen.hw.top", "from ..model.net import site_groups"),     # hw -> model
    ("hwgen.hw.controller", "from hwgen.passes.fold import fold_thresholds"),
    ("hwgen.passes.tile", "from ..hw.plan import read_plan"),    # passes -> hw
    ("hwgen.passes.fold", "from ..frontend.qonnx.fold import reachable"),  # passes -> frontend
    ("hwgen.frontend.qonnx.fold", "from ...hw.controller import acc_width"),  # frontend -> hw
    ("hwgen.export", "from .compiler import compile_model"),      # export -> a tool
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


def test_study_report_does_not_reach_back_into_the_steps():
    """steps -> report, never report -> steps (the circle through report_t is broken: both
    take it from the configuration)."""
    src = (PKG / "study" / "report.py").read_text()
    assert not {n for n in imports_of(src, "hwgen.study.report", False)
                if n.startswith("hwgen.study.steps")}
    planted = src + "\nfrom .steps import STEPS\n"
    assert {n for n in imports_of(planted, "hwgen.study.report", False)
            if n.startswith("hwgen.study.steps")}


# `python -m` entries of their own, with their own argument parsing and printing
SCRIPTS = {"hwgen.float_check"}


def prints_and_env_writes(source: str) -> tuple[list[int], list[int]]:
    """Lines that call print(), and lines that write os.environ outside any function (at
    import time)."""
    tree = ast.parse(source)
    prints = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Call)
              and isinstance(n.func, ast.Name) and n.func.id == "print"]
    env = []
    for stmt in tree.body:                       # module level only
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        for n in ast.walk(stmt):
            if isinstance(n, ast.Attribute) and n.attr in ("environ", "putenv") and \
                    not isinstance(getattr(n, "ctx", None), ast.Load) or \
                    (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                     and n.func.attr in ("setdefault", "update", "putenv")
                     and "environ" in ast.unparse(n.func)):
                env.append(n.lineno)
            elif isinstance(n, ast.Subscript) and isinstance(n.ctx, ast.Store) and \
                    "environ" in ast.unparse(n.value):
                env.append(n.lineno)
    return prints, env


def test_library_code_neither_prints_nor_sets_the_environment_at_import():
    """Printing and exit codes live in hwgen.cli; no module sets an environment variable
    when it is imported."""
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        name = module_name(path)
        prints, env = prints_and_env_writes(path.read_text())
        if prints and not (name.startswith("hwgen.cli") or name in SCRIPTS):
            bad.append(f"{name}: print at lines {prints}")
        if env:
            bad.append(f"{name}: sets the environment at import, lines {env}")
    assert not bad, bad


def test_the_print_and_environment_checker_bites():
    assert prints_and_env_writes("def f():\n    print(1)\n")[0] == [2]
    assert prints_and_env_writes("import os\nos.environ.setdefault('A', '1')\n")[1] == [2]
    assert prints_and_env_writes("import os\nos.environ['A'] = '1'\n")[1] == [2]
    assert prints_and_env_writes("import os\ndef f():\n    os.environ['A'] = '1'\n")[1] == []
