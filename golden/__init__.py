"""NumPy/PyTorch golden model of the core. Never imports cimflow.hdl or Amaranth."""
