"""or_assist.sim.phantom."""
