"""How a layer maps onto its tiles in time: beats per tile read and the cycle bound.

Every tile of a layer gets the same number of beats per read, r = ceil(widest column
split / lanes), so the layer's tiles run in lock step; each column split then uses the
fewest lanes that still finish in r beats. The DESIGN section 7 bound on the cycles of
one MC sample is sum over the layers from `ir.mc_start` of W_l * r_l (W_l the windows the
walker reads, `Layer.reads`: the output positions before pooling, or each pool block's
windows under a pool whose stride is not its size); the deterministic prefix costs the
same sum over the layers before it, once
per image. A multi-bit first layer reads each window once per input bit plane. The controller, the cost model and the cycle benchmark all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.core import IR, Layer

__all__ = ["ReadPlan", "read_plan", "CycleBound", "cycle_bound", "reads_per_window"]


@dataclass(frozen=True)
class ReadPlan:
    beats: int                   # cycles of one tile read (r_l)
    lanes: tuple[int, ...]       # columns per beat, per column split


def read_plan(layer: Layer, lanes: int) -> ReadPlan:
    """The read plan of `layer` for a request of `lanes` columns per cycle."""
    if not (isinstance(lanes, int) and lanes >= 1):
        raise ValueError(f"lanes must be a positive integer, not {lanes!r}")
    widest = max(b - a for a, b in layer.col_tiles)
    r = -(-widest // min(lanes, widest))
    return ReadPlan(beats=r, lanes=tuple(-(-(b - a) // r) for a, b in layer.col_tiles))


@dataclass(frozen=True)
class CycleBound:
    per_layer: tuple[int, ...]   # W_l * r_l of every layer
    prefix: int                  # layers before mc_start, once per image
    per_sample: int              # layers from mc_start, once per MC sample

    def per_image(self, samples: int) -> int:
        return self.prefix + samples * self.per_sample


def reads_per_window(ir: IR, i: int) -> int:
    """Tile reads per window of layer i: P for a multi-bit first layer (one pass per
    input bit plane, DESIGN section 3), else 1."""
    return ir.input.planes if i == 0 else 1


def cycle_bound(ir: IR, lanes: int, mc_start: int | None = None) -> CycleBound:
    """The section 7 bound of `ir` at `lanes`; `mc_start` overrides the IR's (the cost
    model prices the other dropout kind on default sites). A multi-bit first layer
    counts P reads per window."""
    m0 = ir.mc_start if mc_start is None else mc_start
    per = tuple(l.reads * read_plan(l, lanes).beats * reads_per_window(ir, i)
                for i, l in enumerate(ir.layers))
    return CycleBound(per_layer=per, prefix=sum(per[:m0]), per_sample=sum(per[m0:]))
