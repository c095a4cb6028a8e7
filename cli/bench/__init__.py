"""Benchmarks: scripts that print figures (docs/benchmarks.md), and the local servers they run."""
