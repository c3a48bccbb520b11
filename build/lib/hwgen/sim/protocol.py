"""The contract between sim/runner.py and a cocotb bench: the run's config comes from the
JSON file named in $HWGEN_SIM_CONFIG, and the bench writes its result to cfg["result"]."""

from __future__ import annotations

import json
import os
from pathlib import Path


class Mismatch(AssertionError):
    """Counted mismatches: the bench has already written its result."""


def bench_config() -> dict:
    return json.loads(Path(os.environ["HWGEN_SIM_CONFIG"]).read_text())


async def run_reporting(body, dut) -> None:
    """Run `body(dut, cfg)`. A failure that left no counts (timeout, missing beat or write)
    hands its one-line reason back to the runner as the result."""
    cfg = bench_config()
    try:
        await body(dut, cfg)
    except Mismatch:
        raise
    except Exception as e:
        Path(cfg["result"]).write_text(json.dumps({"error": f"{type(e).__name__}: {e}"}) + "\n")
        raise
