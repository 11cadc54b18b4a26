"""Benchmarks: run the real system and print medians (see each script's docstring)."""
