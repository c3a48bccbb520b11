"""verify(ir): every invariant of the IR, one clear message for the first one broken.

Checked: format fields and the stage (all layers float, or all integer); layer geometry
(strides >= 1, a pool stride other than None only where it differs from the pool size,
so that an IR has one spelling) and the shape chain (strided convs, pooling, and flatten
as a conv whose kernel covers the whole map);
float stage: latent weight counts and a finite batch norm per layer; integer stage:
weight bit counts (hex length, zero pad bits), thresholds (s in {+1,-1}, t in range,
constant channels in the canonical encoding) and the classifier's logit affine; dropout
groups partition the rows of their layer as their kind says; global interface numbering;
MTJ codes; tiles cover every layer exactly; the read plans (integer stage, all layers or
none): each equal to what hwgen.passes.schedule computes from the layer's tiling, its
lanes and `IR.mc_start` (`read_plan`), so a hand-edited plan is refused.
"""

from __future__ import annotations

import math

from ..errors import HwgenError
from ..device import MtjParams
from .core import (IR, VERSION, BatchNorm, InputEncoding, FloatLayer, Layer, MtjConfig, ReadPlan,
                   read_plan, site_groups)

__all__ = ["VerifyError", "verify"]

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


def _float_layer(l: FloatLayer, where: str, o: int, rows: int) -> None:
    _need(_finite(l.latent, o * rows), f"{where}: latent weights must be {o * rows} finite floats")
    bn = l.bn
    _need(isinstance(bn, BatchNorm), f"{where}: batch norm must be a BatchNorm")
    for k in ("gain", "bias", "mean", "var"):
        _need(_finite(getattr(bn, k), o), f"{where}: batch norm {k} must be {o} finite floats")
    _need(all(v >= 0 for v in bn.var), f"{where}: negative batch-norm variance")
    _need(isinstance(bn.eps, float) and bn.eps > 0 and isinstance(bn.in_scale, float)
          and bn.in_scale > 0, f"{where}: batch norm eps/in_scale must be positive floats")


def _integer_layer(l: Layer, where: str, o: int, rows: int, last: bool, bound: int) -> None:
    """`bound`: the largest |acc| the layer reaches (IR.acc_bound)."""
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
    _need((l.sign is None) == (l.thresh is None), f"{where}: sign and thresh go together")
    if last:
        _need(l.sign is None, f"{where}: the classifier is not thresholded")
        _need((l.logit_scale is None) == (l.logit_bias is None),
              f"{where}: logit scale and bias go together")
        if l.logit_scale is not None:
            _need(_finite(l.logit_scale, o) and _finite(l.logit_bias, o),
                  f"{where}: logit affine must be {o} finite floats each")
        return
    _need(l.logit_scale is None and l.logit_bias is None, f"{where}: logit affine on a hidden layer")
    _need(l.thresh is not None, f"{where}: a hidden layer needs thresholds")
    _need(isinstance(l.sign, tuple) and len(l.sign) == o and all(s in (1, -1) and type(s) is int
                                                                  for s in l.sign),
          f"{where}: sign must be {o} values in {{+1, -1}}")
    _need(isinstance(l.thresh, tuple) and len(l.thresh) == o and
          all(type(t) is int for t in l.thresh), f"{where}: thresh must be {o} ints")
    for j, (s, t) in enumerate(zip(l.sign, l.thresh)):
        # s*acc reaches [-bound, bound]; constants are +-(bound+1) with s = +1
        _need(-bound < t <= bound or (abs(t) == bound + 1 and s == 1),
              f"{where}: column {j}: threshold (s={s}, t={t}) outside "
              f"(-{bound}, {bound}] and not a constant encoding")


def _layer(ir: IR, i: int, l) -> None:
    where = f"layer {i}"
    last = i == len(ir.layers) - 1
    _need(l.op in ("conv", "linear"), f"{where}: op {l.op!r}")
    _need(_ints(l.in_shape, 3) and type(l.out_channels) is int and l.out_channels >= 1,
          f"{where}: in_shape {l.in_shape!r} / out_channels {l.out_channels!r}")
    _need(_ints(l.kernel, 2) and _ints(l.pad, 2, lo=0) and type(l.pool) is int and l.pool >= 1,
          f"{where}: kernel {l.kernel!r}, pad {l.pad!r}, pool {l.pool!r}")
    _need(_ints(l.stride, 2), f"{where}: stride {l.stride!r} must be two ints >= 1")
    _need(l.pool_stride is None or (type(l.pool_stride) is int and l.pool_stride >= 1
                                    and l.pool > 1 and l.pool_stride != l.pool),
          f"{where}: pool stride {l.pool_stride!r} must be None (the pool size) or an int "
          f">= 1 other than the pool size, on a pooled layer")
    _need(min(l.conv_shape[1:]) >= 1 and min(l.out_shape[1:]) >= 1,
          f"{where}: kernel/pool leave no output ({l.conv_shape} -> {l.out_shape})")
    want = ir.in_shape if i == 0 else ir.layers[i - 1].out_shape
    _need(tuple(l.in_shape) == tuple(want),
          f"{where}: in_shape {l.in_shape} != {want} (shape chain)")
    if l.op == "linear":
        _need(l.kernel == tuple(l.in_shape[1:]) and l.pad == (0, 0) and l.pool == 1
              and l.stride == (1, 1),
              f"{where}: a linear layer is a conv whose kernel covers its whole map")
    o, rows = l.out_channels, l.rows
    if isinstance(l, FloatLayer):
        _float_layer(l, where, o, rows)
    else:
        _integer_layer(l, where, o, rows, last, ir.acc_bound(i))
    _need(_ints(l.tile, 2), f"{where}: tile {l.tile!r} must be two ints >= 1")
    _need(_covers(l.row_tiles, rows, l.tile[0]) and _covers(l.col_tiles, o, l.tile[1]),
          f"{where}: tiles do not cover rows/columns exactly")
    plan = getattr(l, "plan", None)
    if plan is not None:
        _need(isinstance(plan, ReadPlan) and _ints(plan.lanes, len(l.col_tiles))
              and type(plan.beats) is int and type(plan.passes) is int and plan.passes >= 1,
              f"{where}: read plan {plan!r} must give int beats, int passes >= 1 "
              f"and {len(l.col_tiles)} lanes (one per column split)")
        splits = -(-len(l.row_tiles) // plan.passes)
        want = read_plan(ir, i, max(plan.lanes), None if plan.passes == 1 else splits)
        _need(plan == want, f"{where}: read plan {plan} is not the schedule of its tiling at "
              f"{max(plan.lanes)} lanes and {splits} row splits at once ({want}): run "
              f"hwgen.passes.schedule")


def verify(ir: IR) -> None:
    """Raise VerifyError naming the first broken invariant of `ir`."""
    _need(ir.version == VERSION, f"version {ir.version!r} != {VERSION}")
    e = ir.input
    _need(isinstance(e, InputEncoding) and e.mode in ("binary", "unsigned", "signed"),
          f"input mode {getattr(e, 'mode', e)!r}")
    if e.mode == "binary":
        _need(e.bits == 1 and isinstance(e.theta, float) and 0.0 < e.theta <= 1.0,
              f"binary input: bits {e.bits!r}, theta {e.theta!r}")
    else:
        _need(type(e.bits) is int and 2 <= e.bits <= 16, f"input bits {e.bits!r} (2..16)")
        _need(all(isinstance(v, float) and math.isfinite(v) for v in (e.mul, e.add, e.scale))
              and e.scale > 0 and e.mul != 0, f"input quantiser mul/add/scale "
              f"{(e.mul, e.add, e.scale)!r}")
    _need(_ints(tuple(ir.in_shape), 3), f"in_shape {ir.in_shape!r}")
    _need(len(ir.layers) >= 1, "no layers")
    _need(ir.stage in ("float", "integer"), "layers must all be FloatLayer (float stage) "
          "or all Layer (integer stage)")
    for i, l in enumerate(ir.layers):
        _layer(ir, i, l)
    planned = [getattr(l, "plan", None) is not None for l in ir.layers]
    _need(all(planned) or not any(planned), "read plans on some layers only (run "
          "hwgen.passes.schedule)")
    r = ir.mtj
    _need(isinstance(r, MtjConfig) and isinstance(r.device, MtjParams), "mtj config types")
    _need(r.clk_ns > 0 and type(r.reset_cycles) is int and r.reset_cycles >= 1 and
          type(r.write_cycles) is int and r.write_cycles >= 1, f"MTJ pulse timing {r!r}")
    code_bits = r.device.code_bits
    numbered = [s.first_interface != -1 for s in ir.sites]
    _need(all(numbered) or not any(numbered), "interfaces are partly numbered")
    nxt, prev = 0, -1
    for s in ir.sites:
        where = f"site at layer {s.layer}"
        _need(type(s.layer) is int and prev < s.layer < len(ir.layers),
              f"{where}: sites must be on distinct layers in network order")
        prev = s.layer
        _need(s.layer > 0 or ir.input.mode == "binary",
              f"{where}: a multi-bit first layer is deterministic (its planes run once per image)")
        l = ir.layers[s.layer]
        _need(s.kind in ("spatial", "element"), f"{where}: kind {s.kind!r}")
        _need(0.0 < s.p < 1.0, f"{where}: p {s.p!r}")
        _need(s.n_groups >= 1 and s.group_rows >= 1 and s.n_groups * s.group_rows == l.rows,
              f"{where}: {s.n_groups} groups x {s.group_rows} rows do not partition {l.rows} rows")
        _need((s.n_groups, s.group_rows) == site_groups(s.kind, l.in_shape, l.kernel),
              f"{where}: {s.kind} groups must be {site_groups(s.kind, l.in_shape, l.kernel)} "
              f"(groups, rows each)")
        if all(numbered):
            _need(s.first_interface == nxt, f"{where}: first interface {s.first_interface}, "
                  f"expected {nxt} (global numbering)")
        nxt += s.n_groups
        _need(type(s.mtj_code) is int and 0 <= s.mtj_code < 2 ** code_bits,
              f"{where}: MTJ code {s.mtj_code!r}")
        _need(0.0 <= s.p_realised <= 1.0, f"{where}: realised p {s.p_realised!r}")
