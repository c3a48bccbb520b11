"""Loading a QONNX file: size and format checks, the ONNX checker, unique node names, and
qonnx's own cleanup transforms (without the renaming steps, so errors name the nodes as the
file does)."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ...errors import HwgenError

MAX_FILE_BYTES = 1 << 30      # larger files are refused before parsing
MAX_DIM = 1 << 14             # any one dimension of a feature map or a layer
MAX_MAP = 1 << 24             # C*H*W of any feature map
QUANT_OPS = ("Quant", "BipolarQuant", "Trunc")
QONNX_DOMAIN = "qonnx.custom_op.general"


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
