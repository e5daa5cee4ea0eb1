"""The Verilog tops keep flat port names however the blocks group their interfaces."""

import re

import pytest
from amaranth.hdl import Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import PRESETS
from cimflow.hdl.interfaces import AnalogSignature, HostSignature, MvmModeSignature, flat_ports
from cimflow.hdl.tops import TOPS, FlatTop, build_top, emit_verilog, module_name

SMALL = PRESETS["small"]

# the flat names the cocotb testbenches drive and read (besides clk and rst)
HOST = set(HostSignature(SMALL.line_bits).members)
# (``core`` and ``mvm_engine`` are built for any macro: no neuron phase flags)
ANALOG = set(AnalogSignature(SMALL.rows, SMALL.cols, nrn_flags=False).members)
EXPECTED = {
    "mvm_engine": set(MvmModeSignature().members) | ANALOG | {
        "bl_values", "sl_values", "lfsr_ready", "lfsr_en", "wb_en", "wb_bank", "wb_data",
        "busy"},
    "core": HOST | ANALOG | {
        "noise_bits", "prog_op", "prog_amp", "prog_tap", "prog_pulse", "prog_sel_bl",
        "prog_sel_sl", "g_read", "rpu_valid", "rpu_up", "row_pulse", "col_pulse",
        "neuron_test", "clk_gate", "pwr_gate"},
    "core_fpga": HOST | {"d_units", "inject_units", "clip_units", "rpu_step", "rpu_valid",
                         "rpu_up", "row_pulse", "col_pulse"},
    "core_fpga_uart": {"uart_rx", "uart_tx", "divisor", "sck", "cs_n", "mosi", "miso",
                       "miso_oe", "cmd_valid", "cmd_op", "cmd_arg", "busy", "done", "error",
                       "status", "read_data", "d_units", "inject_units", "clip_units",
                       "rpu_step"},
}


def verilog_ports(text, top):
    body = text[text.index(f"module {module_name(top)}("):]
    body = body[:body.index("endmodule")]
    return {name: (d, w.strip()) for d, w, name in re.findall(
        r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(\[[^\]]*\]\s*)?(\w+);", body, re.M)}


@pytest.mark.parametrize("top", sorted(EXPECTED))
def test_top_ports_are_flat_leaf_names(top):
    ports = verilog_ports(emit_verilog(SMALL, top), top)
    assert set(ports) - {"clk", "rst"} == EXPECTED[top]
    flat = build_top(SMALL, top)
    flat._MustUse__silence = True  # ports only, no netlist
    if isinstance(flat, FlatTop):
        flat.inner._MustUse__silence = True
    for name, (direction, _) in ports.items():
        if name in ("clk", "rst"):
            continue
        member = flat.signature.members[name]
        assert direction == ("input" if member.flow == In else "output"), name
        width = len(Value.cast(getattr(flat, name)))
        assert ports[name][1] == ("" if width == 1 else f"[{width - 1}:0]"), name


def test_every_top_is_listed():
    assert set(EXPECTED) | {"str_bank"} == set(TOPS)


def test_flat_names_must_be_unique():
    class Clash(wiring.Component):
        def __init__(self):
            super().__init__({"a": Out(wiring.Signature({"x": Out(1)})), "x": In(1)})
            self._MustUse__silence = True  # built to be refused

        def elaborate(self, platform):  # pragma: no cover - never elaborated
            raise AssertionError
    with pytest.raises(ValueError, match="two ports of Clash are named 'x'"):
        FlatTop(Clash())
    with pytest.raises(ValueError, match="named 'x'"):
        flat_ports(Clash())


@pytest.mark.parametrize("name", ["controller", "mvm_engine", "analog_macro", "core",
                                  "core_fpga", "prog_drivers", "regfile", "spi",
                                  "stochastic_translator", "lfsr"])
def test_components_refuse_a_config_that_is_not_a_coreconfig(name):
    import importlib

    module = importlib.import_module(f"cimflow.hdl.{name}")
    classes = [getattr(module, n) for n in module.__all__
               if isinstance(getattr(module, n), type)
               and issubclass(getattr(module, n), wiring.Component)]
    assert classes, name
    for cls in classes:
        with pytest.raises(TypeError, match=f"{cls.__name__}: config must be a CoreConfig, "
                                            "got dict"):
            cls(SMALL.to_dict())
