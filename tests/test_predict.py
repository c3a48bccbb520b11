"""hwgen predict: the golden MC inference of a compiled design on the user's images."""

import numpy as np
import pytest
import torch

from hwgen.cli import main
from hwgen.compiler import compile_model
from hwgen.ir import interp
from hwgen.ir.core import loads
from hwgen.model.evaluate import mc_logits
from hwgen.model.io import build_model, load_checkpoint

from support import random_model


@pytest.fixture(scope="module")
def design(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    model = random_model(d / "m.pt", "c6,p2,d,c8,p2,f10", dropout="element", seed=4)
    compile_model(model, d / "out", check_images=8, verilog=False)
    x = np.random.default_rng(1).random((12, 1, 8, 8), dtype=np.float32)
    np.save(d / "x.npy", x)
    return d, model, x


def test_predict_writes_the_golden_mc_inference(design, tmp_path):
    d, model, x = design
    assert main(["predict", str(d / "out"), "--inputs", str(d / "x.npy"), "--samples", "5",
                 "--seed", "3", "-o", str(tmp_path / "y.npz")]) == 0
    y = np.load(tmp_path / "y.npz")
    ir = loads((d / "out" / "ir.json").read_text())
    masks = [y[f"keep_site{k}"] for k in range(len(ir.sites))]
    assert y["class_integers"].shape == (12, 5, 10) and len(masks) == 1 and masks[0].shape == (12, 5, 6 * 9)
    assert np.array_equal(y["class_integers"], interp.run(ir, interp.input_bits(ir, x), masks))
    assert np.allclose(y["probs"].sum(-1), 1.0) and np.array_equal(y["prediction"], y["probs"].argmax(-1))
    assert (y["mutual_information"] > 0).any() and (y["entropy"] >= y["mutual_information"]).all()
    # the float model, in MC mode with the same keep bits, predicts the same classes
    net = build_model(load_checkpoint(model))
    lg = mc_logits(net, torch.from_numpy(x), 5, masks=masks)
    assert np.array_equal(lg.double().softmax(-1).mean(0).argmax(-1).numpy(), y["prediction"])
    # same seed, same bytes; another seed, other masks
    assert main(["predict", str(d / "out"), "--inputs", str(d / "x.npy"), "--samples", "5",
                 "--seed", "3", "-o", str(tmp_path / "y2.npz")]) == 0
    assert (tmp_path / "y.npz").read_bytes() == (tmp_path / "y2.npz").read_bytes()


def test_predict_rejects_bad_inputs_and_writes_nothing(design, tmp_path, capsys):
    d, _, x = design
    np.save(tmp_path / "bad.npy", x[:, :, :7])
    for args in (["--inputs", str(tmp_path / "bad.npy")], ["--inputs", str(tmp_path / "none.npy")],
                 ["--inputs", str(d / "x.npy"), "--samples", "0"]):
        with pytest.raises(SystemExit) if "--samples" in args else _nothing():
            rc = main(["predict", str(d / "out"), *args, "-o", str(tmp_path / "y.npz")])
            assert rc == 2
        assert not (tmp_path / "y.npz").exists()
    assert main(["predict", str(tmp_path), "--inputs", str(d / "x.npy"), "-o",
                 str(tmp_path / "y.npz")]) == 2
    assert "no manifest.json" in capsys.readouterr().err


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


_NO_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {banned!r}:
            raise ImportError("imported " + name)
sys.meta_path.insert(0, Block())
from hwgen.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("banned", [("torch", "amaranth", "sklearn"), ("hwgen",)])
def test_predict_and_summary_import_neither_torch_nor_amaranth(design, tmp_path, banned):
    """`hwgen predict` and `hwgen summary` on a compiled folder run with torch, amaranth and
    scikit-learn made unimportable; blocking hwgen itself shows the blocker bites."""
    import subprocess
    import sys
    d, _, _ = design
    code = _NO_HEAVY.format(banned=set(banned))
    runs = [["predict", str(d / "out"), "--inputs", str(d / "x.npy"), "-o",
             str(tmp_path / "y.npz")], ["summary", str(d / "out")]]
    for argv in runs:
        r = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        if banned == ("hwgen",):
            assert r.returncode != 0 and "imported hwgen" in r.stderr
        else:
            assert r.returncode == 0, r.stderr[-2000:]
