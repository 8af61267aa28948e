"""or_assist.video.sources."""
