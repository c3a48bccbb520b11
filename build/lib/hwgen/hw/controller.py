"""Tile controller: one binary layer on its crossbar tiles (DESIGN s. 7).

The controller owns its layer's input activation buffer (one memory word of C bits per
spatial position, written by the previous layer or the image loader) and walks the output
windows in pool-block order (py, px, dy, dx). Per window it reads the kh*kw input
positions through kh*kw read ports; the im2col word lines (rows (c, ky, kx),
channel-major) are pure wiring from the ports, and the row gates are the padding bits AND
the dropout keep bits. All tiles of the layer (row splits x column splits) get the same
request; every tile of a layer has the same number of beats per read, so they run in lock
step and tile 0's handshake stands for all. Row-split partial sums are added, thresholded
and ORed over the pool block in one O-bit register; one write per pooled position goes to
the next layer's buffer. The classifier instead collects its signed class sums and emits
one `out` beat.

The next window is fetched while the tiles read the current one, so within a layer the
tiles never idle. Reads are transparent to the buffer's write port: a layer can start in
the cycle in which the previous layer writes its last position.
"""

from __future__ import annotations

import numpy as np
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer, Site
from .plan import read_plan
from .tile import CrossbarTile, acc_width

__all__ = ["TileController", "WriteSignature", "layer_model"]


def buffer_depth(positions: int) -> int:
    """Depth of an activation buffer: at least 2, so that no address is zero bits wide
    (zero-width signals upset Verilog tools)."""
    return max(positions, 2)


def WriteSignature(positions: int, width: int) -> wiring.Signature:
    """Writer side of an activation-buffer write: one position, a bit-enable mask."""
    return wiring.Signature({"addr": Out(range(buffer_depth(positions))), "data": Out(width),
                             "en": Out(width)})


def _im2col(x: np.ndarray, layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """[C, H, W] bits -> ([windows, rows] bits, [windows, rows] padding gates)."""
    c, h, w = layer.in_shape
    kh, kw = layer.kernel
    ph, pw = layer.pad
    _, oh, ow = layer.conv_shape
    xp = np.zeros((c, h + 2 * ph, w + 2 * pw), np.uint8)
    gp = np.zeros_like(xp)
    xp[:, ph:ph + h, pw:pw + w] = x
    gp[:, ph:ph + h, pw:pw + w] = 1
    xs, gs = [], []
    for oy in range(oh):
        for ox in range(ow):
            xs.append(xp[:, oy:oy + kh, ox:ox + kw].reshape(-1))
            gs.append(gp[:, oy:oy + kh, ox:ox + kw].reshape(-1))
    return np.array(xs), np.array(gs)


def layer_model(layer: Layer, x: np.ndarray, site: Site | None = None, keep=None) -> np.ndarray:
    """numpy model of one layer: [C, H, W] input bits -> [O, H'', W''] bits, or the
    classifier's [O] signed sums. `keep`: the site's [n_groups] keep bits."""
    xs, gs = _im2col(np.asarray(x, np.uint8), layer)
    if site is not None:
        gs = gs & np.repeat(np.asarray(keep, np.uint8), site.group_rows)[None, :]
    w = layer.weight_bits().astype(np.int64)
    agree = gs[:, None, :].astype(np.int64) & (1 - (xs[:, None, :] ^ w[None]))
    acc = 2 * agree.sum(2) - gs.sum(1)[:, None]                # [windows, O]
    if layer.is_classifier:
        return acc[0]
    o, oh, ow = layer.conv_shape
    bits = (np.array(layer.sign)[None] * acc >= np.array(layer.thresh)[None]).astype(np.uint8)
    bits = bits.T.reshape(o, oh, ow)
    s = layer.pool
    _, hh, ww = layer.out_shape
    return bits[:, :hh * s, :ww * s].reshape(o, hh, s, ww, s).max(axis=(2, 4))


class TileController(wiring.Component):
    """One layer: activation buffer, window walk, tiles, thresholds, pooling.

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
    start : In(1)     pulse: walk all windows once
    done : Out(1)     pulse with the layer's last write (or last class beat taken)
    wr : In(WriteSignature)    writes into this layer's input buffer
    keep : In(n_groups)        the site's keep bits (only with a site)
    next : Out(WriteSignature) writes into the next layer's buffer (thresholded layers)
    sample : In(16), out : Out(stream of {sample, acc[O]})   (classifier)
    """

    def __init__(self, layer: Layer, site: Site | None, lanes: int, *, acc_w: int | None = None,
                 bit_writes: bool = False):
        self.layer, self.site, self.bit_writes = layer, site, bit_writes
        plan = read_plan(layer, lanes)
        self.beats, self.lanes = plan.beats, plan.lanes
        c, h, w = layer.in_shape
        self.depth = buffer_depth(h * w)
        self.sum_w = acc_width(layer.rows)
        self.acc_w = acc_w if acc_w is not None else self.sum_w
        o, hh, ww = layer.out_shape
        ports = {
            "start": In(1), "done": Out(1),
            "wr": In(WriteSignature(h * w, c)),
        }
        if site is not None:
            ports["keep"] = In(site.n_groups)
        if layer.is_classifier:
            ports["sample"] = In(16)
            ports["out"] = Out(stream.Signature(data.StructLayout({
                "sample": 16, "acc": data.ArrayLayout(signed(self.acc_w), o)})))
        else:
            ports["next"] = Out(WriteSignature(hh * ww, o))
        super().__init__(ports)

    def _threshold_rom(self) -> tuple[list[int], int]:
        """Word k: per column split, per lane, (t', neg) with out = neg ? acc <= t' : acc >= t'."""
        layer, r = self.layer, self.beats
        rows = layer.rows
        tw = acc_width(rows + 1)
        words = []
        for k in range(r):
            word, pos = 0, 0
            for (a, b), lanes in zip(layer.col_tiles, self.lanes):
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
        layer, site, r = self.layer, self.site, self.beats
        c, h, w = layer.in_shape
        kh, kw = layer.kernel
        ph, pw = layer.pad
        o, oh, ow = layer.conv_shape
        s = layer.pool
        _, hp, wp = layer.out_shape                    # pool blocks (floor mode)

        # -- input activation buffer ----------------------------------------------------
        m.submodules.act = act = memory.Memory(shape=unsigned(c), depth=self.depth, init=[])
        wport = act.write_port(granularity=1 if self.bit_writes else None)
        m.d.comb += [wport.addr.eq(self.wr.addr), wport.data.eq(self.wr.data),
                     wport.en.eq(self.wr.en if self.bit_writes else self.wr.en.any())]
        rports = [act.read_port(transparent_for=(wport,)) for _ in range(kh * kw)]

        # -- window walk (the next window to fetch) --------------------------------------
        def counter(n, name):
            return Signal(range(n), name=name) if n > 1 else Const(0, 1)
        py, px, dy, dx = counter(hp, "py"), counter(wp, "px"), counter(s, "dy"), counter(s, "dx")
        running = Signal()
        oy, ox = py * s + dy, px * s + dx
        first = ~dy.any() & ~dx.any()
        last_blk = (dy == s - 1) & (dx == s - 1)
        final = last_blk & (py == hp - 1) & (px == wp - 1)

        tag = data.StructLayout({"first": 1, "last": 1, "final": 1, "addr": range(buffer_depth(hp * wp))})
        b_valid = Signal()
        b_tag = Signal(tag)
        b_pad = Signal(kh * kw)
        take = Signal()                                # the tiles take the request in B
        fetch = Signal()
        m.d.comb += fetch.eq((self.start | running) & (~b_valid | take))

        aw = (self.depth - 1).bit_length()
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
                port = rports[ky * kw + kx]
                off = (ky - ph) * w + (kx - pw)
                if oh * ow == 1 and not (ph or pw):
                    addr = Const(off, aw)
                else:
                    # modular: exact whenever the position is inside the map
                    addr = Mux(okv, (base + (off % (1 << aw)))[:aw], 0)
                m.d.comb += [port.addr.eq(addr), port.en.eq(fetch)]

        with m.If(fetch):
            m.d.sync += [b_valid.eq(1), b_pad.eq(Cat(*pad_now)),
                         b_tag.first.eq(first), b_tag.last.eq(last_blk),
                         b_tag.final.eq(final), b_tag.addr.eq(py * wp + px),
                         running.eq(~final)]
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
            m.d.sync += b_valid.eq(0)

        # -- word lines and row gates: wiring ---------------------------------------------
        xbits = Signal(layer.rows)
        gbits = Signal(layer.rows)
        for ch in range(c):
            for p in range(kh * kw):
                i = ch * kh * kw + p
                m.d.comb += xbits[i].eq(rports[p].data[ch])
                # a kernel position that no window can push off the map needs no gate bit
                g = None if never_pad[p] else b_pad[p]
                if site is not None:
                    k = self.keep[i // site.group_rows]
                    g = k if g is None else g & k
                if g is None:
                    g = Const(1, 1)
                m.d.comb += gbits[i].eq(g)

        # -- tiles ------------------------------------------------------------------------
        wbits = layer.weight_bits()
        tiles = {}
        for ci, ((ca, cb), lanes) in enumerate(zip(layer.col_tiles, self.lanes)):
            for ri, (ra, rb) in enumerate(layer.row_tiles):
                t = CrossbarTile(rb - ra, cb - ca, lanes, wbits[ca:cb, ra:rb], beats=r,
                                 tag_width=tag.size)
                m.submodules[f"tile_r{ri}_c{ci}"] = tiles[ri, ci] = t
                m.d.comb += [t.req.valid.eq(b_valid), t.req.payload.x.eq(xbits[ra:rb]),
                             t.req.payload.g.eq(gbits[ra:rb]), t.req.payload.tag.eq(b_tag)]
        lead = tiles[0, 0]
        m.d.comb += take.eq(b_valid & lead.req.ready)
        beat = lead.beat
        btag = Signal(tag)
        m.d.comb += btag.eq(beat.payload.tag)
        sink_ready = Signal()
        for t in tiles.values():
            m.d.comb += t.beat.ready.eq(sink_ready)
        got = Signal()
        m.d.comb += got.eq(beat.valid & sink_ready)
        end = got & beat.payload.last                  # last beat of a window

        # row-split partial sums -> one sum per (column split, lane)
        sums = []
        for ci, lanes in enumerate(self.lanes):
            col = []
            for lane in range(lanes):
                sv = Signal(signed(self.sum_w), name=f"sum_c{ci}_l{lane}")
                terms = [tiles[ri, ci].beat.payload.acc[lane] for ri in range(len(layer.row_tiles))]
                total = terms[0]
                for tm in terms[1:]:
                    total = total + tm
                m.d.comb += sv.eq(total)
                col.append(sv)
            sums.append(col)

        if layer.is_classifier:
            self._classifier(m, sums, got, end, sink_ready)
        else:
            self._threshold_pool(m, sums, beat, btag, got, end, sink_ready)
        m.d.comb += self.done.eq(end & btag.final)
        return m

    def _threshold_pool(self, m, sums, beat, btag, got, end, sink_ready):
        layer, r = self.layer, self.beats
        o = layer.out_channels
        words, tw = self._threshold_rom()
        width = (tw + 1) * sum(self.lanes)
        m.submodules.thresh = rom = memory.Memory(shape=unsigned(width), depth=max(r, 2),
                                                  init=words)
        rd = rom.read_port(domain="comb")
        m.d.comb += [rd.addr.eq(beat.payload.index), sink_ready.eq(1)]
        win = []
        pos = 0
        for ci, lanes in enumerate(self.lanes):
            bits = Signal(lanes, name=f"bits_c{ci}")
            for lane in range(lanes):
                t = rd.data[pos:pos + tw].as_signed()
                neg = rd.data[pos + tw]
                pos += tw + 1
                acc = sums[ci][lane]
                m.d.comb += bits[lane].eq(Mux(neg, acc <= t, acc >= t))
            if r > 1:
                sr = Signal(lanes * r, name=f"sr_c{ci}")
                full = Cat(sr[lanes:], bits)
                with m.If(got):
                    m.d.sync += sr.eq(full)
            else:
                full = bits
            a, b = layer.col_tiles[ci]
            win.append(full[:b - a])
        winbits = Signal(o)
        m.d.comb += winbits.eq(Cat(*win))
        pooled = Signal(o)
        if layer.pool > 1:
            acc_or = Signal(o)
            m.d.comb += pooled.eq(Mux(btag.first, winbits, acc_or | winbits))
            with m.If(end):
                m.d.sync += acc_or.eq(pooled)
        else:
            m.d.comb += pooled.eq(winbits)
        m.d.comb += [self.next.addr.eq(btag.addr), self.next.data.eq(pooled),
                     self.next.en.eq(Mux(end & btag.last, (1 << o) - 1, 0))]

    def _classifier(self, m, sums, got, end, sink_ready):
        layer, r = self.layer, self.beats
        sw = self.sum_w
        out = self.out
        classes = []
        for ci, lanes in enumerate(self.lanes):
            beat_vals = Cat(*sums[ci])
            if r > 1:
                sr = Signal(lanes * sw * r, name=f"sr_c{ci}")
                full = Cat(sr[lanes * sw:], beat_vals)
                with m.If(got):
                    m.d.sync += sr.eq(full)
            else:
                full = beat_vals
            a, b = layer.col_tiles[ci]
            classes += [full[j * sw:(j + 1) * sw].as_signed() for j in range(b - a)]
        m.d.comb += sink_ready.eq(~out.valid | out.ready)
        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
        with m.If(end):
            m.d.sync += [out.valid.eq(1), out.payload.sample.eq(self.sample)]
            m.d.sync += [out.payload.acc[j].eq(v) for j, v in enumerate(classes)]
