"""postop package."""
