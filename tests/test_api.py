"""The Python API (hwgen.api): the README's example runs as written, and each method is
the command it shells over."""

import re
from pathlib import Path

import numpy as np
import pytest

import hwgen
from hwgen.errors import HwgenError

from support import random_model

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_api_block() -> str:
    text = README.read_text()
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_readme_api_example_runs(tmp_path, monkeypatch):
    """The block under "Python API", run in a folder that holds what `make demo` leaves."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "demo").mkdir(parents=True)
    random_model(tmp_path / "runs" / "demo" / "model.pt", "c4,p2,f10", dataset="digits", seed=2)
    scope = {}
    exec(compile(readme_api_block(), "README.md", "exec"), scope)
    assert isinstance(scope["design"], hwgen.api.Design)
    assert scope["rep"]["ok"] and scope["rep"]["mismatches"] == 0
    assert (tmp_path / "rtl_out" / "api" / "manifest.json").is_file()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("api")
    return random_model(d / "m.pt", "c6,p2,d,c8,p2,f10", dropout="element", seed=4)


def test_compile_write_load_predict_agree_with_the_cli(model, tmp_path):
    from hwgen.cli import main
    design = hwgen.compile(model, lanes=4, check_images=8)
    kept = design.write(tmp_path / "api")
    assert main(["compile", str(model), "-o", str(tmp_path / "cli"), "--lanes", "4",
                 "--check-images", "8"]) == 0
    for name in kept.files:      # the same folder as `hwgen compile`, byte for byte
        assert (tmp_path / "api" / name).read_bytes() == (tmp_path / "cli" / name).read_bytes()
    x = np.random.default_rng(1).random((6, 1, 8, 8), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "cli"), "--inputs", str(tmp_path / "x.npy"),
                 "--samples", "5", "--seed", "3", "-o", str(tmp_path / "y.npz")]) == 0
    y, ref = hwgen.load(tmp_path / "api").predict(x, samples=5, seed=3), np.load(tmp_path / "y.npz")
    for f in ("class_integers", "probs", "prediction", "entropy", "mutual_information"):
        assert np.array_equal(getattr(y, f), ref[f]), f
    assert np.array_equal(y.keep[0], ref["keep_site0"])
    assert kept.summary() == hwgen.load(tmp_path / "cli").summary()


def test_the_temporary_folder_goes_with_the_design(model):
    import gc
    design = hwgen.compile(model, check_images=0, verilog=False)
    folder = design.outdir.parent
    assert folder.is_dir()
    del design
    gc.collect()
    assert not folder.exists()


def test_bad_api_input_is_one_line(model, tmp_path):
    with pytest.raises(HwgenError, match="lanes"):
        hwgen.compile(model, lanes=0)
    with pytest.raises(HwgenError, match="--row-splits must be an integer >= 1"):
        hwgen.compile(model, row_splits=2.5)
    with pytest.raises(HwgenError, match="torch module"):
        hwgen.compile(42)
    with pytest.raises(HwgenError, match="shape"):
        hwgen.compile(model, check_images=0, verilog=False).predict(np.zeros((2, 3)))
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(HwgenError):
        hwgen.compile(model, tmp_path, check_images=0)      # a folder hwgen did not write
    assert (tmp_path / "keep.txt").read_text() == "mine"
