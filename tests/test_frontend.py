"""Frontend: model.pt -> initial IR, and hostile model.pt files (one line, exit 2, no
output, no code executed)."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from hwgen.cli import main
from hwgen.frontend import build_ir, load_model
from hwgen.model.io import save_model

from support import random_net


class Evil:
    """Unpickling this runs a shell command (if the loader allowed it)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def good(tmp_path):
    model = random_net("c4,p2,c5,f3", (1, 8, 8), "spatial", seed=1)
    path = tmp_path / "good.pt"
    save_model(path, model, {"dataset": "digits"})
    return path, torch.load(path, weights_only=True)


def _mutated(ckpt, how):
    c = dict(ckpt)
    c["state_dict"] = dict(ckpt["state_dict"])
    c["arch"] = dict(ckpt["arch"])
    how(c)
    return c


def _set(d, k, v):
    d[k] = v


HOSTILE = {
    "wrong tag": lambda c: _set(c, "format", "not-hwgen"),
    "wrong version": lambda c: _set(c, "version", 2),
    "bool version": lambda c: _set(c, "version", True),
    "missing key": lambda c: c.pop("meta"),
    "missing tensor": lambda c: c["state_dict"].pop("blocks.1.bn.running_var"),
    "wrong shape": lambda c: _set(c["state_dict"], "blocks.0.layer.weight", torch.zeros(4, 1, 5, 5)),
    "wrong dtype": lambda c: _set(c["state_dict"], "blocks.0.layer.weight",
                                  c["state_dict"]["blocks.0.layer.weight"].double()),
    "NaN": lambda c: _set(c["state_dict"], "blocks.2.bn.weight", torch.tensor([1.0, float("nan"), 0.0])),
    "infinite": lambda c: _set(c["state_dict"], "blocks.1.layer.weight",
                               torch.full_like(c["state_dict"]["blocks.1.layer.weight"], float("inf"))),
    "negative variance": lambda c: _set(c["state_dict"], "blocks.0.bn.running_var", -torch.ones(4)),
    "extra key": lambda c: _set(c["state_dict"], "blocks.9.layer.weight", torch.zeros(1)),
    "bad spec": lambda c: _set(c["arch"], "spec", "c4,q2,f3"),
    "layers tampered": lambda c: _set(c["arch"], "layers", c["arch"]["layers"][:2]),
    "bad dropout": lambda c: _set(c["arch"], "dropout", {"kind": "spatial", "p": 1.5, "scale": False}),
    "not a dict": None,
}


def _run_compile(path, out, capsys):
    rc = main(["compile", str(path), "-o", str(out), "--check-images", "4", "--no-verilog"])
    err = capsys.readouterr().err.strip().splitlines()
    return rc, err


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_hostile_checkpoint(tmp_path, good, capsys, what):
    path = tmp_path / "bad.pt"
    obj = [1, 2, 3] if HOSTILE[what] is None else _mutated(good[1], HOSTILE[what])
    torch.save(obj, path)
    rc, err = _run_compile(path, tmp_path / "out", capsys)
    assert rc == 2 and len(err) == 1 and err[0].startswith("hwgen: error: "), err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name != "good.pt"] == ["bad.pt"]


@pytest.mark.parametrize("how", ["torch.save", "pickle"])
def test_pickle_that_runs_code_is_not_executed(tmp_path, good, capsys, how):
    marker = tmp_path / "pwned"
    ckpt = dict(good[1], meta={"dataset": "digits", "x": Evil(marker)})
    path = tmp_path / "evil.pt"
    if how == "torch.save":
        torch.save(ckpt, path)
    else:
        path.write_bytes(pickle.dumps(ckpt, protocol=2))
    rc, err = _run_compile(path, tmp_path / "out", capsys)
    needle = "its pickle holds objects" if how == "torch.save" else "not a torch.save zip"
    assert rc == 2 and len(err) == 1 and needle in err[0], err
    assert not marker.exists() and not (tmp_path / "out").exists()
    # control: the same file does run code under an unsafe loader, so the test means something
    if how == "pickle":
        pickle.loads(path.read_bytes())
        assert marker.exists()


def test_truncated_directory_and_missing(tmp_path, good, capsys):
    data = good[0].read_bytes()
    for name, make in [("trunc.pt", lambda p: p.write_bytes(data[: len(data) // 2])),
                       ("empty.pt", lambda p: p.write_bytes(b"")),
                       ("dir.pt", lambda p: p.mkdir()),
                       ("missing.pt", lambda p: None)]:
        rc, err = _run_compile(tmp_path / name, tmp_path / "out", capsys)
        assert rc == 2 and len(err) == 1 and err[0].startswith("hwgen: error: "), (name, err)
        assert not (tmp_path / "out").exists()


def test_cli_exit_status_in_a_subprocess(tmp_path, good):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save(dict(good[1], meta={"x": Evil(marker)}), path)
    r = subprocess.run([sys.executable, "-m", "hwgen.cli", "compile", str(path), "-o",
                        str(tmp_path / "out")], capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_build_ir_takes_the_model_as_trained(good):
    path, ckpt = good
    loaded, sha = load_model(path)
    ir = build_ir(loaded, sha)
    assert ir.meta.model_sha256 == sha and len(sha) == 64 and ir.stage == "float"
    assert ir.meta.dataset == "digits" and ir.in_shape == (1, 8, 8)
    sd = ckpt["state_dict"]
    for i, l in enumerate(ir.layers):
        w = sd[f"blocks.{i}.layer.weight"].reshape(l.out_channels, -1)
        assert np.array_equal(np.asarray(l.latent).reshape(w.shape), w.double().numpy())
        assert np.array_equal(l.weight_bits(), (w >= 0).numpy().astype(np.uint8))
        assert l.bn.gain == tuple(sd[f"blocks.{i}.bn.weight"].double().tolist())
        assert l.bn.in_scale == 1.0
    assert [(s.layer, s.n_groups, s.group_rows) for s in ir.sites] == [(1, 4, 9), (2, 5, 16)]


def test_huge_architecture_is_refused_without_allocating(tmp_path, good, capsys):
    from hwgen.model.net import make_arch
    c = dict(good[1])
    c["arch"] = make_arch("c1,p1000,f10", (1, 100000, 100000), "spatial", 0.2)
    path = tmp_path / "huge.pt"
    torch.save(c, path)
    rc, err = _run_compile(path, tmp_path / "out", capsys)
    assert rc == 2 and len(err) == 1 and "refusing" in err[0], err
    assert not (tmp_path / "out").exists()
