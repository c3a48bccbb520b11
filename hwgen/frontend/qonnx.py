"""Frontend: a binary QONNX graph (.onnx) -> the lowered IR (DESIGN sections 1-4, 8, 9).

Accepted graphs, after qonnx's own normalisation (InferShapes, FoldConstants keeping the
quantisers, FoldTransposeIntoQuantInit, ...), are one chain from the input to the output,
as Brevitas' `export_qonnx` and the older FINN-style exports write them:

    input -> [Reshape | Flatten | Mul | Div | Add | Sub by constants]*
          -> BipolarQuant | Quant (integer, any positive scale)
    per layer:
      [Reshape | Flatten to (B, C*H*W)] [MaxPool, after the quantiser]
      Conv (symmetric padding) | MatMul | Gemm, weights BipolarQuant(initializer) with any
      positive scale, an optional bias
      [BatchNormalization | Mul | Div | Add | Sub by per-channel constants]* [MaxPool]
      BipolarQuant                                             -> a thresholded layer
    the last Conv/MatMul/Gemm and its per-class affine chain   -> the classifier
      [Softmax | LogSoftmax]                                   -> stripped (monotone)
    inference-mode Dropout and Identity anywhere in the chain   -> dropped

Anything else raises HwgenError with one line naming the user's layer (the torch module
path the exporter recorded, or one in the initializer names; else the ONNX node).

Exactness. With +-1 inputs and +-1 weights (times positive powers of two) and no bias
every Conv/MatMul/Gemm output is scale * acc exactly in float32 (|acc| < 2**24), whatever
the summation order. With another scale (Brevitas' 0.1, a learned input scale) or a bias
the runtime's sum rounds, in an order hwgen cannot know; it lies within
`sum_error_bound` of the exact value, and the decision is evaluated at both ends of that
interval: where they differ on a reachable acc the import is refused.

The decision after the product (the chain of per-channel float32 ops, then
BipolarQuant: +1 iff value >= 0) is evaluated here on every integer acc in
[-rows, rows], in numpy float32 following onnxruntime's kernels, and cross-checked value
for value against qonnx's `execute_onnx` running the graph's own chain nodes. Note that
onnxruntime's BatchNormalization is *not* the ONNX formula (x - mean) / sqrt(var + eps) *
scale + B evaluated step by step (that disagrees in about half of all float32 results);
it is inv = 1 / sqrt(var + eps); k = inv * scale; c = B - mean * k; y = x * k + c.
Every float step is a monotone rounding, so the decision is monotone in acc and folds to
one integer (s, t) per channel that reproduces it on every acc (DESIGN section 2).
Channels whose crossing lies within float32 rounding of a reachable acc ("near-ties") and
constant channels are counted in IR.meta.report.

The binary input's theta is the smallest float32 pixel in [0, 1] that the graph's float32
preprocessing sends to +1, found by bisection over float32 bit patterns: `pixel >= theta`
then reproduces the graph on every float32 pixel in [0, 1].
"""

from __future__ import annotations

import ast
import hashlib
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import HwgenError
from ..ir.core import (IR, Dropout, InputEncoding, Layer, Meta, pack_rows, replace,
                       report_items)
from ..ir.verify import verify

__all__ = ["InputPrep", "load_qonnx", "analyse_input", "binary_theta", "import_qonnx",
           "qonnx_reference", "bn_onnxruntime", "MAX_FILE_BYTES"]

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1 << 30      # larger files are refused before parsing
MAX_DIM = 1 << 14             # any one dimension of a feature map or a layer
MAX_MAP = 1 << 24             # C*H*W of any feature map
MAX_ROWS = 1 << 16            # crossbar rows of a layer: every acc in [-rows, rows] is evaluated
MAX_LAYERS = 256
TIE_REL = 2.0 ** -20          # near-tie: |y| within 16 float32 ulps of the terms that make y
CHAIN_OPS = ("BatchNormalization", "Mul", "Div", "Add", "Sub")
PRODUCT_OPS = ("Conv", "MatMul", "Gemm")
QUANT_OPS = ("Quant", "BipolarQuant", "Trunc")
QONNX_DOMAIN = "qonnx.custom_op.general"
PASS_OPS = ("Reshape", "Flatten", "Identity", "Dropout")   # Dropout: inference mode only
FINAL_OPS = ("Softmax", "LogSoftmax")   # monotone: stripped, the logits are their input
# a torch module path in an initializer's name: net.2.weight, net.2.weight_quant.export_...
_MODULE = re.compile(r"^(?P<mod>\w[\w.]*?)\.(?:weight|bias|running_mean|running_var|"
                     r"(?:weight|bias|act|input|output)_quant)(?:[._].*)?$")
_QUANT_SCOPE = re.compile(r"(?:^|\.)(?:(?:weight|bias|act|input|output)_quant|export_handler)"
                          r"(?:\.|$)")
_F32 = np.float32
NO_INPUT_Q = ("hwgen needs an input quantiser: an integer Quant of 2-16 bits (e.g. Brevitas "
              "Uint8ActPerTensorFloat or Int8ActPerTensorFloat) or a binary quantiser after "
              "a shift (Mul/Sub, then BipolarQuant)")


# ------------------------------------------------------------------------------------------
# Loading and normalisation


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".strip().rstrip(":")


def _node_desc(n) -> str:
    return f"node {n.name!r} ({n.op_type})"


def _read_model(path: Path) -> tuple[onnx.ModelProto, str]:
    if not path.is_file():
        raise HwgenError(f"{path}: {'not a regular file' if path.exists() else 'no such file'}")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise HwgenError(f"{path.name}: {size / 2**30:.1f} GiB is more than the "
                         f"{MAX_FILE_BYTES / 2**30:.0f} GiB limit for an ONNX model")
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        proto = onnx.load_from_string(data)
    except Exception as e:
        raise HwgenError(f"{path.name}: not an ONNX model ({_first_line(e)})") from None
    if proto.ir_version <= 0 or not proto.opset_import or not proto.graph.node:
        raise HwgenError(f"{path.name}: not an ONNX model (no IR version, opset or nodes)")
    for t in proto.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            raise HwgenError(f"{path.name}: initializer {t.name!r} uses external data "
                             f"(not supported: save the model as one file)")
    have = {o.domain for o in proto.opset_import}
    for d in sorted({n.domain for n in proto.graph.node} - have - {"ai.onnx"}):
        proto.opset_import.append(helper.make_opsetid(d, 1))   # old exports omit custom ones
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise HwgenError(f"{path.name}: invalid ONNX model ({_first_line(e)})") from None
    return proto, sha


def _known_custom(n) -> bool:
    from qonnx.custom_op.registry import is_custom_op
    try:
        return bool(is_custom_op(n.domain, n.op_type))
    except Exception:
        return False


def load_qonnx(path):
    """(normalised qonnx ModelWrapper, sha256 of the file); HwgenError on any problem.

    The normalisation is qonnx's cleanup (qonnx.util.cleanup.cleanup_model) without its
    renaming steps, so that errors name the nodes as the file does.
    """
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueParameterTensors,
                                              RemoveStaticGraphInputs, RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit

    path = Path(path)
    proto, sha = _read_model(path)
    seen: set[str] = set()
    for i, n in enumerate(proto.graph.node):
        if not n.name or n.name in seen:        # errors and the walk need unique names
            n.name = f"{n.name or n.op_type}_{i}"
        seen.add(n.name)
        if n.op_type in QUANT_OPS and n.domain in ("onnx.brevitas", "finn.custom_op.general",
                                                   "finn", QONNX_DOMAIN):
            n.domain = QONNX_DOMAIN      # as cleanup_model does for older exports
    inits = {t.name for t in proto.graph.initializer}
    for i in proto.graph.input:                # before qonnx allocates anything for it
        dims = [d.dim_value for d in i.type.tensor_type.shape.dim]
        if i.name not in inits and (any(d > MAX_DIM for d in dims[1:])
                                    or int(np.prod(dims[1:], dtype=np.float64)) > MAX_MAP):
            raise HwgenError(f"{path.name}: input {i.name!r} of shape {dims} is too large "
                             f"(dimensions <= {MAX_DIM}, C*H*W <= {MAX_MAP})")
    for n in proto.graph.node:
        if n.domain not in ("", "ai.onnx") and not _known_custom(n):
            raise HwgenError(f"{path.name}: {_node_desc(n)} in domain {n.domain!r}: "
                             f"not supported")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ModelWrapper(proto)
            for t in (InferShapes(), GiveUniqueParameterTensors(),
                      FoldConstants(exclude_op_types=list(QUANT_OPS)),
                      FoldTransposeIntoQuantInit(), RemoveUnusedTensors(),
                      RemoveStaticGraphInputs(), InferShapes()):
                model = model.transform(t)
    except HwgenError:
        raise
    except Exception as e:
        raise HwgenError(f"{path.name}: qonnx could not normalise the graph "
                         f"({_first_line(e)})") from None
    return model, sha


# ------------------------------------------------------------------------------------------
# Graph helpers


class _G:
    """The normalised graph: constants, producers, consumers, shapes; errors name the file."""

    def __init__(self, model, name: str):
        self.model, self.name = model, name
        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.producer, self.consumers = {}, {}
        for n in model.graph.node:
            for t in n.output:
                self.producer[t] = n
            for t in n.input:
                if t:
                    self.consumers.setdefault(t, []).append(n)
        self.visited: set[str] = set()

    def layer_name(self, n) -> str | None:
        """The user's module path for node n: the torch module scope the exporter recorded
        (`pkg.torch.onnx.name_scopes`, up to the quantiser's own sub-modules), else one in
        the names of n's initializers or of the quantisers that feed it its weights (`net.2`
        from `net.2.weight` or `net.2.weight_quant...`); None if neither carries one."""
        if n.op_type in PRODUCT_OPS and len(n.input) > 1 and n.input[1] in self.inits:
            m = _MODULE.match(n.input[1])          # a float layer's own weight: net.4.weight
            if m:                                  # (the exporter may scope it as its BN)
                return m.group("mod")
        meta = {p.key: p.value for p in n.metadata_props}
        try:
            scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        mod = None
        for sc in scopes[1:-1] if isinstance(scopes, list) else []:
            if not isinstance(sc, str) or _QUANT_SCOPE.search(sc):
                break
            mod = sc
        if mod:
            return mod
        names = [i for i in n.input if i in self.inits]
        for i in n.input:
            q = self.producer.get(i)
            if q is not None and q.op_type in QUANT_OPS and q.input and q.input[0] in self.inits:
                names += [j for j in q.input if j in self.inits]
        for name in names:
            m = _MODULE.match(name)
            if m:
                return m.group("mod")
        return None

    def where(self, n) -> str:
        """How errors name node n: the user's layer if the initializers name it, else the
        ONNX node."""
        if n is None:
            return "graph"
        layer = self.layer_name(n)
        return _node_desc(n) if layer is None else f"layer {layer!r} ({n.op_type})"

    def err(self, n, msg: str) -> HwgenError:
        return HwgenError(f"{self.name}: {self.where(n)}: {msg}")

    def pass_through(self, n, t: str) -> None:
        """n (Reshape, Flatten, Identity or Dropout) reads t as its data; a Dropout must be
        in inference mode (an identity)."""
        self.data_input(n, t)
        if n.op_type != "Dropout":
            return
        mode = n.input[2] if len(n.input) > 2 and n.input[2] else None
        v = None if mode is None else self.const(mode)
        if mode is not None and v is None:
            raise self.err(n, "Dropout's training_mode is not a constant: only an inference "
                              "Dropout (training_mode absent or false) is supported")
        if v is not None and bool(np.asarray(v).reshape(-1)[0]):
            raise self.err(n, "a training-mode Dropout is random at inference: export the "
                              "model in eval mode (training_mode absent or false)")
        outs = {o.name for o in self.model.graph.output}
        if any(o and (o in self.consumers or o in outs) for o in n.output[1:]):
            raise self.err(n, "Dropout's mask output is used: only the data output is "
                              "supported")

    def const(self, name: str):
        return self.inits.get(name)

    def shape(self, t: str) -> tuple[int, ...] | None:
        try:
            s = self.model.get_tensor_shape(t)
        except Exception:
            return None
        if s is None or not all(isinstance(d, (int, np.integer)) and d > 0 for d in s):
            return None
        return tuple(int(d) for d in s)

    def need_shape(self, n, t: str) -> tuple[int, ...]:
        s = self.shape(t)
        if s is None:
            raise self.err(n, f"tensor {t!r} has no fixed shape after shape inference")
        return s

    def attrs(self, n) -> dict:
        return {a.name: helper.get_attribute_value(a) for a in n.attribute}

    def next(self, t: str):
        """The one consumer of activation tensor t (None at the graph output)."""
        cs = self.consumers.get(t, [])
        outs = [o.name for o in self.model.graph.output]
        if t in outs:
            if cs:
                raise self.err(cs[0], f"reads the graph output {t!r}: only a chain is supported")
            return None
        if len(cs) != 1:
            if not cs:
                raise self.err(self.producer.get(t), f"output {t!r} goes nowhere")
            raise self.err(self.producer.get(t) or cs[1],
                           f"its output feeds {len(cs)} nodes ("
                           f"{', '.join(self.layer_name(c) or c.name for c in cs)}"
                           f"): a branch or residual connection is not supported (hwgen "
                           f"compiles one chain of layers)")
        n = cs[0]
        self.visited.add(n.name)
        return n

    def data_input(self, n, t: str) -> None:
        """Node n must read t as its data input (input 0)."""
        if not n.input or n.input[0] != t:
            raise self.err(n, f"reads {t!r} as a parameter, not as its data input")


def _pow2(x: np.ndarray) -> bool:
    x = np.asarray(x, np.float64)
    m, e = np.frexp(x)
    return bool(np.all((x > 0) & (m == 0.5) & (np.abs(e) < 64)))


def _scalar_scale(g: _G, n) -> float:
    """The scale of a BipolarQuant on activations: one positive power of two."""
    s = g.const(n.input[1]) if len(n.input) > 1 else None
    if s is None:
        raise g.err(n, "scale is not a constant")
    s = np.asarray(s, np.float32)
    if s.size < 1 or not np.all(s == s.flat[0]):
        raise g.err(n, "per-channel activation scale is not supported")
    if not _pow2(s.flat[0]):
        raise g.err(n, f"binary activation scale {float(s.flat[0])!r} is not a positive power "
                       f"of two: use SignedBinaryActPerTensorConst (scale 1) or a scale 2^k")
    return float(s.flat[0])


# ------------------------------------------------------------------------------------------
# Input preprocessing


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


def _elementwise(op: str, x: np.ndarray, c: np.ndarray, first: bool) -> np.ndarray:
    a, b = (c, x) if first else (x, c)
    with np.errstate(all="ignore"):
        if op == "Mul":
            return np.multiply(a, b, dtype=_F32)
        if op == "Div":
            return np.divide(a, b, dtype=_F32)
        if op == "Add":
            return np.add(a, b, dtype=_F32)
        if op == "Sub":
            return np.subtract(a, b, dtype=_F32)
    raise AssertionError(op)


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


def _is_flatten(g: _G, n, in_shape, out_shape) -> bool:
    return (out_shape == in_shape or
            (len(out_shape) == 2 and out_shape[0] == in_shape[0]
             and out_shape[1] == int(np.prod(in_shape[1:]))))


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
    from ..ir.interp import quantize
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


# ------------------------------------------------------------------------------------------
# Per-channel float32 chains (BatchNormalization and constant ops) and their decisions


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


def _run_nodes(g: _G, nodes, src: str, x: np.ndarray) -> np.ndarray:
    """The graph's own nodes (a chain from tensor src) run by qonnx's execute_onnx, as the
    runtime runs them, on x fed as src; returns the last node's output."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.infer_shapes import InferShapes

    dst = nodes[-1].output[0]
    names = dict.fromkeys(i for n in nodes for i in n.input if i in g.inits)
    inits = [numpy_helper.from_array(np.asarray(g.inits[i]), i) for i in names]
    graph = helper.make_graph(
        [onnx.NodeProto.FromString(n.SerializeToString()) for n in nodes], "chain",
        [helper.make_tensor_value_info(src, onnx.TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info(dst, onnx.TensorProto.FLOAT, None)], inits)
    proto = helper.make_model(graph, opset_imports=list(g.model.model.opset_import))
    proto.ir_version = g.model.model.ir_version
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = ModelWrapper(proto).transform(InferShapes())
        return execute_onnx(m, {src: np.ascontiguousarray(x, _F32)})[dst]


def _run_chain_ort(g: _G, steps, x: np.ndarray, rank: int) -> np.ndarray:
    """The chain after a product node on x [O, K], laid out as the runtime sees it:
    [1, O, K, 1] for conv maps, [K, O] for linear outputs."""
    nodes = [s.node for s in steps]
    if rank == 4:
        return _run_nodes(g, nodes, steps[0].src, x[None, :, :, None])[0, :, :, 0]
    return _run_nodes(g, nodes, steps[0].src, x.T).T


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


def _prep_tensors(g: _G, prep: InputPrep) -> list[str]:
    """Outputs of the preprocessing nodes, input to quantiser (exclusive)."""
    out, t = [], g.producer[prep.output_name].input[0]
    while t in g.producer:
        out.append(t)
        t = next(i for i in g.producer[t].input if i not in g.inits)
    return out[::-1]


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
    value between decides the same) and must agree on every reachable acc."""
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
    onr = on[:, idx]
    const = onr.all(axis=1) | ~onr.any(axis=1)
    first = a[np.argmax(on, axis=1)]
    last = a[a.size - 1 - np.argmax(on[:, ::-1], axis=1)]
    up = inc                                            # else non-increasing: s = -1
    s = np.where(up, 1, -1)
    t = np.where(up, first, -last)
    s = np.where(const, 1, s)
    t = np.where(const, np.where(onr.all(axis=1), -(bound + 1), bound + 1), t)
    if not np.array_equal(s[:, None] * reach[None, :] >= t[:, None], onr):
        raise AssertionError("fold does not reproduce the decision")   # monotone: cannot happen
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
    return tuple(int(v) for v in s), tuple(int(v) for v in t)


# ------------------------------------------------------------------------------------------
# The layer walk


FLOAT_LAYER = ("is a float layer (its weights have no quantiser): hwgen needs binary "
               "weights, a BipolarQuant (Brevitas weight_bit_width=1, e.g. "
               "SignedBinaryWeightPerTensorConst)")


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


def _unsupported(g: _G, n, where: str) -> str:
    """Why node n is refused, in a user's words."""
    op = n.op_type
    if op in ("AveragePool", "GlobalAveragePool"):
        return ("average pooling is not supported (an average of binary activations is not "
                "binary): use MaxPool")
    acts = [i for i in n.input if i and g.const(i) is None]
    if op in ("Add", "Sub", "Mul", "Div", "Concat", "Sum") and len(acts) > 1:
        return (f"{op} of two activations (a residual or branch connection) is not "
                f"supported: hwgen compiles one chain of layers")
    return f"{op} is not supported {where}"


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


# ------------------------------------------------------------------------------------------
# The reference: the graph as qonnx's execute_onnx runs it


CLASS_INT = "hwgen_class_integers"     # the sibling node's output in the reference graph


def _classifier(g: _G) -> tuple[object, float]:
    """(the last Conv/MatMul/Gemm, the scale of its input quantiser)."""
    prods = [n for n in g.model.graph.node if n.op_type in PRODUCT_OPS]
    if not prods:
        raise g.err(None, "no Conv/MatMul/Gemm")
    n = prods[-1]
    q = g.producer.get(n.input[0])
    while q is not None and q.op_type in ("Reshape", "Flatten", "MaxPool") + PASS_OPS:
        q = g.producer.get(q.input[0])
    if q is None or q.op_type not in ("BipolarQuant", "Quant") or g.const(q.input[1]) is None:
        raise g.err(n, "the classifier's input has no quantiser with a constant scale")
    sc = np.asarray(g.const(q.input[1]), np.float64).reshape(-1)
    if sc.size < 1 or not np.all(sc == sc[0]):
        raise g.err(q, "the classifier's input quantiser has more than one scale")
    return n, float(sc[0])


def _with_class_integers(model, g: _G):
    """A copy of the graph with a sibling of the classifier that reads the same input and
    the signs of its weights (+-1, sign(0) = +1 as BipolarQuant), without bias: its output
    is acc * (input scale), exact in float32, whatever the weight scale and bias."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    n, sc = _classifier(g)
    q = g.producer.get(n.input[1])
    if q is None or q.op_type != "BipolarQuant" or g.const(q.input[0]) is None:
        raise g.err(n, FLOAT_LAYER)
    proto = onnx.ModelProto.FromString(model.model.SerializeToString())
    signs = np.where(np.asarray(g.const(q.input[0])) >= 0, 1, -1).astype(_F32)
    proto.graph.initializer.append(numpy_helper.from_array(signs, CLASS_INT + "_w"))
    sib = onnx.NodeProto.FromString(n.SerializeToString())
    del sib.input[:]
    sib.input.extend([n.input[0], CLASS_INT + "_w"])
    sib.output[0] = CLASS_INT
    sib.name = CLASS_INT
    proto.graph.node.append(sib)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ModelWrapper(proto).transform(InferShapes()), sc


def qonnx_reference(model_path, images, batch: int | None = None, model=None) -> dict:
    """The graph's own outputs, by qonnx's execute_onnx (node by node, onnxruntime for
    standard ops): class_integers [N, classes] int64 (a sibling of the classifier's
    Conv/MatMul/Gemm on the same input with the signs of its weights and no bias, divided by
    the input's power-of-two scale: exact integers), logits [N, classes] float32 (the graph
    output, or the input of a final Softmax/LogSoftmax) and predictions (numpy argmax of
    the logits: ties to the lowest index).

    images: [N, ...] holding N * prod(input shape[1:]) values, cast to float32.
    batch: None runs the graph as it is, looping over its own (fixed) batch size; k sets
    the batch size to k with qonnx's ChangeBatchSize first (much faster on batch-1 graphs:
    every op is elementwise per image or an exact integer sum, so the values are the same;
    tests/test_qonnx.py holds both equal).
    """
    from qonnx.core.onnx_exec import execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.infer_shapes import InferShapes

    name = Path(model_path).name
    if model is None:
        model, _ = load_qonnx(model_path)
    if batch is not None:
        model = model.transform(ChangeBatchSize(int(batch))).transform(InferShapes())
    g = _G(model, name)
    in_name, shape = _input_tensor(g)
    out_name = model.graph.output[0].name
    last = g.producer.get(out_name)
    if last is not None and last.op_type in FINAL_OPS:
        out_name = last.input[0]                       # the logits: hwgen strips it
    model, sc = _with_class_integers(model, g)
    cls = CLASS_INT
    x = np.asarray(images, _F32)
    n = x.shape[0]
    x = x.reshape((n,) + tuple(shape[1:]))
    b = shape[0]
    ints, logits = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a in range(0, n, b):
            xb = x[a:a + b]
            k = xb.shape[0]
            if k < b:
                xb = np.concatenate([xb, np.zeros((b - k,) + xb.shape[1:], _F32)])
            ctx = execute_onnx(model, {in_name: xb}, return_full_exec_context=True)
            ints.append(np.asarray(ctx[cls]).reshape(b, -1)[:k])
            logits.append(np.asarray(ctx[out_name]).reshape(b, -1)[:k])
    raw = np.concatenate(ints).astype(np.float64) / sc
    ci = np.rint(raw)
    if not np.array_equal(ci, raw):
        raise HwgenError(f"{name}: classifier output {cls!r} is not an integer multiple of "
                         f"its scale")
    lg = np.concatenate(logits)
    return {"class_integers": ci.astype(np.int64), "logits": lg,
            "predictions": np.argmax(lg, axis=1)}
