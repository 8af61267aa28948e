"""or_assist.sim."""
