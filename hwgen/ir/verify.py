"""verify(ir): every invariant of the IR, one clear message for the first one broken.

Checked: format fields; layer geometry and the shape chain (pooling, and flatten as a conv
whose kernel covers the whole map); weight bit counts (hex length, zero pad bits) or
latent weight counts; thresholds (s in {+1,-1}, t in range, constant channels in the
canonical encoding) or a batch norm, and the classifier's logit affine; dropout groups
partition the rows of their layer as their kind says; global interface numbering; MTJ
codes; tiles cover every layer exactly.
"""

from __future__ import annotations

import math

from ..errors import HwgenError
from .core import IR, VERSION, Layer

__all__ = ["VerifyError", "verify"]

BN_KEYS = {"gain", "bias", "mean", "var", "eps", "in_scale"}


class VerifyError(HwgenError):
    """An IR invariant is broken."""


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise VerifyError(f"IR invariant: {msg}")


def _ints(v, n: int, lo: int = 1) -> bool:
    return (isinstance(v, tuple) and len(v) == n
            and all(type(x) is int and x >= lo for x in v))


def _finite(v, n: int) -> bool:
    return (isinstance(v, tuple) and len(v) == n
            and all(isinstance(x, (int, float)) and math.isfinite(x) for x in v))


def _covers(spans, n: int, size: int) -> bool:
    pos = 0
    for a, b in spans:
        if a != pos or not 0 < b - a <= size:
            return False
        pos = b
    return pos == n


def _layer(ir: IR, i: int, l: Layer) -> None:
    where = f"layer {i}"
    last = i == len(ir.layers) - 1
    _need(l.op in ("conv", "linear"), f"{where}: op {l.op!r}")
    _need(_ints(l.in_shape, 3) and type(l.out_channels) is int and l.out_channels >= 1,
          f"{where}: in_shape {l.in_shape!r} / out_channels {l.out_channels!r}")
    _need(_ints(l.kernel, 2) and _ints(l.pad, 2, lo=0) and type(l.pool) is int and l.pool >= 1,
          f"{where}: kernel {l.kernel!r}, pad {l.pad!r}, pool {l.pool!r}")
    _need(min(l.conv_shape[1:]) >= 1 and min(l.out_shape[1:]) >= 1,
          f"{where}: kernel/pool leave no output ({l.conv_shape} -> {l.out_shape})")
    want = ir.in_shape if i == 0 else ir.layers[i - 1].out_shape
    _need(tuple(l.in_shape) == tuple(want),
          f"{where}: in_shape {l.in_shape} != {want} (shape chain)")
    if l.op == "linear":
        _need(l.kernel == tuple(l.in_shape[1:]) and l.pad == (0, 0) and l.pool == 1,
              f"{where}: a linear layer is a conv whose kernel covers its whole map")
    o, rows = l.out_channels, l.rows
    # weights: packed bits, or latent floats before pack_weights
    if l.weights:
        _need(l.latent is None, f"{where}: both packed and latent weights")
        _need(isinstance(l.weights, tuple) and len(l.weights) == o,
              f"{where}: {len(l.weights)} weight rows, expected {o}")
        nbytes = (rows + 7) // 8
        for j, h in enumerate(l.weights):
            _need(isinstance(h, str) and len(h) == 2 * nbytes,
                  f"{where}: weight column {j} has {len(h) if isinstance(h, str) else '?'} hex "
                  f"digits, expected {2 * nbytes} for {rows} rows")
            try:
                raw = bytes.fromhex(h)
            except ValueError:
                raise VerifyError(f"IR invariant: {where}: weight column {j} is not hex") from None
            _need(rows % 8 == 0 or raw[-1] >> (rows % 8) == 0,
                  f"{where}: weight column {j} has bits set beyond row {rows}")
    else:
        _need(l.latent is not None and _finite(l.latent, o * rows),
              f"{where}: no weights (expected {o} packed columns or {o * rows} latent floats)")
    if l.bn is not None:
        _need(isinstance(l.bn, dict) and set(l.bn) == BN_KEYS, f"{where}: batch norm keys")
        for k in ("gain", "bias", "mean", "var"):
            _need(_finite(l.bn[k], o), f"{where}: batch norm {k} must be {o} finite floats")
        _need(all(v >= 0 for v in l.bn["var"]), f"{where}: negative batch-norm variance")
        _need(isinstance(l.bn["eps"], float) and l.bn["eps"] > 0 and
              isinstance(l.bn["in_scale"], float) and l.bn["in_scale"] > 0,
              f"{where}: batch norm eps/in_scale must be positive floats")
    _need((l.sign is None) == (l.thresh is None), f"{where}: sign and thresh go together")
    if last:
        _need(l.sign is None, f"{where}: the classifier is not thresholded")
        _need(l.pool == 1 and l.conv_shape[1:] == (1, 1), f"{where}: the classifier has one window")
        has_affine = l.logit_scale is not None or l.logit_bias is not None
        _need(not (has_affine and l.bn is not None), f"{where}: classifier has both a batch "
              f"norm and a logit affine")
        if has_affine:
            _need(_finite(l.logit_scale, o) and _finite(l.logit_bias, o),
                  f"{where}: logit affine must be {o} finite floats each")
    else:
        _need(l.logit_scale is None and l.logit_bias is None, f"{where}: logit affine on a hidden layer")
        _need((l.thresh is not None) != (l.bn is not None),
              f"{where}: needs exactly one of thresholds or batch norm")
        if l.thresh is not None:
            _need(isinstance(l.sign, tuple) and len(l.sign) == o and all(s in (1, -1) and type(s) is int
                                                                          for s in l.sign),
                  f"{where}: sign must be {o} values in {{+1, -1}}")
            _need(isinstance(l.thresh, tuple) and len(l.thresh) == o and
                  all(type(t) is int for t in l.thresh), f"{where}: thresh must be {o} ints")
            for j, (s, t) in enumerate(zip(l.sign, l.thresh)):
                # s*acc reaches [-rows, rows]; constants are +-(rows+1) with s = +1
                _need(-rows < t <= rows or (abs(t) == rows + 1 and s == 1),
                      f"{where}: column {j}: threshold (s={s}, t={t}) outside "
                      f"(-{rows}, {rows}] and not a constant encoding")
    _need(_ints(l.tile, 2), f"{where}: tile {l.tile!r} must be two ints >= 1")
    _need(_covers(l.row_tiles, rows, l.tile[0]) and _covers(l.col_tiles, o, l.tile[1]),
          f"{where}: tiles do not cover rows/columns exactly")


def verify(ir: IR) -> None:
    """Raise VerifyError naming the first broken invariant of `ir`."""
    _need(ir.version == VERSION, f"version {ir.version!r} != {VERSION}")
    _need(ir.input_mode == "binary", f"input mode {ir.input_mode!r}")
    _need(isinstance(ir.theta, float) and 0.0 < ir.theta <= 1.0, f"theta {ir.theta!r}")
    _need(_ints(tuple(ir.in_shape), 3), f"in_shape {ir.in_shape!r}")
    _need(len(ir.layers) >= 1, "no layers")
    for i, l in enumerate(ir.layers):
        _layer(ir, i, l)
    r = ir.rng
    _need(r.clk_ns > 0 and type(r.reset_cycles) is int and r.reset_cycles >= 1 and
          type(r.write_cycles) is int and r.write_cycles >= 1, f"rng timing {r!r}")
    code_bits = int(r.device.get("code_bits", 10)) if isinstance(r.device, dict) else 10
    numbered = [s.first_interface != -1 for s in ir.sites]
    _need(all(numbered) or not any(numbered), "interfaces are partly numbered")
    nxt, prev = 0, -1
    for s in ir.sites:
        where = f"site at layer {s.layer}"
        _need(type(s.layer) is int and prev < s.layer < len(ir.layers),
              f"{where}: sites must be on distinct layers in network order")
        prev = s.layer
        l = ir.layers[s.layer]
        _need(s.kind in ("spatial", "element"), f"{where}: kind {s.kind!r}")
        _need(0.0 < s.p < 1.0, f"{where}: p {s.p!r}")
        _need(s.n_groups >= 1 and s.group_rows >= 1 and s.n_groups * s.group_rows == l.rows,
              f"{where}: {s.n_groups} groups x {s.group_rows} rows do not partition {l.rows} rows")
        if s.kind == "spatial":
            _need(s.n_groups == l.in_shape[0], f"{where}: spatial needs one group per channel")
        else:
            _need(s.group_rows == 1, f"{where}: element needs one group per row")
        if all(numbered):
            _need(s.first_interface == nxt, f"{where}: first interface {s.first_interface}, "
                  f"expected {nxt} (global numbering)")
        nxt += s.n_groups
        _need(type(s.mtj_code) is int and 0 <= s.mtj_code < 2 ** code_bits,
              f"{where}: MTJ code {s.mtj_code!r}")
        _need(0.0 <= s.p_realised <= 1.0, f"{where}: realised p {s.p_realised!r}")
