"""Tile controller: one binary layer on its crossbar tiles (DESIGN s. 7).

Four components joined by streams; `TileController` composes them and owns the layer's
input activation buffer (one memory word of C bits per spatial position, written by the
previous layer or the image loader):

    buffer --kh*kw read ports--> WindowWalker --req--> TileArray --sums--> ThresholdPool --next-->
                                 (walk, gates)         (R x C splits)     or ClassCollector --out-->

- `WindowWalker` walks the output windows in pool-block order (py, px, dy, dx). Per window
  it reads the kh*kw input positions at once (kh*kw buffer read ports); the im2col word
  lines (rows (c, ky, kx), channel-major) are pure wiring from the read data, and the row
  gates are the padding bits AND the dropout keep bits. The next window is fetched while
  the tiles read the current one, so within a layer the tiles never idle.
- `TileArray` fans each request out to all tiles of the layer (row splits x column splits).
  Every tile has the same number of beats per read (`hwgen.hw.plan.read_plan`), so they
  run in lock step and tile 0's handshake stands for all; the row splits' partial sums are
  added, giving one stream of column sums.
- `ThresholdPool` thresholds the column sums, ORs them over the pool block in one O-bit
  register, and writes each pooled position to the next layer's buffer.
- `ClassCollector` (the classifier) collects the signed class sums into one `out` beat.

The window tag (`window_tag`: first / last window of its pool block, final window, pooled
address) travels with a request through the tiles to its beats, so the sinks need no
counters. The streams carry it as plain bits, opaque to the tiles; the walker and the
sinks view it through its layout (a view of a slice adds no wires to the Verilog, while a
layout-typed port adds one per field in every module it passes through).
Reads are transparent to the buffer's write port: a layer can start in the cycle in which
the previous layer writes its last position.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer, Site
from .plan import ReadPlan, read_plan
from .tile import CrossbarTile, acc_width, beat_layout, request_layout

__all__ = ["TileController", "WindowWalker", "TileArray", "ThresholdPool", "ClassCollector",
           "buffer_depth", "buffer_write_signature", "window_read_signature", "window_tag",
           "sums_layout", "class_layout"]


def buffer_depth(positions: int) -> int:
    """Depth of an activation buffer: at least 2, so that no address is zero bits wide
    (zero-width signals upset Verilog tools)."""
    return max(positions, 2)


def _addr_width(positions: int) -> int:
    return (buffer_depth(positions) - 1).bit_length()


def buffer_write_signature(positions: int, width: int) -> memory.WritePort.Signature:
    """The write port of an activation buffer of `positions` words of `width` bits, as
    `Memory.write_port(granularity=1)` presents it: one enable bit per channel."""
    return memory.WritePort.Signature(addr_width=_addr_width(positions), shape=unsigned(width),
                                      granularity=1)


def window_read_signature(ports: int, addr_width: int, width: int) -> wiring.Signature:
    """Reads of `ports` buffer positions at once, reader side: position p's address at
    bits [p*addr_width, ...) of `addr`, its word at bits [p*width, ...) of `data` in the
    cycle after `en`. Plain vectors: three wires per module, whatever the kernel size."""
    return wiring.Signature({"addr": Out(ports * addr_width), "en": Out(1),
                             "data": In(ports * width)})


def window_tag(out_positions: int) -> data.StructLayout:
    """What a window's request carries to its beats: first / last window of its pool
    block, the layer's final window, and the pooled position it contributes to."""
    return data.StructLayout({"first": 1, "last": 1, "final": 1,
                              "addr": range(buffer_depth(out_positions))})


def sums_layout(layer: Layer, plan: ReadPlan) -> data.StructLayout:
    """One beat of a layer's column sums, as one tile of all its rows would give it:
    column split ci's lanes at [sum(lanes[:ci]), ...), each summed over the row splits."""
    return beat_layout(layer.rows, sum(plan.lanes), plan.beats,
                       window_tag(_out_positions(layer)).size)


def class_layout(classes: int, acc_w: int) -> data.StructLayout:
    """The classifier's `out` beat: the sample index and every class's signed sum."""
    return data.StructLayout({"sample": 16, "acc": data.ArrayLayout(signed(acc_w), classes)})


def _out_positions(layer: Layer) -> int:
    _, hh, ww = layer.out_shape
    return hh * ww


class WindowWalker(wiring.Component):
    """Walks a layer's output windows and issues one tile request per window.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
    site : hwgen.ir.core.Site or None
        The dropout site on the layer's input (its keep bits gate the rows).

    Ports
    -----
    start : In(1)
        Pulse: walk all windows once.
    rd : Out(`window_read_signature(kh*kw, addr_width, C)`)
        Reads of the input buffer, kernel position (ky, kx) as port ky*kw + kx.
    keep : In(n_groups)
        The site's keep bits, 1 = keep (only with a site); held for the whole walk.
    req : Out(stream of `request_layout(rows, window_tag.size)`)
        Word lines `x`, row gates `g` and the window tag, one beat per window.
    """

    def __init__(self, layer: Layer, site: Site | None):
        self.layer, self.site = layer, site
        c, h, w = layer.in_shape
        kh, kw = layer.kernel
        self.tag = window_tag(_out_positions(layer))
        ports = {
            "start": In(1),
            "rd": Out(window_read_signature(kh * kw, _addr_width(h * w), c)),
            "req": Out(stream.Signature(request_layout(layer.rows, self.tag.size))),
        }
        if site is not None:
            ports["keep"] = In(site.n_groups)
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        layer, site = self.layer, self.site
        c, h, w = layer.in_shape
        kh, kw = layer.kernel
        ph, pw = layer.pad
        _, oh, ow = layer.conv_shape
        s = layer.pool
        _, hp, wp = layer.out_shape                    # pool blocks (floor mode)
        req, rd = self.req, self.rd
        tag = data.View(self.tag, req.payload.tag)
        aw = _addr_width(h * w)

        # -- the next window to fetch ------------------------------------------------------
        def counter(n, name):
            return Signal(range(n), name=name) if n > 1 else Const(0, 1)
        py, px, dy, dx = counter(hp, "py"), counter(wp, "px"), counter(s, "dy"), counter(s, "dx")
        running = Signal()
        oy, ox = py * s + dy, px * s + dx
        first = ~dy.any() & ~dx.any()
        last_blk = (dy == s - 1) & (dx == s - 1)
        final = last_blk & (py == hp - 1) & (px == wp - 1)

        # The request register: `valid` and the tag and pad bits are registered with the
        # fetch; `x` is the read ports' data, which arrives in the same cycle.
        pad = Signal(kh * kw)
        take = Signal()
        fetch = Signal()
        m.d.comb += [take.eq(req.valid & req.ready),
                     fetch.eq((self.start | running) & (~req.valid | take))]

        base = Signal(aw)
        m.d.comb += base.eq(oy * w + ox)
        pad_now, never_pad = [], []
        for ky in range(kh):
            for kx in range(kw):
                # input position (oy + ky - ph, ox + kx - pw) lies in the map: only the
                # bounds a window can cross are compared (unsigned, no constant results)
                conds = []
                for o_, k, p, n, n_out in ((oy, ky, ph, h, oh), (ox, kx, pw, w, ow)):
                    if p - k > 0:
                        conds.append(o_ >= p - k)
                    if n + p - k <= n_out - 1:
                        conds.append(o_ < n + p - k)
                okv = Signal(name=f"ok_{ky}_{kx}")
                ok = Const(1, 1)
                for cnd in conds:
                    ok = ok & cnd
                m.d.comb += okv.eq(ok)
                pad_now.append(okv)
                never_pad.append(not conds)
                off = (ky - ph) * w + (kx - pw)
                if oh * ow == 1 and not (ph or pw):
                    addr = Const(off, aw)
                else:
                    # modular: exact whenever the position is inside the map
                    addr = Mux(okv, (base + (off % (1 << aw)))[:aw], 0)
                port = ky * kw + kx
                m.d.comb += rd.addr[port * aw:(port + 1) * aw].eq(addr)
        m.d.comb += rd.en.eq(fetch)

        with m.If(fetch):
            m.d.sync += [req.valid.eq(1), pad.eq(Cat(*pad_now)),
                         tag.first.eq(first), tag.last.eq(last_blk), tag.final.eq(final),
                         tag.addr.eq(py * wp + px), running.eq(~final)]
            # advance (dx fastest); each wraps to 0 after its last value
            def step(cnt, n, carry):
                if n > 1:
                    with m.If(carry):
                        m.d.sync += cnt.eq(Mux(cnt == n - 1, 0, cnt + 1))
                return carry & (cnt == n - 1)
            carry = Const(1, 1)
            for cnt, n in ((dx, s), (dy, s), (px, wp), (py, hp)):
                carry = step(cnt, n, carry)
        with m.Elif(take):
            m.d.sync += req.valid.eq(0)

        # -- word lines and row gates: wiring ----------------------------------------------
        # One assignment per field, not per row: Amaranth's netlist checks cost
        # (bits x assignments) per signal, quadratic in the rows for bitwise assignments.
        xs, gs = [], []
        for ch in range(c):
            for p in range(kh * kw):
                i = ch * kh * kw + p
                xs.append(rd.data[p * c + ch])
                # a kernel position that no window can push off the map needs no gate bit
                g = None if never_pad[p] else pad[p]
                if site is not None:
                    k = self.keep[i // site.group_rows]
                    g = k if g is None else g & k
                gs.append(Const(1, 1) if g is None else g)
        m.d.comb += [req.payload.x.eq(Cat(*xs)), req.payload.g.eq(Cat(*gs))]
        return m


class TileArray(wiring.Component):
    """All crossbar tiles of a layer (row splits x column splits), read in lock step.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        Weights and tiling (`row_tiles`, `col_tiles`).
    plan : hwgen.hw.plan.ReadPlan
        Beats per read and lanes per column split.
    tag : int
        Width of the opaque tag passed from each request to its beats.

    Ports
    -----
    req : In(stream of `request_layout(rows, tag)`)
        One read of every tile: row split ri sees rows [a_ri, b_ri) of `x` and `g`.
    sums : Out(stream of `sums_layout`)
        Per beat, every column split's lanes, each summed over the row splits.
    """

    def __init__(self, layer: Layer, plan: ReadPlan, tag):
        self.layer, self.plan = layer, plan
        wbits = layer.weight_bits()
        self.tiles = {}
        for ci, ((ca, cb), lanes) in enumerate(zip(layer.col_tiles, plan.lanes)):
            for ri, (ra, rb) in enumerate(layer.row_tiles):
                self.tiles[ri, ci] = CrossbarTile(rb - ra, cb - ca, lanes, wbits[ca:cb, ra:rb],
                                                  beats=plan.beats, tag=tag)
        super().__init__({
            "req": In(stream.Signature(request_layout(layer.rows, tag))),
            "sums": Out(stream.Signature(sums_layout(layer, plan))),
        })

    def elaborate(self, platform):
        m = Module()
        layer, req, out = self.layer, self.req, self.sums
        for (ri, ci), t in self.tiles.items():
            ra, rb = layer.row_tiles[ri]
            m.submodules[f"tile_r{ri}_c{ci}"] = t
            m.d.comb += [t.req.valid.eq(req.valid), t.req.payload.x.eq(req.payload.x[ra:rb]),
                         t.req.payload.g.eq(req.payload.g[ra:rb]),
                         t.req.payload.tag.eq(req.payload.tag), t.beat.ready.eq(out.ready)]
        lead = self.tiles[0, 0]
        m.d.comb += [req.ready.eq(lead.req.ready), out.valid.eq(lead.beat.valid),
                     out.payload.index.eq(lead.beat.payload.index),
                     out.payload.last.eq(lead.beat.payload.last),
                     out.payload.tag.eq(lead.beat.payload.tag)]
        k = 0
        for ci, lanes in enumerate(self.plan.lanes):
            for lane in range(lanes):
                sv = Signal(signed(acc_width(layer.rows)), name=f"sum_c{ci}_l{lane}")
                terms = [self.tiles[ri, ci].beat.payload.acc[lane]
                         for ri in range(len(layer.row_tiles))]
                total = terms[0]
                for tm in terms[1:]:
                    total = total + tm
                m.d.comb += [sv.eq(total), out.payload.acc[k].eq(sv)]
                k += 1
        return m


def _collect(m, lanes_of, values, beats: int, width: int, got, name: str):
    """Per column split, the values of a whole read: the last beat's lanes are combinational
    and earlier beats' are shifted into a register, so the read's result is complete in
    the cycle its last beat arrives. Returns one `Value` of lanes*beats*width bits per split."""
    out = []
    for ci, lanes in enumerate(lanes_of):
        beat_vals = values[ci]
        if beats > 1:
            sr = Signal(lanes * width * beats, name=f"{name}_c{ci}")
            full = Cat(sr[lanes * width:], beat_vals)
            with m.If(got):
                m.d.sync += sr.eq(full)
        else:
            full = beat_vals
        out.append(full)
    return out


class ThresholdPool(wiring.Component):
    """Thresholds a thresholded layer's column sums, pools (OR) and writes the next buffer.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        Signs, thresholds, pool size and tiling.
    plan : hwgen.hw.plan.ReadPlan

    Ports
    -----
    sums : In(stream of `sums_layout`)
        Always ready.
    next : In(`buffer_write_signature(H''*W'', O)`)
        Writes into the next layer's buffer: one O-bit word per pooled position.
    done : Out(1)
        Pulse with the layer's last write.
    """

    def __init__(self, layer: Layer, plan: ReadPlan):
        if layer.is_classifier:
            raise ValueError("ThresholdPool needs a thresholded layer, not the classifier")
        self.layer, self.plan = layer, plan
        o, hh, ww = layer.out_shape
        super().__init__({
            "sums": In(stream.Signature(sums_layout(layer, plan))),
            "next": In(buffer_write_signature(hh * ww, o)),
            "done": Out(1),
        })

    def threshold_rom(self) -> tuple[list[int], int]:
        """Word k: per column split, per lane, (t', neg) with out = neg ? acc <= t' : acc >= t'."""
        layer, r = self.layer, self.plan.beats
        rows = layer.rows
        tw = acc_width(rows + 1)
        words = []
        for k in range(r):
            word, pos = 0, 0
            for (a, b), lanes in zip(layer.col_tiles, self.plan.lanes):
                for lane in range(lanes):
                    j = a + k * lanes + lane
                    t, neg = 0, 0
                    if j < b:
                        s, t = layer.sign[j], layer.thresh[j]
                        neg = int(s < 0)
                        # acc is in [-rows, rows]: clamping keeps every comparison's outcome.
                        t = max(-rows - 1, min(rows + 1, t if s > 0 else -t))
                    word |= ((t & ((1 << tw) - 1)) | (neg << tw)) << pos
                    pos += tw + 1
            words.append(word)
        return words, tw

    def elaborate(self, platform):
        m = Module()
        layer, plan, beat = self.layer, self.plan, self.sums
        o = layer.out_channels
        tag = data.View(window_tag(_out_positions(layer)), beat.payload.tag)
        got = Signal()
        end = Signal()                                 # the last beat of a window
        m.d.comb += [beat.ready.eq(1), got.eq(beat.valid),
                     end.eq(got & beat.payload.last)]
        words, tw = self.threshold_rom()
        width = (tw + 1) * sum(plan.lanes)
        m.submodules.thresh = rom = memory.Memory(shape=unsigned(width),
                                                  depth=max(plan.beats, 2), init=words)
        rd = rom.read_port(domain="comb")
        m.d.comb += rd.addr.eq(beat.payload.index)
        bits_of, pos, k = [], 0, 0
        for ci, lanes in enumerate(plan.lanes):
            bits = Signal(lanes, name=f"bits_c{ci}")
            for lane in range(lanes):
                t = rd.data[pos:pos + tw].as_signed()
                neg = rd.data[pos + tw]
                pos += tw + 1
                acc = beat.payload.acc[k]
                k += 1
                m.d.comb += bits[lane].eq(Mux(neg, acc <= t, acc >= t))
            bits_of.append(bits)
        full = _collect(m, plan.lanes, bits_of, plan.beats, 1, got, "sr")
        winbits = Signal(o)
        m.d.comb += winbits.eq(Cat(*(f[:b - a] for f, (a, b) in zip(full, layer.col_tiles))))
        pooled = Signal(o)
        if layer.pool > 1:
            acc_or = Signal(o)
            m.d.comb += pooled.eq(Mux(tag.first, winbits, acc_or | winbits))
            with m.If(end):
                m.d.sync += acc_or.eq(pooled)
        else:
            m.d.comb += pooled.eq(winbits)
        m.d.comb += [self.next.addr.eq(tag.addr), self.next.data.eq(pooled),
                     self.next.en.eq(Mux(end & tag.last, (1 << o) - 1, 0)),
                     self.done.eq(end & tag.final)]
        return m


class ClassCollector(wiring.Component):
    """Collects the classifier's signed class sums into one `out` beat per read.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
        The classifier.
    plan : hwgen.hw.plan.ReadPlan
    acc_w : int
        Width of each class sum on `out` (at least `acc_width(rows)`).

    Ports
    -----
    sums : In(stream of `sums_layout`)
        Ready while `out` holds no beat or the beat is being taken.
    sample : In(16)
        The sample index carried by the beat.
    out : Out(stream of `class_layout(classes, acc_w)`)
    done : Out(1)
        Pulse when the last beat of the read is taken (the `out` beat is valid next cycle).
    """

    def __init__(self, layer: Layer, plan: ReadPlan, acc_w: int):
        self.layer, self.plan, self.acc_w = layer, plan, acc_w
        super().__init__({
            "sums": In(stream.Signature(sums_layout(layer, plan))),
            "sample": In(16),
            "out": Out(stream.Signature(class_layout(layer.out_channels, acc_w))),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        layer, plan, beat, out = self.layer, self.plan, self.sums, self.out
        sw = acc_width(layer.rows)
        tag = data.View(window_tag(_out_positions(layer)), beat.payload.tag)
        got = Signal()
        end = Signal()
        m.d.comb += [beat.ready.eq(~out.valid | out.ready), got.eq(beat.valid & beat.ready),
                     end.eq(got & beat.payload.last), self.done.eq(end & tag.final)]
        vals, k = [], 0
        for lanes in plan.lanes:
            vals.append(Cat(*(beat.payload.acc[k + lane] for lane in range(lanes))))
            k += lanes
        full = _collect(m, plan.lanes, vals, plan.beats, sw, got, "sr")
        classes = [f[j * sw:(j + 1) * sw].as_signed()
                   for f, (a, b) in zip(full, layer.col_tiles) for j in range(b - a)]
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(end):
            m.d.sync += [out.valid.eq(1), out.payload.sample.eq(self.sample)]
            m.d.sync += [out.payload.acc[j].eq(v) for j, v in enumerate(classes)]
        return m


class TileController(wiring.Component):
    """One layer: its input activation buffer, and walker -> tiles -> threshold or collector.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
    site : hwgen.ir.core.Site or None
        The dropout site on this layer's input (its keep bits gate the rows).
    lanes : int
        Requested columns per cycle (see `hwgen.hw.plan.read_plan`).
    acc_w : int
        Classifier only: width of each class sum on `out`.
    bit_writes : bool
        Honour each bit of `wr.en` (the image loader writes one bit at a time). Otherwise
        a write stores the whole word when any `wr.en` bit is set: one enable per port
        keeps the transparent read ports small.

    Ports
    -----
    start : In(1)
        Pulse: walk all windows once.
    done : Out(1)
        Pulse with the layer's last write (or when its last class beat is taken).
    wr : Out(`buffer_write_signature(H*W, C)`)
        This layer's input buffer write port (a memory port: its members are inputs).
    keep : In(n_groups)
        The site's keep bits (only with a site).
    next : In(`buffer_write_signature(H''*W'', O)`)
        Writes into the next layer's buffer (thresholded layers).
    sample : In(16); out : Out(stream of `class_layout`)
        Classifier: the sample index, and one beat of class sums per read.
    """

    def __init__(self, layer: Layer, site: Site | None, lanes: int, *, acc_w: int | None = None,
                 bit_writes: bool = False):
        self.layer, self.site, self.bit_writes = layer, site, bit_writes
        plan = read_plan(layer, lanes)
        self.beats, self.lanes = plan.beats, plan.lanes
        c, h, w = layer.in_shape
        self.depth = buffer_depth(h * w)
        self.acc_w = acc_w if acc_w is not None else acc_width(layer.rows)
        self.walker = WindowWalker(layer, site)
        self.tiles = TileArray(layer, plan, self.walker.tag.size)
        ports = {"start": In(1), "done": Out(1), "wr": Out(buffer_write_signature(h * w, c))}
        if site is not None:
            ports["keep"] = In(site.n_groups)
        if layer.is_classifier:
            self.sink = ClassCollector(layer, plan, self.acc_w)
            ports["sample"] = In(16)
            ports["out"] = Out(stream.Signature(class_layout(layer.out_channels, self.acc_w)))
        else:
            self.sink = ThresholdPool(layer, plan)
            o, hh, ww = layer.out_shape
            ports["next"] = In(buffer_write_signature(hh * ww, o))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        c, _, _ = self.layer.in_shape
        m.submodules.act = act = memory.Memory(shape=unsigned(c), depth=self.depth, init=[])
        wport = act.write_port(granularity=1 if self.bit_writes else None)
        m.d.comb += [wport.addr.eq(self.wr.addr), wport.data.eq(self.wr.data),
                     wport.en.eq(self.wr.en if self.bit_writes else self.wr.en.any())]

        m.submodules.walker = walker = self.walker
        m.submodules.tiles = tiles = self.tiles
        m.submodules.sink = sink = self.sink
        kh, kw = self.layer.kernel
        aw = len(wport.addr)
        data_ = []
        for p in range(kh * kw):
            rp = act.read_port(transparent_for=(wport,))
            m.d.comb += [rp.addr.eq(walker.rd.addr[p * aw:(p + 1) * aw]), rp.en.eq(walker.rd.en)]
            data_.append(rp.data)
        m.d.comb += walker.rd.data.eq(Cat(*data_))
        m.d.comb += walker.start.eq(self.start)
        if self.site is not None:
            m.d.comb += walker.keep.eq(self.keep)
        wiring.connect(m, walker.req, tiles.req)
        wiring.connect(m, tiles.sums, sink.sums)
        m.d.comb += self.done.eq(sink.done)
        if self.layer.is_classifier:
            m.d.comb += sink.sample.eq(self.sample)
            wiring.connect(m, wiring.flipped(self.out), sink.out)
        else:
            wiring.connect(m, wiring.flipped(self.next), sink.next)
        return m
