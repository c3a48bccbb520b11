hwgen_top.v
