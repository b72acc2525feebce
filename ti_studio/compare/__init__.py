"""Comparing a run's snapshots: pick them, give them names txt2img can tell apart, build the X/Y/Z preset."""
