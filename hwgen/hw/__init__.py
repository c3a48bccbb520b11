"""Amaranth hardware generated from the IR (SPEC sections 6 and 7).

tile.CrossbarTile          one crossbar read, `lanes` column sums per cycle, weights in memory
controller.TileController  one layer, composed of the components below around its store;
                           controller.layer_controller builds layer i as the network runs it
  store.RingStore            the layer's input map: a ring of H*W words, fixed window taps
                             (memory=True: its untapped run in RAM, the FPGA build's)
  store.SplitStore           a row-serial flat store in memories of row-split words (FPGA)
  walker.WindowWalker        rotates the ring in scan order, one request per window anchor
  tiles.TileArray            the layer's tiles in lock step, row splits' sums added (or,
                             row-serial, the splits read a few at a time, sums accumulated)
  planes.PlaneAccumulator    a bit-plane first layer's P passes, shift-added
  sinks.ThresholdPool        threshold, pool in raster order, shift into the next store
  sinks.ClassCollector       the classifier's class sums, one `out` beat per read
  layouts                    what the streams carry (window tag, sums, class beat, writes)
loader.ImageLoader         `img` words (position-major) into layer 0's store (model: image_words)
rng.MtjRngBank             the MTJ-RNG protocol for all interfaces in lock step, keep-bit stream
lfsr.LfsrMtjBank           LFSR stand-ins for the MTJs (FPGA), with their exact software model
top.NetworkTop             `hwgen_top` (port contract: docs/ARCHITECTURE.md section 5)
layer_top.LayerTop         one layer's controller alone, for the layer-level bench
plan                       the IR's read plan (beats, row passes), the walk and its cycles, the cycle bound

The hardware reads a finished IR: it imports hwgen.ir, never the compiler (tests build
their IRs through the frontend and the passes, tests/support.py's random_ir). Each module
carries its software model; the reference is the golden interpreter (hwgen.ir.interp);
simulate.py has the Amaranth-simulator drivers (stream_put / stream_get, TopBench).

The modules that build components in their constructors (tiles, controller, top,
layer_top) start with `# amaranth: UnusedElaboratable=no`: a part is elaborated with its
parent, and a parent that is never elaborated is still reported where it was created.
"""
