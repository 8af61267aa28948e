"""or_assist.core.ct."""
