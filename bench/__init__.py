"""Benchmarks of the KANConv1d backends."""
