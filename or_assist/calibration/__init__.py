"""or_assist.calibration."""
