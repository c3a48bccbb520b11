"""Frontend: a validated model.pt -> the float-stage IR (SPEC sections 8 and 9).

The float stage is the model as trained: latent float weights and float batch norms
(`FloatLayer`), and the dropout sites with their groups as the torch model defines them
(interfaces not yet numbered). The passes in hwgen.passes lower it to integers; the
interpreter gives every stage the same meaning.
"""

from __future__ import annotations

from pathlib import Path

from ..atomic import sha256_file
from ..ir.core import IR, BatchNorm, Dropout, FloatLayer, InputEncoding, Meta, Site
from ..model.io import load_checkpoint
from ..model.net import site_groups

__all__ = ["build_ir", "load_model", "sha256_file"]


def _floats(t) -> tuple[float, ...]:
    return tuple(float(v) for v in t.detach().double().flatten().tolist())


def build_ir(ckpt: dict, model_sha256: str = "") -> IR:
    """The float-stage IR of a checkpoint returned by hwgen.model.io.load_checkpoint."""
    arch, sd = ckpt["arch"], ckpt["state_dict"]
    drop = arch["dropout"]
    kind, p, scale = drop["kind"], float(drop["p"]), bool(drop["scale"])
    sites = []
    if kind != "none":
        for i, plan in enumerate(arch["layers"]):
            if not plan.get("site", i > 0):
                continue
            g, r = site_groups(plan, kind)
            sites.append(Site(layer=i, kind=kind, p=p, n_groups=g, group_rows=r,
                              first_interface=-1))
    site_layers = {s.layer for s in sites}
    layers = []
    for i, plan in enumerate(arch["layers"]):
        pre = f"blocks.{i}."
        o = int(plan["out_channels"])
        bn = BatchNorm(
            gain=_floats(sd[pre + "bn.weight"]),
            bias=_floats(sd[pre + "bn.bias"]),
            mean=_floats(sd[pre + "bn.running_mean"]),
            var=_floats(sd[pre + "bn.running_var"]),
            eps=float(arch["bn_eps"]),
            # inverted dropout scales the kept inputs of every gated layer (net.py)
            in_scale=1.0 / (1.0 - p) if (scale and i in site_layers) else 1.0,
        )
        latent = _floats(sd[pre + "layer.weight"].reshape(o, -1))
        layers.append(FloatLayer(op=plan["op"], in_shape=tuple(plan["in_shape"]),
                                 out_channels=o, kernel=tuple(plan["kernel"]),
                                 pad=tuple(plan["pad"]), pool=int(plan["pool"]),
                                 stride=tuple(plan.get("stride", (1, 1))),
                                 pool_stride=plan.get("pool_stride"), latent=latent, bn=bn))
    dataset = ckpt["meta"].get("dataset")
    meta = Meta(source="model.pt", model_sha256=model_sha256,
                dataset=dataset if isinstance(dataset, str) else None, spec=arch["spec"],
                dropout=Dropout(kind=kind, p=p, scale=scale))
    inp = arch["input"]
    if inp["mode"] == "binary":
        enc = InputEncoding(theta=float(inp["theta"]))
    else:                                   # bitserial-n: q = rint(pixel * (2**n - 1))
        n = int(inp["bits"])
        enc = InputEncoding(mode="unsigned", bits=n, mul=float((1 << n) - 1))
    return IR(in_shape=tuple(arch["in_shape"]), input=enc, layers=tuple(layers), sites=tuple(sites),
              meta=meta)


def load_model(path) -> tuple[dict, str]:
    """(validated checkpoint, sha256 of the file); HwgenError on any problem."""
    ckpt = load_checkpoint(Path(path))
    return ckpt, sha256_file(path)
