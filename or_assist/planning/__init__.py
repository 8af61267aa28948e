"""or_assist.planning."""
