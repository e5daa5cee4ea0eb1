"""The FPGA flow without place and route: the board top's pins, the report parser, the CLI.

Place and route itself is slow (minutes for tiny); benchmarks/bench_fpga.py runs it.
"""

import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import wiring

from cimflow.cli import main
from cimflow.config import preset
from cimflow.fpga import FlowResult, format_result, run_flow
from cimflow.hdl.boards import ULX3S_GN, ULX3S_GP, Ulx3s85F, lpf


def _port_bits(text: str) -> set[str]:
    """Every bit of the top module's ports, as the LPF names them."""
    top = text[text.index("module cimflow_ulx3s_85f"):]
    top = top[:top.index("endmodule")]
    bits = set()
    for width, name in re.findall(r"^\s*(?:input|output)\s+(?:\[(\d+):0\]\s+)?(\w+);", top,
                                  flags=re.M):
        bits |= {name} if not width else {f"{name}[{i}]" for i in range(int(width) + 1)}
    return bits


def test_ulx3s_top_fits_the_board_pins():
    """Every port bit of the board top has exactly one site, every site one bit, and the
    header sites are the board's GPIO pins."""
    text = verilog.convert(Ulx3s85F(preset("small")), name="cimflow_ulx3s_85f", emit_src=False)
    locs = re.findall(r'LOCATE COMP "([^"]+)" SITE "([^"]+)";', lpf())
    names = [n for n, _ in locs]
    sites = [s for _, s in locs]
    assert len(set(names)) == len(names) and len(set(sites)) == len(sites)
    assert set(names) == _port_bits(text)
    header = {s for n, s in locs if n.startswith(("spi_", "hdr_"))}
    assert header <= set(ULX3S_GP) | set(ULX3S_GN)
    assert dict(locs)["clk_25mhz"] == "G2"
    # the FT231X's TXD (M1) is the FPGA's input, its RXD (L4) the FPGA's output
    assert dict(locs)["ftdi_txd"] == "M1" and dict(locs)["ftdi_rxd"] == "L4"
    assert re.search(r"^\s*input\s+ftdi_txd;", text, re.M)
    assert re.search(r"^\s*output\s+ftdi_rxd;", text, re.M)


def test_board_bias_is_the_host_scripts_operating_point():
    """The host's smoke script computes its golden answer at BOARD_SETTINGS: its C_s V_decr,
    injection and clip are the board top's default constants."""
    import inspect

    from cimflow.golden.mvm import MvmSettings
    from cimflow.host import BOARD_SETTINGS

    st = MvmSettings.from_config(preset("tiny"), **BOARD_SETTINGS)
    defaults = {k: p.default for k, p in inspect.signature(Ulx3s85F).parameters.items()}
    assert defaults["d_units"] == st.d_units and defaults["inject_units"] == st.inject_units
    assert defaults["clip_units"] is None  # None: no_clip(config), above every charge


@pytest.mark.parametrize("baud", [0, 7_000_000, 3_000_000])
def test_board_top_rejects_unreachable_baud(baud):
    """0, too few clocks per bit (14), and 33.3 clocks (1 % off at 33): refused in one line."""
    with pytest.raises(ValueError, match=f"baud = {baud} is not reachable") as e:
        Ulx3s85F(preset("tiny"), baud=baud)
    assert "\n" not in str(e.value)


def test_board_top_rejects_bad_bias():
    with pytest.raises(ValueError, match="d_units"):
        Ulx3s85F(preset("tiny"), d_units=-1)
    with pytest.raises(ValueError, match="rpu_step"):
        Ulx3s85F(preset("tiny"), rpu_step=1 << 16)


def test_format_result_reports_failure_and_path():
    r = FlowResult("top", {"LUT4": 836, "FF": 10, "BRAM": 0, "DSP": 0}, 71.25, 100.0, 3,
                   "a.Q", "b.D", {"synth": 1.0, "pnr": 2.0})
    text = format_result(r)
    assert not r.met and "71.2 MHz against 100 MHz: timing FAILED" in text
    assert "seed 3" in text and "a.Q -> b.D" in text and "(1.0 %)" in text
    assert FlowResult("t", {}, 100.0, 100.0, 1).met


def test_cli_fpga_unknown_board_is_one_line(tmp_path, capsys):
    assert main(["fpga", "--board", "nope", "--preset", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown board 'nope'" in err


def test_run_flow_names_the_failing_tool(tmp_path):
    """A synthesis error ends in FpgaError with the tool's log tail, not a traceback."""
    from cimflow.fpga import FpgaError

    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input a; endmodule\n")
    with pytest.raises(FpgaError, match="yosys failed"):
        run_flow(bad, "bad", tmp_path / "work", progress=lambda _: None)


def test_cli_fpga_scan_needs_a_bare_top(tmp_path, capsys):
    assert main(["fpga", "--board", "ulx3s-85f", "--scan", "--preset", "tiny",
                 "--out", str(tmp_path)]) == 2
    assert "--scan wraps a bare design" in capsys.readouterr().err


class _Adder(wiring.Component):
    """A 4-bit input, a registered 5-bit sum output and a combinational 2-bit output."""

    a: wiring.In(4)
    b: wiring.In(2)
    total: wiring.Out(5)
    low: wiring.Out(2)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.total.eq(self.a + self.b)
        m.d.comb += self.low.eq(self.a[:2] ^ self.b)
        return m


def test_scan_harness_shifts_inputs_and_xors_outputs():
    """Inputs are one shift chain from scan_in (first port's bit 0 first); scan_out is the
    XOR of the outputs captured at the previous edge and the chain's last bit. Reference:
    a Python model of the chain and the adder."""
    import numpy as np
    from amaranth.sim import Simulator

    from cimflow.hdl.tops import ScanHarness

    dut = ScanHarness(_Adder())
    rng = np.random.default_rng(4)
    bits = [int(v) for v in rng.integers(0, 2, 200)]

    async def bench(ctx):
        chain = [0] * 6  # a[0..3], then b[0..1]
        total = 0
        cap_total = cap_low = 0
        for bit in bits:
            ctx.set(dut.scan_in, bit)
            await ctx.tick()
            a = sum(v << i for i, v in enumerate(chain[:4]))
            b = sum(v << i for i, v in enumerate(chain[4:]))
            # the edge: the adder's register and the captures see the old chain
            cap_total, cap_low = total, (a & 3) ^ b
            total = a + b
            chain = [bit] + chain[:3] + [chain[3]] + chain[4:5]
            assert ctx.get(dut.inner.a) == sum(v << i for i, v in enumerate(chain[:4]))
            assert ctx.get(dut.inner.b) == sum(v << i for i, v in enumerate(chain[4:]))
            parity = (bin(cap_total).count("1") + bin(cap_low).count("1") + chain[5]) % 2
            assert ctx.get(dut.scan_out) == parity

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_bare_top_pins_only_the_clock_on_the_oscillator_pin():
    """A timing-only top: ``clk`` on the board's clock input pin, every other pin left to
    the placer (so nextpnr must allow unconstrained pins), no bitstream."""
    from cimflow.fpga import nextpnr_args
    from cimflow.hdl.boards import BARE_TOP_LPF

    board_clk = re.search(r'LOCATE COMP "clk_25mhz" SITE "([^"]+)";', lpf()).group(1)
    assert re.findall(r'LOCATE COMP "([^"]+)" SITE "([^"]+)";', BARE_TOP_LPF) == \
        [("clk", board_clk)]
    kw = dict(freq_mhz=100, seed=1, device="85k", package="CABGA381", router="router2")
    bare = nextpnr_args("t", lpf="clk.lpf", pack=False, **kw)
    assert "--lpf-allow-unconstrained" in bare and "--textcfg" not in bare
    assert bare[bare.index("--lpf") + 1] == "clk.lpf"
    board = nextpnr_args("t", lpf="b.lpf", pack=True, **kw)
    assert "--lpf-allow-unconstrained" not in board and "--textcfg" in board
    assert "--lpf" not in nextpnr_args("t", lpf=None, pack=True, **kw)


def test_cli_passes_extra_nextpnr_arguments_last(tmp_path, monkeypatch):
    """``--nextpnr-arg`` (repeatable, in order) reaches nextpnr after the flow's own
    arguments, so a diagnostic such as ``--router2-heatmap`` needs no second flow."""
    import cimflow.fpga

    seen = {}

    def fake_flow(vpath, top, out, **kw):
        seen.update(kw)
        return FlowResult(top, {"LUT4": 1, "FF": 1, "BRAM": 0, "DSP": 0}, 120.0, 100.0,
                          kw["seed"])

    monkeypatch.setattr(cimflow.fpga, "run_flow", fake_flow)
    assert main(["fpga", "--top", "core", "--preset", "tiny", "--router", "router2",
                 "--nextpnr-arg=--router2-heatmap", "--nextpnr-arg=heat",
                 "--out", str(tmp_path)]) == 0
    extra = seen["nextpnr_extra"]
    assert extra == ("--router2-heatmap", "heat")
    args = cimflow.fpga.nextpnr_args("t", freq_mhz=100, seed=1, lpf="clk.lpf", device="85k",
                                     package="CABGA381", pack=False, router="router2",
                                     extra=extra)
    assert args[-2:] == list(extra) and args.count("--router2-heatmap") == 1
