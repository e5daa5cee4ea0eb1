"""Speed of the FPGA core (digital core + RTL macro) under cocotb and a plain C++ harness.

One workload (benchmarks/bench_cases.py: program the cells of the rows an MVM uses,
then verified forward MVMs) runs under cocotb + Verilator and under a Verilator C++ harness
with no Python (benchmarks/cpp/harness.cpp); the harness is the baseline. Printed: Verilator
build times of both, simulated cycles per second and verified MVMs per second, and the
cocotb / harness ratio (goal: >= 0.25). Usage:

    python benchmarks/bench_core.py [--preset full] [--n-in 8] [--mvms 6]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from bench_cases import make_cases  # beside this script

from cimflow.config import preset
from cimflow.hdl.export import verilator_bin_dir, write_verilog
from cimflow.hdl.tops import module_name
from cimflow.verif.build import build_sim
from cimflow.verif.regress import RegressionTest, run_one

HARNESS = Path(__file__).with_name("cpp") / "harness.cpp"


def build_harness(cfg, work: Path) -> tuple[Path, float]:
    verilator_bin_dir()
    src = write_verilog(cfg, "core_fpga", work)
    t0 = time.perf_counter()
    mdir = work / "obj"
    subprocess.run(["verilator", "--cc", "--exe", "-O2", "--x-assign", "0", "--x-initial", "0",
                    "-Wno-fatal", "-Wno-lint", "--top-module", module_name("core_fpga"),
                    "--prefix", "Vtop", "-Mdir", str(mdir), "-o", "harness", str(src),
                    str(HARNESS)], check=True, capture_output=True)
    env = {**os.environ, "MAKEFLAGS": ""}
    subprocess.run(["make", "-j", "2", "-C", str(mdir), "-f", "Vtop.mk",
                    "CFG_CXXFLAGS_PCH_I=-include"], check=True, capture_output=True, env=env)
    return mdir / "harness", time.perf_counter() - t0


def run_harness(exe: Path, cases: Path) -> dict:
    out = subprocess.run([str(exe), str(cases)], capture_output=True, text=True, check=True)
    words = out.stdout.split()
    fig = {words[i]: float(words[i + 1]) for i in range(0, len(words), 2)}
    if fig["mismatches"]:
        raise RuntimeError(f"C++ harness: {fig['mismatches']:.0f} outputs differ from golden")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="full")
    ap.add_argument("--n-in", type=int, default=8, help="inputs per MVM (rows used: 2x)")
    ap.add_argument("--mvms", type=int, default=6)
    args = ap.parse_args()
    cfg = preset(args.preset)
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        cases = work / "cases.txt"
        summary = make_cases(cfg, args.n_in, args.mvms, 1, cases)
        print(f"workload: {summary['cells']} cells programmed, {summary['mvms']} verified "
              f"MVMs ({args.n_in} inputs), preset {args.preset}", flush=True)
        sim = build_sim(cfg, "core_fpga", root=work / "sim")
        print(f"cocotb Verilator build: {sim.seconds:.1f} s", flush=True)
        exe, cpp_build = build_harness(cfg, work / "cpp")
        print(f"C++ harness Verilator build: {cpp_build:.1f} s", flush=True)
        cpp = run_harness(exe, cases)
        test = RegressionTest("bench", "core_fpga", "cimflow.verif.tb_core_fpga",
                              "test_throughput", (args.preset,), ((1, 1),))
        r = run_one(test, args.preset, cfg, work / "run", False,
                    {"CIMFLOW_CASES_FILE": str(cases)}, build_root=work / "sim")
        if not r.passed:
            raise SystemExit(f"cocotb throughput run failed: {r.log.read_text()[-3000:]}")
        f = r.figures

    def rates(prog_c, prog_s, mvm_c, mvm_s, mvms):
        return (prog_c + mvm_c) / (prog_s + mvm_s), mvm_c / mvm_s, mvms / mvm_s

    coco = rates(f["program_cycles"], f["program_seconds"], f["mvm_cycles"],
                 f["mvm_seconds"], f["mvms"])
    base = rates(cpp["program_cycles"], cpp["program_seconds"], cpp["mvm_cycles"],
                 cpp["mvm_seconds"], cpp["mvms"])
    print(f"\n{'setup':34s} {'cycles/s (all)':>15s} {'cycles/s (MVM)':>15s} "
          f"{'verified MVM/s':>15s}")
    print(f"{'Verilator C++ harness (baseline)':34s} {base[0]:15,.0f} {base[1]:15,.0f} "
          f"{base[2]:15,.1f}")
    print(f"{'cocotb + Verilator':34s} {coco[0]:15,.0f} {coco[1]:15,.0f} {coco[2]:15,.1f}")
    print(f"{'ratio cocotb / harness':34s} {coco[0] / base[0]:15.2f} {coco[1] / base[1]:15.2f} "
          f"{coco[2] / base[2]:15.2f}   (goal >= 0.25)")
    print(f"MVM cycles per MVM: {f['mvm_cycles'] / f['mvms']:,.0f} (incl. register writes "
          f"and read-back)")


if __name__ == "__main__":
    main()
