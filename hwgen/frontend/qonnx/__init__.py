"""Frontend: a binary QONNX graph (.onnx) -> the lowered IR (SPEC sections 1-4, 8, 9).

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
one integer (s, t) per channel that reproduces it on every acc (SPEC section 2).
Channels whose crossing lies within float32 rounding of a reachable acc ("near-ties") and
constant channels are counted in IR.meta.report.

The binary input's theta is the smallest float32 pixel in [0, 1] that the graph's float32
preprocessing sends to +1, found by bisection over float32 bit patterns: `pixel >= theta`
then reproduces the graph on every float32 pixel in [0, 1].

The package, in the order a graph goes through it (each module imports only those above it):

    load       file checks, onnx/qonnx loading, qonnx's cleanup transforms   load_qonnx
    graph      the normalised graph (`_G`: constants, producers, consumers, shapes, errors
               that name the user's layer) and the pieces every section shares
    inputs     the input quantiser: preprocessing, theta, the integer encoding
    fold       the per-channel float32 chains and their exact fold to (s, t)
    walk       the layer walk that builds and verifies the IR                  import_qonnx
    reference  the graph as qonnx's execute_onnx runs it                       qonnx_reference
    check      the golden model against that reference                         qonnx_vs_int
"""

from .check import check_inputs, qonnx_vs_int
from .fold import bn_onnxruntime, reachable, sum_error_bound
from .inputs import InputPrep, analyse_input, binary_theta
from .load import MAX_FILE_BYTES, load_qonnx
from .reference import qonnx_reference
from .walk import import_qonnx

__all__ = ["InputPrep", "load_qonnx", "analyse_input", "binary_theta", "import_qonnx",
           "qonnx_reference", "bn_onnxruntime", "reachable", "sum_error_bound",
           "check_inputs", "qonnx_vs_int", "MAX_FILE_BYTES"]
