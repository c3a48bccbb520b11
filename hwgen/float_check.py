"""`python -m hwgen.float_check model.pt [--images N] [--samples T] [--json F]`: the
float-vs-integer check (hwgen.model.agreement, SPEC section 10.5) at a chosen size;
`hwgen compile` runs a small one."""

from __future__ import annotations

from .model.agreement import float_vs_int

__all__ = ["main"]


def main(argv=None) -> int:
    """The float-vs-integer check of a model.pt at a chosen size."""
    import argparse
    import json
    import logging
    import time

    from .atomic import write_text
    from .compiler import check_images, check_masks
    from .frontend import build_ir, load_model
    from .model.io import build_model
    from .passes import run_pipeline

    ap = argparse.ArgumentParser(prog="python -m hwgen.float_check", description=main.__doc__)
    ap.add_argument("model")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    ckpt, _ = load_model(args.model)
    ir = run_pipeline(build_ir(ckpt))
    x, source = check_images(ir, args.images)
    rep = float_vs_int(build_model(ckpt), ir, x, check_masks(ir, len(x), args.samples, args.seed))
    rep.update(format="hwgen-float-check", model=str(args.model), image_source=source,
               dropout=ir.meta.dropout.kind, spec=ir.meta.spec, seed=args.seed,
               seconds=round(time.perf_counter() - t0, 1))
    text = json.dumps(rep, sort_keys=True, indent=1) + "\n"
    print(text, end="")
    if args.json:
        write_text(args.json, text)
    return 0 if rep["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
