"""Per-channel float32 chains after a product node (BatchNormalization and constant
Mul/Div/Add/Sub) and their fold into one integer (s, t) per channel, exact on every acc the
layer reaches."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...ir.core import Layer
from ...passes.fold import fold_decisions
from .graph import _F32, _G, _elementwise, _pow2, _run_nodes, _unsupported
from .load import _first_line

TIE_REL = 2.0 ** -20          # near-tie: |y| within 16 float32 ulps of the terms that make y
CHAIN_OPS = ("BatchNormalization", "Mul", "Div", "Add", "Sub")


def bn_onnxruntime(x, gain, bias, mean, var, eps):
    """onnxruntime's float32 BatchNormalization (inference), channels on axis 0 of the
    parameter vectors and of x ([O, ...]): inv = 1/sqrt(var+eps); k = inv*gain;
    c = bias - mean*k; y = x*k + c, every step rounded to float32."""
    sh = (-1,) + (1,) * (np.ndim(x) - 1)
    f = lambda v: np.asarray(v, _F32).reshape(sh)        # noqa: E731
    with np.errstate(all="ignore"):
        inv = _F32(1) / np.sqrt(f(var) + _F32(eps))
        k = inv * f(gain)
        c = f(bias) - f(mean) * k
        return np.asarray(x, _F32) * k + c


@dataclass(frozen=True)
class _Step:
    op: str                   # 'bn' | 'Mul' | 'Div' | 'Add' | 'Sub'
    c: tuple                  # per-channel float32 vectors: (gain, bias, mean, var) or (c,)
    first: bool = False       # constant is the first operand (Sub(c, x), Add(c, x), ...)
    eps: float = 0.0
    node: object = None
    src: str = ""             # the node's data input tensor


def _chain32(steps, x: np.ndarray) -> np.ndarray:
    """The runtime's float32 values; x [O, K]."""
    y = np.asarray(x, _F32)
    for s in steps:
        if s.op == "bn":
            y = bn_onnxruntime(y, *s.c, s.eps)
        else:
            y = _elementwise(s.op, y, s.c[0][:, None], s.first)
    return y


def _chain64(steps, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, magnitude of the terms) in float64 by the ONNX formulas; x [O, K]."""
    y = np.asarray(x, np.float64)
    m = np.abs(y)
    for s in steps:
        c = [np.asarray(v, np.float64)[:, None] for v in s.c]
        if s.op == "bn":
            gain, bias, mean, var = c
            k = gain / np.sqrt(var + np.float64(_F32(s.eps)))
            y = (y - mean) * k + bias
            m = (m + np.abs(mean)) * np.abs(k) + np.abs(bias)
        elif s.op in ("Add", "Sub"):
            y = (c[0] + y if s.op == "Add" else (c[0] - y if s.first else y - c[0]))
            m = m + np.abs(c[0])
        elif s.op == "Mul":
            y, m = y * c[0], m * np.abs(c[0])
        else:
            y, m = y / c[0], m / np.abs(c[0])
    return y, m


def _chain_affine(steps, o: int) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) with value = A*x + B in exact arithmetic (float64), per channel."""
    a, b = np.ones(o), np.zeros(o)
    for s in steps:
        c = [np.asarray(v, np.float64) for v in s.c]
        if s.op == "bn":
            gain, bias, mean, var = c
            k = gain / np.sqrt(var + np.float64(_F32(s.eps)))
            a, b = a * k, (b - mean) * k + bias
        elif s.op == "Add":
            b = b + c[0]
        elif s.op == "Sub":
            a, b = (-a, c[0] - b) if s.first else (a, b - c[0])
        elif s.op == "Mul":
            a, b = a * c[0], b * c[0]
        else:
            a, b = a / c[0], b / c[0]
    return a, b


def _channel_vec(g: _G, n, c: np.ndarray, tshape: tuple[int, ...]) -> np.ndarray:
    """A constant that broadcasts to the tensor shape and varies only along axis 1."""
    c = np.asarray(c, _F32)
    try:
        full = np.broadcast_to(c, tshape)
    except ValueError:
        raise g.err(n, f"constant of shape {c.shape} does not fit {tshape}") from None
    if full.shape != tuple(tshape):
        raise g.err(n, f"constant of shape {c.shape} changes the shape {tshape}")
    moved = np.moveaxis(full, 1, 0).reshape(tshape[1], -1)
    if not np.all(moved == moved[:, :1]):
        raise g.err(n, "constant varies across positions (only per-channel constants fold)")
    v = moved[:, 0].copy()
    if not np.all(np.isfinite(v)):
        raise g.err(n, "constant is not finite")
    return v


def _chain_step(g: _G, n, t: str, tshape) -> _Step:
    if n.op_type == "BatchNormalization":
        g.data_input(n, t)
        a = g.attrs(n)
        if a.get("training_mode", 0) or not a.get("spatial", 1):
            raise g.err(n, "training mode or non-spatial batch norm is not supported")
        if len(n.input) != 5 or any(g.const(i) is None for i in n.input[1:]):
            raise g.err(n, "scale, bias, mean and variance must be constants")
        if len([o for o in n.output if o]) != 1:
            raise g.err(n, "has more than one output (training mode)")
        p = [np.asarray(g.const(i), _F32).reshape(-1) for i in n.input[1:]]
        if any(v.shape != (tshape[1],) for v in p):
            raise g.err(n, f"parameters do not have {tshape[1]} channels")
        eps = float(a.get("epsilon", 1e-5))
        if not all(np.all(np.isfinite(v)) for v in p) or not np.all(p[3] + _F32(eps) > 0):
            raise g.err(n, "parameters are not finite, or var + eps <= 0")
        return _Step("bn", tuple(p), eps=eps, node=n, src=t)
    other = [i for i in n.input if i != t]
    if len(n.input) != 2 or len(other) != 1 or g.const(other[0]) is None:
        raise g.err(n, _unsupported(g, n, "with an operand that is not a constant"))
    first = n.input[0] != t
    if first and n.op_type == "Div":
        raise g.err(n, "divides a constant by the activation (not affine)")
    v = _channel_vec(g, n, g.const(other[0]), tshape)
    if n.op_type == "Div" and np.any(v == 0):
        raise g.err(n, "divides by zero")
    return _Step(n.op_type, (v,), first=first, node=n, src=t)


def _run_chain_ort(g: _G, steps, x: np.ndarray, rank: int) -> np.ndarray:
    """The chain after a product node on x [O, K], laid out as the runtime sees it:
    [1, O, K, 1] for conv maps, [K, O] for linear outputs."""
    nodes = [s.node for s in steps]
    if rank == 4:
        return _run_nodes(g, nodes, steps[0].src, x[None, :, :, None])[0, :, :, 0]
    return _run_nodes(g, nodes, steps[0].src, x.T).T


def reachable(layer: Layer) -> np.ndarray:
    """Every acc a window of `layer` can produce: for a window with n driven rows
    (padding rows are undriven), {-n, -n+2, ..., n}; the union over windows."""
    c, h, w = layer.in_shape
    (kh, kw), (ph, pw) = layer.kernel, layer.pad

    (sh, sw) = layer.stride

    def counts(size, k, p, st):
        return {sum(0 <= y + d - p < size for d in range(k))
                for y in range(0, size + 2 * p - k + 1, st)}

    ns = {c * a * b for a in counts(h, kh, ph, sh) for b in counts(w, kw, pw, sw)}
    return np.unique(np.concatenate([np.arange(-n, n + 1, 2) for n in ns]))


@dataclass
class _FoldStats:
    channels: int = 0
    values: int = 0
    constant: int = 0
    near_ties: int = 0
    f64_flips: int = 0
    near: list = field(default_factory=list)
    min_gap: float = float("inf")


def _f32_down(v: np.ndarray) -> np.ndarray:
    """The largest float32 <= v (float64)."""
    f = v.astype(_F32)
    return np.where(f.astype(np.float64) > v, np.nextafter(f, _F32(-np.inf)), f)


def _f32_up(v: np.ndarray) -> np.ndarray:
    """The smallest float32 >= v (float64)."""
    f = v.astype(_F32)
    return np.where(f.astype(np.float64) < v, np.nextafter(f, _F32(np.inf)), f)


def sum_error_bound(rows: int, term: np.ndarray, bias: np.ndarray | float = 0.0) -> np.ndarray:
    """A bound on |float32 result - exact value| of a product node's output: `rows`
    products of magnitude at most `term` (each possibly rounded, of inputs possibly
    rounded by their quantiser) plus a bias, summed in float32 in any order or tree, with
    FMA or without. Each addition rounds by at most u = 2^-24 of its result, whose
    magnitude is at most the sum of the magnitudes of the N = rows + 1 summands under it;
    over a tree the worst is a left-to-right chain, u (N (N + 1) / 2 term + N |bias|);
    plus 2 u per product; the factor 1 / (1 - 2 N u) covers the higher orders and a 2^-48
    margin the float64 evaluation of the exact value."""
    n = rows + 1
    u = 2.0 ** -24
    t, b = np.asarray(term, np.float64), np.abs(np.asarray(bias, np.float64))
    first = u * (t * (n * (n + 1) / 2 + 2 * rows) + n * b)
    return first / (1 - 2 * n * u) + 2.0 ** -48 * (rows * t + b)


def _fold_layer(g: _G, prod, li: int, steps, in_scale: np.ndarray, bound: int,
                reach: np.ndarray, rank: int, st: _FoldStats, bias: np.ndarray | None = None,
                rows: int = 0) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Exact (s, t) per channel from the runtime's float32 decision at every acc in
    [-bound, bound].

    The product node's output for acc is the exact value acc * in_scale (+ bias). With
    power-of-two scales and no bias every float32 sum is exact, so that value is what the
    runtime computes. Otherwise (a weight scale such as 0.1, a float input scale, a bias)
    the runtime's float32 sum lies within `sum_error_bound` of it, in an order hwgen cannot
    know: the decision is evaluated at both ends of that interval (monotone chain: every
    value between decides the same) and must agree on every reachable acc. The decisions
    fold by hwgen.passes.fold.fold_decisions, the rule model.pt's layers fold by too
    (constant channels: s = +1, t = -(bound+1) always 1, bound+1 always 0)."""
    o = in_scale.size
    a = np.arange(-bound, bound + 1)
    exact = bias is None and _pow2(in_scale)
    if exact:
        xs = [(a[None, :].astype(_F32) * in_scale[:, None].astype(_F32)).astype(_F32)]
        v = xs[0].astype(np.float64)
    else:
        b64 = np.zeros(o) if bias is None else bias.astype(np.float64)
        v = a[None, :] * in_scale[:, None] + b64[:, None]
        err = sum_error_bound(rows, bound // max(rows, 1) * in_scale, b64)[:, None]
        xs = [_f32_down(v - err), _f32_up(v + err)]
    ys = [_chain32(steps, x) for x in xs]
    if steps:
        step = max(1, (1 << 22) // max(1, o))
        for x, y in zip(xs, ys):
            try:
                yo = np.concatenate([_run_chain_ort(g, steps, x[:, k:k + step], rank)
                                     for k in range(0, x.shape[1], step)], axis=1)
            except Exception as e:
                raise g.err(steps[0].node, f"cannot run the chain in onnxruntime to check it "
                                           f"({_first_line(e)})") from None
            bad = ~((yo == y) | (np.isnan(yo) & np.isnan(y)))
            if np.any(bad):
                j, k = np.argwhere(bad)[0]
                raise g.err(steps[0].node, f"onnxruntime's values differ from hwgen's float32 "
                                           f"model in {int(bad.sum())} places (channel {j}, acc "
                                           f"{a[k]}): cannot fold exactly")
    on, on_hi = ys[0] >= 0, ys[-1] >= 0                 # BipolarQuant: +1 iff y >= 0
    idx = np.searchsorted(a, reach)
    amb = on[:, idx] != on_hi[:, idx]
    if np.any(amb):
        j, k = np.argwhere(amb)[0]
        raise g.err(prod, f"output channel {j}: its batch-norm crossing lies within float32 "
                          f"rounding of the reachable accumulator {int(reach[k])}, so the "
                          f"decision depends on the runtime's summation order: cannot fold "
                          f"exactly (a power-of-two weight scale and no bias keep the sums "
                          f"exact; retraining moves the crossing)")
    inc = np.all(on[:, 1:] >= on[:, :-1], axis=1)
    dec = np.all(on[:, 1:] <= on[:, :-1], axis=1)
    if not np.all(inc | dec):
        j = int(np.argmin(inc | dec))
        raise g.err(steps[0].node if steps else prod,
                    f"layer {li} channel {j}: decision is not monotone in the accumulator")
    s, t = fold_decisions(on, bound)
    onr = on[:, idx]
    const = np.abs(np.asarray(t)) > bound               # the fold's constant encodings
    # near-ties and float64 disagreements, on the reachable values only
    y64, m64 = _chain64(steps, v[:, idx])
    st.f64_flips += int(np.sum((y64 >= 0) != onr))
    near = np.any(np.abs(y64) <= TIE_REL * m64, axis=1) & ~const
    st.near_ties += int(near.sum())
    st.near += [[li, int(j)] for j in np.flatnonzero(near)][:max(0, 32 - len(st.near))]
    A, B = _chain_affine(steps, o)
    if bias is not None:
        B = A * bias.astype(np.float64) + B
    A = A * in_scale
    with np.errstate(all="ignore"):
        cross = -B / A                                  # crossing point, in acc units
    for j in np.flatnonzero(~const & np.isfinite(cross)):
        st.min_gap = min(st.min_gap, float(np.min(np.abs(reach - cross[j]))))
    st.channels += o
    st.values += int(o * a.size)
    st.constant += int(const.sum())
    return s, t
