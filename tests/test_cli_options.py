"""The front door of issue 18: hostile model.pt files and folders, `--inputs` arrays and the
options between them. Every refusal is exit 2, exactly one line on stderr of hwgen's own
(the file and the problem: no traceback, no torch text, no terminal escapes), and nothing
written. Every option's help shows its default."""

import argparse
import io
import logging
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from hwgen.cli import _Help, _one_line, build_parser, main
from hwgen.compiler import compile_model
from hwgen.data import load_inputs
from hwgen.errors import HwgenError
from hwgen.ir.core import replace
from hwgen.passes import add_sites

from support import random_ir, random_model

TORCH_TEXT = ("Weights only load failed", "weights_only=False", "In PyTorch", "UserWarning",
              "PytorchStreamReader", "inline_container")


def tree(d: Path) -> dict:
    return {p.relative_to(d).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(d.rglob("*"))}


def refused(capsys, argv, needle) -> str:
    """Run `hwgen argv` in process: exit 2 and exactly one clean stderr line holding needle."""
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:          # argparse errors
        rc = e.code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    line = lines[0]
    assert line.startswith("hwgen: error: ") and needle in line, line
    assert "Traceback" not in err and "\x1b" not in err, err
    assert not any(t in err for t in TORCH_TEXT + ("allow_pickle",)), err
    return line


def refused_subprocess(cwd, argv, needle) -> str:
    """The same through a real process, whose stderr also shows warnings and C++ messages."""
    r = subprocess.run([sys.executable, "-m", "hwgen.cli", *map(str, argv)], cwd=cwd,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert needle in lines[0] and "\x1b" not in r.stderr, r.stderr
    assert not any(t in r.stderr for t in TORCH_TEXT), r.stderr
    return lines[0]


# ---------------------------------------------------------------------------- model.pt files

class _Payload:
    """A pickle that runs code when unpickled: it must be refused, never run."""
    marker = None

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def good_pt(tmp_path_factory):
    return random_model(tmp_path_factory.mktemp("good") / "model.pt", "c4,p2,f10", seed=1)


def _hostile(kind: str, d: Path, good: Path) -> Path:
    """The file (or folder) of `kind` in d."""
    f = d / "x.pt"
    ck = torch.load(good, weights_only=True)
    if kind == "reduce":                   # a bare pickle
        _Payload.marker = d / "PWNED"
        f.write_bytes(pickle.dumps(_Payload()))
    elif kind == "reduce_zip":             # the same inside a torch.save archive
        _Payload.marker = d / "PWNED"
        torch.save({"format": "hwgen-model", "p": _Payload()}, f)
    elif kind == "truncated":
        f.write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])
    elif kind == "empty":
        f.write_bytes(b"")
    elif kind == "random":
        f.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "foreign_zip":
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("notes.txt", "hello")
    elif kind == "corrupt_member":          # a byte of a tensor flipped: the CRC catches it
        raw = bytearray(good.read_bytes())
        with zipfile.ZipFile(good) as z:
            info = next(i for i in z.infolist() if "/data/" in i.filename)
        h = info.header_offset               # the local header: name and extra lengths
        start = h + 30 + int.from_bytes(raw[h + 26:h + 28], "little") + \
            int.from_bytes(raw[h + 28:h + 30], "little")
        raw[start + 1] ^= 0xFF
        f.write_bytes(bytes(raw))
    elif kind == "tensor":
        torch.save(torch.zeros(3), f)
    elif kind == "format":
        torch.save(dict(ck, format="other"), f)
    elif kind == "escape_tag":              # a tag with a newline and a terminal escape
        torch.save(dict(ck, format="\x1b[31mred\nsecond line"), f)
    elif kind == "version":
        torch.save(dict(ck, version=2), f)
    elif kind == "missing_key":
        torch.save({k: v for k, v in ck.items() if k != "state_dict"}, f)
    elif kind == "arch_key":
        torch.save(dict(ck, arch={k: v for k, v in ck["arch"].items() if k != "dropout"}), f)
    elif kind == "shape":
        sd = dict(ck["state_dict"], **{"blocks.0.layer.weight": torch.zeros(2, 2)})
        torch.save(dict(ck, state_dict=sd), f)
    elif kind == "folder":
        f.mkdir()
    elif kind == "missing":
        pass
    elif kind == "unreadable":
        f.write_bytes(good.read_bytes())
        f.chmod(0)
    return f


PT_CASES = {
    "reduce": "not a torch.save zip archive",
    "reduce_zip": "its pickle holds objects or instructions other than",
    "truncated": "not a torch.save zip archive, or truncated",
    "empty": "empty file",
    "random": "not a torch.save zip archive",
    "foreign_zip": "not one torch.save wrote",
    "corrupt_member": "is corrupt",
    "tensor": "must hold a dict, not Tensor",
    "format": "format tag is 'other', expected 'hwgen-model'",
    "escape_tag": r"format tag is '\x1b[31mred\nsecond line'",
    "version": "format version 2 is not supported (expected 1)",
    "missing_key": "missing key 'state_dict'",
    "arch_key": "bad architecture: no key 'dropout'",
    "shape": "has shape (2, 2), expected (4, 1, 3, 3)",
    "folder": "not a regular file",
    "missing": "no such file",
    "unreadable": "cannot be read (Permission denied)",
}
# torch writes warnings and long messages for these: checked in a real process
IN_SUBPROCESS = {"reduce", "reduce_zip", "truncated", "random", "foreign_zip"}


@pytest.mark.parametrize("kind", sorted(PT_CASES))
def test_hostile_model_pt_one_line(kind, good_pt, tmp_path, capsys):
    if kind == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a chmod 000 file: permissions are bypassed")
    d = tmp_path / "d"
    d.mkdir()
    f = _hostile(kind, d, good_pt)
    before = tree(tmp_path)
    argv = ["compile", f, "-o", tmp_path / "out"]
    if kind in IN_SUBPROCESS:
        line = refused_subprocess(tmp_path, argv, PT_CASES[kind])
    else:
        line = refused(capsys, argv, PT_CASES[kind])
    assert str(f) in line                      # names the file
    assert tree(tmp_path) == before            # nothing written, no payload run
    assert not (d / "PWNED").exists()


def test_torch_warnings_do_not_reach_the_user(good_pt, tmp_path):
    """A model.pt saved with pickle protocol 4: torch warns about the protocol, then its
    safe loader refuses an instruction; the user sees hwgen's one line only."""
    f = tmp_path / "p4.pt"
    torch.save(torch.load(good_pt, weights_only=True), f, pickle_protocol=4)
    before = tree(tmp_path)
    refused_subprocess(tmp_path, ["summary", f], "its pickle holds objects or instructions")
    assert tree(tmp_path) == before


def test_model_pt_errors_reach_every_reader(good_pt, tmp_path, capsys):
    """summary and eval read model.pt through the same checked loader."""
    f = _hostile("reduce_zip", tmp_path, good_pt)
    for argv in (["summary", f], ["eval", f]):
        refused(capsys, argv, "its pickle holds objects or instructions")
    assert not (tmp_path / "PWNED").exists()


def test_onnx_folder_is_not_a_regular_file(tmp_path, capsys):
    (tmp_path / "x.onnx").mkdir()
    refused(capsys, ["compile", tmp_path / "x.onnx", "-o", tmp_path / "out"],
            "x.onnx: not a regular file")
    refused(capsys, ["compile", tmp_path / "y.onnx", "-o", tmp_path / "out"],
            "y.onnx: no such file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.onnx"]


def test_one_line_escapes_controls():
    """The last guard: what a user's file puts in a message reaches the terminal as one
    printable line (a planted newline and escape)."""
    assert _one_line("a\nb\x1b[31mc\td") == "a b\\x1b[31mc d"
    assert _one_line("plain: text (x)") == "plain: text (x)"


# ---------------------------------------------------------------------------- --inputs

@pytest.fixture(scope="module")
def design(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    model = random_model(d / "m.pt", "c4,p2,f10", seed=2)
    compile_model(model, d / "out", check_images=8, verilog=False)
    return d / "out"


def _bad_inputs(d: Path) -> dict:
    """name -> (file, message)."""
    rng = np.random.default_rng(3)
    x = rng.random((4, 1, 8, 8), dtype=np.float32)
    cases = {}

    def save(name, arr, needle):
        np.save(d / f"{name}.npy", arr)
        cases[name] = (d / f"{name}.npy", needle)

    np.savez(d / "x.npz", images=x)
    cases["npz"] = (d / "x.npz", "a .npz archive (arrays: images); pass one array saved with "
                                 "numpy.save as a .npy file")
    (d / "npz_named_npy.npy").write_bytes((d / "x.npz").read_bytes())
    cases["npz_named_npy"] = (d / "npz_named_npy.npy", "a .npz archive")
    save("zero", np.zeros((0, 1, 8, 8), np.float32), "holds no images")
    save("uint8", (x * 255).astype(np.uint8), "dtype uint8, expected float pixels in [0, 1] "
                                              "(for 8-bit pixels k, save k / 255 as float32)")
    save("int64", (x * 255).astype(np.int64), "dtype int64, expected float pixels")
    save("bool", x > 0.5, "dtype bool, expected float pixels")
    nan = x.copy()
    nan[2, 0, 3, 3] = np.nan
    save("nan", nan, "image 2 holds NaN or infinite values")
    inf = x.copy()
    inf[1, 0, 0, 0] = -np.inf
    save("inf", inf, "image 1 holds NaN or infinite values")
    save("above", x * 255, "expected [0, 1]")
    save("below", x - 0.5, "expected [0, 1]")
    save("shape", x[:, :, :7], "images have shape [4, 1, 7, 8], expected [N, 1, 8, 8] or "
                               "[N, 8, 8]")
    save("flat", x.reshape(4, 64), "images have shape [4, 64], expected")
    save("object", np.array([1, "a"], dtype=object), "not a readable .npy array (an object "
                                                      "array, whose pickled objects are never")
    (d / "folder.npy").mkdir()
    cases["folder"] = (d / "folder.npy", "not a regular file")
    cases["missing"] = (d / "missing.npy", "no such file")
    return cases


BAD_INPUTS = ["npz", "npz_named_npy", "zero", "uint8", "int64", "bool", "nan", "inf", "above",
              "below", "shape", "flat", "object", "folder", "missing"]


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_predict_bad_inputs_one_line(name, design, tmp_path, capsys):
    f, needle = _bad_inputs(tmp_path)[name]
    before = tree(tmp_path)
    line = refused(capsys, ["predict", design, "--inputs", f, "-o", tmp_path / "y.npz"], needle)
    assert str(f) in line and "mean" not in line      # not a report of NaN means
    assert tree(tmp_path) == before


def test_inputs_value_range_is_closed(design, tmp_path, capsys):
    """0 and 1 themselves are pixels; the smallest step outside is not."""
    x = np.zeros((2, 1, 8, 8), np.float32)
    x[1] = 1.0
    np.save(tmp_path / "edge.npy", x)
    assert main(["predict", str(design), "--inputs", str(tmp_path / "edge.npy"),
                 "-o", str(tmp_path / "y.npz")]) == 0
    x[1, 0, 0, 0] = np.nextafter(np.float32(1), np.float32(2))
    np.save(tmp_path / "edge2.npy", x)
    capsys.readouterr()
    refused(capsys, ["predict", design, "--inputs", tmp_path / "edge2.npy", "-o",
                     tmp_path / "z.npz"], "expected [0, 1]")


def test_three_d_inputs_are_n_images_of_one_channel(design, tmp_path):
    """[N, H, W] for a C = 1 model gives the bytes [N, 1, H, W] gives; float64 is cast."""
    x = np.random.default_rng(4).random((3, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x4.npy", x)
    np.save(tmp_path / "x3.npy", x[:, 0])
    np.save(tmp_path / "x64.npy", x.astype(np.float64))
    outs = []
    for name in ("x4", "x3", "x64"):
        assert main(["predict", str(design), "--inputs", str(tmp_path / f"{name}.npy"),
                     "-o", str(tmp_path / f"{name}.npz")]) == 0
        outs.append((tmp_path / f"{name}.npz").read_bytes())
    assert outs[0] == outs[1] == outs[2]


def test_load_inputs_shapes():
    """The loader alone: which shapes each model takes (a planted wrong reading would
    change the values, so they are compared, not only the shapes)."""
    d = Path(__import__("tempfile").mkdtemp())
    x = np.random.default_rng(5).random((3, 16), dtype=np.float32)
    np.save(d / "f.npy", x)
    assert np.array_equal(load_inputs(d / "f.npy", (16, 1, 1)), x.reshape(3, 16, 1, 1))
    with pytest.raises(HwgenError, match=r"expected \[N, 1, 4, 4\] or \[N, 4, 4\]$"):
        load_inputs(d / "f.npy", (1, 4, 4))           # 16 features are not a 4x4 image
    y = np.random.default_rng(6).random((2, 3, 4, 4), dtype=np.float32)
    np.save(d / "c.npy", y[0])                         # one 3-channel image, no batch axis
    with pytest.raises(HwgenError, match=r"shape \[3, 4, 4\], expected \[N, 3, 4, 4\]$"):
        load_inputs(d / "c.npy", (3, 4, 4))            # C = 3: a 3-D array is refused
    np.save(d / "c4.npy", y)
    assert np.array_equal(load_inputs(d / "c4.npy", (3, 4, 4), n=1), y[:1])
    with pytest.raises(HwgenError, match="3 images asked"):
        load_inputs(d / "c4.npy", (3, 4, 4), n=3)


def test_sim_refuses_bad_inputs_before_simulating(tmp_path, capsys):
    model = random_model(tmp_path / "m.pt", "c4,p2,f10", seed=2)
    out = tmp_path / "out"
    compile_model(model, out, check_images=0, verilog=True)
    (tmp_path / "in").mkdir()
    cases = _bad_inputs(tmp_path / "in")
    before = tree(tmp_path)
    for name in ("npz", "uint8", "zero", "nan", "above", "shape"):
        f, needle = cases[name]
        refused(capsys, ["sim", out, "--inputs", f, "--images", "2", "--json",
                         tmp_path / "r.json"], needle)
    assert tree(tmp_path) == before


# ---------------------------------------------------------------------------- an imported MLP

class _MLP(nn.Module):
    def __init__(self):
        from brevitas.nn import QuantIdentity, QuantLinear
        from brevitas_examples.bnn_pynq.models.common import CommonActQuant, CommonWeightQuant
        super().__init__()
        wq = dict(bias=False, weight_quant=CommonWeightQuant, weight_bit_width=1)

        def act():
            return QuantIdentity(act_quant=CommonActQuant, bit_width=1)

        self.f = nn.Sequential(act(), QuantLinear(16, 12, **wq), nn.BatchNorm1d(12), act(),
                               QuantLinear(12, 8, **wq), nn.BatchNorm1d(8), act(),
                               QuantLinear(8, 4, **wq))

    def forward(self, x):                       # pixels in [0, 1] -> the +-1 quantiser
        return self.f(2.0 * x - torch.tensor([1.0]))


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory):
    from brevitas.export import export_qonnx
    torch.manual_seed(0)
    net = _MLP().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("mlp") / "mlp.onnx"
    export_qonnx(net, input_t=torch.rand(1, 16), export_path=str(path))
    return path


def test_mlp_takes_n_by_f_inputs(mlp_onnx, tmp_path):
    """A graph that takes [N, F] takes a .npy of [N, F], the same as [N, F, 1, 1]."""
    out = tmp_path / "out"
    assert main(["compile", str(mlp_onnx), "-o", str(out), "--no-verilog",
                 "--check-images", "16"]) == 0
    x = np.random.default_rng(7).random((5, 16), dtype=np.float32)
    np.save(tmp_path / "f.npy", x)
    np.save(tmp_path / "f4.npy", x.reshape(5, 16, 1, 1))
    for name in ("f", "f4"):
        assert main(["predict", str(out), "--inputs", str(tmp_path / f"{name}.npy"),
                     "-o", str(tmp_path / f"{name}.npz")]) == 0
    a, b = np.load(tmp_path / "f.npz"), np.load(tmp_path / "f4.npz")
    assert np.array_equal(a["class_integers"], b["class_integers"])


def test_spatial_on_single_neuron_groups_warns(mlp_onnx, tmp_path, caplog):
    """spatial dropout on a linear fed by a linear: a warning, and the design is made."""
    with caplog.at_level(logging.WARNING, logger="hwgen.passes.add_sites"):
        assert main(["compile", str(mlp_onnx), "--dropout", "spatial", "-o",
                     str(tmp_path / "out"), "--no-verilog", "--check-images", "0"]) == 0
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert msgs == ["spatial dropout on layers 1, 2: each group is one crossbar row (a linear "
                    "fed by a linear, or a 1x1 conv), so spatial equals element there"], msgs
    assert (tmp_path / "out" / "ir.json").is_file()


def test_spatial_on_conv_groups_does_not_warn(caplog):
    """The warning is not said where spatial and element differ (a 3x3 conv's input)."""
    ir = random_ir("c4,c6,p2,f10", (1, 8, 8), "none")
    with caplog.at_level(logging.WARNING, logger="hwgen.passes.add_sites"):
        add_sites(replace(ir, sites=()), "spatial", 0.2, [1])
        assert not caplog.records
        add_sites(replace(ir, sites=()), "spatial", 0.2, [2])   # the flatten-fed linear
        assert not caplog.records
        add_sites(replace(ir, sites=()), "element", 0.2, [1, 2])
        assert not caplog.records


# ---------------------------------------------------------------------------- options

@pytest.mark.parametrize("argv, needle", [
    (["compile", "{pt}", "--p", "0.3", "-o", "{out}"], "--p needs --dropout {spatial,element}"),
    (["compile", "{pt}", "--sites", "1", "-o", "{out}"], "--sites needs --dropout"),
    (["train", "--dropout", "none", "--p", "0.3", "-o", "{out}"],
     "--p needs --dropout element or spatial (--dropout none drops nothing)"),
    (["train", "--p", "0", "-o", "{out}"], "probability must be in (0, 1), not '0'"),
    (["train", "--p", "1", "-o", "{out}"], "probability must be in (0, 1), not '1'"),
    (["train", "--p", "nan", "-o", "{out}"], "probability must be in (0, 1), not 'nan'"),
    (["train", "--lr", "-1", "-o", "{out}"],
     "learning rate must be a positive finite number, not '-1'"),
    (["train", "--lr", "inf", "-o", "{out}"],
     "learning rate must be a positive finite number, not 'inf'"),
    (["train", "--theta", "0", "-o", "{out}"], "theta must be in (0, 1], not '0'"),
    (["compile", "{pt}", "--tile", "0x0", "-o", "{out}"], "--tile must be RxC"),
    (["compile", "{pt}", "--tile", "axb", "-o", "{out}"], "--tile must be RxC"),
    (["compile", "{pt}", "--tile", "128", "-o", "{out}"], "--tile must be RxC"),
    (["compile", "{pt}", "--tile=-1x8", "-o", "{out}"], "--tile must be RxC"),
    (["compile", "{pt}", "--lanes", "0", "-o", "{out}"], "must be a positive integer, not '0'"),
    (["compile", "{pt}", "--row-splits", "0", "-o", "{out}"],
     "must be a positive integer, not '0'"),
    (["eval", "{pt}", "--samples", "0"], "must be a positive integer, not '0'"),
    (["summary", "{pt}", "--tile", "0x0"], "--tile must be RxC"),
])
def test_bad_options_one_line(argv, needle, good_pt, tmp_path, capsys):
    before = tree(tmp_path)
    refused(capsys, [a.format(pt=good_pt, out=tmp_path / "out") for a in argv], needle)
    assert tree(tmp_path) == before


def test_sim_and_predict_counts(design, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 8, 8), np.float32))
    before = tree(tmp_path)
    for argv, needle in (
            (["sim", design, "--images", "0"], "must be a positive integer, not '0'"),
            (["sim", design, "--samples", "0"], "must be a positive integer, not '0'"),
            (["sim", design, "--shard", "3/2"], "needs n >= 1 and 0 <= i < n, not '3/2'"),
            (["sim", design, "--shard", "a/b"], "--shard must be i/n with integers"),
            (["predict", design, "--inputs", tmp_path / "x.npy", "--samples", "0",
              "-o", tmp_path / "y.npz"], "must be a positive integer, not '0'")):
        refused(capsys, argv, needle)
    assert tree(tmp_path) == before


def test_default_outdir_names_the_folder(tmp_path, monkeypatch, capsys):
    """Two model.pt of different folders compile into two OUTDIRs."""
    for name in ("a", "b"):
        random_model(tmp_path / name / "model.pt", "c4,p2,f10", seed=ord(name))
    monkeypatch.chdir(tmp_path)
    for name in ("a", "b"):
        assert main(["compile", f"{name}/model.pt", "--no-verilog", "--check-images", "0"]) == 0
    a, b = (tmp_path / "rtl_out" / f"{n}-model" / "ir.json" for n in ("a", "b"))
    assert a.is_file() and b.is_file() and a.read_bytes() != b.read_bytes()
    assert sorted(p.name for p in (tmp_path / "rtl_out").iterdir()) == ["a-model", "b-model"]


# ---------------------------------------------------------------------------- help texts

def _parsers(p: argparse.ArgumentParser, path=("hwgen",)):
    yield path, p
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, q in a.choices.items():
                yield from _parsers(q, path + (name,))


def help_problems(parser) -> list[str]:
    """Each option whose help does not show its default (flags and positionals need help
    only): the options of every subcommand, as `hwgen CMD --help` prints them."""
    out = []
    for path, p in _parsers(parser):
        fmt = p._get_formatter()
        for a in p._actions:
            if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            name = " ".join(path) + " " + (a.option_strings[-1] if a.option_strings else a.dest)
            if not a.help:
                out.append(f"{name}: no help")
                continue
            text = fmt._expand_help(a) if hasattr(fmt, "_expand_help") else a.help
            if not a.option_strings or a.nargs == 0:
                continue
            if a.required:
                if "required" not in text:
                    out.append(f"{name}: required, but the help does not say so")
            elif a.default is None:
                if "default" not in text:
                    out.append(f"{name}: default None, undescribed")
            elif f"default: {a.default}" not in text:
                out.append(f"{name}: help {text!r} does not show default {a.default!r}")
    return out


def test_every_option_shows_its_default():
    parser = build_parser()
    assert help_problems(parser) == []
    n = sum(len(p._actions) for _, p in _parsers(parser))
    assert n > 100                              # the walk reaches the nested bench commands


def test_train_help_names_the_per_dataset_defaults():
    """The per-dataset defaults in `hwgen train --help` are hwgen.model.train's."""
    from hwgen.model.train import DEFAULTS
    train = dict(next(a.choices for a in build_parser()._actions
                      if isinstance(a, argparse._SubParsersAction)))["train"]
    helps = {a.dest: a.help for a in train._actions}
    for ds, d in DEFAULTS.items():
        assert f"{ds} {d.arch}" in helps["arch"] and f"{ds} {d.epochs}" in helps["epochs"]
        assert f"{ds} {d.batch_size}" in helps["batch_size"] and f"{ds} {d.lr:g}" in helps["lr"]
        assert f"{ds} {d.theta:g}" in helps["theta"]


def test_help_checker_catches_a_missing_default():
    """Planted faults: an option without a shown default, one without help, and a default
    that disagrees with the help's text, each reported."""
    ap = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3, help="a count")
    ap.add_argument("--m", default=None)
    ap.add_argument("--k", type=int, default=5, help="a count (default: 4)")
    probs = help_problems(ap)
    assert len(probs) == 3 and "--n" in probs[0] and "--m" in probs[1] and "--k" in probs[2]
    ok = argparse.ArgumentParser(formatter_class=_Help)
    ok.add_argument("--n", type=int, default=3, help="a count")
    assert help_problems(ok) == []


def test_top_help_describes_hwgen():
    text = build_parser().format_help()
    assert "lazily" not in text and "Typical flow" in text
    for step in ("hwgen train", "hwgen compile", "hwgen sim", "hwgen report"):
        assert step in text
    compile_help = subprocess.run([sys.executable, "-m", "hwgen.cli", "compile", "--help"],
                                  capture_output=True, text=True, timeout=120).stdout
    assert "rtl_out/<folder>-<stem>" in compile_help and "(default: 128x128)" in compile_help
    predict_help = subprocess.run([sys.executable, "-m", "hwgen.cli", "predict", "--help"],
                                  capture_output=True, text=True, timeout=120).stdout
    assert "[0, 1]" in predict_help
