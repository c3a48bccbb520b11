"""Training on the digits, and the train/eval command line."""

import json
import os
import subprocess
import sys

# One torch thread: the suite runs under pytest -n 2 on a 2-core machine (also inherited
# by the `hwgen` subprocesses below).
os.environ.setdefault("HWGEN_THREADS", "1")

import pytest
import torch

from hwgen.data import load_dataset, load_ood
from hwgen.errors import HwgenError
from hwgen.model.io import load_checkpoint
from hwgen.model.train import TrainConfig, train


def _hwgen(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "hwgen.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def test_digits_split_is_fixed_and_in_range():
    x, y = load_dataset("digits", "train")
    xt, yt = load_dataset("digits", "test")
    assert x.shape[1:] == (1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(x) + len(xt) == 1797 and len(xt) == 450
    assert 0.0 <= float(x.min()) and float(x.max()) == 1.0
    assert torch.equal(xt, load_dataset("digits", "test")[0])
    assert set(yt.tolist()) == set(range(10))
    ood = load_ood("digits")
    assert ood.shape[1:] == (1, 8, 8) and 0.0 <= float(ood.min()) and float(ood.max()) <= 1.0


def test_fashion_missing_names_the_debian_package(monkeypatch, tmp_path):
    import hwgen.data as data
    monkeypatch.setattr(data, "FASHION_DIR", tmp_path)
    data._fashion.cache_clear()
    try:
        with pytest.raises(HwgenError, match="dataset-fashion-mnist"):
            data.load_dataset("fashion-mnist", "test")
    finally:
        data._fashion.cache_clear()


def test_digits_default_model_reaches_90_percent():
    model, meta = train(TrainConfig(dataset="digits", dropout="spatial", seed=0), progress=False)
    assert meta["test_acc"] >= 0.90, meta["test_acc"]
    assert meta["epochs"] == 30 and meta["dataset"] == "digits"


def test_training_is_deterministic():
    cfg = TrainConfig(dataset="digits", dropout="element", epochs=2, seed=3)
    a, _ = train(cfg, progress=False)
    b, _ = train(cfg, progress=False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_cli_train_eval_smoke(tmp_path):
    m = tmp_path / "m.pt"
    r = _hwgen("train", "--dataset", "digits", "--epochs", "2", "--dropout", "spatial",
               "--arch", "c8,p2,f10", "-o", m)
    assert r.returncode == 0, r.stderr
    ckpt = load_checkpoint(m)
    assert ckpt["meta"]["epochs"] == 2 and ckpt["arch"]["spec"] == "c8,p2,f10"
    for key in ("train_acc", "test_acc", "seconds_per_epoch", "seed", "dropout", "p"):
        assert key in ckpt["meta"]
    j, plots = tmp_path / "e.json", tmp_path / "plots"
    r = _hwgen("eval", m, "--samples", "4", "--limit", "100", "--json", j, "--plots", plots)
    assert r.returncode == 0, r.stderr
    rep = json.loads(j.read_text())
    assert rep["samples"] == 4 and rep["n_test"] == 100
    for key in ("accuracy", "nll", "ece", "brier", "mean_entropy", "mean_mi"):
        assert key in rep
    for by in ("entropy", "mi"):
        assert set(rep["ood"][by]) == {"auroc", "aupr", "fpr95"}
    assert "accuracy" in r.stdout
    assert (plots / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert (plots / "entropy_hist.png").read_bytes()[:4] == b"\x89PNG"
    j2 = tmp_path / "e2.json"
    assert _hwgen("eval", m, "--samples", "4", "--limit", "100", "--json", j2).returncode == 0
    assert j2.read_bytes() == j.read_bytes()


@pytest.mark.parametrize("args,needle", [
    (["train", "--dataset", "digits", "--arch", "c8,q2,f10", "--epochs", "1"], "'q2'"),
    (["train", "--dataset", "digits", "--arch", "c8,p2,f7", "--epochs", "1"], "10 classes"),
    (["train", "--dataset", "digits", "--p", "1.5", "--epochs", "1"], "1.5"),
    (["train", "--dataset", "digits", "--lr", "-1", "--epochs", "1"], "learning rate"),
])
def test_cli_bad_train_option_one_line(tmp_path, args, needle):
    out = tmp_path / "m.pt"
    r = _hwgen(*args, "-o", out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_eval_bad_model_one_line(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a model")
    j = tmp_path / "e.json"
    r = _hwgen("eval", bad, "--json", j)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert "x.pt" in r.stderr and not j.exists()
    r = _hwgen("eval", tmp_path / "missing.pt", "--samples", "0")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
