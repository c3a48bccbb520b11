"""cocotb verification of the generated hardware (SPEC section 10, docs/SPEC.md).

Pure-Python parts (`ports`, `scoreboard`, `stats`) are importable without a simulator;
`bench_top` is the cocotb bench that runs inside one; `runner` builds and launches it.
"""
