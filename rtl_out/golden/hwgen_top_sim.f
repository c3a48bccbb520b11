sim_only/hwgen_top.v
sim_only/popcount_sim.v
