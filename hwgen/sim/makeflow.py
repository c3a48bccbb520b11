"""`python -m hwgen.sim.makeflow DESIGN RUN [--images N] [--samples T] [--seed S]
[--inputs X.npy]`: the run files of cocotb's Makefile flow (the repository's sim/Makefile)
for the packaged network bench hwgen.sim.bench_top on a compiled folder DESIGN.

DESIGN is read through hwgen.design.load_design (every file's hash, the IR verified). Into
the folder RUN it writes:
  config.json     the bench's configuration, the file $HWGEN_SIM_CONFIG names: the same
                  keys hwgen.sim.runner.run_network writes (IR, ports, images, samples,
                  device seeds from --seed, result file RUN/result.json)
  images.npz      the first N images of X.npy, else of the IR's dataset, as input bits
                  (hwgen.sim.regression.image_bits)
  hwgen_tb.v      the bench's wrapper around hwgen_top (hwgen.sim.runner.bench_wrapper)
  design.sha256   the sha256 of DESIGN's manifest.json: a compile dependency, so that make
                  rebuilds when DESIGN is recompiled or another DESIGN is given
A file whose content is unchanged is not rewritten (make compares times); each is written
to a temporary sibling and renamed. Bad input: one line on stderr, exit status 2.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ..errors import HwgenError

__all__ = ["write_run", "main", "SIM_FILE_LIST"]

SIM_FILE_LIST = "hwgen_top_sim.f"        # hwgen.export's; sim/Makefile reads it


def _put(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, unless `path` already holds exactly it."""
    if path.is_file() and path.read_bytes() == data:
        return
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run(design, run, images: int = 4, samples: int = 4, seed: int = 0,
              inputs=None) -> dict:
    """Write RUN's files for DESIGN (see the module docstring); return the config."""
    from ..atomic import MANIFEST, sha256_file
    from ..design import load_design
    from ..device import device_seeds
    from .regression import image_bits, load_outdir
    from .runner import bench_wrapper
    design, run = Path(design).resolve(), Path(run).resolve()
    if not 1 <= samples < 1 << 16:
        raise HwgenError(f"SAMPLES must be in 1..65535 (a 16-bit port), not {samples}")
    if images < 1:
        raise HwgenError(f"IMAGES must be at least 1, not {images}")
    # an OUTDIR from before the export wrote file lists has none: recompile it
    load_design(design).path(SIM_FILE_LIST)
    ir, _ = load_outdir(design)
    bits, index, _ = image_bits(ir, images, inputs)
    run.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, bits=np.asarray(bits, np.uint8), index=np.asarray(index, np.int64))
    cfg = {"ir": str(design / "ir.json"), "ports": str(design / "ports.json"),
           "images": str(run / "images.npz"), "samples": int(samples),
           "device_seeds": [int(s) for s in device_seeds(seed, ir.n_interfaces)],
           "first_draw": 0, "result": str(run / "result.json"), "record": None,
           "chunk": 32}
    _put(run / "images.npz", buf.getvalue())
    _put(run / "config.json", (json.dumps(cfg, indent=1, sort_keys=True) + "\n").encode())
    _put(run / "hwgen_tb.v", bench_wrapper(design / "ports.json").encode())
    _put(run / "design.sha256", (sha256_file(design / MANIFEST) + "\n").encode())
    return cfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hwgen.sim.makeflow",
                                 description="Write the run files of sim/Makefile.")
    ap.add_argument("design", help="a compiled folder (hwgen compile's OUTDIR)")
    ap.add_argument("run", help="the run folder (config.json, images.npz, hwgen_tb.v)")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--inputs", default=None, help="images as a .npy file [N, C, H, W]")
    args = ap.parse_args(argv)
    try:
        write_run(args.design, args.run, args.images, args.samples, args.seed,
                  args.inputs or None)
    except HwgenError as e:
        sys.stderr.write(f"hwgen: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
