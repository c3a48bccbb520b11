"""Amaranth hardware generated from the IR (DESIGN sections 6 and 7).

tile.CrossbarTile        one crossbar read, `lanes` column sums per cycle, weights in memory
controller.TileController  one layer: activation buffer, window walk, tiles, threshold, pool
rng.MtjRngInterface      the MTJ-RNG protocol for all interfaces in lock step, keep banks
lfsr.LfsrMtj             LFSR stand-in for an MTJ (FPGA), with its exact software model
top.NetworkTop           `hwgen_top` (port contract: docs/ARCHITECTURE.md section 5)

Each module carries its numpy/Python model; testing.py has the simulator drivers.
"""
