"""The co-simulation regression: cocotb testbenches on cached Verilator builds.

``REGRESSION`` lists every test, the presets it runs on and its seeds; a user config (any
valid CoreConfig, `cimflow regress --config`) runs every test but the full-size smoke tests.
``run_regression`` builds each (top, config) once, runs the tests (optionally in parallel
threads: each test is its own simulator process), collects pass/fail from cocotb's results
XML and the figures each testbench records (seeds, cycles compared, statistics), writes one
JUnit XML and re-runs failing tests with waveforms, keeping the trace. The table printed by
``cimflow regress`` comes from ``format_table``.
"""

from __future__ import annotations

import json
import os
import re
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from cocotb_tools.check_results import get_results

from cimflow.atomic import write_atomic
from cimflow.config import PRESETS, CoreConfig, preset

from .build import FastVerilator, build_sim
from .coverage import coverage_table

__all__ = ["RegressionTest", "REGRESSION", "Result", "NoTestSelected", "run_regression",
           "run_one", "select", "as_configs", "format_table", "DEFAULT_PRESETS"]


@dataclass(frozen=True)
class RegressionTest:
    name: str
    top: str
    module: str
    testcase: str
    presets: tuple[str, ...]
    seeds: tuple[tuple[int, int], ...]
    cycles: int = 0
    quick: bool = False  # unoptimised C++ build (full-size smoke tests)


# Seeds are reduced into each chain's range [1, 2^d - 1] for the preset in use.
_SEEDS = ((1, 1), (0x2B5E_1F3A_77C1, 0x1D_0F0F_3C3C), (0x7FFF_FFFF_FFFF, 0x12345))

REGRESSION: tuple[RegressionTest, ...] = (
    RegressionTest("str_bank.bit_exact", "str_bank", "cimflow.verif.tb_str_bank",
                   "test_bit_exact", ("tiny", "small", "medium"), _SEEDS, 100_000),
    RegressionTest("str_bank.statistics", "str_bank", "cimflow.verif.tb_str_bank",
                   "test_statistics", ("small", "medium"), ((0xACE1, 0xBEEF),), 40_000),
    RegressionTest("str_bank.smoke", "str_bank", "cimflow.verif.tb_str_bank",
                   "test_smoke", ("full",), ((0x1234_5678, 0x9ABC),), quick=True),
    RegressionTest("core.mvm_random", "core", "cimflow.verif.tb_core", "test_mvm_random",
                   ("tiny", "small"), ((0x5EED, 0xC0DE),), 20_000),
    RegressionTest("core.rpu_update", "core", "cimflow.verif.tb_core", "test_rpu_update",
                   ("tiny", "small"), ((0xACE1, 0xBEEF),)),
    RegressionTest("core.program", "core", "cimflow.verif.tb_core", "test_program_and_read_back",
                   ("tiny", "small"), ((7, 1),)),
    RegressionTest("core.bad_inputs", "core", "cimflow.verif.tb_core", "test_bad_inputs",
                   ("tiny", "small"), ((1, 1),)),
    RegressionTest("core.gating", "core", "cimflow.verif.tb_core",
                   "test_gating_and_neuron_test", ("tiny", "small"), ((1, 1),)),
    RegressionTest("core.spi_host", "core", "cimflow.verif.tb_spi_host", "test_spi_host",
                   ("tiny", "small"), ((5, 1),)),
    RegressionTest("core.concurrent_ports", "core", "cimflow.verif.tb_core",
                   "test_concurrent_ports", ("tiny",), ((3, 1),)),
    RegressionTest("core_fpga.program_mvm", "core_fpga", "cimflow.verif.tb_core_fpga",
                   "test_program_and_mvm", ("tiny", "small"), ((0xF00D, 0x1EAF),), 10),
    RegressionTest("core_fpga.training_step", "core_fpga", "cimflow.verif.tb_core_fpga",
                   "test_training_step", ("tiny", "small"), _SEEDS),
    RegressionTest("core_fpga.compiled_image", "core_fpga", "cimflow.verif.tb_compiled",
                   "test_compiled_image", ("small",), ((1, 1),)),
    RegressionTest("core_fpga_uart.host_script", "core_fpga_uart", "cimflow.verif.tb_uart_host",
                   "test_host_script", ("tiny",), ((0x0D1E, 1),)),
    RegressionTest("core_fpga_uart.uart_errors", "core_fpga_uart", "cimflow.verif.tb_uart_host",
                   "test_uart_errors", ("tiny",), ((1, 1),)),
    RegressionTest("core.smoke", "core", "cimflow.verif.tb_core", "test_smoke",
                   ("full",), ((0x1234_5678, 0x9ABC),), quick=True),
)

DEFAULT_PRESETS = ("tiny", "small", "medium")
"""Presets `cimflow regress` runs when none is named; `full` has its own smoke test."""


class NoTestSelected(ValueError):
    """The presets, configs and pattern select no regression test."""


@dataclass
class Result:
    test: str
    preset: str
    passed: bool
    seconds: float
    figures: dict = field(default_factory=dict)
    waves: Path | None = None
    log: Path | None = None
    config: CoreConfig | None = None  # what the test ran on (sets the reachable coverage)
    skipped: bool = False  # the testbench skipped itself: not a pass


def _seed_pair(cfg: CoreConfig, pair: tuple[int, int]) -> str:
    da, db = max(cfg.lfsr_a_taps), max(cfg.lfsr_b_taps)
    return f"{pair[0] % ((1 << da) - 1) + 1}:{pair[1] % ((1 << db) - 1) + 1}"


def compile_pattern(pattern: str | None) -> re.Pattern | None:
    """The ``-k`` regular expression, compiled; a ValueError naming it if it is not one."""
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as e:
        raise ValueError(f"-k {pattern!r} is not a valid regular expression: {e}") from None


def select(configs: dict[str, CoreConfig], pattern: str | None
           ) -> list[tuple[RegressionTest, str]]:
    """(test, config label) pairs to run: a preset runs the tests that list it, any other
    config every test that is not a full-size smoke test."""
    rx = compile_pattern(pattern)
    chosen = []
    for t in REGRESSION:
        for label in configs:
            wanted = label in t.presets if label in PRESETS else not t.quick
            if wanted and (rx is None or rx.search(f"{t.name}[{label}]")):
                chosen.append((t, label))
    return chosen


def as_configs(presets=DEFAULT_PRESETS, configs: dict[str, CoreConfig] | None = None
               ) -> dict[str, CoreConfig]:
    """Preset names and labelled user configs as one ``{label: CoreConfig}`` map."""
    out = {p: preset(p) for p in presets}
    for label, cfg in (configs or {}).items():
        if label in out and out[label] != cfg:
            raise ValueError(f"config label {label!r} is already a preset name")
        out[label] = cfg
    return out


def run_one(test: RegressionTest, label: str, cfg: CoreConfig, out: Path, waves: bool,
            extra_env: dict | None = None, build_root: Path | None = None,
            cycles: int | None = None, quick_build: bool = False) -> Result:
    """Run one test on one config; ``cycles`` caps the test's cycle budget, ``quick_build``
    compiles the simulator without C++ optimisation (verif.build.QUICK_COMPILE)."""
    build = build_sim(cfg, test.top, waves=waves, quick=test.quick or quick_build,
                      root=build_root)
    test_dir = out / label / (test.name + ("-waves" if waves else ""))
    test_dir.mkdir(parents=True, exist_ok=True)
    metrics = test_dir / "metrics.jsonl"
    metrics.unlink(missing_ok=True)
    results = test_dir / "results.xml"
    budget = min(test.cycles, cycles) if cycles and test.cycles else test.cycles
    env = {
        "CIMFLOW_CONFIG": cfg.to_json(),
        "CIMFLOW_SEEDS": ",".join(_seed_pair(cfg, s) for s in test.seeds),
        "CIMFLOW_CYCLES": str(budget),
        "CIMFLOW_METRICS": str(metrics),
        **(extra_env or {}),
    }
    t0 = time.perf_counter()
    passed = skipped = False
    try:
        FastVerilator().test(
            test_module=test.module, hdl_toplevel=build.toplevel, hdl_toplevel_lang="verilog",
            testcase=test.testcase,
            build_dir=build.build_dir, test_dir=test_dir, results_xml=str(results),
            extra_env=env, waves=waves, log_file=test_dir / "sim.log",
        )
        n_tests, n_failed = get_results(results)
        skipped = ET.parse(results).getroot().find(".//skipped") is not None
        passed = n_tests == 1 and n_failed == 0 and not skipped
    except (SystemExit, RuntimeError):
        passed = False
    figures = {}
    if metrics.exists():
        for line in metrics.read_text().splitlines():
            figures.update(json.loads(line))
    wave = test_dir / "dump.vcd"
    return Result(test.name, label, passed, time.perf_counter() - t0, figures,
                  wave if waves and wave.exists() else None, test_dir / "sim.log", cfg,
                  skipped)


def run_regression(presets=DEFAULT_PRESETS, pattern: str | None = None,
                   out: Path = Path("build/regress"), jobs: int = 1,
                   waves: str = "fail", progress=print, *,
                   configs: dict[str, CoreConfig] | None = None,
                   cycles: int | None = None, quick_build: bool = False) -> list[Result]:
    """Run the selected tests on the named presets and the labelled ``configs``.

    ``waves`` is 'fail' (re-run failures with traces), 'all' or 'none'; ``cycles`` caps
    every test's cycle budget and ``quick_build`` compiles without C++ optimisation (both
    for short runs: the build then dominates).
    """
    cfgs = as_configs(presets, configs)
    chosen = select(cfgs, pattern)
    if not chosen:
        raise NoTestSelected(f"no regression test matches configs {list(cfgs)} "
                             f"and pattern {pattern!r}")
    os.environ.pop("PYTEST_CURRENT_TEST", None)  # the runner must not act as a pytest plugin
    out = Path(out).resolve()  # the simulator runs in the test folder
    for top, label, quick in sorted({(t.top, p, t.quick) for t, p in chosen}):
        b = build_sim(cfgs[label], top, waves=(waves == "all"), quick=quick or quick_build)
        progress(f"built {top}[{label}] in {b.seconds:.1f} s" if b.seconds else
                 f"using cached build of {top}[{label}]")

    def job(item):
        t, label = item
        r = run_one(t, label, cfgs[label], out, waves == "all", cycles=cycles,
                    quick_build=quick_build)
        verdict = "PASS" if r.passed else "SKIP" if r.skipped else "FAIL"
        progress(f"{verdict} {t.name}[{label}] ({r.seconds:.1f} s)")
        if not r.passed and not r.skipped and waves == "fail":
            rerun = run_one(t, label, cfgs[label], out, True, cycles=cycles,
                            quick_build=quick_build)
            r.waves = rerun.waves
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        results = list(pool.map(job, chosen))
    write_junit(results, out / "junit.xml")
    return results


def write_junit(results: list[Result], path: Path) -> None:
    suite = ET.Element("testsuite", name="cimflow.regress", tests=str(len(results)),
                       failures=str(sum(not r.passed and not r.skipped for r in results)),
                       skipped=str(sum(r.skipped for r in results)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"cimflow.{r.preset}", name=r.test,
                             time=f"{r.seconds:.3f}")
        props = ET.SubElement(case, "properties")
        for k, v in r.figures.items():
            ET.SubElement(props, "property", name=k, value=json.dumps(v))
        if r.skipped:
            ET.SubElement(case, "skipped", message=f"the testbench skipped itself: {r.log}")
        elif not r.passed:
            fail = ET.SubElement(case, "failure", message="test failed")
            fail.text = f"log: {r.log}\nwaves: {r.waves}"
    write_atomic(path, ET.tostring(suite, encoding="unicode"))


def _stat_summary(fig: dict) -> str:
    parts = []
    for key, label in (("binomial", "binom p_min"), ("coincidences", "coinc |z|max"),
                       ("correlation", "corr |z|max"), ("single_chain_correlation",
                                                        "1-chain |z|max")):
        if key in fig:
            v = fig[key].get("min_p_value", fig[key].get("max_abs_z"))
            parts.append(f"{label}={v:.3g}")
    return ", ".join(parts)


def format_table(results: list[Result]) -> str:
    rows = [("test", "preset", "seeds", "cycles compared", "result", "statistics")]
    for r in results:
        seeds = r.figures.get("seeds", [])
        rows.append((r.test, r.preset, str(len(seeds)) + (f" ({', '.join(seeds)})"
                     if len(seeds) <= 1 else ""), f"{r.figures.get('cycles', 0):,}",
                     "PASS" if r.passed else "SKIP" if r.skipped else "FAIL",
                     _stat_summary(r.figures)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    for r in results:
        if r.waves:
            lines.append(f"waveform of failing {r.test}[{r.preset}]: {r.waves}")
    points = [p for r in results for p in r.figures.get("coverage", [])]
    if points:
        cfgs = [r.config for r in results if r.config is not None]
        lines.append(coverage_table(points, max(c.input_bits for c in cfgs),
                                    max(c.output_bits for c in cfgs)) if cfgs
                     else coverage_table(points))
    passed, skipped = sum(r.passed for r in results), sum(r.skipped for r in results)
    lines.append(f"{passed} passed, {len(results) - passed - skipped} failed"
                 + (f", {skipped} skipped" if skipped else ""))
    return "\n".join(lines)
