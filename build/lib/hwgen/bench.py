"""`hwgen bench WHAT`: dispatch to the benchmark of each stage."""

import importlib

BENCHES = {
    "train": "hwgen.model.bench_train:run",
    "golden": "hwgen.bench_golden:run",
}


def cmd_bench(args) -> int:
    module, func = BENCHES[args.what].split(":")
    return getattr(importlib.import_module(module), func)(args)
