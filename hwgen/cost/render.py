"""The cost report (`hwgen.cost.model.cost`) as text tables."""

from __future__ import annotations

from .model import BASELINES, PAPER

__all__ = ["render"]


def _fmt(x, digits=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):
        return f"{x:,}"
    return f"{x:,.{digits}f}"


def render(rep: dict) -> str:
    """The report as readable text tables."""
    d, T = rep["design"], rep["design"]["samples"]
    out = [f"hwgen cost report: design dropout {d['kind']}, T = {T} samples, lanes = {d['lanes']}, "
           f"mc_start = layer {d['mc_start']}", ""]
    hdr = (f"{'layer':>5} {'op':<6} {'in (C,H,W)':<13} {'O':>4} {'k':>5} {'win':>5} {'RTxCT':>6} "
           f"{'reads/inf':>10} {'cyc/pass':>9} {'mod sp':>7} {'mod el':>7} {'draws sp':>9} {'draws el':>9} "
           f"{'draws win':>10}")
    out += [hdr, "-" * len(hdr)]
    for l in rep["layers"]:
        sp, el, win = (l["dropout"][k] for k in BASELINES)
        out.append(f"{l['index']:>5} {l['op']:<6} {'x'.join(map(str, l['in_shape'])):<13} "
                   f"{l['out_channels']:>4} {'x'.join(map(str, l['kernel'])):>5} {l['windows']:>5} "
                   f"{l['row_tiles']}x{l['col_tiles']:<4} {_fmt(l['reads_per_inference']):>10} "
                   f"{_fmt(l['cycles_bound_per_pass']):>9}{'*' if l['per_sample'] else ' '}"
                   f"{_fmt(sp['modules']):>7} {_fmt(el['modules']):>7} {_fmt(sp['draws']):>9} "
                   f"{_fmt(el['draws']):>9} {_fmt(win['draws']):>10}")
    t = rep["totals"]
    out.append(f"{'total':>5} {'':<6} {'':<13} {'':>4} {'':>5} {'':>5} {'':>6} "
               f"{_fmt(rep['crossbar_reads_per_inference']):>10} {'':>9} "
               f"{_fmt(t['spatial']['modules']):>7} {_fmt(t['element']['modules']):>7} "
               f"{_fmt(t['spatial']['draws']):>9} {_fmt(t['element']['draws']):>9} "
               f"{_fmt(t['element_window']['draws']):>10}")
    out.append("(* = run per MC sample; reads/inf counts the prefix once and the rest T times; "
               "sp = spatial, el = element (keep bit per image and sample), win = element "
               "redrawn every window, with el's modules)")
    c = rep["cycles"]
    meas = ("not measured (no hwgen sim report in OUTDIR)" if c["measured_per_sample"] is None
            else f"{c['measured_per_sample']:,.1f} measured ({c['measured_source']}), "
                 f"{c['measured_per_sample'] - c['bound_per_sample']:+,.1f} over the bound")
    out += ["", f"cycles per MC sample: bound {c['bound_per_sample']:,} (sum over layers >= mc_start "
                f"of windows x beats per read r); {meas}",
            f"cycles per image: prefix bound {c['prefix_bound']:,} + T x {c['bound_per_sample']:,} "
            f"= {c['bound_per_inference']:,}",
            f"element redrawn every window: bound {t['element_window']['cycles_bound_per_sample']:,} "
            f"cycles per MC sample (each window of a gated layer waits max(read, "
            f"{rep['design']['rng']['cycles_per_draw']}-cycle draw))", ""]
    out.append("energy per inference by layer (nJ): crossbar cells, ADC, periphery, RNG spatial, "
               "RNG element, RNG per window")
    for l in rep["layers"]:
        le = l["energy_pj_per_inference"]
        out.append(f"{l['index']:>5} " + " ".join(f"{le[k] / 1e3:>10.3f}" for k in (
            "xbar_cells", "xbar_adc", "periphery", *(f"rng_{b}" for b in BASELINES))))
    out.append("")
    e = rep["energy_pj_per_inference"]
    out.append("energy per inference (nJ)        spatial      element   per window")

    def row(label, vals):
        out.append(f"  {label:<28} " + "   ".join(f"{v / 1e3:>10.3f}" for v in vals))
    row("RNG (reset+write+sense)", [e[f"rng_{b}"] for b in BASELINES])
    for label, key in (("crossbar cell reads", "xbar_cells"), ("crossbar ADC", "xbar_adc"),
                       ("digital periphery", "periphery")):
        row(label, [e[key]] * len(BASELINES))
    row("total", [e[f"total_{b}"] for b in BASELINES])
    out.append(f"  {'RNG with Liu 1 pJ/sample':<28} " + "   ".join(
        f"{t[b]['rng_pj_alt'] / 1e3:>10.3f}" for b in BASELINES) + "   (sensitivity)")
    out.append("")
    for b, r in rep["ratios_over_spatial"].items():
        out.append(f"{b} / spatial: " + ", ".join(f"{k} {_fmt(v, 2)}x" for k, v in r.items()))
    out += [f"(paper: modules {PAPER['modules']}x, energy {PAPER['energy']}x)",
            rep["explanation"], ""]
    if rep["sites"]:
        out.append("dropout sites: p asked vs realised by the MTJ write-current code")
        out.append(f"  {'layer':>5} {'kind':<8} {'groups':>7} {'first if':>8} {'p asked':>8} "
                   f"{'p real':>9} {'code':>5}")
        for s in rep["sites"]:
            out.append(f"  {s['layer']:>5} {s['kind']:<8} {s['n_groups']:>7} {s['first_interface']:>8} "
                       f"{s['p']:>8.4f} {_fmt(s['p_realised'], 5):>9} {'-' if s['mtj_code'] is None else s['mtj_code']:>5}")
        out.append("")
    out.append("energy figures (pJ) and sources  [V] read in source, [U] secondary, (d) derived")
    for f in rep["energy_table"]:
        out.append(f"  {f['key']:<22} {f['value_pj']:>8.4f} {f['tag']:<4} {f['what']}; {f['source']}"
                   + (f"; {f['note']}" if f["note"] else ""))
    return "\n".join(out) + "\n"
