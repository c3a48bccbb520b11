"""A deterministic, line-oriented text dump of an IR, for diffs and review."""

from __future__ import annotations

from dataclasses import asdict

from .core import IR, FloatLayer, pack_rows

__all__ = ["dump"]


def _t(v) -> str:
    return "x".join(str(x) for x in v)


def dump(ir: IR) -> str:
    out = [f"hwgen IR v{ir.version} ({ir.stage} stage): input {ir.input!r} "
           f"shape={_t(ir.in_shape)} layers={len(ir.layers)} mc_start={ir.mc_start} "
           f"interfaces={ir.n_interfaces}",
           f"mtj: clk_ns={ir.mtj.clk_ns!r} reset_cycles={ir.mtj.reset_cycles} "
           f"write_cycles={ir.mtj.write_cycles} device=" +
           ",".join(f"{k}={v!r}" for k, v in sorted(asdict(ir.mtj.device).items()))]
    for k, v in sorted(asdict(ir.meta).items()):
        out.append(f"meta {k}: {v!r}")
    for i, l in enumerate(ir.layers):
        # strides only where they are not the defaults: a stride-1 dump reads as before
        st = "" if l.stride == (1, 1) else f" stride={_t(l.stride)}"
        ps = "" if l.pool_stride is None else f" pool_stride={l.pool_stride}"
        out.append(f"layer {i}: {l.op} in={_t(l.in_shape)} kernel={_t(l.kernel)} pad={_t(l.pad)}"
                   f"{st} out_channels={l.out_channels} conv={_t(l.conv_shape)} pool={l.pool}{ps} "
                   f"out={_t(l.out_shape)} rows={l.rows} windows={l.windows} tile={_t(l.tile)} "
                   f"row_tiles={len(l.row_tiles)} col_tiles={len(l.col_tiles)}")
        plan = getattr(l, "plan", None)
        if plan is not None:
            out.append(f"  plan: beats={plan.beats} lanes={_t(plan.lanes)} store={plan.store} "
                       f"banks={plan.banks} reread={plan.reread}"
                       + ("" if plan.passes == 1 else f" passes={plan.passes}"))
        s = ir.site_of(i)
        if s is not None:
            out.append(f"  site: {s.kind} p={s.p!r} groups={s.n_groups} x {s.group_rows} rows "
                       f"interfaces=[{s.first_interface}, {s.first_interface + s.n_groups}) "
                       f"mtj_code={s.mtj_code} p_realised={s.p_realised!r}")
        if isinstance(l, FloatLayer):
            out.append("  bn: " + " ".join(f"{k}={v!r}" for k, v in sorted(asdict(l.bn).items())))
            wb = pack_rows(l.weight_bits())
        else:
            if l.logit_scale is not None:
                out.append(f"  logit_scale={list(l.logit_scale)!r}")
                out.append(f"  logit_bias={list(l.logit_bias)!r}")
            wb = l.weights
        for j in range(l.out_channels):
            st = "" if getattr(l, "thresh", None) is None else f" s={l.sign[j]:+d} t={l.thresh[j]}"
            out.append(f"  col {j}:{st} w={wb[j]}")
    return "\n".join(out) + "\n"
