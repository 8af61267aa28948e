"""or_assist.sim.shots."""
