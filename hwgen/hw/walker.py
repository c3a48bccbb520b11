"""The window walker: rotates a layer's ring store and issues a tile request at each
window's anchor (hwgen.hw.plan has the schedule and its cycles).

The ring (hwgen.hw.store) holds map position a + j at slot j, a the anchor; the walker
counts a as the input position (y, x) and, per dimension, its stride phase, its window
index within a pool block and its block. The window of conv output (oy, ox) stands at
a = oy*sh*W + ox*sw, kernel position (ky, kx) at the fixed slot ((ky - ph)*W + kx - pw)
mod H*W: the word lines are the taps as they stand (position-major, `wordline_order`),
and the row gates are the padding bits (the tap lies in the map, from (y, x)) AND the
dropout keep bits. Windows in no pool block (a pool stride larger than its size, or the
floor-mode edge) are passed without a request.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..ir.core import Layer, Site
from .layouts import window_tag
from .plan import walked
from .tile import request_layout

__all__ = ["WindowWalker", "tap_slots"]


def tap_slots(layer: Layer) -> list[int]:
    """The ring slot of each kernel position (ky, kx), in ky*kw + kx order."""
    _, h, w = layer.in_shape
    kh, kw = layer.kernel
    ph, pw = layer.pad
    return [((ky - ph) * w + (kx - pw)) % (h * w) for ky in range(kh) for kx in range(kw)]


class WindowWalker(wiring.Component):
    """Walks a layer's windows in raster order and issues one tile request per window.

    Parameters
    ----------
    layer : hwgen.ir.core.Layer
    site : hwgen.ir.core.Site or None
        The dropout site on the layer's input (its keep bits gate the rows).
    planes : int
        0: binary input, the word lines are the window's bits (XNOR rows). P >= 1: a
        bit-plane first layer whose store word holds P*C bits (plane k's C channels at
        bits [k*C, (k+1)*C)); the ring holds still while each window is issued as P
        requests, MSB plane first, with every word line +1 and the rows gated by the
        plane's bits AND the padding (SPEC section 3; no site on such a layer).
    reread : bool
        The store is read again without being rewritten: after the final window the
        ring keeps rotating back to home, and `start` is acted on only at home (a start
        that comes earlier waits).

    Ports
    -----
    start : In(1)
        Pulse: walk all windows once (from home).
    taps : In(kh*kw * max(P, 1)*C)
        The store's tap words, kernel position ky*kw + kx at word ky*kw + kx.
    fresh : In(1)
        The store's ring is back at home (rewritten, or the other bank): the position
        restarts at 0.
    rotate : Out(1)
        Rotate the ring one slot.
    keep : In(n_groups)
        The site's keep bits, 1 = keep (only with a site); held for the whole walk.
    req : Out(stream of `request_layout(rows, window_tag.size)`)
        Word lines `x`, row gates `g` and the window tag, one beat per window (per
        plane of a window).
    """

    def __init__(self, layer: Layer, site: Site | None, planes: int = 0, reread: bool = False):
        if not (isinstance(planes, int) and planes >= 0):
            raise ValueError(f"planes must be a non-negative integer, not {planes!r}")
        if planes and site is not None:
            raise ValueError("a bit-plane first layer cannot have a dropout site")
        self.layer, self.site, self.planes, self.reread = layer, site, planes, reread
        c = layer.in_shape[0]
        kh, kw = layer.kernel
        self.tag = window_tag(planes > 0)
        ports = {
            "start": In(1), "fresh": In(1), "rotate": Out(1),
            "taps": In(kh * kw * max(planes, 1) * c),
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
        sh, sw = layer.stride
        s, t = layer.pool, layer.pool_step
        _, hp, wp = layer.out_shape
        ys, xs = walked(layer)                 # the issued conv rows / columns
        req = self.req
        tag = data.View(self.tag, req.payload.tag)
        npl = self.planes
        single = len(ys) * len(xs) == 1        # one window at home: the ring never turns

        # -- the anchor: input position (y, x) and its digits per dimension ---------------
        def counter(top, name):
            return Signal(range(top + 1), name=name) if top > 0 else Const(0, 1)

        def dimension(n, st, name):
            # position p in [0, n), stride phase p mod st, window in block (p div st) mod t,
            # block p div (st*t)
            return [(counter(n - 1, name), n), (counter(st - 1, f"r{name}"), st),
                    (counter(t - 1, f"d{name}"), t),
                    (counter((n - 1) // (st * t), f"p{name}"), None)]
        if single:
            zero = Const(0, 1)
            dims = {"y": [(zero, 1)] * 4, "x": [(zero, 1)] * 4}
        else:
            dims = {"y": dimension(h, sh, "y"), "x": dimension(w, sw, "x")}
        (y, _), (ry, _), (dy, _), (py, _) = dims["y"]
        (x, _), (rx, _), (dx, _), (px, _) = dims["x"]

        def cmp(v, op, k, values):
            """v op k where it can differ over the walked anchors `values` (else a constant)."""
            res = [op(a, k) for a in values]
            if all(res):
                return None
            if not any(res):
                return Const(0, 1)
            return op(v, k)

        def all_of(conds):
            out = Const(1, 1)
            for cnd in conds:
                if cnd is not None:
                    out = out & cnd
            return out

        ya, xa = [o * sh for o in ys], [o * sw for o in xs]
        ge, lt, eq = (lambda a, b: a >= b), (lambda a, b: a < b), (lambda a, b: a == b)
        anchor = Signal()
        if single:
            m.d.comb += anchor.eq(1)
        else:
            # every position: a window's stride phase 0 and in a block (in the conv map)
            conds = [cmp(ry, eq, 0, range(sh)), cmp(rx, eq, 0, range(sw))]
            for dd, pp, n_blk, digits in ((dy, py, hp, dims["y"]), (dx, px, wp, dims["x"])):
                if t > s:
                    conds.append(dd < s)
                if (digits[0][1] - 1) // (digits[1][1] * t) >= n_blk:
                    conds.append(pp < n_blk)
            m.d.comb += anchor.eq(all_of(conds))
        # at an anchor the window index in its block is in [0, s)
        m.d.comb += [tag.xfirst.eq(all_of([cmp(dx, eq, 0, range(s))])),
                     tag.xlast.eq(all_of([cmp(dx, eq, s - 1, range(s))])),
                     tag.yfirst.eq(all_of([cmp(dy, eq, 0, range(s))])),
                     tag.ylast.eq(all_of([cmp(dy, eq, s - 1, range(s))]))]
        final = all_of([cmp(px, eq, wp - 1, range(wp)), cmp(py, eq, hp - 1, range(hp))])
        m.d.comb += tag.final.eq(tag.xlast & tag.ylast & final)

        # -- walking: requests at the anchors, rotation between them ----------------------
        walking, pending = Signal(), Signal()
        take, last_take, turn = Signal(), Signal(), Signal()
        home = Signal()
        m.d.comb += [home.eq(all_of([cmp(y, eq, 0, range(h)), cmp(x, eq, 0, range(w))])
                             if not single else 1),
                     req.valid.eq(walking & anchor), take.eq(req.valid & req.ready)]
        go = (self.start | pending) & home & ~walking
        if npl > 1:
            plane = Signal(range(npl), init=npl - 1, name="plane")     # bit index of this pass
            m.d.comb += [tag.pfirst.eq(plane == npl - 1), tag.plast.eq(plane == 0),
                         last_take.eq(take & tag.plast)]
            with m.If(take):
                m.d.sync += plane.eq(Mux(tag.plast, npl - 1, plane - 1))
        else:
            if npl:
                m.d.comb += [tag.pfirst.eq(1), tag.plast.eq(1)]
            m.d.comb += last_take.eq(take)
        end = last_take & tag.final
        m.d.sync += pending.eq((pending | self.start) & ~go)
        with m.If(go):
            m.d.sync += walking.eq(1)
        with m.Elif(end):
            m.d.sync += walking.eq(0)
        if single:
            m.d.comb += self.rotate.eq(0)
        else:
            moving = walking & (~anchor | (last_take & (~tag.final if not self.reread else 1)))
            if self.reread:
                moving = moving | (~walking & ~home)
            m.d.comb += [turn.eq(moving & ~self.fresh), self.rotate.eq(turn)]
            # the x digits advance every step and restart at each row; the y digits
            # advance at each row change and restart at home
            x_wrap = all_of([cmp(x, eq, w - 1, range(w))])
            y_wrap = all_of([cmp(y, eq, h - 1, range(h))])

            def advance(digits):
                carry = Const(1, 1)
                (pos, n), *rest = digits
                if n > 1:
                    m.d.sync += pos.eq(pos + 1)
                for sig, mod in rest:
                    if mod is None:
                        if isinstance(sig, Signal):
                            with m.If(carry):
                                m.d.sync += sig.eq(sig + 1)
                    elif mod > 1:
                        with m.If(carry):
                            m.d.sync += sig.eq(Mux(sig == mod - 1, 0, sig + 1))
                        carry = carry & (sig == mod - 1)

            def clear(digits):
                m.d.sync += [sig.eq(0) for sig, _ in digits if isinstance(sig, Signal)]
            with m.If(self.fresh):
                clear(dims["x"] + dims["y"])
            with m.Elif(turn):
                with m.If(x_wrap):
                    clear(dims["x"])
                    with m.If(y_wrap):
                        clear(dims["y"])
                    with m.Else():
                        advance(dims["y"])
                with m.Else():
                    advance(dims["x"])

        # -- word lines and row gates: wiring ----------------------------------------------
        # Word lines in position-major order (`wordline_order`): position p's C rows are
        # the C bits of its tap word, so the word lines are the taps as they stand and the
        # gates are word-wide ANDs (a channel-major order would be a bit transpose, free in
        # silicon but a per-bit shuffle in every simulated cycle).
        xs_, gs = [], []
        pw_ = max(npl, 1) * c                          # bits per store word
        ones = Const((1 << c) - 1, c)
        if npl > 1:
            # one-hot plane select (AND-OR): a variable part-select becomes a wide shift
            # that Verilator -Wall flags (WIDTHTRUNC)
            onehot = [Signal(name=f"plane_is_{k}") for k in range(npl)]
            m.d.comb += [oh.eq(plane == k) for k, oh in enumerate(onehot)]
        for p in range(kh * kw):
            ky, kx = divmod(p, kw)
            # the tap's input position (y + ky - ph, x + kx - pw) lies in the map: only
            # the bounds some walked anchor crosses are compared
            ok = [cmp(y, ge, ph - ky, ya), cmp(y, lt, h + ph - ky, ya),
                  cmp(x, ge, pw - kx, xa), cmp(x, lt, w + pw - kx, xa)]
            g = None
            if any(cnd is not None for cnd in ok):
                okv = Signal(name=f"ok_{ky}_{kx}")
                m.d.comb += okv.eq(all_of(ok))
                g = okv.replicate(c)
            word = self.taps[p * pw_:(p + 1) * pw_]
            if npl:
                # bit planes: every driven input is +1, the plane bit gates the row
                xs_.append(ones)
                if npl > 1:
                    b = onehot[0].replicate(c) & word[:c]
                    for k in range(1, npl):
                        b = b | (onehot[k].replicate(c) & word[k * c:(k + 1) * c])
                else:
                    b = word[:c]
                g = b if g is None else g & b
            else:
                xs_.append(word)
            if site is not None:
                kv = Cat(*(self.keep[(ch * kh * kw + p) // site.group_rows] for ch in range(c)))
                g = kv if g is None else g & kv
            gs.append(ones if g is None else g)
        m.d.comb += [req.payload.x.eq(Cat(*xs_)), req.payload.g.eq(Cat(*gs))]
        return m
