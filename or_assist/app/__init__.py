"""Qt OR display and planner: the only package that imports Qt."""
