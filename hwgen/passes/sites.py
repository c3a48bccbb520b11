"""Dropout-site passes: global interface numbering and MTJ write-current codes."""

from __future__ import annotations

from ..ir.core import IR, replace

__all__ = ["number_interfaces", "choose_mtj_codes"]


def number_interfaces(ir: IR, cfg=None) -> IR:
    """One MTJ-RNG interface per group, numbered site by site in network order and within a
    site in group (channel or row) order (SPEC section 6)."""
    sites, nxt = [], 0
    for s in sorted(ir.sites, key=lambda s: s.layer):
        sites.append(replace(s, first_interface=nxt))
        nxt += s.n_groups
    return replace(ir, sites=tuple(sites))


def choose_mtj_codes(ir: IR, cfg=None) -> IR:
    """Per site, the write-current code whose switching probability for the IR's write
    pulse is nearest the asked p; the realised p is recorded next to it."""
    sites = []
    for s in ir.sites:
        code, p_real = ir.mtj.device.choose_code(s.p, ir.mtj.write_ns)
        sites.append(replace(s, mtj_code=code, p_realised=p_real))
    return replace(ir, sites=tuple(sites))
