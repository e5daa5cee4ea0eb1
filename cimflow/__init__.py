"""cimflow: from a trained PyTorch model to verified RTL of a NeuRRAM-style RRAM CIM core.

Sub-packages (top-level folders in the repository, installed under ``cimflow``):
``cimflow.hdl`` (Amaranth RTL), ``cimflow.golden`` (NumPy/PyTorch golden model),
``cimflow.verif`` (cocotb on Verilator), ``cimflow.mapping`` (model compiler).
"""

from .config import PRESETS, ConfigError, CoreConfig, preset

__all__ = ["CoreConfig", "ConfigError", "PRESETS", "preset"]
__version__ = "0.1.0"
