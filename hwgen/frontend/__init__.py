"""Frontends: a trained model -> the initial IR (SPEC sections 8 and 9).

- `hwgen.frontend.checkpoint`: hwgen's own model.pt (torch.load with weights_only=True).
- `hwgen.frontend.qonnx`: a binary QONNX graph (Brevitas `export_qonnx`, FINN-style).

Both give the same kind of IR; the passes in hwgen.passes lower it to integers.
"""

from .checkpoint import build_ir, load_model, sha256_file

__all__ = ["build_ir", "load_model", "sha256_file"]
