"""Torch side of hwgen: binary layers, dropout sites, the network, model.pt I/O."""
