"""Graph helpers: the normalised graph's constants, producers, consumers and shapes
(`_G`, whose errors name the user's layer), and the small pieces every section shares: the
runtime's float32 elementwise ops, running a chain of the graph's own nodes in qonnx's
execute_onnx, power-of-two scales."""

from __future__ import annotations

import ast
import re
import warnings

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ...errors import HwgenError
from .load import QUANT_OPS, _node_desc

PRODUCT_OPS = ("Conv", "MatMul", "Gemm")
PASS_OPS = ("Reshape", "Flatten", "Identity", "Dropout")   # Dropout: inference mode only
FINAL_OPS = ("Softmax", "LogSoftmax")   # monotone: stripped, the logits are their input
# a torch module path in an initializer's name: net.2.weight, net.2.weight_quant.export_...
_MODULE = re.compile(r"^(?P<mod>\w[\w.]*?)\.(?:weight|bias|running_mean|running_var|"
                     r"(?:weight|bias|act|input|output)_quant)(?:[._].*)?$")
_QUANT_SCOPE = re.compile(r"(?:^|\.)(?:(?:weight|bias|act|input|output)_quant|export_handler)"
                          r"(?:\.|$)")
_F32 = np.float32


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
