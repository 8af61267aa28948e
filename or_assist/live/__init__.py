"""or_assist.live."""
