"""`cimflow` command line: generate, regress, experiment, compile, inspect.

Every user error (bad preset, unreadable config, out-of-range field, unknown experiment,
unwritable output folder) ends in one line ``cimflow: error: ...`` and exit status 2, never
a traceback. Only those error types are caught: any other exception is a bug in cimflow and
keeps its traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

from .atomic import write_atomic
from .config import ConfigError, CoreConfig, preset

__all__ = ["main"]


class UsageError(Exception):
    """A problem with the user's input, reported in one line."""


USER_ERRORS: tuple[type[Exception], ...] = (UsageError, ConfigError, OSError)
"""The exceptions that are the user's (bad argument, config or path): one line, status 2.
A subcommand with its own user-error types adds them here."""


def check_seed(seed: int) -> int:
    """``seed`` if it can seed NumPy's generators (0 <= seed < 2**32), else a UsageError."""
    if not 0 <= seed < 1 << 32:
        raise UsageError(f"--seed must be in [0, 2**32 - 1], got {seed}")
    return seed


def config_label(path: str | Path) -> str:
    """How `cimflow regress` names a user config: never a preset's name, so a file called
    ``tiny.json`` is not taken for the ``tiny`` preset (no colon: it names a folder too)."""
    return f"config-{Path(path).stem}"


def _config(args) -> CoreConfig:
    if getattr(args, "config", None):
        return CoreConfig.load(args.config)
    return preset(args.preset or "full")


def cmd_generate(args) -> int:
    from .hdl.export import WAIVERS, lint, write_verilog
    from .hdl.tops import TOPS

    cfg = _config(args)
    if args.top not in TOPS:
        raise UsageError(f"unknown top {args.top!r}; choose one of: {', '.join(TOPS)}")
    out = Path(args.out)
    t0 = time.perf_counter()
    vpath = write_verilog(cfg, args.top, out)
    gen_s = time.perf_counter() - t0
    cpath = write_atomic(out / "config.json", cfg.to_json() + "\n")
    text = vpath.read_text()
    print(f"wrote {vpath} ({len(text.splitlines()):,} lines, {gen_s:.1f} s)")
    print(f"wrote {cpath}")
    print(f"  array {cfg.rows} x {cfg.cols}, corelet {cfg.corelet}, lines {cfg.lines}, "
          f"LFSR chains {cfg.lfsr_chain_length} stages (taps A {list(cfg.lfsr_a_taps)}, "
          f"B {list(cfg.lfsr_b_taps)}), STR {cfg.str_bits} bit, BL <= {cfg.bl_max}")
    if not args.no_lint:
        t0 = time.perf_counter()
        lint(vpath, args.top)
        print(f"verilator --lint-only -Wall: clean ({time.perf_counter() - t0:.1f} s, "
              f"waivers in {WAIVERS})")
    if args.report:
        from .synth import format_report, synth_estimate

        t0 = time.perf_counter()
        rows = {f"{args.top} ({cfg.rows}x{cfg.cols})":
                synth_estimate(vpath, vpath.stem, timeout=args.report_timeout)}
        report = format_report(rows)
        write_atomic(out / "resources.txt", report + "\n")
        print(report)
        print(f"wrote {out / 'resources.txt'} ({time.perf_counter() - t0:.1f} s)")
    if args.fmax:
        from .fpga import format_result, run_flow

        result = run_flow(vpath, vpath.stem, out / "pnr", seed=1,
                          progress=lambda line: print(line, flush=True))
        print(format_result(result))
    return 0


def cmd_fpga(args) -> int:
    """Config -> Verilog -> synthesis -> place and route -> bitstream (cimflow.fpga)."""
    from amaranth.back import verilog

    from .fpga import check_abc9_wire_delay, check_synth_args, format_result, run_flow
    from .hdl.boards import BARE_TOP_LPF, BOARDS, lpf
    from .hdl.export import write_verilog
    from .hdl.tops import TOPS, module_name

    cfg = _config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.board and args.scan:
        raise UsageError("--scan wraps a bare design (--top), not a board top")
    try:  # the synthesis options are checked before anything is generated
        synth_args = check_synth_args(args.synth_arg)
        check_abc9_wire_delay(args.abc9_wire_delay)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.board:
        if args.board not in BOARDS:
            raise UsageError(f"unknown board {args.board!r}; choose one of: {', '.join(BOARDS)}")
        board = BOARDS[args.board]
        top = f"cimflow_{args.board.replace('-', '_')}"
        vpath = write_atomic(out / f"{top}.v", verilog.convert(
            board(cfg), name=top, emit_src=False))
        lpath = write_atomic(out / f"{args.board}.lpf", lpf(args.board))
        freq = board.CORE_MHZ if args.freq is None else args.freq
        part = board.PART
    else:
        if args.top not in TOPS:
            raise UsageError(f"unknown top {args.top!r}; choose one of: {', '.join(TOPS)}")
        top = module_name(args.top, scan=args.scan)
        vpath = write_verilog(cfg, args.top, out, scan=args.scan)
        lpath = write_atomic(out / "clk.lpf", BARE_TOP_LPF)
        freq = 100.0 if args.freq is None else args.freq
        part = {"device": "85k", "package": "CABGA381"}
    write_atomic(out / "config.json", cfg.to_json() + "\n")
    print(f"wrote {vpath}" + (f" and {lpath}" if lpath else ""))
    result = run_flow(vpath, top, out, freq_mhz=freq, seed=args.seed, lpf=lpath,
                      pack=bool(args.board) and not args.no_pack, router=args.router,
                      nextpnr_extra=tuple(args.nextpnr_arg), synth_args=synth_args,
                      abc9_wire_delay=args.abc9_wire_delay,
                      device=part["device"],
                      package=part["package"],
                      progress=lambda line: print(line, flush=True))
    report = format_result(result, part["device"])
    write_atomic(out / "fpga_report.txt", report + "\n")
    print(report)
    return 0 if result.met else 1


def cmd_regress(args) -> int:
    from .verif.regress import (
        DEFAULT_PRESETS,
        compile_pattern,
        format_table,
        run_regression,
        select,
    )

    configs = {}
    if args.config:  # any valid CoreConfig, labelled by its file name (never a preset name)
        configs[config_label(args.config)] = CoreConfig.load(args.config)
        presets = ()
    else:
        presets = (args.preset,) if args.preset else DEFAULT_PRESETS
        for p in presets:
            preset(p)  # validates the name
    if args.cycles is not None and args.cycles < 1:
        raise UsageError(f"--cycles must be at least 1, got {args.cycles}")
    try:
        compile_pattern(args.k)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not select({**{p: preset(p) for p in presets}, **configs}, args.k):
        raise UsageError(f"no regression test matches {', '.join([*presets, *configs])} "
                         f"and -k {args.k!r}")
    results = run_regression(presets, args.k, Path(args.out), jobs=args.n,
                             waves=args.waves, configs=configs, cycles=args.cycles,
                             quick_build=args.quick_build)
    print(format_table(results))
    print(f"JUnit XML: {Path(args.out) / 'junit.xml'}")
    return 0 if all(r.passed for r in results) else 1


def cmd_experiment(args) -> int:
    from .experiments import registry

    reg = registry()
    if args.list or not args.name:
        for e in reg.values():
            print(f"{e.name:16s} {e.summary}")
        return 0
    if args.name not in reg:
        raise UsageError(f"unknown experiment {args.name!r}; `cimflow experiment --list` "
                         f"names them: {', '.join(reg)}")
    if not args.out:
        raise UsageError("experiment needs --out DIR")
    check_seed(args.seed)
    extra = {}
    if args.epochs is not None:
        if "epochs" not in inspect.signature(reg[args.name].run).parameters:
            raise UsageError(f"experiment {args.name!r} has no epoch count to override")
        if args.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {args.epochs}")
        extra["epochs"] = args.epochs
    if args.models is not None:
        if "models" not in inspect.signature(reg[args.name].run).parameters:
            raise UsageError(f"experiment {args.name!r} has no model list to choose from")
        extra["models"] = [m for m in args.models.split(",") if m]
    if args.transfer_decay is not None:
        if "transfer_decay" not in inspect.signature(reg[args.name].run).parameters:
            raise UsageError(f"experiment {args.name!r} has no transfer schedule")
        if args.transfer_decay < 0:
            raise UsageError(f"--transfer-decay must be >= 0 (0: constant), got "
                             f"{args.transfer_decay}")
        extra["transfer_decay"] = args.transfer_decay
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    figures = reg[args.name].run(out, args.quick, args.seed, **extra)
    path = write_atomic(out / "results.json", json.dumps(figures, indent=2, default=float))
    print(json.dumps(figures, indent=2, default=float)[:4000])
    print(f"wrote {path} and plots in {out} ({time.perf_counter() - t0:.1f} s)")
    return 0


def _parser() -> argparse.ArgumentParser:
    from .fpga import add_flow_options  # standard library only: cheap

    p = argparse.ArgumentParser(prog="cimflow", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write Verilog and config.json for a core design")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--preset", help="named configuration (default: full)")
    src.add_argument("--config", help="CoreConfig JSON file")
    g.add_argument("--top", default="core", help="design to emit: str_bank, mvm_engine, "
                   "core (default), core_fpga")
    g.add_argument("--out", required=True, help="output folder")
    g.add_argument("--no-lint", action="store_true", help="skip the Verilator lint")
    g.add_argument("--report", action="store_true",
                   help="also print a Yosys resource estimate (Lattice ECP5)")
    g.add_argument("--report-timeout", type=float, default=1800, metavar="S",
                   help="give up the estimate after S seconds (default 1800)")
    g.add_argument("--fmax", action="store_true",
                   help="also place and route (ECP5-85, 100 MHz, seed 1) and print the routed "
                   "Fmax (slow: minutes; `cimflow fpga` for a board)")
    g.set_defaults(func=cmd_generate)

    f = sub.add_parser("fpga", help="synthesis, place and route and bitstream for an ECP5 "
                       "board (exit status 1 when timing fails)")
    fsrc = f.add_mutually_exclusive_group()
    fsrc.add_argument("--preset", help="named configuration (default: full)")
    fsrc.add_argument("--config", help="CoreConfig JSON file")
    fwhat = f.add_mutually_exclusive_group(required=True)
    fwhat.add_argument("--board", help="board top with PLL, reset and pins: ulx3s-85f")
    fwhat.add_argument("--top", help="a bare design (core, core_fpga, ...): timing and "
                       "utilisation only, no pins, no bitstream")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default 1)")
    f.add_argument("--freq", type=float, metavar="MHZ",
                   help="target clock (default: the board's core clock, 100 MHz)")
    f.add_argument("--no-pack", action="store_true", help="skip ecppack (no bitstream)")
    f.add_argument("--scan", action="store_true",
                   help="with --top: every port behind a scan register, two pins left (for "
                   "designs with more port bits than the package has pins; port paths "
                   "become register paths)")
    add_flow_options(f)
    f.set_defaults(func=cmd_fpga)

    r = sub.add_parser("regress", help="run the cocotb co-simulation regression")
    rsrc = r.add_mutually_exclusive_group()
    rsrc.add_argument("--preset", help="run one preset only (default: tiny, small, medium)")
    rsrc.add_argument("--config", help="CoreConfig JSON file: run every test (but the "
                      "full-size smoke tests) on this configuration")
    r.add_argument("-k", metavar="PATTERN", help="regex selecting tests, e.g. 'statistics'")
    r.add_argument("-n", type=int, default=1, metavar="N", help="parallel simulations")
    r.add_argument("--cycles", type=int, metavar="N",
                   help="cap every test's cycle budget at N (shorter runs)")
    r.add_argument("--quick-build", action="store_true",
                   help="compile the simulators without C++ optimisation: faster builds, "
                   "slower simulation (for short runs)")
    r.add_argument("--out", default="build/regress", help="results folder")
    r.add_argument("--waves", choices=("fail", "all", "none"), default="fail",
                   help="keep waveforms of failing tests (default), of all, or none")
    r.set_defaults(func=cmd_regress)

    e = sub.add_parser("experiment", help="run a named reproducible experiment")
    e.add_argument("name", nargs="?", help="experiment name (see --list)")
    e.add_argument("--list", action="store_true", help="list experiments")
    e.add_argument("--out", help="output folder (results.json and PNG plots)")
    e.add_argument("--quick", action="store_true", help="reduced run (under two minutes)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--epochs", type=int, help="train this many epochs instead of the run's "
                   "default (training experiments only; results.json records it)")
    e.add_argument("--models", help="comma-separated subset of the models an experiment trains "
                   "side by side (e.g. fp,shd; experiments that train several only)")
    e.add_argument("--transfer-decay", type=float, metavar="TAU",
                   help="Tiki-Taka/SHD transfer rate lambda_0 / (1 + epoch / TAU); 0: constant "
                   "(asymmetric-training only; default in docs/rpu_training.md)")
    e.set_defaults(func=cmd_experiment)

    from .mapping.cli import register
    register(sub)  # compile, inspect
    return p


def _tool_errors() -> tuple[type[Exception], ...]:
    """The external tools' errors (one line, status 1). LintError's module imports amaranth
    (0.4 s that compile, run and inspect never need), so it is looked up, not imported:
    only a command that imported it can raise it."""
    from .fpga import FpgaError
    from .synth import SynthError

    export = sys.modules.get("cimflow.hdl.export")
    return (SynthError, FpgaError) + ((export.LintError,) if export else ())


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    from .datasets import DataError
    from .mapping.errors import CompileError, ImageError

    try:
        return args.func(args)
    except _tool_errors() as e:  # evaluated only when an exception propagates
        print(f"cimflow: error: {e}", file=sys.stderr)
        return 1
    # anything else is a bug in cimflow: it keeps its traceback
    except (*USER_ERRORS, CompileError, ImageError, DataError) as e:
        print(f"cimflow: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cimflow: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
