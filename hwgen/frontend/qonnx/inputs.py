"""The input quantiser: the graph's float32 preprocessing up to its first quantiser
(`InputPrep`), the binary input's exact theta, the integer input's encoding, each checked
against the runtime."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx

from ...errors import HwgenError
from ...ir.core import InputEncoding
from .graph import _F32, PASS_OPS, PRODUCT_OPS, _G, _elementwise, _run_nodes
from .load import MAX_DIM, MAX_MAP, _first_line

NO_INPUT_Q = ("hwgen needs an input quantiser: an integer Quant of 2-16 bits (e.g. Brevitas "
              "Uint8ActPerTensorFloat or Int8ActPerTensorFloat) or a binary quantiser after "
              "a shift (Mul/Sub, then BipolarQuant)")


@dataclass(frozen=True, eq=False)
class InputPrep:
    """What the graph does to a float pixel before its first layer.

    steps: the graph's own float32 ops from the input to the quantiser, in order:
    ('reshape', shape) or (op, constant float32 array, constant_is_first_operand) for
    op in Mul/Div/Add/Sub. `pre_quant(x)` applies them exactly as the runtime does.
    The quantiser: BipolarQuant (bits 1: +scale iff value >= 0, else -scale) or Quant
    (scale, zero point, bits, signed, narrow, rounding mode).
    """
    node: str                       # quantiser node name
    op: str                         # 'BipolarQuant' | 'Quant'
    input_name: str
    input_shape: tuple[int, ...]    # graph input shape, batch first
    steps: tuple
    output_name: str                # quantiser output tensor
    output_shape: tuple[int, ...]
    scale: np.ndarray
    bits: int
    signed: bool = True
    narrow: bool = False
    zero_point: np.ndarray | None = None
    rounding_mode: str | None = None
    node_names: tuple[str, ...] = field(default=())
    where: str = ""                 # how errors name the quantiser: "file: layer 'net.0' (...)"

    def pre_quant(self, x: np.ndarray) -> np.ndarray:
        """Float32 values entering the quantiser, for x shaped like the graph input."""
        y = np.asarray(x, _F32)
        for st in self.steps:
            if st[0] == "reshape":
                y = y.reshape(st[1])
            else:
                y = _elementwise(st[0], y, st[1], st[2])
        return y


def _input_tensor(g: _G) -> tuple[str, tuple[int, ...]]:
    ins = [i for i in g.model.graph.input if i.name not in g.inits]
    outs = list(g.model.graph.output)
    if len(ins) != 1 or len(outs) != 1:
        raise g.err(None, f"{len(ins)} inputs and {len(outs)} outputs (expected one of each)")
    i = ins[0]
    if i.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise g.err(None, f"input {i.name!r} is not float32")
    shape = g.shape(i.name)
    if shape is None or len(shape) not in (2, 4):
        raise g.err(None, f"input {i.name!r} needs a fixed shape (B, F) or (B, C, H, W), "
                          f"not {g.model.get_tensor_shape(i.name)}")
    if any(d > MAX_DIM for d in shape[1:]) or int(np.prod(shape[1:])) > MAX_MAP:
        raise g.err(None, f"input shape {shape} is too large (dimensions <= {MAX_DIM}, "
                          f"C*H*W <= {MAX_MAP})")
    return i.name, shape


def analyse_input(model, name: str = "model") -> InputPrep:
    """The input preprocessing of a normalised graph (see `load_qonnx`), up to and
    including its first quantiser. HwgenError if it is anything but reshapes and
    elementwise constant ops followed by a BipolarQuant or a Quant."""
    g = model if isinstance(model, _G) else _G(model, name)
    in_name, shape0 = _input_tensor(g)
    t, shape = in_name, shape0
    steps, names = [], []
    while True:
        n = g.next(t)
        if n is None:
            raise g.err(None, f"the input reaches the output without a quantiser: {NO_INPUT_Q}")
        out = n.output[0]
        if n.op_type in PASS_OPS:
            g.pass_through(n, t)
            oshape = g.need_shape(n, out)
            if n.op_type not in ("Identity", "Dropout"):
                if int(np.prod(oshape)) != int(np.prod(shape)) or oshape[0] != shape[0]:
                    raise g.err(n, f"reshapes {shape} to {oshape}")
                steps.append(("reshape", oshape))
            shape = oshape
        elif n.op_type in ("Mul", "Div", "Add", "Sub"):
            other = [i for i in n.input if i != t]
            if len(n.input) != 2 or len(other) != 1 or g.const(other[0]) is None:
                raise g.err(n, "needs one constant operand")
            c = np.asarray(g.const(other[0]), _F32)
            first = n.input[0] != t
            if first and n.op_type == "Div":
                raise g.err(n, "divides a constant by the input (not monotone)")
            try:
                np.broadcast_to(c, shape)
            except ValueError:
                raise g.err(n, f"constant of shape {c.shape} does not fit {shape}") from None
            if not np.all(np.isfinite(c)):
                raise g.err(n, "constant is not finite")
            if g.need_shape(n, out) != shape:
                raise g.err(n, f"changes the shape {shape} to {g.shape(out)}")
            steps.append((n.op_type, c, first))
        elif n.op_type in ("BipolarQuant", "Quant"):
            g.data_input(n, t)
            consts = [g.const(i) for i in n.input[1:]]
            if any(c is None for c in consts):
                raise g.err(n, "quantiser parameters are not constants")
            a = g.attrs(n)
            oshape = g.need_shape(n, out)
            names.append(n.name)
            if n.op_type == "BipolarQuant":
                return InputPrep(node=n.name, op=n.op_type, input_name=in_name, input_shape=shape0,
                                 steps=tuple(steps), output_name=out, output_shape=oshape,
                                 scale=np.asarray(consts[0], _F32), bits=1,
                                 node_names=tuple(names), where=f"{g.name}: {g.where(n)}")
            scale, zp, bw = (np.asarray(c) for c in consts[:3])
            if bw.size != 1:
                raise g.err(n, "bit width must be one value")
            rm = a.get("rounding_mode", "ROUND")
            return InputPrep(node=n.name, op=n.op_type, input_name=in_name,
                             input_shape=shape0, steps=tuple(steps), output_name=out,
                             output_shape=oshape, scale=scale.astype(_F32),
                             bits=int(round(float(bw.flat[0]))),
                             signed=bool(a.get("signed", 1)), narrow=bool(a.get("narrow", 0)),
                             zero_point=zp.astype(_F32),
                             rounding_mode=rm.decode() if isinstance(rm, bytes) else str(rm),
                             node_names=tuple(names), where=f"{g.name}: {g.where(n)}")
        else:
            what = ("reads the float input directly" if n.op_type in PRODUCT_OPS else
                    "is not supported in the input preprocessing (Reshape, Flatten, Mul, "
                    "Div, Add, Sub by constants)")
            raise g.err(n, f"{what}: {NO_INPUT_Q}")
        names.append(n.name)
        t = out


def integer_input(g: _G, prep: InputPrep) -> InputEncoding:
    """The IR input encoding of an integer `Quant` input (Brevitas CNV's int8, Q1.7;
    Brevitas' Uint8ActPerTensorFloat / Int8ActPerTensorFloat with a learned float scale):
    the graph's float32 steps must be a scalar multiply and/or offset (`mul`, `add`), and
    the quantiser one positive scale, zero point 0, round half to even, not narrow. Then
    q = clip(rint(float32(float32(x*mul) + add) / scale)) is the graph's integer (checked
    against the runtime by `_check_integer_input`); the scale goes into the first layer's
    fold (exact sums for a power of two, an error bound otherwise)."""
    node = g.producer.get(prep.output_name)
    mul, add = 1.0, 0.0
    for st in prep.steps:
        if st[0] == "reshape":
            continue
        op, c, first = st
        if c.size != 1 or (first and op in ("Sub", "Div")):
            raise g.err(node, f"input preprocessing {op} with a per-position constant or the "
                              f"input as its second operand is not supported for a multi-bit input")
        v = float(c.reshape(-1)[0])
        if op in ("Mul", "Div"):
            if add != 0.0 or (op == "Mul" and mul != 1.0) or (op == "Div" and mul != 1.0):
                raise g.err(node, "input preprocessing must be one multiply, then one offset")
            mul = v if op == "Mul" else None
            if mul is None:
                raise g.err(node, "input preprocessing Div is not supported for a multi-bit input")
        else:
            if add != 0.0:
                raise g.err(node, "input preprocessing must be one multiply, then one offset")
            add = v if op == "Add" else -v
    sc = np.asarray(prep.scale, _F32).reshape(-1)
    if sc.size < 1 or not np.all(sc == sc[0]) or not (np.isfinite(sc[0]) and sc[0] > 0):
        raise g.err(node, "input Quant scale must be one positive value (a per-tensor "
                          "quantiser)")
    if prep.zero_point is None or np.any(prep.zero_point != 0):
        raise g.err(node, "input Quant zero point must be 0")
    if prep.narrow or (prep.rounding_mode or "ROUND").upper() != "ROUND":
        raise g.err(node, f"input Quant must round half to even and not be narrow "
                          f"(rounding_mode {prep.rounding_mode!r}, narrow {prep.narrow}): use "
                          f"narrow_range=False and round-to-nearest, as Brevitas' "
                          f"Int8ActPerTensorFloat / Uint8ActPerTensorFloat do")
    if not 2 <= prep.bits <= 16:
        raise g.err(node, f"input Quant of {prep.bits} bits (2..16 supported)")
    return InputEncoding(mode="signed" if prep.signed else "unsigned", bits=prep.bits,
                         mul=float(np.float32(mul)), add=float(np.float32(add)),
                         scale=float(sc[0]))


def _check_integer_input(g: _G, prep: InputPrep, enc: InputEncoding) -> None:
    """The IR's quantiser equals the graph's integer on k/255 and on seeded float pixels
    (run through the graph's own preprocessing and Quant in onnxruntime)."""
    from ...ir.interp import quantize
    nodes = [g.producer[t] for t in _prep_tensors(g, prep)] + [g.producer[prep.output_name]]
    shape = prep.input_shape
    k = int(np.prod(shape))
    probe = np.concatenate([np.arange(256, dtype=_F32) / _F32(255),
                            np.random.default_rng(0).random(4 * k, dtype=_F32)])
    for r in range(-(-probe.size // k)):
        x = np.resize(probe[r * k:], k).reshape(shape)
        try:
            y = np.asarray(_run_nodes(g, nodes, prep.input_name, x), _F32)
        except Exception as e:
            raise HwgenError(f"{g.name}: cannot run the input quantiser in onnxruntime "
                             f"({_first_line(e)})") from None
        q = quantize(enc, x.reshape(-1)).astype(_F32) * _F32(enc.scale)
        if not np.array_equal(y.reshape(-1), q):
            raise g.err(nodes[-1], "the graph's input quantiser differs from hwgen's: "
                                   "the multi-bit input would not be exact")


def _prep_tensors(g: _G, prep: InputPrep) -> list[str]:
    """Outputs of the preprocessing nodes, input to quantiser (exclusive)."""
    out, t = [], g.producer[prep.output_name].input[0]
    while t in g.producer:
        out.append(t)
        t = next(i for i in g.producer[t].input if i not in g.inits)
    return out[::-1]


def _check_prep_ort(g: _G, prep: InputPrep, theta: float) -> None:
    """hwgen's float32 model of the input preprocessing equals the runtime's on the pixels
    k/255, theta and its neighbours, 0 and 1 (spread over the input positions)."""
    nodes = [g.producer[t] for t in _prep_tensors(g, prep)]
    if not nodes:
        return
    th = _F32(theta)
    probe = np.concatenate([np.arange(256, dtype=_F32) / _F32(255),
                            np.nextafter(th, _F32([0, 2])), [th, _F32(0), _F32(1)]])
    shape = prep.input_shape
    k = int(np.prod(shape))
    reps = -(-probe.size // k)
    flat = np.resize(probe, reps * k)
    for r in range(reps):
        x = flat[r * k:(r + 1) * k].reshape(shape)
        try:
            y = _run_nodes(g, nodes, prep.input_name, x)
        except Exception as e:
            raise HwgenError(f"{g.name}: cannot run the input preprocessing in onnxruntime "
                             f"({_first_line(e)})") from None
        mine = prep.pre_quant(x)
        if not np.array_equal(np.asarray(y).reshape(-1), mine.reshape(-1)):
            raise g.err(nodes[0], "onnxruntime's input preprocessing differs from hwgen's "
                                  "float32 model: theta would not be exact")


def _as_f32(bits: np.ndarray) -> np.ndarray:
    return np.asarray(bits, np.uint32).view(np.float32)


def binary_theta(prep: InputPrep) -> float:
    """theta such that (pixel >= theta) == the graph's float32 decision for every float32
    pixel in [0, 1]: the smallest such pixel with decision +1, the same at every input
    position. HwgenError if the decision is not of that form."""
    where = prep.where or f"node {prep.node!r} ({prep.op})"
    if prep.op != "BipolarQuant":
        raise HwgenError(f"{where}: not a binary input quantiser")
    shape = prep.input_shape

    def decide(p: np.ndarray) -> np.ndarray:       # p: per-position pixel, flat
        y = prep.pre_quant(p.reshape(shape))
        return (y >= 0).reshape(-1)

    n = int(np.prod(shape))
    d0, d1 = decide(np.zeros(n, _F32)), decide(np.ones(n, _F32))
    if np.any(d0 & ~d1):
        raise HwgenError(f"{where}: the input decision falls as the pixel rises: "
                         f"the IR needs pixel >= theta")
    if np.all(d0):
        raise HwgenError(f"{where}: every pixel in [0, 1] binarises to +1 (no theta in "
                         f"(0, 1]): shift the input first (e.g. 2 * x - 1) or use an integer "
                         f"input Quant")
    if not np.any(d1):
        raise HwgenError(f"{where}: every pixel in [0, 1] binarises to -1 (no theta in "
                         f"(0, 1]): shift the input first (e.g. 2 * x - 1) or use an integer "
                         f"input Quant")
    if np.any(d0) or not np.all(d1):
        raise HwgenError(f"{where}: the input decision differs between pixel positions "
                         f"(the IR has one theta)")
    lo = np.zeros(n, np.uint32)                          # decision 0 at every position
    hi = np.full(n, np.float32(1.0).view(np.uint32))     # decision 1
    while np.any(hi - lo > 1):                           # bit order = value order for p >= 0
        mid = lo + (hi - lo) // 2
        d = decide(_as_f32(mid))
        hi = np.where(d, mid, hi)
        lo = np.where(d, lo, mid)
    if not np.all(hi == hi[0]):
        ts = np.unique(_as_f32(hi))
        raise HwgenError(f"{where}: the input threshold differs between pixel positions "
                         f"({ts[0]!r} .. {ts[-1]!r}; the IR has one theta)")
    theta = float(_as_f32(hi[:1])[0])
    # the monotone steps make this exact; re-check the grid k/255 and theta's neighbours
    probe = np.concatenate([np.arange(256, dtype=_F32) / _F32(255),
                            np.nextafter(_F32(theta), _F32([0, 2])), [_F32(theta)]])
    for p in probe:
        if not 0 <= p <= 1:
            continue
        if not np.all(decide(np.full(n, p, _F32)) == (p >= _F32(theta))):
            raise HwgenError(f"{where}: the input decision is not monotone near {p!r}")
    return theta
