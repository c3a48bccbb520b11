"""Amaranth hardware generated from the IR (DESIGN sections 6 and 7).

tile.CrossbarTile          one crossbar read, `lanes` column sums per cycle, weights in memory
controller.TileController  one layer: its activation buffer and, joined by streams,
                           WindowWalker -> TileArray -> ThresholdPool | ClassCollector
loader.ImageLoader         `img` words into layer 0's buffer, bit-serially (model: image_words)
rng.MtjRngBank             the MTJ-RNG protocol for all interfaces in lock step, keep-bit stream
lfsr.LfsrMtjBank           LFSR stand-ins for the MTJs (FPGA), with their exact software model
top.NetworkTop             `hwgen_top` (port contract: docs/ARCHITECTURE.md section 5)
layer_top.LayerTop         one TileController alone, for the layer-level bench
plan                       beats per read and the section 7 cycle bound

The hardware reads a finished IR: it imports hwgen.ir, never the compiler (testing.py's
random_ir, test support only, borrows hwgen.model.spec's layer plan). Each module carries
its software model; the reference is the golden interpreter (hwgen.ir.interp); testing.py
has the simulator drivers.
"""
