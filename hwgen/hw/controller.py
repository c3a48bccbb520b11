# amaranth: UnusedElaboratable=no
"""Tile controller: one binary layer on its crossbar tiles (SPEC section 7).

Components joined by streams, one per file; `TileController` composes them around the
layer's input store (`layer_controller` builds a layer's controller for NetworkTop and
LayerTop alike):

    RingStore --taps--> WindowWalker --req--> TileArray --sums--> ThresholdPool --next-->
    (store.py)  <-rotate- (walker.py)         (tiles.py)          or ClassCollector --out-->
                                                                  (sinks.py)

- `RingStore`: the input map as a ring of H*W words (P*C bits for a bit-plane first
  layer, else C), written in raster order by shifting, read through fixed window taps.
- `WindowWalker`: rotates the ring in scan order and issues one request per window at
  its anchor (word lines = the taps, row gates = padding AND keep bits); with stride 1
  and same padding a window every tile read.
- `TileArray`: every tile of the layer in lock step, row splits' partial sums added.
- `PlaneAccumulator` (planes.py), a bit-plane first layer only: shift-adds the P passes.
- `ThresholdPool`: thresholds, ORs each pool block in raster order, shifts the pooled
  words into the next store; `ClassCollector`: the classifier's one `out` beat.

The window tag (`hwgen.hw.layouts.window_tag`: the window's place in its pool block,
final window) travels with a request through the tiles to its beats, so the sinks need
no counters. The schedule and its cycles are hwgen.hw.plan's.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import IR, Layer, ReadPlan, Site
from .layouts import class_layout, store_write_signature
from .planes import PlaneAccumulator
from .plan import check_walkable, layer_plan, walked
from .sinks import ClassCollector, ThresholdPool
from .store import RingStore, SplitStore, untapped_run
from .tile import acc_width
from .tiles import TileArray, row_slots
from .walker import WindowWalker, tap_slots

__all__ = ["TileController", "layer_controller", "ram_run", "split_in_ram"]


def split_in_ram(layer: Layer, plan: ReadPlan, width: int, store_ram_bits: int | None,
                 planes=None) -> bool:
    """Whether the layer's store is a `SplitStore` in memory at `store_ram_bits`: a flat
    store of binary words read row-serially (`ReadPlan.passes` > 1), whose row splits are
    whole words (the tile rows a multiple of `width`) and whose bank holds at least that
    many bits."""
    _, h, w = layer.in_shape
    return (store_ram_bits is not None and planes is None and plan.store == "flat"
            and plan.passes > 1 and layer.tile[0] % width == 0
            and h * w * width >= store_ram_bits)


def ram_run(layer: Layer, plan: ReadPlan, width: int,
            store_ram_bits: int | None) -> tuple[int, int]:
    """The slots [lo, hi) of the layer's ring store held in memory at `store_ram_bits`
    (`TileController`): its untapped run, when the store rotates (a flat store does not)
    and the run holds at least that many bits of `width`-bit words; else (0, 0)."""
    _, h, w = layer.in_shape
    lo, hi = untapped_run(h * w, tap_slots(layer))
    if (store_ram_bits is None or plan.store != "ring" or hi - lo < 2
            or (hi - lo) * width < store_ram_bits):
        return (0, 0)
    return (lo, hi)


class TileController(wiring.Component):
    """One layer: its input store, and walker -> tiles -> threshold or collector.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
    site : hwgen.ir.core.Site or None
        The dropout site on this layer's input (its keep bits gate the rows).
    plan : hwgen.ir.core.ReadPlan
        The layer's read plan (beats per read, lanes per column split, the store's banks
        and re-reading), as hwgen.passes.schedule records it in the IR.
    acc_w : int
        Classifier only: width of each class sum on `out`.
    planes : tuple of int or None
        A bit-plane first layer (SPEC section 3): the plane weights, LSB plane first.
        The store then holds P*C bits per position (plane k's channels at bits
        [k*C, (k+1)*C)), each window takes P tile reads and `PlaneAccumulator`
        shift-adds them. None: binary (XNOR) input.
    bound : int or None
        The largest |acc| of the layer (`IR.acc_bound`), default the rows: the width of
        the summed column sums and the range the thresholds are clamped to.
    store_ram_bits : int or None
        A ring store whose untapped run (`hwgen.hw.store.untapped_run`) holds at least
        this many bits keeps the run in memory (block RAM on an FPGA); None: the whole
        store in flops, as the generic design has it.

    The plan's `banks` 2 gives two rings, written in ring `wbank` and read in ring
    `rbank`, so that the previous layer can fill one while this layer reads the other
    (the first MC layer: the next image's prefix runs under this image's samples); its
    `reread` has the store read again without being rewritten (the first MC layer's):
    the walker rotates it back home after each walk (`WindowWalker`).

    Ports
    -----
    start : In(1)
        Pulse: walk all windows once (acted on at home).
    wbank, rbank : In(1)
        With two banks: the ring `wr` writes and the ring the walker reads.
    done : Out(1)
        Pulse with the layer's last write (or when its last class beat is taken).
    wr : In(`store_write_signature(P*C)`)
        Writes into this layer's store, raster order.
    keep : In(n_groups)
        The site's keep bits (only with a site).
    next : Out(`store_write_signature(O)`)
        Writes into the next layer's store (thresholded layers).
    sample : In(16); out : Out(stream of `class_layout`)
        Classifier: the sample index, and one beat of class sums per read.
    """

    def __init__(self, layer: Layer, site: Site | None, plan: ReadPlan, *,
                 acc_w: int | None = None, planes=None, bound: int | None = None,
                 store_ram_bits: int | None = None):
        if not isinstance(plan, ReadPlan) or plan.banks not in (1, 2):
            raise ValueError(f"plan must be a ReadPlan of 1 or 2 banks, not {plan!r}")
        check_walkable(layer)
        if store_ram_bits is not None and not (isinstance(store_ram_bits, int)
                                               and store_ram_bits >= 0):
            raise ValueError(f"store_ram_bits must be None or an integer >= 0, not "
                             f"{store_ram_bits!r}")
        ys, xs = walked(layer)
        if (plan.store == "flat") != (len(ys) * len(xs) == 1):
            raise ValueError(f"plan store {plan.store!r} does not match the walk: "
                             f"{len(ys) * len(xs)} windows")
        banks, reread = plan.banks, plan.reread
        self.layer, self.site, self.banks, self.plan = layer, site, banks, plan
        self.beats, self.lanes = plan.beats, plan.lanes
        self.bound = layer.rows if bound is None else bound
        if self.bound < layer.rows:
            raise ValueError(f"bound must be at least the rows ({layer.rows}), not {bound!r}")
        c, h, w = layer.in_shape
        self.width = c * (len(planes) if planes is not None else 1)
        self.acc_w = acc_w if acc_w is not None else acc_width(self.bound)
        self.split = split_in_ram(layer, plan, self.width, store_ram_bits, planes)
        if self.split:
            self.store = SplitStore(h * w, self.width, layer.tile[0],
                                    len(row_slots(layer, plan)), banks)
        else:
            in_ram = ram_run(layer, plan, self.width, store_ram_bits) != (0, 0)
            self.store = RingStore(h * w, self.width, tap_slots(layer), banks, memory=in_ram)
        self.walker = WindowWalker(layer, site, 0 if planes is None else len(planes), reread)
        self.tiles = TileArray(layer, plan, self.walker.tag.size, x_memory=self.split)
        self.planes = None
        if planes is not None:
            self.planes = PlaneAccumulator(layer, plan, planes, self.bound)
        ports = {"start": In(1), "done": Out(1), "wr": In(store_write_signature(self.width))}
        if banks == 2:
            ports.update({"wbank": In(1), "rbank": In(1)})
        if site is not None:
            ports["keep"] = In(site.n_groups)
        if layer.is_classifier:
            self.sink = ClassCollector(layer, plan, self.acc_w, self.bound)
            ports["sample"] = In(16)
            ports["out"] = Out(stream.Signature(class_layout(layer.out_channels, self.acc_w)))
        else:
            self.sink = ThresholdPool(layer, plan, self.bound)
            ports["next"] = Out(store_write_signature(layer.out_channels))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.submodules.store = store = self.store
        m.submodules.walker = walker = self.walker
        m.submodules.tiles = tiles = self.tiles
        m.submodules.sink = sink = self.sink
        wiring.connect(m, wiring.flipped(self.wr), store.wr)
        if self.banks == 2:
            m.d.comb += [store.wbank.eq(self.wbank), store.rbank.eq(self.rbank)]
        m.d.comb += [walker.taps.eq(store.taps), walker.fresh.eq(store.fresh),
                     store.rotate.eq(walker.rotate), walker.start.eq(self.start)]
        if self.site is not None:
            m.d.comb += walker.keep.eq(self.keep)
        wiring.connect(m, walker.req, tiles.req)
        if self.split:
            m.d.comb += [store.addr.eq(tiles.x_addr), tiles.x_data.eq(store.data)]
        if self.planes is not None:
            m.submodules.planes = acc = self.planes
            wiring.connect(m, tiles.sums, acc.sums)
            wiring.connect(m, acc.out, sink.sums)
        else:
            wiring.connect(m, tiles.sums, sink.sums)
        m.d.comb += self.done.eq(sink.done)
        if self.layer.is_classifier:
            m.d.comb += sink.sample.eq(self.sample)
            wiring.connect(m, wiring.flipped(self.out), sink.out)
        else:
            wiring.connect(m, sink.next, wiring.flipped(self.next))
        return m


def layer_controller(ir: IR, i: int, store_ram_bits: int | None = None) -> TileController:
    """Layer i's controller as the network runs it, from the IR's read plan (beats, lanes,
    two banks on the first MC layer after a prefix and that layer's store re-read every
    sample): the class sums `acc_width` of the last layer's bound, plane weights on a
    multi-bit layer 0; `store_ram_bits` as TileController has it."""
    layer = ir.layers[i]
    multibit = i == 0 and ir.input.mode != "binary"
    return TileController(
        layer, ir.site_of(i), layer_plan(ir, i),
        acc_w=acc_width(ir.acc_bound(len(ir.layers) - 1)) if layer.is_classifier else None,
        planes=ir.input.plane_weights if multibit else None, bound=ir.acc_bound(i),
        store_ram_bits=store_ram_bits)
