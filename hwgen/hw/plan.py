"""How a layer maps onto its tiles in time: the walk and the cycle bound of its read plan.

A layer's read plan (`hwgen.ir.core.ReadPlan`, recorded in the IR by
hwgen.passes.schedule) gives every tile of the layer the same number of beats per read,
r = ceil(widest column split / lanes) (1 by default: the array), so the layer's tiles run
in lock step; each column split then uses the fewest lanes that still finish in r beats.
`layer_plan` reads it; nothing here takes lanes on the side.

The walk (hwgen.hw.walker): a layer's input map is a ring of H*W words that rotates one
slot per cycle; the window of conv output (oy, ox) is read, through fixed taps, while
the ring stands at its anchor oy*sh*W + ox*sw. The walker issues the windows in raster
order (those in no pool block skipped), each as P tile requests of r beats (P input bit
planes for a multi-bit first layer, else 1), and the ring moves on with the window's
last request, so the next window is issued max(r, d) cycles after it, d the ring steps
between the two anchors. A layer's walk therefore takes

    W_l * P * r_l + sum over consecutive walked windows of (max(r_l, d) - r_l)

cycles of requests (`walk_cycles`): W_l * P * r_l, the SPEC section 7 bound, whenever
the anchors are at most r_l apart (stride 1 with same padding: d = 1 everywhere), plus
the ring steps a row change or a stride adds beyond r_l. A layer's first request comes a
cycle after its `start` and its last beat READ_LATENCY cycles after its last request
(the tiles' pipeline, hwgen.hw.tile and hwgen.hw.tiles), so from `start` to `done` a layer takes
1 + walk + READ_LATENCY cycles, and a chain of layers (the next started with the
previous one's last write) READ_LATENCY more than its walks per layer.

A store read again without being rewritten (the first MC layer's, `ir.mc_start`) keeps
rotating after its final window back to its home (slot 0 = position 0), `home_steps`
cycles, in the background; its next `start` is acted on only at home. The sample period
is the chain of the per-sample layers, or that homing when it is longer (`cycle_bound`).
The controller, the cost model and the cycle benchmark all read the schedule from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HwgenError
from ..ir.core import IR, Layer, ReadPlan

__all__ = ["ReadPlan", "layer_plan", "CycleBound", "cycle_bound", "reads_per_window",
           "check_walkable", "walked", "walk_cycles", "held", "home_steps", "SENSE_GAP",
           "rng_period", "READ_LATENCY"]

# Cycles from a layer's tiles taking a request to the request's first summed beat: the
# tile's request and weight-word register, the popcounts' group counts and their sums
# (hwgen.hw.tile), then the row splits' sums register (hwgen.hw.tiles).
READ_LATENCY = 4


def layer_plan(ir: IR, i: int) -> ReadPlan:
    """Layer i's read plan as the IR records it; HwgenError if the IR is not scheduled."""
    plan = getattr(ir.layers[i], "plan", None)
    if plan is None:
        raise HwgenError(f"layer {i} has no read plan: the hardware is built from a "
                         f"scheduled IR (hwgen.passes.schedule)")
    return plan


def check_walkable(layer: Layer) -> None:
    """Raise HwgenError for what the raster walk does not build: a max-pool whose stride
    is smaller than its size (overlapping blocks; the sink keeps one row of block
    accumulators)."""
    if layer.pool > 1 and layer.pool_step < layer.pool:
        raise HwgenError(f"the hardware does not build an overlapping max-pool (size "
                         f"{layer.pool}, stride {layer.pool_step}) on the {layer.in_shape} "
                         f"layer: use a pool stride of at least its size")


def walked(layer: Layer) -> tuple[list[int], list[int]]:
    """The conv output rows and columns the walker issues windows at (raster order over
    their product): all of them, or under a pool those in a block (floor mode, gaps
    between blocks skipped)."""
    check_walkable(layer)
    _, oh, ow = layer.conv_shape
    if layer.pool == 1:
        return list(range(oh)), list(range(ow))
    s, t = layer.pool, layer.pool_step
    _, hp, wp = layer.out_shape
    return ([p * t + d for p in range(hp) for d in range(s)],
            [p * t + d for p in range(wp) for d in range(s)])


def held(beats: int, passes: int = 1) -> int:
    """Cycles a read's request is held in the tiles after its first cycle: 0 when the
    tiles take it with beat 0 (and the ring moves on under its later beats), or, in a
    row-serial read (passes > 1, hwgen.hw.tiles), all but one of its beats x passes."""
    return 0 if passes == 1 else beats * passes - 1


def walk_cycles(layer: Layer, beats: int, planes: int = 1, passes: int = 1) -> int:
    """Cycles of one walk of `layer` from its first request to its last (module doc):
    each read takes R = beats x passes cycles, and the ring moves on `held` cycles into
    it."""
    ys, xs = walked(layer)
    _, _, w = layer.in_shape
    sh, sw = layer.stride
    r, lag = beats * passes, held(beats, passes)
    extra_row = sum(max(r, (b - a) * sw + lag) - r for a, b in zip(xs, xs[1:]))
    extra = len(ys) * extra_row + sum(
        max(r, (b - a) * sh * w - (xs[-1] - xs[0]) * sw + lag) - r for a, b in zip(ys, ys[1:]))
    return len(ys) * len(xs) * planes * r + extra


def home_steps(layer: Layer) -> int:
    """Ring steps from the final window's anchor back to home (0 for a single window at
    the home anchor: a flatten-fed linear never rotates)."""
    ys, xs = walked(layer)
    _, h, w = layer.in_shape
    sh, sw = layer.stride
    return (h * w - (ys[-1] * sh * w + xs[-1] * sw)) % (h * w)


SENSE_GAP = 2      # the network top's MTJ-RNG sense gap (hwgen.hw.rng)


def rng_period(reset_cycles: int, write_cycles: int, sense_gap: int = SENSE_GAP) -> int:
    """Cycles from one RNG cycle's `go` to the next's when each sample takes its keep bits
    as soon as they are offered: the pulses and the gap, then the cycle in which the
    latched bits are taken and the next cycle starts. The sample period of a network
    top is never shorter (hwgen.hw.plan.cycle_bound)."""
    return reset_cycles + write_cycles + sense_gap + 1



@dataclass(frozen=True)
class CycleBound:
    per_layer: tuple[int, ...]   # `walk_cycles` of every layer
    prefix: int                  # layers before mc_start, once per image (+ READ_LATENCY each)
    per_sample: int              # the sample period: layers from mc_start, or the homing

    def per_image(self, samples: int) -> int:
        return self.prefix + samples * self.per_sample


def reads_per_window(ir: IR, i: int) -> int:
    """Tile reads per window of layer i: P for a multi-bit first layer (one pass per
    input bit plane, SPEC section 3), else 1."""
    return ir.input.planes if i == 0 else 1


def cycle_bound(ir: IR, mc_start: int | None = None) -> CycleBound:
    """The cycles of `ir`'s read plans (module doc); `mc_start` overrides the
    IR's (the cost model prices the other dropout kind on default sites). The sample
    period is max(chain, homing, rng): chain = the per-sample layers' walks plus
    READ_LATENCY each; homing = 1 + walk of layer mc_start - its last read's r + `home_steps`
    (from one start of that layer to the next at home); rng = the MTJ-RNG cycle
    (`hwgen.hw.rng.rng_period`), one per sample, which sets the period of a small layer."""
    m0 = ir.mc_start if mc_start is None else mc_start
    plans = [layer_plan(ir, i) for i in range(len(ir.layers))]
    per = tuple(walk_cycles(l, plans[i].beats, reads_per_window(ir, i), plans[i].passes)
                for i, l in enumerate(ir.layers))
    chain = sum(per[m0:]) + (len(per) - m0) * READ_LATENCY
    # the walker is free once the tiles take its last request, `held` into the last read
    last_read = plans[m0].cycles - held(plans[m0].beats, plans[m0].passes)
    homing = 1 + per[m0] - last_read + home_steps(ir.layers[m0])
    rng = rng_period(ir.mtj.reset_cycles, ir.mtj.write_cycles) if ir.n_interfaces else 0
    return CycleBound(per_layer=per, prefix=sum(per[:m0]) + m0 * READ_LATENCY,
                      per_sample=max(chain, homing, rng))
