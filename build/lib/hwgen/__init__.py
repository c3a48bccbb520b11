"""hwgen: binary Bayesian neural networks with MC-SpatialDropout, compiled to CiM hardware."""

__version__ = "0.1.0"
