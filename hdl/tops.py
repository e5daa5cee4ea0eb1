"""The generatable top-level designs and their Verilog export.

``TOPS`` names every design ``cimflow generate --top`` can emit. Each is built from one
CoreConfig; the module name in the Verilog is ``cimflow_<top>``. Inside hdl/ the blocks
meet through typed interfaces (hdl/interfaces.py); a top's Verilog ports are flat, named by
the leaf of each interface member (``mode.direction`` -> ``direction``), so the testbenches
and any board design see the same port names whatever the interface grouping.
"""

from __future__ import annotations

from collections.abc import Callable

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .core import NeurramCore
from .core_fpga import NeurramCoreFpga
from .interfaces import flat_ports
from .mvm_engine import MvmEngine
from .stochastic_translator import StochasticTranslatorBank
from .uart import UartCoreFpga

__all__ = ["TOPS", "FlatTop", "build_top", "module_name", "emit_verilog"]

TOPS: dict[str, Callable[[CoreConfig], wiring.Component]] = {
    "str_bank": StochasticTranslatorBank,
    "mvm_engine": MvmEngine,
    "core": NeurramCore,
    "core_fpga": NeurramCoreFpga,
    "core_fpga_uart": UartCoreFpga,
}


class FlatTop(wiring.Component):
    """``inner`` with every port flattened to its leaf name (see the module docstring)."""

    def __init__(self, inner: wiring.Component):
        self._inner = inner
        try:
            self._ports = flat_ports(inner)
        except ValueError:
            self._MustUse__silence = True  # refused, not forgotten: no UnusedElaboratable
            raise
        super().__init__({
            name: (In if member.flow == In else Out)(member.shape, init=member.init)
            for name, (member, _) in self._ports.items()
        })

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = self._inner
        for name, (member, port) in self._ports.items():
            outer = getattr(self, name)
            m.d.comb += port.eq(outer) if member.flow == In else outer.eq(port)
        return m


def module_name(top: str) -> str:
    return f"cimflow_{top}"


def build_top(config: CoreConfig, top: str) -> wiring.Component:
    try:
        factory = TOPS[top]
    except KeyError:
        raise ValueError(f"unknown top {top!r}; choose one of: {', '.join(TOPS)}") from None
    design = factory(config)
    nested = any(member.is_signature for member in design.signature.members.values())
    return FlatTop(design) if nested else design


def emit_verilog(config: CoreConfig, top: str) -> str:
    """Verilog text of ``top`` for ``config`` (Amaranth -> Yosys)."""
    return verilog.convert(build_top(config, top), name=module_name(top), emit_src=False)
