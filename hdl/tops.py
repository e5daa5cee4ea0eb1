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
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .core import NeurramCore
from .core_fpga import NeurramCoreFpga
from .interfaces import flat_ports
from .mvm_engine import MvmEngine
from .stochastic_translator import StochasticTranslatorBank
from .uart import UartCoreFpga

__all__ = ["TOPS", "FlatTop", "ScanHarness", "build_top", "module_name", "emit_verilog"]

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


class ScanHarness(wiring.Component):
    """A timing-only wrapper: every port of a flat design behind registers, two pins left.

    A design with more port bits than an FPGA package has pins (``core`` at preset medium
    and above: the analog side is hundreds of bits) cannot be placed as it is. Here each
    input bit is a flip-flop of one shift chain fed from ``scan_in``, and each output bit is
    captured in a flip-flop, the captures XOR-ed onto ``scan_out``; nothing is optimised
    away, and every path of the design starts and ends at a register (the port-to-register
    paths of a bare top become register-to-register paths, so the figure is not optimistic).
    """

    def __init__(self, inner: wiring.Component):
        for name, member in inner.signature.members.items():
            if member.is_signature:
                self._MustUse__silence = True  # refused, not forgotten
                raise ValueError(f"ScanHarness needs flat ports; {name!r} is an interface "
                                 "(wrap the design in FlatTop first)")
        self._inner = inner
        super().__init__({"scan_in": wiring.In(1), "scan_out": wiring.Out(1)})

    @property
    def inner(self) -> wiring.Component:
        return self._inner

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = self._inner
        prev = self.scan_in
        captured = []
        for name, member in inner.signature.members.items():
            port = Value.cast(getattr(inner, name))
            reg = Signal(len(port), name=f"scan_{name}")
            if member.flow == wiring.In:
                m.d.sync += reg.eq(Cat(prev, reg[:-1]))
                m.d.comb += port.eq(reg)
                prev = reg[-1]
            else:
                m.d.sync += reg.eq(port)
                captured.append(reg)
        parity = Signal()
        m.d.comb += parity.eq(Cat(*captured).xor() ^ prev)
        m.d.comb += self.scan_out.eq(parity)
        return m


def module_name(top: str, *, scan: bool = False) -> str:
    return f"cimflow_{top}" + ("_scan" if scan else "")


def build_top(config: CoreConfig, top: str) -> wiring.Component:
    try:
        factory = TOPS[top]
    except KeyError:
        raise ValueError(f"unknown top {top!r}; choose one of: {', '.join(TOPS)}") from None
    design = factory(config)
    nested = any(member.is_signature for member in design.signature.members.values())
    return FlatTop(design) if nested else design


def emit_verilog(config: CoreConfig, top: str, *, scan: bool = False) -> str:
    """Verilog text of ``top`` for ``config`` (Amaranth -> Yosys); ``scan`` wraps it in a
    ``ScanHarness`` (module ``cimflow_<top>_scan``, for timing only)."""
    design = build_top(config, top)
    return verilog.convert(ScanHarness(design) if scan else design,
                           name=module_name(top, scan=scan), emit_src=False)
