"""Amaranth hardware generated from the IR (DESIGN sections 6 and 7).

tile.CrossbarTile        one crossbar read, `lanes` column sums per cycle, weights in memory
controller.TileController  one layer: activation buffer, window walk, tiles, threshold, pool
rng.MtjRngBank           the MTJ-RNG protocol for all interfaces in lock step, keep-bit stream
lfsr.LfsrMtjBank         LFSR stand-ins for the MTJs (FPGA), with their exact software model
top.NetworkTop           `hwgen_top` (port contract: docs/ARCHITECTURE.md section 5)

Each module carries its numpy/Python model; testing.py has the simulator drivers.
"""
