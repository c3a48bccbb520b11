"""A deterministic, line-oriented text dump of an IR, for diffs and review."""

from __future__ import annotations

from .core import IR

__all__ = ["dump"]


def _t(v) -> str:
    return "x".join(str(x) for x in v)


def dump(ir: IR) -> str:
    out = [f"hwgen IR v{ir.version}: input {ir.input_mode} theta={ir.theta!r} "
           f"shape={_t(ir.in_shape)} layers={len(ir.layers)} mc_start={ir.mc_start} "
           f"interfaces={ir.n_interfaces}",
           f"rng: clk_ns={ir.rng.clk_ns!r} reset_cycles={ir.rng.reset_cycles} "
           f"write_cycles={ir.rng.write_cycles} device=" +
           ",".join(f"{k}={ir.rng.device[k]!r}" for k in sorted(ir.rng.device))]
    for k in sorted(ir.meta):
        out.append(f"meta {k}: {ir.meta[k]!r}")
    for i, l in enumerate(ir.layers):
        out.append(f"layer {i}: {l.op} in={_t(l.in_shape)} kernel={_t(l.kernel)} pad={_t(l.pad)} "
                   f"out_channels={l.out_channels} conv={_t(l.conv_shape)} pool={l.pool} "
                   f"out={_t(l.out_shape)} rows={l.rows} windows={l.windows} tile={_t(l.tile)} "
                   f"row_tiles={len(l.row_tiles)} col_tiles={len(l.col_tiles)}")
        s = ir.site_of(i)
        if s is not None:
            out.append(f"  site: {s.kind} p={s.p!r} groups={s.n_groups} x {s.group_rows} rows "
                       f"interfaces=[{s.first_interface}, {s.first_interface + s.n_groups}) "
                       f"mtj_code={s.mtj_code} p_realised={s.p_realised!r}")
        if l.bn is not None:
            out.append("  bn: " + " ".join(f"{k}={l.bn[k]!r}" for k in sorted(l.bn)))
        if l.logit_scale is not None:
            out.append(f"  logit_scale={list(l.logit_scale)!r}")
            out.append(f"  logit_bias={list(l.logit_bias)!r}")
        wb = l.weights if l.weights else ("<latent>",) * l.out_channels
        for j in range(l.out_channels):
            st = "" if l.thresh is None else f" s={l.sign[j]:+d} t={l.thresh[j]}"
            out.append(f"  col {j}:{st} w={wb[j]}")
    return "\n".join(out) + "\n"
