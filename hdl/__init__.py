"""Amaranth generators for the digital control of the core. Never imports cimflow.golden."""
