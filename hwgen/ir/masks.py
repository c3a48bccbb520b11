"""The one drawer of MC keep masks, at the drop probability the hardware realises.

A dropout site asks for a probability p; its MTJ's write-current code realises the nearest
one the switching curve allows (`Site.p_realised`, hwgen.passes.sites.choose_mtj_codes).
The hardware drops at the realised p, so every software path draws there too: compile's
float-vs-integer check, `hwgen predict`, `hwgen eval`, the study, the benches and the
fault campaigns. A model.pt that has not been compiled yet gets the realised p of the
default MTJ (`realised_p`), which is what compiling it will record.

Draws are counter-based per chunk of `CHUNK` images: chunk c of a run seeded s uses its own
generator `default_rng([s, c])`, and within a chunk sites are drawn in network order. The
keep bits of image i therefore depend only on (seed, i, T), never on how a caller batches
or shards the images (`start`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .core import IR, MtjConfig

__all__ = ["CHUNK", "realised_p", "draw_masks", "site_masks"]

CHUNK = 64


def realised_p(p: float, mtj: MtjConfig | None = None) -> float:
    """The drop probability that `mtj` (default: the default MTJ-RNG) realises for p."""
    mtj = MtjConfig() if mtj is None else mtj
    return mtj.device.choose_code(float(p), mtj.write_ns)[1]


def draw_masks(sites: Sequence[tuple[float, int]], n: int, samples: int, seed: int = 0,
               start: int = 0) -> list[np.ndarray]:
    """Keep bits (1 = keep) for images [start, start + n): one uint8 [n, T, groups] array
    per site, given as (realised p, groups)."""
    out = [np.empty((n, samples, g), np.uint8) for _, g in sites]
    if n <= 0 or not sites:
        return out
    i = start
    while i < start + n:
        c = i // CHUNK
        lo, hi = c * CHUNK, (c + 1) * CHUNK
        rng = np.random.default_rng([seed, c])
        for k, (p, g) in enumerate(sites):
            u = rng.random((CHUNK, samples, g))
            a, b = max(i, lo), min(start + n, hi)
            out[k][a - start:b - start] = u[a - lo:b - lo] >= p
        i = hi
    return out


def site_masks(ir: IR, n: int, samples: int, seed: int = 0, start: int = 0) -> list[np.ndarray]:
    """`draw_masks` for the sites of `ir`, each at its realised p (a site whose code has not
    been chosen yet gets the realised p of the IR's MTJ)."""
    return draw_masks([(s.p_realised if s.p_realised > 0 else realised_p(s.p, ir.mtj),
                        s.n_groups) for s in ir.sites], n, samples, seed, start)
