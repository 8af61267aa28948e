"""or_assist.sim.scenario."""
