"""Compiler from trained PyTorch models to per-core programming images."""
