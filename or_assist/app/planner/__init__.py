"""or_assist.app.planner."""
