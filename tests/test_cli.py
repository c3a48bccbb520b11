"""The command line contract: one-line errors with exit status 2 for bad options."""

import subprocess
import sys

import pytest



def run(*argv):
    return subprocess.run([sys.executable, "-m", "hwgen.cli", *argv], capture_output=True, text=True)


@pytest.mark.parametrize("argv, needle", [
    (["train", "--p", "1.5", "-o", "x.pt"], "probability must be in (0, 1)"),
    (["train", "--p", "abc", "-o", "x.pt"], "probability must be a number"),
    (["train", "--epochs", "0", "-o", "x.pt"], "positive integer"),
    (["train", "--dropout", "gaussian", "-o", "x.pt"], "invalid choice"),
    (["eval", "m.pt", "--samples", "-3"], "positive integer"),
])
def test_bad_options_one_line(argv, needle, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hwgen.cli", *argv], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert not (tmp_path / "x.pt").exists()
