"""or_assist.render.views."""
