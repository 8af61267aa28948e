"""or_assist.video.preprocess."""
