"""cocotb testbench: a compiled model image run on the RTL core (``cimflow_core_fpga``).

The image's cores are loaded one after another into the one simulated core through its own
programming interface (select a cell with its BL and SL registers, READ it, SET or RESET
pulses for the difference, READ again to verify), as a board controller would load a chip
core by core. The model's layer graph runs in Python (``cimflow.mapping.runtime``) with
every analog MVM executed by the RTL: the segment's inputs are written into the BL line
registers (+x on its G+ row, -x on its G- row), MVM, and the codes read back from the SL
registers of its columns. The outputs must equal the ideal golden chip's bit for bit (the
codes of every segment and the decoded outputs).

``test_compiled_image`` compiles a small 2-layer MLP for the configuration under test; with
``CIMFLOW_IMAGE`` and ``CIMFLOW_INPUT`` set (``cimflow run --backend rtl``, :func:`run_rtl`)
it runs that image on that batch instead and writes the outputs to ``CIMFLOW_OUTPUT``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.task import bridge, resume

from cimflow.config import input_pulses
from cimflow.golden.array import G_FRAC_BITS
from cimflow.hdl.analog_macro import no_clip
from cimflow.mapping.runtime import Chip, GoldenChip, run_model

from .commands import ProgOp
from .harness import record, tb_env
from .mvm_scenario import encode_line
from .tb_core import CoreTb

__all__ = ["RtlChip", "small_mlp_image", "run_rtl"]


class RtlChip(Chip):
    """A compiled model whose MVMs run on the simulated core (one core: the image's cores
    are loaded in turn). ``calls`` keeps every (matrix, input codes, sign, magnitude) for
    the comparison with the golden chip."""

    def __init__(self, cm, tb: CoreTb) -> None:
        super().__init__(cm)
        self.tb = tb
        cfg = cm.config
        self.state = np.zeros((cfg.rows, cfg.cols), np.int64)  # the macro starts at zero
        self.loaded: int | None = None
        self.rng = np.random.default_rng(0)
        self.mvms = self.pulses = self.cells_loaded = 0
        self.calls: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
        self._check_rows()

    def _check_rows(self) -> None:
        """The core drives input lines 0 .. in_len - 1: the rows below a segment that are
        not its own must hold no cell in its columns (true unless segments were stacked
        vertically on a core), else the RTL would not compute the segment alone."""
        for s in self.cm.placement.segments:
            t = self.cm.targets[s.core]
            below = np.setdiff1d(np.arange(s.phys_rows.max() + 1), s.phys_rows)
            if np.any(t[np.ix_(below, s.phys_cols)] > 0):
                raise ValueError(f"segment {s.layer}[{s.index}] on core {s.core} shares its "
                                 f"columns with a segment above it; the RTL core drives "
                                 f"rows from 0, so this image cannot run on it")

    def codes(self, name: str, xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        sign, mag = resume(self._codes)(name, xc)
        self.calls.append((name, xc, sign, mag))
        return sign, mag

    async def _codes(self, name: str, xc: np.ndarray):
        lay = self.layouts[name]
        g_n, batch, _ = xc.shape
        width = lay.scale.shape[1]
        sign = np.zeros((g_n, batch, width), np.int64)
        mag = np.zeros((g_n, batch, width), np.int64)
        order = sorted(range(g_n), key=lambda k: lay.segments[k].core)
        mode = None
        for k in order:
            s = lay.segments[k]
            if self.loaded != s.core:
                await self._load(s.core)
                mode = None
            for b in range(batch):
                mode = await self._mvm(s, xc[k, b], lay.settings, mode)
                sg, mg = mode[1]
                sign[k, b, :s.n_cols], mag[k, b, :s.n_cols] = sg, mg
        return sign, mag

    async def _load(self, core: int) -> None:
        """Load one core's conductance codes cell by cell (only cells that differ)."""
        tb, d = self.tb, self.tb.dut
        codes = np.rint(self.cm.targets[core] * (1 << G_FRAC_BITS)).astype(np.int64)
        await tb.write_bank(0, [0] * tb.cfg.rows)  # no stray 1 selects a cell
        await tb.write_bank(1, [0] * tb.cfg.cols)
        tb._selected = (None, None)
        for r, c in zip(*np.nonzero(codes != self.state), strict=True):
            await tb.select_cell(int(r), int(c))
            diff = int(codes[r, c] - self.state[r, c])
            op = ProgOp.SET if diff > 0 else ProgOp.RESET  # raise / lower by amp x width
            for amp, width in ((255, abs(diff) // 255), (abs(diff) % 255, 1)):
                if amp and width:
                    await tb.cmd("SET_PULSE", amp)
                    await tb.cmd("SET_WIDTH", width)
                    await tb.cmd("PROGRAM", op)
                    await tb.wait_done()
                    self.pulses += 1
            await tb.cmd("PROGRAM", ProgOp.READ)  # verify
            await tb.wait_done()
            got = int(d.read_data.value)
            assert got == codes[r, c], f"core {core} cell ({r}, {c}): read {got}, " \
                                       f"wanted {codes[r, c]}"
            self.state[r, c] = got
            self.cells_loaded += 1
        await tb.write_bank(1, [0] * tb.cfg.cols)
        self.loaded = core

    async def _mvm(self, s, x: np.ndarray, st, mode):
        tb, d, cfg = self.tb, self.tb.dut, self.tb.cfg
        pairs = s.n_rows // 2
        in_len = int(s.phys_rows.max()) + 1
        bl = np.zeros(cfg.rows, np.int64)
        bl[s.phys_rows[0::2]] = [encode_line(v, tb.w, self.rng) for v in x[:pairs]]
        bl[s.phys_rows[1::2]] = [encode_line(-v, tb.w, self.rng) for v in x[:pairs]]
        await tb.write_bank(0, bl)
        regs = {"direction": 0, "adc_mode": st.adc_mode.value, "out_k": st.k,
                "in_m": input_pulses(st.in_bits), "act": 0, "inject_steps": 0,
                "in_len": in_len, "t_wl": st.t_wl, "t_sample": st.t_sample,
                "t_integ": st.t_integ}
        if mode is None or mode[0] != regs:
            await tb.set_mode(regs)
        d.d_units.value = st.d_units
        d.inject_units.value = 0
        d.clip_units.value = no_clip(cfg)  # an ideal core: no swing limit
        await tb.cmd("MVM")
        await tb.wait_done()
        out = await tb.read_bank(1, cfg.cols)
        self.mvms += 1
        cols = s.phys_cols
        return regs, (out[cols] >> (tb.w - 1), out[cols] & ((1 << (tb.w - 1)) - 1))


def small_mlp_image(cfg, seed: int = 0, batch: int = 3):
    """A 2-layer MLP (12 -> 10 -> 4, biases, ReLU) compiled for ``cfg`` on spare cores (so
    segments are split by rows and by columns), and a batch of inputs."""
    import torch

    from cimflow.mapping import zoo
    from cimflow.mapping.compiler import compile_graph
    from cimflow.mapping.frontend import read_graph
    from cimflow.mapping.matrices import MatrixOptions

    model = zoo.mlp((12, 10, 4), seed=seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (batch + 16, 12)).astype(np.float32)
    n_cores = 6 if cfg.rows >= 16 else 40
    opts = MatrixOptions(in_bits=min(4, cfg.input_bits), out_bits=min(8, cfg.output_bits))
    cm = compile_graph(read_graph(torch.jit.script(model)), cfg, n_cores, options=opts,
                       calibration=x[batch:])
    return cm, x[:batch]


@cocotb.test()
async def test_compiled_image(dut):
    """A compiled image on the RTL: every segment's codes and the outputs equal the ideal
    golden chip's bit for bit."""
    from cimflow.mapping.image_read import read_image

    env = tb_env()
    tb = CoreTb(dut, env.cfg)
    await tb.start()
    t0 = time.perf_counter()
    path = os.environ.get("CIMFLOW_IMAGE")
    if path:
        cm = read_image(path)
        x = np.load(os.environ["CIMFLOW_INPUT"], allow_pickle=False)
    else:
        cm, x = small_mlp_image(env.cfg, env.seeds[0][0] % 1000)
    chip = RtlChip(cm, tb)
    y = await bridge(run_model)(cm, x, chip=chip)
    golden = GoldenChip(cm, ideal=True)
    for name, xc, sign, mag in chip.calls:
        gs, gm = golden.codes(name, xc)
        w = sign.shape[-1]
        assert np.array_equal(sign, gs[..., :w]) and np.array_equal(mag, gm[..., :w]), \
            f"matrix {name}: RTL codes differ from the golden chip's"
    want = run_model(cm, x, chip=golden)
    assert np.array_equal(y, want), "RTL outputs differ from the golden chip's"
    out = os.environ.get("CIMFLOW_OUTPUT")
    if out:
        from cimflow.atomic import write_atomic

        buf = io.BytesIO()
        np.save(buf, y, allow_pickle=False)
        write_atomic(out, buf.getvalue())
    record("core_fpga.compiled_image", seeds=[f"{env.seeds[0][0]}"], cycles=tb.simulated,
           mvms=chip.mvms, inputs=int(len(x)), cores=len(cm.targets),
           cells_loaded=chip.cells_loaded, program_pulses=chip.pulses,
           matrices=len(cm.layers), segments=len(cm.placement.segments),
           seconds=time.perf_counter() - t0)


def run_rtl(image: str | Path, x: np.ndarray, progress=None) -> tuple[np.ndarray, dict]:
    """Run an image on a batch on the RTL core in Verilator (``cimflow run --backend
    rtl``); returns the outputs and the testbench's figures. Raises a one-line
    ``RunError`` with the simulator log's path if the RTL disagrees with the golden chip or
    the run fails."""
    from cimflow.mapping.image_read import read_image
    from cimflow.mapping.runtime import RunError

    from .regress import RegressionTest, run_one

    say = progress or (lambda _: None)
    cm = read_image(image)
    test = RegressionTest("core_fpga.compiled_image", "core_fpga", "cimflow.verif.tb_compiled",
                          "test_compiled_image", (), ((1, 1),))
    with tempfile.TemporaryDirectory(prefix="cimflow-rtl-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "x.npy", np.asarray(x), allow_pickle=False)
        cells = sum(int((t > 0).sum()) for t in cm.targets.values())
        say(f"RTL: building core_fpga for {cm.config.rows} x {cm.config.cols} cores "
            f"(cached after the first run), then loading {len(cm.targets)} cores "
            f"({cells:,} cells) through the programming interface and running "
            f"{len(x)} inputs (about 100 cells and 10 MVMs per second of simulation here)")
        os.environ.pop("PYTEST_CURRENT_TEST", None)
        r = run_one(test, "image", cm.config, tmp / "run", waves=False,
                    extra_env={"CIMFLOW_IMAGE": str(Path(image).resolve()),
                               "CIMFLOW_INPUT": str(tmp / "x.npy"),
                               "CIMFLOW_OUTPUT": str(tmp / "y.npy")})
        if not r.passed or not (tmp / "y.npy").exists():
            keep = Path(tempfile.mkdtemp(prefix="cimflow-rtl-log-"))
            if r.log and r.log.exists():
                (keep / "sim.log").write_bytes(r.log.read_bytes())
            raise RunError(f"the RTL run failed or differs from the golden chip; "
                               f"log: {keep / 'sim.log'}")
        return np.load(tmp / "y.npy"), r.figures
