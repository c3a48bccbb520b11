"""Architecture SPEC parsing (the grammar: SPEC section 13, docs/SPEC.md) into plain-data
layer descriptions.

Every binary layer is described as a convolution: a linear layer fed by a flatten of a
(C, H, W) map is a stride-1 conv with an H x W kernel and no padding, and a linear layer
fed by a linear layer of F neurons is a 1 x 1 conv over an (F, 1, 1) map. This
makes the crossbar row order (c, ky, kx) equal PyTorch's flatten order (c, y, x), so the
compiler and the hardware need one layer kind only. The original op is kept in "op".

Tokens: `cN` (3x3 conv, same padding), `cNkK` (K x K), a `v` suffix for a valid
(unpadded) conv (`c64v`, `c64k5v`), then `sS` for stride S (`c64s2`, `c64k5vs2`; default
1; "same" padding stays K // 2 on each side, so the map shrinks to ceil(H / S)), `pS`
(max-pool S x S after a conv, stride S) and `pSsT` (stride T: overlapping blocks for T < S,
gaps for T > S; floor mode), `fN` (linear; the last is the classifier), and `d` before a
binary layer to put a dropout site on its input.
Without any `d`, every binary layer but the first gets a site (the default); with `d`
tokens, exactly the marked layers do. The first layer never does.
"""

from __future__ import annotations

import re

__all__ = ["SpecError", "parse_spec", "layer_plan"]

_TOKEN = re.compile(r"^(?:c(?P<c>\d+)(?:k(?P<k>\d+))?(?P<v>v)?(?:s(?P<cs>\d+))?"
                    r"|p(?P<p>\d+)(?:s(?P<ps>\d+))?|f(?P<f>\d+)|(?P<d>d))$")


class SpecError(ValueError):
    """A bad architecture SPEC; the message names the bad token."""


def parse_spec(spec: str) -> list[tuple]:
    """Parse 'c16,p2,d,c32k5vs2,p3s2,f64,f10' into [('conv', 16, 3, pad, 1), ('pool', 2, 2),
    ('drop',), ('conv', 32, 5, 0, 2), ('pool', 3, 2), ..., ('linear', 10)] (pad: 'same'
    or 0; the last item of a conv or pool is its stride)."""
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"architecture spec must be a non-empty comma list, not {spec!r}")
    out: list[tuple] = []
    for tok in spec.split(","):
        tok = tok.strip()
        m = _TOKEN.match(tok)
        if m is None:
            raise SpecError(f"bad spec token {tok!r}: expected cN, cNkK, cNv, cNkKv (each "
                            f"optionally followed by sS), pS, pSsT, fN or d")
        if m["d"] is not None:
            if not out:
                raise SpecError(f"bad spec token {tok!r}: the first layer gets no dropout site")
            if out[-1][0] == "drop":
                raise SpecError(f"bad spec {spec!r}: two d tokens in a row")
            out.append(("drop",))
        elif m["c"] is not None:
            n, k, st = int(m["c"]), int(m["k"] or 3), int(m["cs"] or 1)
            if n < 1 or k < 1 or st < 1:
                raise SpecError(f"bad spec token {tok!r}: channels, kernel and stride must "
                                f"be >= 1")
            if k % 2 == 0 and not m["v"]:
                raise SpecError(f"bad spec token {tok!r}: kernel must be odd for same padding "
                                f"(or valid: {tok}v)")
            out.append(("conv", n, k, 0 if m["v"] else "same", st))
        elif m["p"] is not None:
            s, st = int(m["p"]), int(m["ps"] or m["p"])
            if s < 2:
                raise SpecError(f"bad spec token {tok!r}: pool size must be >= 2")
            if st < 1:
                raise SpecError(f"bad spec token {tok!r}: pool stride must be >= 1")
            if not out or out[-1][0] != "conv":
                raise SpecError(f"bad spec token {tok!r}: a pool must follow a conv")
            out.append(("pool", s, st))
        else:
            n = int(m["f"])
            if n < 1:
                raise SpecError(f"bad spec token {tok!r}: features must be >= 1")
            out.append(("linear", n))
    if out[-1][0] != "linear":
        raise SpecError(f"bad spec {spec!r}: the last token must be the classifier fN")
    layers = [o for o in out if o[0] != "drop"]
    for a, b in zip(layers, layers[1:]):
        if a[0] == "linear" and b[0] not in ("linear",):
            raise SpecError(f"bad spec {spec!r}: {b[0]} after a linear layer is not supported")
    for a, b in zip(out, out[1:]):
        if a[0] == "drop" and b[0] == "pool":
            raise SpecError(f"bad spec {spec!r}: d must come before a layer, not a pool")
    return out


def layer_plan(spec: str, in_shape: tuple[int, int, int]) -> list[dict]:
    """Binary layers as plain dicts, each a conv (see module docstring).

    Keys: op ('conv' | 'linear'), in_shape [C, H, W], out_channels, kernel [kh, kw],
    pad [ph, pw], pool (1 = none), conv_shape [O, H', W'] (before pooling),
    out_shape [O, H'', W''] (after pooling), fed_by ('input' | 'conv' | 'linear'),
    site (a dropout site on the layer's input: see the module docstring); and only
    where they are not the defaults (so a stride-1 checkpoint is what it always was):
    stride [sh, sw] (default [1, 1]) and pool_stride (default: the pool size).
    """
    c, h, w = (int(v) for v in in_shape)
    plan: list[dict] = []
    fed_by = "input"
    items = parse_spec(spec)
    chosen = any(it[0] == "drop" for it in items)
    marked = False
    for item in items:
        if item[0] == "drop":
            marked = True
            continue
        if item[0] == "pool":
            layer = plan[-1]
            _, s, st = item
            o, hh, ww = layer["conv_shape"]
            if hh < s or ww < s:
                raise SpecError(f"bad spec {spec!r}: pool p{s} on a {hh}x{ww} map leaves nothing")
            layer["pool"] = s
            if st != s:
                layer["pool_stride"] = st
            layer["out_shape"] = [o, (hh - s) // st + 1, (ww - s) // st + 1]
            c, h, w = layer["out_shape"]
            continue
        if item[0] == "conv":
            _, n, k, padding, st = item
            kernel, pad = [k, k], ([k // 2, k // 2] if padding == "same" else [0, 0])
            if h + 2 * pad[0] < k or w + 2 * pad[1] < k:
                raise SpecError(f"bad spec {spec!r}: a {k}x{k} valid conv on a {h}x{w} map "
                                f"leaves nothing")
        else:
            _, n = item
            kernel, pad, st = [h, w], [0, 0], 1
        conv_shape = [n, (h + 2 * pad[0] - kernel[0]) // st + 1,
                      (w + 2 * pad[1] - kernel[1]) // st + 1]
        plan.append(dict(op=item[0], in_shape=[c, h, w], out_channels=n, kernel=kernel,
                         pad=pad, pool=1, conv_shape=conv_shape, out_shape=list(conv_shape),
                         fed_by=fed_by, site=marked if chosen else bool(plan)))
        if st != 1:
            plan[-1]["stride"] = [st, st]
        marked = False
        if item[0] == "linear":
            c, h, w = n, 1, 1
        else:
            c, h, w = conv_shape
        fed_by = item[0]
    return plan
