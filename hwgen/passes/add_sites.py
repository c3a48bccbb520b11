"""add_sites: MC dropout sites on a model trained without them (an imported QONNX graph).

Not in PIPELINE: it takes its own options, and runs before run_pipeline so that the
interfaces are numbered and the MTJ codes chosen like any other site's.
"""

from __future__ import annotations

import logging

from ..errors import HwgenError
from ..ir.core import IR, Dropout, Site, replace, site_groups

__all__ = ["add_sites"]

log = logging.getLogger(__name__)


def add_sites(ir: IR, kind: str, p: float, layers=None) -> IR:
    """Dropout sites of `kind` ('spatial' | 'element') and drop probability p on the inputs
    of `layers` (IR layer indices; default every layer but the first).

    spatial: one group per input channel, kh*kw rows each (SPEC section 5);
    element: one group per crossbar row. Records in ir.meta.dropout (trained=False) that the network
    was not trained with them (trained_with = False). Read plans are dropped (run the
    pipeline, or hwgen.passes.reschedule, after it)."""
    if kind not in ("spatial", "element"):
        raise HwgenError(f"dropout kind must be 'spatial' or 'element', not {kind!r}")
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 < float(p) < 1.0:
        raise HwgenError(f"dropout p must be in (0, 1), not {p!r}")
    if ir.sites:
        raise HwgenError(f"the IR already has {len(ir.sites)} dropout sites")
    n = len(ir.layers)
    chosen = list(range(1, n)) if layers is None else list(layers)
    if not chosen:
        raise HwgenError("no layers given for dropout sites")
    for i in chosen:
        if type(i) is not int or not 1 <= i < n:
            raise HwgenError(f"dropout site layer {i!r} must be an integer in 1..{n - 1} "
                             f"(layer 0 reads the image)")
    if len(set(chosen)) != len(chosen):
        raise HwgenError(f"dropout site layers {chosen} repeat a layer")
    sites = []
    for i in sorted(chosen):
        layer = ir.layers[i]
        g, r = site_groups(kind, layer.in_shape, layer.kernel)
        sites.append(Site(layer=i, kind=kind, p=float(p), n_groups=g, group_rows=r,
                          first_interface=-1))
    single = [s.layer for s in sites if s.group_rows == 1]
    if kind == "spatial" and single:
        # a valid design, so a warning: the user asked for a kind that does not differ here
        log.warning("spatial dropout on layer%s %s: each group is one crossbar row (a linear "
                    "fed by a linear, or a 1x1 conv), so spatial equals element there",
                    "s" if len(single) > 1 else "", ", ".join(map(str, single)))
    meta = replace(ir.meta, dropout=Dropout(kind=kind, p=float(p), scale=False, trained=False))
    # the sites move the first MC layer, whose store the read plans describe: the plans
    # are dropped, for the schedule pass to record again
    layers = tuple(replace(l, plan=None) if getattr(l, "plan", None) is not None else l
                   for l in ir.layers)
    return replace(ir, layers=layers, sites=tuple(sites), meta=meta)
