"""Synthesizable behavioural model of the RRAM array and the neuron charge domain.

`AnalogMacro` executes the analog side of the cycle interface (docs/cycle_interface.md) with
the golden integer arithmetic, so a core built around it simulates in Verilator and fits an
FPGA. It takes the control word of `MvmEngine` and returns the comparator bits ``cmp``.

Numbers (all integers, as in the golden model):

* conductance codes of ``2**-10`` uS, ``g_bits`` (16) bits unsigned, in a block RAM of
  ``rows`` words of ``cols * g_bits`` bits (one whole row per read, one cell per write);
* charge in units of ``C_s V_read / 2**24``: a settled line is ``floor(2**24 N / Den)``
  with ``N = sum s_i G_i`` and ``Den = sum G_i`` over the conducting cells (0 if
  ``Den = 0``), a signed 26-bit value in ``[-2**24, 2**24]``;
* per neuron a sample register (26 bits) and an integrator register of ``charge_bits``
  (36) bits, saturated at ``+/-clip_units`` by INTEGRATE and INJECT (not by DECREMENT,
  as in the golden ``NeuronBank``); ``clip_units = 2**(charge_bits-1) - 1`` is "no swing
  limit" (exact while the golden charge stays inside the register).

Timing (the MvmEngine contract of docs/core_architecture.md): every control word is
executed in its clock. ``hold`` is a stall request: high in a clock, the engine sends the
IDLE word in the next clock and keeps its own word for later. It is high from the clock of
a WL_PULSE word through the last division step but one, so the engine's word register
takes it at the next edge (a short path: word -> ``hold`` -> word register, no arithmetic).
``cmp`` shows the comparison of a COMPARE_SIGN / COMPARE clock within that clock (the
engine samples it at the edge that ends it) and the latched comparator bits (golden
``bank.cmp``) otherwise. The DECREMENT step is ``d_units >> dac_code`` of the previous word
(a register: the DAC settles for a clock); the bias inputs are registered, so they are seen
one clock after they change.

WL_PULSE is the only multi-clock phase: ``rows + 28`` clocks, the WL_PULSE word's own clock
followed by ``rows + 27`` IDLE words; the next word (SAMPLE) then sees the settled lines.
Every other phase takes one clock.

* clock 0: latch the driver codes of the driven side and ``wl_en``, clear the line
  accumulators, read row 0;
* clocks 1..rows: one array row per clock. Forward (BLs driven): every SL j accumulates
  ``P_j += (s_i + 1) G_ij`` and ``Den_j += G_ij`` for a conducting row i. Backward (SLs
  driven): an adder tree sums row r's cells into ``P_r``, ``Den_r`` (0 if WL r is off) and
  shifts them into the accumulator chain, so line r holds them after the last row;
* clock rows+1: set up the division; clocks rows+2..rows+27: 26 steps of a restoring
  division, one divider per line, all lines in parallel (a shared divider would cost
  ``rows`` times the clocks; per line it is one 25-bit subtractor and reuses the P and
  value registers as remainder and quotient):
  ``floor(2**24 N / Den) = floor(2**24 P / Den) - 2**24`` with ``P = N + Den`` in
  ``[0, 2 Den]``, so the dividend is non-negative and no sign correction is needed.

If both sides are driven (the golden model rejects it)
the BL side wins; if neither is, every line settles to 0.

RPU update (the ``rpu_*`` ports, the stochastic-translator bank's pulses): a deterministic
constant-step cell. Every pulse slot (``rpu_valid``) moves each cell whose row and column
both pulse by ``rpu_step`` codes, up if ``rpu_up`` else down, clamped to
``[0, 2**g_bits - 1]`` (the clamp of the programming path). One block-RAM write port
cannot change a whole outer product in one clock, so the slots that hold a coincidence are
queued (one slot memory word per slot: row pulses, column pulses, up) and applied one array
row per clock, ``rows + 2`` clocks per queued slot, starting while the stream still runs.
``hold`` stays high until the queue is empty: the core's RPU update waits for it before
``done``, so no command sees a half-updated array. A queue holds one update: at most
``4 * bl_max`` slots (``rpu_slots``).
"""

from __future__ import annotations

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import (
    AnalogSignature,
    Drive,
    NeuronInput,
    Phase,
    corelet_sl_line,
    lines,
    require_config,
)

__all__ = ["AnalogMacro", "CHARGE_FRAC_BITS", "LINE_BITS", "wl_pulse_cycles", "macro_resources",
           "rpu_slots"]

CHARGE_FRAC_BITS = 24
"""One charge unit is C_s V_read / 2**24 (golden ``neuron.CHARGE_FRAC_BITS``)."""
LINE_BITS = CHARGE_FRAC_BITS + 2
"""Signed width of a settled line value in [-2**24, 2**24]; also the quotient width."""


def wl_pulse_cycles(config: CoreConfig) -> int:
    """Clocks one WL_PULSE occupies: its own clock, then ``rows + 27`` IDLE words."""
    return config.rows + 2 + LINE_BITS


def rpu_slots(config: CoreConfig) -> int:
    """Depth of the RPU slot queue: the most slots of one update (four phases of bl_max)."""
    return 4 * config.bl_max


def _den_bits(config: CoreConfig, g_bits: int) -> int:
    return g_bits + (config.rows - 1).bit_length()


def macro_resources(config: CoreConfig, g_bits: int = 16, charge_bits: int = 36,
                    offset_bits: int = 0) -> dict:
    """Estimate: block RAM bits and flip-flops of an `AnalogMacro`."""
    n, d = config.rows, _den_bits(config, g_bits)
    per_line = (d + 1) + d + LINE_BITS + 1 + 2  # P/remainder, Den, value/quotient, Den=0, code
    per_neuron = LINE_BITS + charge_bits + 1 + offset_bits  # sample, integrator, cmp, offset
    ctrl = n + 1 + 2 * max(n, LINE_BITS).bit_length() + g_bits + 4  # wl, side, cnt, col, fsm
    slots = rpu_slots(config)
    slot_word = config.rows + config.cols + 1
    # RPU queue: read register of one slot word, two pointers, row counter, fsm
    rpu = slot_word + 2 * slots.bit_length() + max(n - 1, 1).bit_length() + 2
    return {
        "memory_bits": config.rows * config.cols * g_bits,
        "memory_shape": (config.rows, config.cols * g_bits),
        "rpu_slot_bits": slots * slot_word,
        "rpu_slot_shape": (slots, slot_word),
        "flops": n * per_line + n * per_neuron + ctrl + rpu,
    }


def _tree(terms):
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
    return terms[0]


class AnalogMacro(wiring.Component):
    """Array + neurons of one core as synchronous logic; see the module docstring.

    Ports: ``analog`` (``AnalogSignature``, flipped: the control word in, ``cmp`` and
    ``hold`` out); ``noise_bits`` rows (INJECT noise bit of neuron n); bias codes
    ``d_units``, ``inject_units``, ``clip_units`` (charge units, charge_bits-1 each);
    conductance port ``g_we``, ``g_re``, ``g_row``, ``g_col``, ``g_wdata``, ``g_rdata``
    (cell (g_row, g_col) the cycle after ``g_re``); debug ``dbg_nrn`` -> ``dbg_charge``
    (integrator charge of that neuron); RPU pulses ``rpu_valid``, ``rpu_up``,
    ``row_pulse``, ``col_pulse`` and the step per coincidence ``rpu_step`` (codes).

    ``offset_bits`` > 0 adds static per-neuron comparator offsets (golden ``offsets``, charge
    units, signed ``offset_bits``): every comparison is ``q_integ + offset > 0``; port
    ``off_we``, ``off_nrn``, ``off_wdata`` writes neuron ``off_nrn``'s offset (reset 0).
    """

    def __init__(self, config: CoreConfig, *, g_bits: int = 16, charge_bits: int = 36,
                 offset_bits: int = 0):
        require_config(self, config)
        if not 4 <= g_bits <= 24:
            raise ValueError(f"g_bits = {g_bits} is out of range [4, 24]")
        if not LINE_BITS + 2 <= charge_bits <= 48:
            raise ValueError(f"charge_bits = {charge_bits} is out of range [{LINE_BITS + 2}, 48]")
        if not 0 <= offset_bits <= charge_bits - 1:
            raise ValueError(f"offset_bits = {offset_bits} is out of range [0, {charge_bits - 1}]")
        self._config, self._g_bits, self._charge_bits = config, g_bits, charge_bits
        self._offset_bits = offset_bits
        rows, cols = config.rows, config.cols
        offset_ports = {
            "off_we": In(1),
            "off_nrn": In(range(max(rows, 2))),
            "off_wdata": In(signed(offset_bits)),
        } if offset_bits else {}
        super().__init__({
            "analog": In(AnalogSignature(rows, cols)),
            "noise_bits": In(rows),
            "d_units": In(charge_bits - 1),
            "inject_units": In(charge_bits - 1),
            "clip_units": In(charge_bits - 1, init=(1 << (charge_bits - 1)) - 1),
            "g_we": In(1),
            "g_re": In(1),
            "g_row": In(range(max(rows, 2))),
            "g_col": In(range(max(cols, 2))),
            "g_wdata": In(g_bits),
            "g_rdata": Out(g_bits),
            "dbg_nrn": In(range(max(rows, 2))),
            "dbg_charge": Out(signed(charge_bits)),
            "rpu_valid": In(1),
            "rpu_up": In(1),
            "row_pulse": In(rows),
            "col_pulse": In(cols),
            "rpu_step": In(g_bits),
            **offset_ports,
        })

    @property
    def config(self) -> CoreConfig:
        return self._config

    @property
    def g_bits(self) -> int:
        return self._g_bits

    @property
    def charge_bits(self) -> int:
        return self._charge_bits

    @property
    def offset_bits(self) -> int:
        return self._offset_bits

    def elaborate(self, platform):
        cfg, gb, qb = self._config, self._g_bits, self._charge_bits
        n = cfg.rows  # lines per side == neurons
        ana = self.analog
        m = Module()

        # ---------------------------------------------------------------- array memory
        m.submodules.mem = mem = Memory(shape=n * gb, depth=n, init=[])
        wr = mem.write_port(granularity=gb)
        rd = mem.read_port()
        g = lines(m, rd.data, n, gb, "g")
        col_q = Signal.like(self.g_col)
        with m.If(self.g_re):
            m.d.sync += col_q.eq(self.g_col)
        m.d.comb += self.g_rdata.eq(Array(g[k] for k in range(n))[col_q])

        # ---------------------------------------------------------------- split control word
        drv_bl = lines(m, ana.drv_bl, n, 2, "drv_bl")
        drv_sl = lines(m, ana.drv_sl, n, 2, "drv_sl")
        dec_en = lines(m, ana.dec_en, n, 1, "dec_en")
        lfsr = lines(m, self.noise_bits, n, 1, "lfsr")
        phase = Signal(Phase)  # every word is executed: the engine sends IDLE after a hold
        m.d.comb += phase.eq(ana.phase)

        # ---------------------------------------------------------------- line state
        db = _den_bits(cfg, gb)
        ab = db + 1  # P = N + Den <= 2 Den; the division remainder (shifted) as well
        acc_p = [Signal(ab, name=f"acc_p{k}") for k in range(n)]
        acc_d = [Signal(db, name=f"acc_d{k}") for k in range(n)]
        val = [Signal(signed(LINE_BITS), name=f"val{k}") for k in range(n)]
        dz = [Signal(name=f"dz{k}") for k in range(n)]
        ins = [Signal(Drive, name=f"ins{k}") for k in range(n)]  # driver code of the input side
        side_bl = Signal()  # 1: outputs on the BLs (backward), 0: outputs on the SLs
        wl = Signal(n)
        cnt = Signal(range(max(n, LINE_BITS) + 1))

        row_code = Signal(Drive)
        row_wl = Signal()
        m.d.comb += [row_code.eq(Array(ins)[cnt]), row_wl.eq(wl.bit_select(cnt, 1))]
        row_act = Signal()
        m.d.comb += row_act.eq(row_wl & (row_code != Drive.OFF))

        last_div = Signal()
        m.d.comb += [rd.en.eq(self.g_re), rd.addr.eq(self.g_row)]

        # ---------------------------------------------------------------- RPU queue
        # (overrides the read port in its states; the core issues no MVM or PROGRAM while
        # an update runs, and the queue holds ``hold`` until it has written every slot)
        apply_we, apply_row, apply_data, apply_en = self._rpu_queue(m, g, rd)
        m.d.comb += [
            wr.addr.eq(Mux(apply_we, apply_row, self.g_row)),
            wr.data.eq(Mux(apply_we, apply_data, Cat(*([self.g_wdata] * n)))),
            wr.en.eq(Mux(apply_we, apply_en,
                         Cat(*(self.g_we & (self.g_col == k) for k in range(n))))),
        ]

        with m.FSM(name="pulse"):
            with m.State("IDLE"):
                with m.If(phase == Phase.WL_PULSE):
                    m.d.comb += [rd.en.eq(1), rd.addr.eq(0), ana.hold.eq(1)]
                    bl_any = ana.drv_bl != 0
                    m.d.sync += [side_bl.eq(~bl_any), wl.eq(ana.wl_en), cnt.eq(0)]
                    for k in range(n):
                        m.d.sync += [ins[k].eq(Mux(bl_any, drv_bl[k], drv_sl[k])),
                                     acc_p[k].eq(0), acc_d[k].eq(0)]
                    m.next = "STREAM"
            with m.State("STREAM"):
                m.d.comb += [ana.hold.eq(1), rd.en.eq(1), rd.addr.eq(cnt + 1)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == n - 1):
                    m.next = "INIT"
                with m.If(side_bl):
                    # backward: row cnt's cells summed over the driven SLs
                    tp = [Mux(ins[k] == Drive.HIGH, g[k] << 1,
                              Mux(ins[k] == Drive.REF, g[k], 0)) for k in range(n)]
                    td = [Mux(ins[k] != Drive.OFF, g[k], 0) for k in range(n)]
                    sum_p, sum_d = Signal(ab), Signal(db)
                    m.d.comb += [sum_p.eq(Mux(row_wl, _tree(tp), 0)),
                                 sum_d.eq(Mux(row_wl, _tree(td), 0))]
                    for k in range(n):
                        nxt_p = acc_p[k + 1] if k + 1 < n else sum_p
                        nxt_d = acc_d[k + 1] if k + 1 < n else sum_d
                        m.d.sync += [acc_p[k].eq(nxt_p), acc_d[k].eq(nxt_d)]
                with m.Else():
                    # forward: row cnt conducts into every SL accumulator
                    two = Signal()
                    one = Signal()
                    m.d.comb += [two.eq(row_act & (row_code == Drive.HIGH)),
                                 one.eq(row_act & (row_code == Drive.REF))]
                    for k in range(n):
                        m.d.sync += [
                            acc_p[k].eq(acc_p[k] + Mux(two, g[k] << 1, Mux(one, g[k], 0))),
                            acc_d[k].eq(acc_d[k] + Mux(row_act, g[k], 0)),
                        ]
            with m.State("INIT"):
                m.d.comb += ana.hold.eq(1)
                m.d.sync += cnt.eq(0)
                for k in range(n):
                    # dividend P * 2**24 = {P >> 2, P[1:0] << 24}
                    m.d.sync += [acc_p[k].eq(acc_p[k] >> 2),
                                 val[k].eq(Cat(C(0, CHARGE_FRAC_BITS), acc_p[k][:2])),
                                 dz[k].eq(acc_d[k] == 0)]
                m.next = "DIV"
            with m.State("DIV"):
                # hold asks for an IDLE word in the next clock: none after the last step
                m.d.comb += [last_div.eq(cnt == LINE_BITS - 1), ana.hold.eq(~last_div)]
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(last_div):
                    m.next = "IDLE"
                for k in range(n):
                    sh = Cat(val[k][-1], acc_p[k][:ab - 1])
                    diff = Signal(signed(ab + 1), name=f"diff{k}")
                    q_next = Signal(LINE_BITS, name=f"q_next{k}")
                    ge = ~diff[-1]
                    m.d.comb += [diff.eq(sh - acc_d[k]), q_next.eq(Cat(ge, val[k][:-1]))]
                    m.d.sync += acc_p[k].eq(Mux(ge, diff[:ab], sh))
                    with m.If(last_div):
                        m.d.sync += val[k].eq(
                            Mux(dz[k], 0, q_next - (1 << CHARGE_FRAC_BITS)))
                    with m.Else():
                        m.d.sync += val[k].eq(q_next)

        with m.If(phase == Phase.PRECHARGE):
            m.d.sync += [v.eq(0) for v in val] + [s.eq(Drive.OFF) for s in ins]

        # ---------------------------------------------------------------- neurons
        unit = 1 << CHARGE_FRAC_BITS

        def drive_value(code):
            return Mux(code == Drive.HIGH, unit, Mux(code == Drive.LOW, -unit, 0))

        # Values that change rarely are registers, so no neuron's adder sees a shifter or a
        # negation: the DECREMENT step of the DAC code set by the previous word (the DAC
        # settles for a clock, docs/cycle_interface.md), its negation, the injection step
        # and the swing bounds. The bias inputs are therefore seen one clock late.
        step = Signal(qb - 1)
        neg_step = Signal(signed(qb))
        inj = Signal(qb - 1)
        neg_inj = Signal(signed(qb))
        clip = Signal(qb - 1, init=(1 << (qb - 1)) - 1)
        neg_clip = Signal(signed(qb), init=-((1 << (qb - 1)) - 1))
        # -clip - 1, for "sum > clip" as the sign of sum + (-clip - 1)
        over_bias = Signal(signed(qb), init=-(1 << (qb - 1)))
        with m.If(phase != Phase.IDLE):
            shifted = self.d_units >> ana.dac_code
            m.d.sync += [step.eq(shifted), neg_step.eq(-shifted)]
        m.d.sync += [inj.eq(self.inject_units), neg_inj.eq(-self.inject_units),
                     clip.eq(self.clip_units), neg_clip.eq(-self.clip_units),
                     over_bias.eq(-self.clip_units - 1)]
        q_s = [Signal(signed(LINE_BITS), name=f"q_sample{k}") for k in range(n)]
        q_i = [Signal(signed(qb), name=f"q_integ{k}") for k in range(n)]
        cmp = [Signal(name=f"cmp{k}") for k in range(n)]
        positive = [Signal(name=f"positive{k}") for k in range(n)]  # comparator input > 0
        if self._offset_bits:
            off = [Signal(signed(self._offset_bits), name=f"offset{k}") for k in range(n)]
            for k in range(n):
                with m.If(self.off_we & (self.off_nrn == k)):
                    m.d.sync += off[k].eq(self.off_wdata)
                m.d.comb += positive[k].eq(q_i[k] > -off[k])
        else:
            m.d.comb += [positive[k].eq(q_i[k] > 0) for k in range(n)]
        is_int = phase == Phase.INTEGRATE
        is_inj = phase == Phase.INJECT
        sb = qb + 2  # |q_i + add + bias| < 3 * 2**(qb-1): qb + 2 signed bits hold it

        def csa_sign(a, b, c):
            """Sign of a + b + c with one carry chain: a carry-save stage, then one adder
            (the saturation tests run beside the integrator's adder, not after it)."""
            x, y, z = (Signal(sb, name=f"csa_in{i}") for i in range(3))
            m.d.comb += [x.eq(a), y.eq(b), z.eq(c)]
            total = Signal(sb)
            m.d.comb += total.eq((x ^ y ^ z) + Cat(C(0, 1), ((x & y) | (x & z) | (y & z))[:-1]))
            return total[-1]

        for k in range(n):
            sl = corelet_sl_line(cfg.corelet, k)  # neuron k senses BL k and this SL
            add = Signal(signed(qb), name=f"add{k}")
            tot = Signal(signed(qb + 1), name=f"tot{k}")
            sat = Signal(signed(qb), name=f"sat{k}")
            below_hi = csa_sign(q_i[k], add, over_bias)  # 1: q_i + add <= clip
            under = csa_sign(q_i[k], add, clip)  # 1: q_i + add < -clip
            m.d.comb += [
                add.eq(Mux(is_int, q_s[k], Mux(is_inj, Mux(lfsr[k], inj, neg_inj),
                                                 Mux(dec_en[k], Mux(cmp[k], neg_step, step), 0)))),
                tot.eq(q_i[k] + add),
                sat.eq(Mux(~below_hi, clip, Mux(under, neg_clip, tot))),
            ]
            with m.Switch(phase):
                with m.Case(Phase.PRECHARGE):
                    m.d.sync += [q_s[k].eq(0), q_i[k].eq(0), cmp[k].eq(0)]
                with m.Case(Phase.SAMPLE):
                    with m.If(ana.nrn_in == NeuronInput.SL):
                        m.d.sync += q_s[k].eq(Mux(side_bl, drive_value(ins[sl]), val[sl]))
                    with m.Elif(ana.nrn_in == NeuronInput.BL):
                        m.d.sync += q_s[k].eq(Mux(side_bl, val[k], drive_value(ins[k])))
                with m.Case(Phase.INTEGRATE):
                    m.d.sync += [q_i[k].eq(sat), q_s[k].eq(0)]
                with m.Case(Phase.INJECT):
                    m.d.sync += q_i[k].eq(sat)
                with m.Case(Phase.DECREMENT):
                    m.d.sync += q_i[k].eq(tot)
                with m.Case(Phase.COMPARE_SIGN, Phase.COMPARE):
                    m.d.sync += cmp[k].eq(positive[k])
        # cmp shows the comparison of a COMPARE_SIGN / COMPARE cycle within that cycle (the
        # engine samples it at the edge that ends it), the latched comparison otherwise
        is_cmp = (phase == Phase.COMPARE_SIGN) | (phase == Phase.COMPARE)
        m.d.comb += [
            ana.cmp.eq(Cat(*(Mux(is_cmp, positive[k], cmp[k]) for k in range(n)))),
            self.dbg_charge.eq(Array(q_i)[self.dbg_nrn]),
        ]
        return m

    def _rpu_queue(self, m, g, rd):
        """The RPU slot queue and its row-serial write-back (see the module docstring).

        Returns (write enable, row, row data, lane enables) for the array's write port.
        A slot is queued only if some row and some column pulse in it; the clamp is applied
        per coincidence, in slot order, as a device would see the pulses.
        """
        cfg, gb = self._config, self._g_bits
        rows, cols = cfg.rows, cfg.cols
        g_max = (1 << gb) - 1
        depth = rpu_slots(cfg)
        m.submodules.rpu_slots = smem = Memory(shape=rows + cols + 1, depth=depth, init=[])
        sw = smem.write_port()
        sr = smem.read_port()
        wp = Signal(range(depth + 1))
        rp = Signal(range(depth + 1))
        push = Signal()
        m.d.comb += [
            push.eq(self.rpu_valid & self.row_pulse.any() & self.col_pulse.any()),
            sw.en.eq(push), sw.addr.eq(wp),
            sw.data.eq(Cat(self.row_pulse, self.col_pulse, self.rpu_up)),
        ]
        # the slot being applied: the read port holds its word while ``en`` is low
        slot_rows = Signal(rows)
        slot_cols = lines(m, sr.data[rows:rows + cols], cols, 1, "slot_cols")
        slot_up = Signal()
        m.d.comb += [slot_rows.eq(sr.data[:rows]), slot_up.eq(sr.data[-1])]

        row = Signal(range(max(rows, 2)))
        we = Signal()
        last = Signal()
        hit = Signal()
        m.d.comb += [last.eq(row == rows - 1), hit.eq(slot_rows.bit_select(row, 1))]
        idle_empty = Signal()
        m.d.comb += sr.en.eq(0)  # a read port's enable resets to 1: hold the word by default
        with m.FSM(name="rpu_queue") as fsm:
            with m.State("IDLE"):
                with m.If(rp != wp):
                    m.d.comb += [sr.en.eq(1), sr.addr.eq(rp)]
                    m.next = "FETCH"
                with m.Else():
                    m.d.comb += idle_empty.eq(1)
            with m.State("FETCH"):  # the slot word is out: read array row 0
                m.d.comb += [rd.en.eq(1), rd.addr.eq(0)]
                m.d.sync += [rp.eq(rp + 1), row.eq(0)]
                m.next = "ROW"
            with m.State("ROW"):  # array row ``row`` is out: write it back, read the next
                m.d.comb += [we.eq(1), rd.en.eq(~last), rd.addr.eq(row + 1)]
                m.d.sync += row.eq(row + 1)
                with m.If(last):
                    m.next = "IDLE"
        with m.If(push):
            m.d.sync += wp.eq(wp + 1)
        with m.Elif(idle_empty):  # queue empty between updates: start the next one at 0
            m.d.sync += [wp.eq(0), rp.eq(0)]
        with m.If(~fsm.ongoing("IDLE") | (rp != wp)):
            m.d.comb += self.analog.hold.eq(1)

        step = self.rpu_step
        new = []
        for k in range(cols):
            up = Signal(gb + 1, name=f"rpu_up{k}")
            val = Signal(gb, name=f"rpu_g{k}")  # one lane of the write data
            m.d.comb += [up.eq(g[k] + step),
                         val.eq(Mux(slot_up, Mux(up > g_max, g_max, up[:gb]),
                                    Mux(g[k] < step, 0, (g[k] - step)[:gb])))]
            new.append(val)
        data = Signal(cols * gb)
        en = Signal(cols)
        m.d.comb += [data.eq(Cat(*new)),
                     en.eq(Cat(*(slot_cols[k] & hit for k in range(cols))))]
        return we, row, data, en
