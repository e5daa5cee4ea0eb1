"""The generatable top-level designs and their Verilog export.

``TOPS`` names every design ``cimflow generate --top`` can emit. Each is built from one
CoreConfig; the module name in the Verilog is ``cimflow_<top>``.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.back import verilog
from amaranth.lib import wiring

from cimflow.config import CoreConfig

from .core import NeurramCore
from .core_fpga import NeurramCoreFpga
from .mvm_engine import MvmEngine
from .stochastic_translator import StochasticTranslatorBank

__all__ = ["TOPS", "build_top", "module_name", "emit_verilog"]

TOPS: dict[str, Callable[[CoreConfig], wiring.Component]] = {
    "str_bank": StochasticTranslatorBank,
    "mvm_engine": MvmEngine,
    "core": NeurramCore,
    "core_fpga": NeurramCoreFpga,
}


def module_name(top: str) -> str:
    return f"cimflow_{top}"


def build_top(config: CoreConfig, top: str) -> wiring.Component:
    try:
        factory = TOPS[top]
    except KeyError:
        raise ValueError(f"unknown top {top!r}; choose one of: {', '.join(TOPS)}") from None
    return factory(config)


def emit_verilog(config: CoreConfig, top: str) -> str:
    """Verilog text of ``top`` for ``config`` (Amaranth -> Yosys)."""
    return verilog.convert(build_top(config, top), name=module_name(top), emit_src=False)
