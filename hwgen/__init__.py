"""hwgen: binary Bayesian neural networks with MC-SpatialDropout, compiled to CiM hardware.

The Python API (hwgen.api, README "Python API"): `hwgen.compile(model, ...)` -> a Design,
`hwgen.load(outdir)` -> the Design of a compiled folder, `hwgen.CompileConfig`. They are
loaded on first use, so `import hwgen` stays cheap.
"""

__version__ = "0.1.0"

__all__ = ["compile", "load", "CompileConfig", "__version__"]


def __getattr__(name):
    if name in ("compile", "load", "CompileConfig"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'hwgen' has no attribute {name!r}")
