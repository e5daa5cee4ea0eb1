"""Stochastic translator (STR) bank for the RPU parallel update (docs/model.md#rpu-update).

One translator per line (rows x_i first, then columns delta_j) turns an n-bit magnitude and
a sign into a stream of BL pulses with P(pulse) = min(C*|v|, 1), by comparing a stored
threshold with the line's LFSR word every slot. Writing a value stores

    thr = min((mag * gain) >> str_gain_frac_bits, 2^n)

so one shared multiplier scales values as they are written instead of one per line; the
gain register is therefore sampled at write time. The write is pipelined over
``WRITE_LATENCY`` = 3 edges: the product is a register (the multiplier's output stage); the
clipped threshold is registered once per group of ``2**LINE_GROUP_BITS`` lines (with that
group's write enable and line index), so no single net reaches every translator (nextpnr
does not replicate a high-fanout driver); the group's copy is stored at the third edge. A
``start`` must come at least ``WRITE_LATENCY`` clocks after the last write's ``wr_en``
clock (a ``start`` in the two clocks after a write would miss it; it is refused with
``error``). An update (``start``) runs the up/down
phases that realise the sign of x_i * delta_j (phase p: rows of sign p>>1; columns of sign
(p>>1) ^ (p&1); p&1 = 1 is a "down" phase), skipping phases with no active row, BL slots
each, back to back. During a slot ``valid`` is high, ``row_pulse``/``col_pulse`` show the
pulses and the LFSR advances at the clock edge that ends the slot. ``done`` pulses one cycle
after the last slot.

Between updates ``noise_en`` advances the same LFSR for the neurons' noise injection;
``noise_bits`` are the random bits of lines 0..rows-1 (the golden ``LfsrChains.bits``).

Rejected commands (``start`` while busy, while a write is in flight, before the LFSR is
ready or with BL = 0; a write while busy or to an address >= lines) are ignored and pulse
``error`` for one cycle.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import LINE_GROUP_BITS, ConfiguredComponent
from .lfsr import LfsrChains

__all__ = ["StochasticTranslatorBank", "WRITE_LATENCY"]

WRITE_LATENCY = 3  # edges from a ``wr_en`` clock to its stored threshold


class StochasticTranslatorBank(ConfiguredComponent):
    """The LFSR chains plus one translator per row and column."""

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        cfg = config
        super().__init__({
            # LFSR seeds
            "seed_a": In(max(cfg.lfsr_a_taps)),
            "seed_b": In(max(cfg.lfsr_b_taps)),
            "seed_load": In(1),
            "ready": Out(1),
            # value write port
            "wr_en": In(1),
            "wr_addr": In(range(max(cfg.lines, 2))),
            "wr_mag": In(cfg.str_bits),
            "wr_sign": In(1),
            "gain": In(cfg.str_gain_bits),
            # update command
            "bl": In(cfg.bl_bits),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            # pulse outputs
            "valid": Out(1),
            "phase": Out(2),
            "up": Out(1),
            "row_pulse": Out(cfg.rows),
            "col_pulse": Out(cfg.cols),
            # the same LFSR serves the neurons' noise injection between updates
            "noise_en": In(1),
            "noise_bits": Out(cfg.rows),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        n = cfg.str_bits
        m.submodules.lfsr = lfsr = LfsrChains(cfg)
        m.d.comb += [
            lfsr.seed_a.eq(self.seed_a),
            lfsr.seed_b.eq(self.seed_b),
            lfsr.load.eq(self.seed_load),
            self.ready.eq(lfsr.ready),
        ]

        thr = [Signal(n + 1, name=f"thr{k}") for k in range(cfg.lines)]
        sign = [Signal(name=f"sign{k}") for k in range(cfg.lines)]
        # a row's "active with sign 0 / 1" (``thr != 0`` and its sign), stored with it, so
        # the phase mask that ``start`` reads is an OR of flip-flops (no ``thr != 0`` of
        # every row in front of the FSM's phase and ``done``)
        row_pos = [Signal(name=f"row_pos{k}") for k in range(cfg.rows)]
        row_neg = [Signal(name=f"row_neg{k}") for k in range(cfg.rows)]

        # --- value writes: one shared scaler, its product a register (pipelined write)
        busy = Signal()
        write_ok = self.wr_en & ~busy & (self.wr_addr < cfg.lines)
        product = Signal(n + cfg.str_gain_bits)
        p_en = Signal()  # a write is in flight: ``product`` is stored at the next edge
        p_addr = Signal.like(self.wr_addr)
        p_sign = Signal()
        m.d.sync += [product.eq(self.wr_mag * self.gain), p_en.eq(write_ok),
                     p_addr.eq(self.wr_addr), p_sign.eq(self.wr_sign)]
        scaled = Signal(max(n + cfg.str_gain_bits - cfg.str_gain_frac_bits, n + 2))
        m.d.comb += scaled.eq(product >> cfg.str_gain_frac_bits)
        # saturate from the bits above 2^n: any of them set, or 2^n with a lower bit set
        over = (scaled[n + 1:] != 0) | (scaled[n] & (scaled[:n] != 0))
        clipped = Mux(over, 1 << n, scaled[: n + 1])
        # edge 2: a copy of the clipped threshold per group of lines, loaded only by a write
        # to that group (each copy has its own clock enable, so synthesis keeps them apart)
        size = 1 << LINE_GROUP_BITS
        q_busy = Signal()  # a write is in the group registers: stored at the next edge
        m.d.sync += q_busy.eq(p_en)
        for g in range((cfg.lines + size - 1) // size):
            q_en = Signal(name=f"q_en{g}")
            q_thr = Signal(n + 1, name=f"q_thr{g}")
            q_sign = Signal(name=f"q_sign{g}")
            q_line = Signal(LINE_GROUP_BITS, name=f"q_line{g}")
            hit = p_en & ((p_addr >> LINE_GROUP_BITS) == g)
            m.d.sync += q_en.eq(hit)
            with m.If(hit):
                m.d.sync += [q_thr.eq(clipped), q_sign.eq(p_sign),
                             q_line.eq(p_addr[:LINE_GROUP_BITS])]
            # edge 3: the store; one enable per line keeps the Verilog linear in lines
            q_nz = q_thr != 0
            for k in range(g * size, min((g + 1) * size, cfg.lines)):
                with m.If(q_en & (q_line == k - g * size)):
                    m.d.sync += [thr[k].eq(q_thr), sign[k].eq(q_sign)]
                    if k < cfg.rows:
                        m.d.sync += [row_pos[k].eq(q_nz & ~q_sign), row_neg[k].eq(q_nz & q_sign)]

        # --- which phases have an active row
        any_pos = Signal()
        any_neg = Signal()
        m.d.comb += [
            any_pos.eq(Cat(*row_pos).any()),
            any_neg.eq(Cat(*row_neg).any()),
        ]
        mask_now = Cat(any_pos, any_pos, any_neg, any_neg)

        phase = Signal(2)
        mask = Signal(4)
        slot = Signal(cfg.bl_bits)
        bl = Signal(cfg.bl_bits)
        # next enabled phase after the current one (0b100 = none)
        later = Array(mask & ~((1 << (p + 1)) - 1) for p in range(4))[phase]
        start_ok = self.start & ~busy & ~p_en & ~q_busy & lfsr.ready & (self.bl != 0)

        def first_phase(bits):
            return Mux(bits[0], 0, Mux(bits[1], 1, Mux(bits[2], 2, 3)))

        m.d.sync += [self.done.eq(0), self.error.eq(0)]
        with m.If((self.start & ~start_ok) | (self.wr_en & ~write_ok)):
            m.d.sync += self.error.eq(1)

        with m.FSM(name="str_fsm"):
            with m.State("IDLE"):
                with m.If(start_ok):
                    m.d.sync += [mask.eq(mask_now), bl.eq(self.bl), slot.eq(0),
                                 phase.eq(first_phase(mask_now))]
                    with m.If(mask_now == 0):
                        m.d.sync += self.done.eq(1)
                    with m.Else():
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [busy.eq(1), self.valid.eq(1)]
                m.d.sync += slot.eq(slot + 1)
                with m.If(slot == bl - 1):
                    m.d.sync += slot.eq(0)
                    with m.If(later == 0):
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += phase.eq(first_phase(later))

        m.d.comb += [
            lfsr.en.eq(busy | self.noise_en),
            self.noise_bits.eq(lfsr.bits[: cfg.rows]),
        ]

        row_sign, down = phase[1], phase[0]
        # split the word bus once: slicing the wide bus per line makes elaboration quadratic
        word = [Signal(n, name=f"word{k}") for k in range(cfg.lines)]
        m.d.comb += Cat(*word).eq(lfsr.words)
        m.d.comb += [
            self.busy.eq(busy),
            self.phase.eq(phase),
            self.up.eq(~down),
            self.row_pulse.eq(Cat(
                self.valid & (word[i] < thr[i]) & (sign[i] == row_sign)
                for i in range(cfg.rows))),
            self.col_pulse.eq(Cat(
                self.valid & (word[cfg.rows + j] < thr[cfg.rows + j])
                & (sign[cfg.rows + j] == (row_sign ^ down))
                for j in range(cfg.cols))),
        ]
        return m
