"""The layer walk: from the input quantiser to the classifier, one binary layer per
Conv/MatMul/Gemm with its chain folded, max-pools merged, the IR built and verified."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ...ir.core import (IR, Dropout, InputEncoding, Layer, Meta, pack_rows, replace,
                        report_items)
from ...ir.verify import verify
from .fold import (CHAIN_OPS, TIE_REL, _chain_affine, _chain_step, _fold_layer, _FoldStats,
                   reachable)
from .graph import FINAL_OPS, PASS_OPS, PRODUCT_OPS, _F32, _G, _scalar_scale, _unsupported
from .inputs import (_check_integer_input, _check_prep_ort, analyse_input, binary_theta,
                     integer_input)
from .load import MAX_DIM, load_qonnx

log = logging.getLogger(__name__)

MAX_ROWS = 1 << 16            # crossbar rows of a layer: every acc in [-rows, rows] is evaluated
MAX_LAYERS = 256


FLOAT_LAYER = ("is a float layer (its weights have no quantiser): hwgen needs binary "
               "weights, a BipolarQuant (Brevitas weight_bit_width=1, e.g. "
               "SignedBinaryWeightPerTensorConst)")


def _is_flatten(g: _G, n, in_shape, out_shape) -> bool:
    return (out_shape == in_shape or
            (len(out_shape) == 2 and out_shape[0] == in_shape[0]
             and out_shape[1] == int(np.prod(in_shape[1:]))))


def _weights(g: _G, n, w_name: str, out_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(W latent float array, per-output-channel scale) behind a weight BipolarQuant: the
    signs are the weights, any positive scale (per tensor or per output channel) goes into
    the layer's fold or the logit affine."""
    if w_name in g.inits:
        raise g.err(n, FLOAT_LAYER)
    q = g.producer.get(w_name)
    if q is None:
        raise g.err(n, f"weight {w_name!r} is not a constant")
    if q.op_type == "Quant":
        bw = g.const(q.input[3]) if len(q.input) > 3 else None
        bits = "?" if bw is None else int(np.asarray(bw).reshape(-1)[0])
        raise g.err(n, f"has {bits}-bit weights: hwgen needs binary weights, a BipolarQuant "
                       f"(Brevitas weight_bit_width=1)")
    if q.op_type != "BipolarQuant" or g.const(q.input[0]) is None:
        raise g.err(n, FLOAT_LAYER)
    if len(g.consumers.get(w_name, [])) != 1:
        raise g.err(q, "weight quantiser feeds more than one node")
    g.visited.add(q.name)
    w = np.asarray(g.const(q.input[0]), _F32)
    sc = g.const(q.input[1]) if len(q.input) > 1 else None
    if sc is None:
        raise g.err(q, "scale is not a constant")
    try:
        full = np.broadcast_to(np.asarray(sc, _F32), w.shape)
    except ValueError:
        raise g.err(q, f"scale of shape {np.shape(sc)} does not fit the weight {w.shape}") from None
    moved = np.moveaxis(full, out_axis, 0).reshape(w.shape[out_axis], -1)
    if not np.all(moved == moved[:, :1]):
        raise g.err(q, "weight scale varies within an output channel")
    vec = moved[:, 0].copy()
    if not np.all(np.isfinite(vec) & (vec > 0)):
        j = int(np.argmax(~(np.isfinite(vec) & (vec > 0))))
        raise g.err(n, f"binary weight scale {float(vec[j])!r} (output channel {j}) is not "
                       f"positive: hwgen needs a positive weight scale")
    return w, vec


def _final_softmax(g: _G, n, t: str, shape: tuple[int, ...], classes: int) -> None:
    """A final Softmax/LogSoftmax over the class axis: monotone, so the logits (its input)
    give the same predictions; hwgen's logits are that input."""
    g.data_input(n, t)
    opset = next((o.version for o in g.model.model.opset_import if o.domain in ("", "ai.onnx")),
                 13)
    ax = int(g.attrs(n).get("axis", -1 if opset >= 13 else 1)) % len(shape)
    over = int(np.prod(shape[ax:])) if opset < 13 else shape[ax]
    if ax < 1 or over != classes or int(np.prod(shape[1:])) != classes:
        raise g.err(n, f"a final {n.op_type} over axis {ax} of {list(shape)} is not over the "
                       f"classes: use dim=1")


def _bias(g: _G, n, o: int) -> np.ndarray | None:
    """The product node's bias (Conv B, Gemm C) as float32 [o], or None if absent or zero.
    Brevitas' default bias=True: before a batch norm it joins the decision's chain, on the
    classifier the logit affine."""
    if len(n.input) < 3 or not n.input[2]:
        return None
    b = g.const(n.input[2])
    if b is None:
        raise g.err(n, "the bias is not a constant")
    if n.op_type == "Gemm" and float(g.attrs(n).get("beta", 1.0)) != 1.0:
        raise g.err(n, "a Gemm bias with beta != 1 is not supported (export with beta 1)")
    b = np.asarray(b, _F32)
    if b.size == 1:
        b = np.full(o, b.reshape(-1)[0], _F32)
    elif b.size == o and b.shape[-1] == o:
        b = b.reshape(-1)
    else:
        raise g.err(n, f"bias of shape {list(b.shape)} is not one value per output channel "
                       f"({o})")
    if not np.all(np.isfinite(b)):
        raise g.err(n, "the bias is not finite")
    return None if not np.any(b) else b.copy()


def _conv_geometry(g: _G, n, cmap, w_shape) -> tuple[tuple[int, int], tuple[int, int],
                                                    tuple[int, int]]:
    """(kernel, pad, stride) of a Conv node on an input map `cmap` (C, H, W)."""
    a = g.attrs(n)
    kh, kw = int(w_shape[2]), int(w_shape[3])
    if tuple(a.get("kernel_shape", (kh, kw))) != (kh, kw):
        raise g.err(n, "kernel_shape does not match the weight")
    if any(v != 1 for v in a.get("dilations", [1, 1])):
        raise g.err(n, f"dilations {list(a.get('dilations'))}: only dilation 1 is supported")
    strides = [int(v) for v in a.get("strides", [1, 1])]
    if len(strides) != 2 or min(strides) < 1:
        raise g.err(n, f"strides {strides}: two strides >= 1 are needed")
    stride = (strides[0], strides[1])
    if a.get("group", 1) != 1:
        raise g.err(n, f"group {a.get('group')}: only 1 is supported")
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        # ONNX pads to an output of ceil(n / s); hwgen pads the same on both sides
        total = [max((-(-int(m) // st) - 1) * st + k - int(m), 0)
                 for m, k, st in zip(cmap[1:], (kh, kw), stride)]
        if any(t % 2 for t in total):
            raise g.err(n, f"{auto} pads {total} in total, unevenly on the two sides (not "
                           f"supported: give explicit symmetric pads)")
        return (kh, kw), (total[0] // 2, total[1] // 2), stride
    if auto == "VALID":
        return (kh, kw), (0, 0), stride
    if auto != "NOTSET":
        raise g.err(n, f"auto_pad {auto!r}")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3] or min(pads) < 0:
        raise g.err(n, f"pads {pads}: only symmetric padding is supported")
    return (kh, kw), (int(pads[0]), int(pads[1])), stride


def _pool_size(g: _G, n, t) -> tuple[int, int]:
    """(size, stride) of a square MaxPool node: no padding, floor mode, one output."""
    g.data_input(n, t)
    a = g.attrs(n)
    k = [int(v) for v in a.get("kernel_shape", [])]
    s = [int(v) for v in a.get("strides", [1] * len(k))]
    auto = a.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if a.get("ceil_mode", 0):
        raise g.err(n, "ceil_mode=1: only floor-mode max-pooling is supported "
                       "(ceil_mode=False in torch)")
    if (len(k) != 2 or k[0] != k[1] or len(s) != 2 or s[0] != s[1] or min(s) < 1
            or any(a.get("pads", [0] * 4)) or any(d != 1 for d in a.get("dilations", [1, 1]))
            or auto not in ("NOTSET", "VALID") or len([o for o in n.output if o]) != 1):
        raise g.err(n, f"only a square max-pool with equal strides, no padding and no "
                       f"dilation is supported (kernel {k}, strides {s})")
    if k[0] == 1 and s[0] != 1:
        raise g.err(n, f"a 1x1 max-pool of stride {s[0]} subsamples: not supported (use a "
                       f"strided Conv)")
    return k[0], s[0]


def _then_pool(g: _G, n, layer: Layer, k: int, s: int) -> Layer:
    """`layer` with a max-pool (k, stride s) after its own pool. Two ORs in a row are one
    pool of size (k - 1) * s1 + k1 and stride s1 * s (floor mode agrees) when the first
    leaves no gaps (k1 >= s1)."""
    k1, s1 = layer.pool, layer.pool_step
    if k1 > 1 and k1 < s1:
        raise g.err(n, f"a max-pool after a gapped max-pool (size {k1}, stride {s1}) is not "
                       f"supported")
    kk, ss = (k - 1) * s1 + k1, s1 * s
    return replace(layer, pool=kk, pool_stride=None if ss == kk or kk == 1 else ss)


def _spec(layers: list[Layer]) -> str | None:
    out = []
    for i, l in enumerate(layers):
        if l.op == "linear":
            out.append(f"f{l.out_channels}")
            continue
        (kh, kw), (ph, pw), (sh, sw) = l.kernel, l.pad, l.stride
        if kh != kw or ph != pw or ph not in (0, kh // 2) or sh != sw:
            return None
        out.append(f"c{l.out_channels}" + ("" if kh == 3 else f"k{kh}") + ("v" if ph == 0 and kh > 1 else "")
                   + ("" if sh == 1 else f"s{sh}"))
        if l.pool > 1:
            out.append(f"p{l.pool}" + ("" if l.pool_stride is None else f"s{l.pool_stride}"))
    return ",".join(out)


def import_qonnx(path) -> IR:
    """A binary QONNX graph -> the lowered IR (thresholds and packed weights, no sites).
    HwgenError (one line, naming the node) on anything not supported."""
    path = Path(path)
    model, sha = load_qonnx(path)
    g = _G(model, path.name)
    prep = analyse_input(g)
    if prep.op == "Quant":
        enc = integer_input(g, prep)
        _check_integer_input(g, prep, enc)
        theta = None
        qlo, qhi = enc.q_range
        qmax = max(-qlo, qhi)
    else:
        theta = binary_theta(prep)
        _check_prep_ort(g, prep, theta)
        enc, qmax = InputEncoding(theta=theta), 1
    batch = prep.input_shape[0]
    ishape = prep.input_shape
    in_map = tuple(ishape[1:]) if len(ishape) == 4 else (ishape[1], 1, 1)
    cmap, flat = in_map, len(prep.output_shape) == 2
    scale = (enc.scale if enc.mode != "binary"
             else _scalar_scale(g, g.producer[prep.output_name]))
    t = prep.output_name
    layers: list[Layer] = []
    st = _FoldStats()
    done = False
    while not done:
        n = g.next(t)
        if n is None:
            raise g.err(g.producer.get(t), "the graph ends in a binary activation, not in a "
                                           "Conv/MatMul/Gemm classifier")
        op, out = n.op_type, n.output[0]
        if op in PASS_OPS:
            g.pass_through(n, t)
            ish, osh = g.need_shape(n, t), g.need_shape(n, out)
            if not _is_flatten(g, n, ish, osh):
                raise g.err(n, f"reshapes {ish} to {osh}: only a flatten to (B, C*H*W) is "
                               f"supported")
            flat = flat or len(osh) == 2
            t = out
            continue
        if op == "MaxPool":
            k, ks = _pool_size(g, n, t)
            if not layers:
                raise g.err(n, "pooling the binary input is not supported")
            if flat:
                raise g.err(n, "pooling a flattened tensor")
            prev = layers[-1]
            layers[-1] = prev = _then_pool(g, n, prev, k, ks)
            cmap = prev.out_shape
            if g.need_shape(n, out)[1:] != cmap:
                raise g.err(n, f"output shape {g.shape(out)} != {(batch,) + cmap}")
            t = out
            continue
        if op not in PRODUCT_OPS:
            raise g.err(n, _unsupported(g, n, "here (hwgen expects Conv/MatMul/Gemm layers "
                                              "with binary weights, MaxPool, Flatten)"))
        # ---- the product node: one binary layer
        if len(layers) >= MAX_LAYERS:
            raise g.err(n, f"more than {MAX_LAYERS} layers")
        g.data_input(n, t)
        ish = g.need_shape(n, t)
        if op == "Conv":
            if flat or len(ish) != 4:
                raise g.err(n, f"input shape {ish} is not a (B, C, H, W) map")
            w, wscale = _weights(g, n, n.input[1], 0)
            group = int(g.attrs(n).get("group", 1))
            if group != 1:
                raise g.err(n, f"grouped convolution is not supported (groups={group}): use "
                               f"groups=1")
            bias = _bias(g, n, int(w.shape[0]))
            if w.ndim != 4 or w.shape[1] != cmap[0]:
                raise g.err(n, f"weight {list(w.shape)} does not fit an input of {cmap[0]} "
                               f"channels")
            kernel, pad, stride = _conv_geometry(g, n, cmap, w.shape)
            o = int(w.shape[0])
            bits = (w >= 0).reshape(o, -1)
            kind = "conv"
        else:
            if len(ish) != 2:
                raise g.err(n, f"input shape {ish} is not flattened to (B, F)")
            f = int(np.prod(cmap))
            if op == "Gemm":
                a = g.attrs(n)
                if a.get("transA", 0) or float(a.get("alpha", 1.0)) != 1.0:
                    raise g.err(n, "transA or alpha != 1 is not supported")
                tb = bool(a.get("transB", 0))
            else:
                tb = False
            w, wscale = _weights(g, n, n.input[1], 0 if tb else 1)
            bias = _bias(g, n, int(w.shape[0 if tb else 1]) if w.ndim == 2 else 0)
            if w.ndim != 2 or w.shape[1 if tb else 0] != f:
                raise g.err(n, f"weight {list(w.shape)} does not fit an input of {f} features")
            wt = w if tb else w.T                      # [O, F], F in (c, y, x) order
            o = int(wt.shape[0])
            bits = (wt >= 0)
            kernel, pad, stride = (cmap[1], cmap[2]), (0, 0), (1, 1)
            kind = "linear"
        if o > MAX_DIM or cmap[0] * kernel[0] * kernel[1] > MAX_ROWS:
            raise g.err(n, f"layer too large ({cmap[0] * kernel[0] * kernel[1]} rows, {o} "
                           f"columns; at most {MAX_ROWS} rows)")
        base = Layer(op=kind, in_shape=tuple(int(v) for v in cmap), out_channels=o,
                      kernel=tuple(int(v) for v in kernel), pad=tuple(int(v) for v in pad),
                      pool=1, weights=pack_rows(bits.astype(np.uint8)), stride=stride)
        if min(base.conv_shape[1:]) < 1:
            raise g.err(n, f"kernel {kernel} leaves no output on a {cmap[1:]} map")
        osh = g.need_shape(n, out)
        want = (batch,) + base.conv_shape if kind == "conv" else (batch, o)
        if osh != want:
            raise g.err(n, f"output shape {osh} != {want} (inconsistent shapes)")
        # input scale times weight scale: exact in float64 (two float32 factors)
        in_scale = np.float64(scale) * wscale.astype(np.float64)
        # ---- the chain after it: to a BipolarQuant (hidden) or to the graph output
        steps, pool, pool_stride, t2 = [], 1, None, out
        while True:
            m = g.next(t2)
            if m is None:
                break
            if pool != 1 and m.op_type != "BipolarQuant":
                raise g.err(m, "only a BipolarQuant may follow a MaxPool before the quantiser")
            if m.op_type in CHAIN_OPS:
                steps.append(_chain_step(g, m, t2, osh))
                if g.need_shape(m, m.output[0]) != osh:
                    raise g.err(m, f"changes the shape {osh} to {g.shape(m.output[0])}")
            elif m.op_type in ("Identity", "Dropout"):
                g.pass_through(m, t2)
            elif m.op_type in FINAL_OPS and g.next(m.output[0]) is None:
                _final_softmax(g, m, t2, osh, o)       # the logits are its input
                m = None
                break
            elif m.op_type == "MaxPool" and kind == "conv":
                pool, pool_stride = _pool_size(g, m, t2)   # max then sign == OR of signs: exact
            elif m.op_type == "BipolarQuant":
                g.data_input(m, t2)
                break
            elif m.op_type == "Quant":
                bw = g.const(m.input[3]) if len(m.input) > 3 else None
                bits_ = "?" if bw is None else int(np.asarray(bw).reshape(-1)[0])
                raise g.err(m, f"{bits_}-bit hidden activation: only 1-bit activations are "
                               f"supported (a BipolarQuant, e.g. Brevitas "
                               f"SignedBinaryActPerTensorConst)")
            else:
                raise g.err(m, _unsupported(g, m, "after a Conv/MatMul/Gemm (expected "
                                                  "BatchNormalization, Mul, Div, Add, Sub, "
                                                  "MaxPool, BipolarQuant)"))
            t2 = m.output[0]
        if m is None:                                   # the classifier
            if pool != 1:
                raise g.err(n, "the classifier is pooled")
            if base.conv_shape[1:] != (1, 1):
                raise g.err(n, f"the last layer has {base.windows} windows; a classifier "
                               f"has one")
            A, B = _chain_affine(steps, o)       # of the product's output acc*s + bias
            ls = A * in_scale
            lb = B if bias is None else A * bias.astype(np.float64) + B
            if not (np.all(np.isfinite(ls)) and np.all(np.isfinite(lb))):
                raise g.err(n, "the logit affine is not finite")
            layers.append(replace(base, logit_scale=tuple(float(v) for v in ls),
                                  logit_bias=tuple(float(v) for v in lb)))
            done = True
            continue
        if layers or qmax == 1:
            bound, reach = base.rows, reachable(base)
        else:   # a multi-bit first layer: acc = sum of q * w reaches every integer in range
            bound = base.rows * qmax
            reach = np.arange(-bound, bound + 1)
        s, th = _fold_layer(g, n, len(layers), steps, in_scale, bound, reach, len(osh), st,
                            bias=bias, rows=base.rows)
        layers.append(replace(base, sign=s, thresh=th, pool=pool,
                              pool_stride=None if pool_stride == pool else pool_stride))
        scale = _scalar_scale(g, m)
        cmap = layers[-1].out_shape
        if g.need_shape(m, m.output[0])[1:] != ((cmap if kind == "conv" else (o,))):
            raise g.err(m, f"output shape {g.shape(m.output[0])} is inconsistent")
        flat = kind == "linear"
        if kind == "linear":
            cmap = (o, 1, 1)
        t = m.output[0]
    used = g.visited | set(prep.node_names)
    for n in g.model.graph.node:
        if n.name not in used:
            raise g.err(n, "is not on the path from the input to the output")
    imp = {
        "theta": theta,
        "input_node": prep.node,
        "channels_checked": st.channels,
        "values_checked": st.values,
        "constant_channels": st.constant,
        "near_ties": st.near_ties,
        "near_tie_channels": st.near,
        "min_crossing_gap": None if st.min_gap == float("inf") else st.min_gap,
        "float64_disagreements": st.f64_flips,
        "tie_rel": TIE_REL,
        "bn_formula": "onnxruntime: k = gain/sqrt(var+eps); y = x*k + (bias - mean*k), float32",
    }
    meta = Meta(source="qonnx", model_sha256=sha, spec=_spec(layers),
                dropout=Dropout(kind="none", trained=False), report=report_items(imp))
    ir = IR(in_shape=tuple(int(v) for v in in_map), input=enc,
            layers=tuple(layers), sites=(), meta=meta)
    verify(ir)
    log.info("imported %s: %d layers, theta %r, %d channels folded (%d constant, %d near-ties, "
             "%d float64 disagreements)", path.name, len(layers), theta, st.channels,
             st.constant, st.near_ties, st.f64_flips)
    return ir
