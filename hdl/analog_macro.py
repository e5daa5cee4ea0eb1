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
* per neuron an integrator register of ``charge_bits`` = ``clip_bits + 2`` bits, saturated at
  ``+/-clip_units`` by INTEGRATE and INJECT (not by DECREMENT, as in the golden
  ``NeuronBank``); ``clip_units = 2**clip_bits - 1`` (`AnalogMacro.no_clip`) is "no swing
  limit". The widths come from the configuration (`clip_bits`): see "Integrator width".

Integrator width. A settled line is a weighted mean of the driver voltages, so one sample
is at most ``2**24`` units whatever ``rows`` and the conductance codes are (``|N| <= Den``).
An MVM integrates ``2**M - 1`` samples, ``M = input_pulses(config.input_bits)`` (the
controller refuses a larger ``in_m``), so its integrated charge is at most
``Q = (2**M - 1) * 2**24`` and ``clip_bits = Q.bit_length()`` (31 for 8-bit inputs): a
swing of ``2**clip_bits - 1 >= Q`` never clips the input's charge. INJECT saturates at the
swing. The bias codes are ``clip_units``, ``inject_units`` < ``2**clip_bits`` and ``d_units``
< ``2**(clip_bits - 1)`` (the converter's full scale ``2 d_units`` then reaches every
integrated charge; a larger V_decr only wastes codes). The decrements of one conversion add
less than ``2 d_units`` (binary ``d (2 - 2**(1-K))``, counting ``(2**K - 1) (d >> (K-1))``),
so the charge stays within ``clip + 2 d < 2**(clip_bits + 1)``: ``clip_bits + 2`` signed
bits hold every value exactly. With ``clip_units`` = ``no_clip`` the macro equals a golden
bank without a swing limit as long as injection keeps the golden charge within
``2**clip_bits - 1``.

Timing (the MvmEngine contract of docs/core_architecture.md): every control word is
executed in its clock. ``hold`` is a stall request: high in a clock, the engine sends the
IDLE word in the next clock and keeps its own word for later. It is high from the clock of
a WL_PULSE word through the last division step but one, so the engine's word register
takes it at the next edge. In the WL_PULSE word's clock ``hold`` is that word's phase
decode; in every other clock it is a register loaded one clock ahead (the pulse's and the
RPU queue's stall of the next clock), so the stall path is word -> ``hold`` -> word
register or register -> ``hold`` -> word register, with no state decode or compare.
``cmp`` is the comparator's output in every clock, ``q_integ + offset > 0`` for the charge
of that clock (a register's sign bit): in a COMPARE_SIGN / COMPARE clock that clock's
comparison, which the engine samples at the edge that ends it (it ignores ``cmp`` in
every other clock); the latched comparator bits (golden ``bank.cmp``) stay inside the
macro, for DECREMENT. The DECREMENT step is ``d_units >> dac_code`` of the word two
before it (the DAC settles for two clocks; IDLE words do not count): a register per group
of `NEURON_GROUP` neurons, loaded with the shift of every word that sets one of the group's
neuron flags (``nrn_flags``: not IDLE, WL_PULSE or READOUT, none of which comes right
before a COMPARE_SIGN, COMPARE or DECREMENT), which the COMPARE_SIGN / COMPARE word before
a DECREMENT (a COMPARE_SIGN, COMPARE or DECREMENT word in every sequence of the golden
``mvm_program``, as the macro assumes) loads into the sample register. The bias inputs
(``d_units``, ``inject_units``, ``clip_units``, ``rpu_step``) pass two registers
(`BIAS_STAGES`), so they are seen two clocks after they change, and must be set two clocks
before PRECHARGE (before an RPU update for ``rpu_step``) and stay constant through READOUT.
The neurons' second stages are one copy per group of `NEURON_GROUP` neurons (``group_copy``:
the step above, the injection code and the saturation bounds, loaded at the group's
PRECHARGE flag), so an MVM uses the codes of two clocks before its PRECHARGE.

WL_PULSE is the only multi-clock phase: ``rows + 28 + S`` clocks (`wl_pulse_cycles`; ``S =
stream_stages(rows)`` = ``max(tree_stages(rows), 1)``: the backward adder tree's pipeline
registers, 1 for 4 rows, 3 for 16, 5 for 64, 7 for 256, and at least the forward read
register's one clock), the WL_PULSE word's own clock followed by ``rows + 27 + S`` IDLE
words; the next word (SAMPLE) then sees the settled lines. Every other phase takes one
clock.

* clock 0: latch the driver codes of the driven side, ``wl_en`` and per-row forward flags
  (shift registers), read row 0;
* clocks 1..rows + S: one array row per clock (clock 1 clears the forward accumulators:
  no row is added in it). Forward (BLs driven): every SL j accumulates
  ``P_j += (s_i + 1) G_ij`` and ``Den_j += G_ij`` for a conducting row i, from a register
  of the row's read data (row i in clock i + 2: the block RAM's output drives a register
  beside it, not the 64 lines' adders across the die; the last S - 1 clocks add nothing).
  Backward (SLs driven): an adder tree, a register after every adder
  level but the last, sums row r's cells into ``P_r``, ``Den_r`` (0 if WL r is off) and shifts
  them into the accumulator chain S clocks later, so line r holds them after the last row;
* clock rows+S+1: set up the division; the next 26 clocks: 26 steps of a restoring
  division, one divider per line, all lines in parallel (a shared divider would cost
  ``rows`` times the clocks; per line it is one 25-bit subtractor and reuses the P and
  value registers as remainder and quotient):
  ``floor(2**24 N / Den) = floor(2**24 P / Den) - 2**24`` with ``P = N + Den`` in
  ``[0, 2 Den]``, so the dividend is non-negative and no sign correction is needed.

Line control. The lines' registers do not decode the pulse's state: each group of
``2**PULSE_GROUP_BITS`` lines has its own copy of the pulse's counter and state, and
registered flags, set one clock ahead, for every load of its lines (clear, add, shift,
INIT, division step, last step, PRECHARGE clear), so each load is a flip-flop's output with
local fan-out. PRECHARGE clears the values and driver codes in the clock after its word
(the WL_PULSE word, which reloads the driver codes, wins): every program follows PRECHARGE
with WL_PULSE, whose division writes every value before a SAMPLE reads it.

If both sides are driven (the golden model rejects it)
the BL side wins (the driver code a neuron samples is its line's BL code where that BL is
driven, else its SL code); if neither is, every line settles to 0.

RPU update (the ``rpu_*`` ports, the stochastic-translator bank's pulses): a deterministic
constant-step cell. Every pulse slot (``rpu_valid``) moves each cell whose row and column
both pulse by ``rpu_step`` codes, up if ``rpu_up`` else down, clamped to
``[0, 2**g_bits - 1]`` (the clamp of the programming path). One block-RAM write port
cannot change a whole outer product in one clock, so the slots that hold a coincidence are
queued one clock after its pulse (one slot memory word per slot: row pulses, column pulses,
up; the inputs are registered first) and applied one array
row per clock, ``rows + 2`` clocks per queued slot, starting while the stream still runs.
``hold`` is high in the clock after every slot (``rpu_valid``, with or without a
coincidence) and stays high until the queue is empty: the core's RPU update waits for it
before ``done``, so no command sees a half-updated array. A queue holds one update: at most
``4 * bl_max`` slots (``rpu_slots``).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Array, C, Cat, Module, Mux, Signal, signed
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig, input_pulses

from .interfaces import (
    NEURON_GROUP,
    AnalogSignature,
    ConfiguredComponent,
    Drive,
    NeuronFlag,
    Phase,
    corelet_sl_line,
    group_copy,
    lines,
    neuron_groups,
)

__all__ = ["AnalogMacro", "BIAS_STAGES", "CHARGE_FRAC_BITS", "LINE_BITS", "wl_pulse_cycles",
           "tree_stages", "stream_stages", "clip_bits", "charge_bits", "no_clip",
           "macro_resources", "rpu_slots", "lane_operand", "saturating_lanes", "G_READ_CLOCKS",
           "read_group", "PULSE_GROUP_BITS"]

CHARGE_FRAC_BITS = 24
"""One charge unit is C_s V_read / 2**24 (golden ``neuron.CHARGE_FRAC_BITS``)."""
LINE_BITS = CHARGE_FRAC_BITS + 2
"""Signed width of a settled line value in [-2**24, 2**24]; also the quotient width."""


def tree_stages(rows: int) -> int:
    """Pipeline registers of the backward adder tree: one after every adder level but the
    last (one adder level per clock)."""
    return max((rows - 1).bit_length() - 1, 0)


def stream_stages(rows: int) -> int:
    """Clocks of a WL_PULSE's row stream after its last row is read: the backward tree's
    pipeline (`tree_stages`), at least the one clock of the forward read register."""
    return max(tree_stages(rows), 1)


def wl_pulse_cycles(config: CoreConfig) -> int:
    """Clocks one WL_PULSE occupies: its own clock, then ``rows + 27 + stream_stages(rows)``
    IDLE words."""
    return config.rows + 2 + LINE_BITS + stream_stages(config.rows)


def clip_bits(config: CoreConfig) -> int:
    """Width of the swing and injection codes: the largest integrated charge of an MVM,
    ``(2**M - 1) * 2**24`` with ``M = input_pulses(config.input_bits)``, is below
    ``2**clip_bits`` (module docstring, "Integrator width"); ``d_units`` has one bit less."""
    return (((1 << input_pulses(config.input_bits)) - 1) << CHARGE_FRAC_BITS).bit_length()


def charge_bits(config: CoreConfig) -> int:
    """Signed width of a neuron's integrator: ``clip_bits + 2`` holds ``clip + 2 d_units``."""
    return clip_bits(config) + 2


def no_clip(config: CoreConfig) -> int:
    """``clip_units`` for "no swing limit": the largest code, above every integrated charge."""
    return (1 << clip_bits(config)) - 1


def lane_operand(amount, up, bits: int):
    """The operand of `saturating_lanes`: ``amount`` if ``up``, else ``2**bits - amount``
    (``bits + 1`` wide; ``amount`` < 2**bits). A caller whose direction and amount are known
    a clock ahead keeps it in a register, so no mux sits in front of the lanes' adders."""
    return Mux(up, amount, (1 << bits) - amount)[:bits + 1]


def saturating_lanes(m: Module, codes, operand, up, bits: int, name: str, *, other=None,
                     use_other=None) -> list[Signal]:
    """Every code in ``codes`` plus ``amount`` if ``up`` else minus it, clamped to
    [0, 2**bits - 1] (``amount`` < 2**bits, ``operand`` = `lane_operand` of it): the cell's
    conductance-code clamp, for the RPU queue's lanes and the programming pulse's single
    lane (hdl/core_fpga.py). One adder per lane, ``code + operand``, no carry-in: bit
    ``bits`` of the sum is the overflow when ``up`` and "no borrow" otherwise
    (``code + 2**bits - amount``), so the clamp is that bit compared with ``up``, not a
    comparator (tests/test_hdl_analog_macro.py checks it against the closed form).

    With ``other`` (``bits`` wide), every lane is ``other`` in a clock with ``use_other``
    high (the array's write data: a programming code or the RPU results). The choice is
    folded into the clamp: per lane two flags (clamp to all ones; pass the sum), and
    ``other`` masked once for all lanes, so each result bit is a function of four signals
    (one LUT4) instead of a clamp mux followed by a select mux."""
    if other is None:
        other, use_other = C(0, bits), C(0, 1)
    oth = Signal(bits, name=f"{name}_other")
    m.d.comb += oth.eq(Mux(use_other, other, 0))
    out = []
    for k, code in enumerate(codes):
        s = Signal(bits + 1, name=f"{name}{k}_sum")
        sat, ones, keep = (Signal(name=f"{name}{k}_{x}") for x in ("sat", "ones", "keep"))
        o = Signal(bits, name=f"{name}{k}")
        m.d.comb += [s.eq(code + operand),
                     sat.eq(s[bits] == up),
                     ones.eq(~use_other & sat & up),
                     keep.eq(~use_other & ~sat),
                     o.eq(oth | Mux(keep, s[:bits], 0) | Mux(ones, (1 << bits) - 1, 0))]
        out.append(o)
    return out


G_READ_CLOCKS = 2
"""``g_rdata`` is the cell of a ``g_re`` this many clocks later: the block RAM's read, then
the register after the programming read's first multiplexer level (`read_group`)."""


def read_group(cols: int) -> int:
    """Columns per first-level group of the programming read: ``2**ceil(log2(cols) / 2)``,
    about the square root of ``cols`` (2 at 4 columns, 4 at 16, 8 at 64, 16 at 256).
    A 64:1 multiplexer of 16-bit cells gathers every block-RAM read bit into one place;
    with a register after the first level each group's part is placed by its block RAMs
    and only ``cols / read_group`` registers of ``g_bits`` travel to the second level
    (docs/fpga.md, branch wt-cfm3)."""
    return 1 << (((cols - 1).bit_length() + 1) // 2)


def rpu_slots(config: CoreConfig) -> int:
    """Depth of the RPU slot queue: the most slots of one update (four phases of bl_max)."""
    return 4 * config.bl_max


def _den_bits(config: CoreConfig, g_bits: int) -> int:
    return g_bits + (config.rows - 1).bit_length()


PULSE_GROUP_BITS = 2
"""Lines per copy of the pulse's line control (``2**PULSE_GROUP_BITS`` = 4): each group has
its own copy of the pulse's counter and state and registered load flags for its lines'
accumulators, values and driver codes (`AnalogMacro._line_control`). A line holds about 75
flip-flops under those flags (two accumulators, its value, ``dz``, ``ins``), against one to
a few bits per line behind a ``LINE_GROUP_BITS`` copy elsewhere, so a group of 4 lines gives
a flag about as many loads (300) as a 16-line copy of a 16-bit register file word. Until
then one FSM decode drove every line's clock enables, a net across the die (docs/fpga.md,
branch wt-lines)."""


def macro_resources(config: CoreConfig, g_bits: int = 16, offset_bits: int = 0) -> dict:
    """Estimate: block RAM bits and flip-flops of an `AnalogMacro`."""
    n, d = config.rows, _den_bits(config, g_bits)
    cb = clip_bits(config)
    per_line = (d + 1) + d + LINE_BITS + 1 + 2  # P/remainder, Den, value/quotient, Den=0, code
    # sample / operand (also +/-inject), integrator (+ offset - 1), cmp, offset
    # (saturation: no register)
    per_neuron = max(cb + 1, LINE_BITS) + (cb + 3) + 1 + offset_bits
    # row flags, side, ...
    ctrl = 4 * n + 1 + 2 * max(n, LINE_BITS).bit_length() + g_bits + 4
    # the bias codes' first stages (d_units, inject_units, clip - 1 and -clip - 1) and,
    # per neuron group, their second stages: the saturation bounds (`lim_hi`, `lim_lo`:
    # integrator width, cb + 3 bits each), the DECREMENT step (sample width) and the
    # injection code (cb + 1); and the group's copy of the side (`nrn_side`)
    sw = max(cb + 1, LINE_BITS)
    bias = (cb - 1) + (cb + 1) + 2 * (cb + 3) \
        + neuron_groups(n) * (2 * (cb + 3) + sw + cb + 1 + 1)
    # the backward tree's pipeline registers (P and Den terms, one WL bit per stage)
    count, level, tree = n, 0, tree_stages(n)
    while count > 1:
        count, level = (count + 1) // 2, level + 1
        if count > 1:
            tree += count * ((g_bits + 1 + level) + (g_bits + level))
    slots = rpu_slots(config)
    slot_word = config.rows + config.cols + 1
    # RPU queue: input, prefetch (`slot_next`), bypass and applied registers of one slot
    # word, push, bypass flag, two pointers, row counter, fsm
    rpu = 4 * slot_word + 2 + 2 * slots.bit_length() + max(n - 1, 1).bit_length() + 2
    # the forward read register (one row) and the programming read's group registers,
    # their read flag and the column of both stages
    cols = config.cols
    reads = cols * g_bits + (-(-cols // read_group(cols))) * g_bits + 1 \
        + 2 * max(cols - 1, 1).bit_length()
    # per line group (`PULSE_GROUP_BITS`): the pulse's counter, three states, the side,
    # seven load flags and the three forward term flags
    groups = -(-n // (1 << PULSE_GROUP_BITS))
    control = groups * (max(n + stream_stages(n), LINE_BITS).bit_length() + 14)
    # the stream's read address (`rd_next`, the pulse counter's width)
    control += max(n + stream_stages(n), LINE_BITS).bit_length()
    return {
        "memory_bits": config.rows * config.cols * g_bits,
        "memory_shape": (config.rows, config.cols * g_bits),
        "rpu_slot_bits": slots * slot_word,
        "rpu_slot_shape": (slots, slot_word),
        "flops": n * per_line + n * per_neuron + ctrl + bias + tree + rpu + reads + control,
    }


BIAS_STAGES = 2
"""Registers between a bias input (``d_units``, ``inject_units``, ``clip_units``,
``rpu_step``) and its use: a change is seen ``BIAS_STAGES`` clocks later."""


def _bias_stage(m, port, name):
    """The first register of a bias input (same width and reset value as the port)."""
    reg = Signal.like(port, name=name)
    m.d.sync += reg.eq(port)
    return reg


def _tree(m, terms, name):
    """Sum of ``terms`` with a register after every adder level but the last
    (`tree_stages`)."""
    level = 0
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i]
                 for i in range(0, len(terms), 2)]
        level += 1
        if len(terms) > 1:
            regs = [Signal(len(t), name=f"{name}_l{level}_{i}") for i, t in enumerate(terms)]
            m.d.sync += [r.eq(t) for r, t in zip(regs, terms, strict=True)]
            terms = regs
    return terms[0]


class AnalogMacro(ConfiguredComponent):
    """Array + neurons of one core as synchronous logic; see the module docstring.

    Ports: ``analog`` (``AnalogSignature``, flipped: the control word in, ``cmp`` and
    ``hold`` out; the neurons act on its ``nrn_flags``, the word's phase decoded per group
    of `NEURON_GROUP` neurons, the array and lines on ``phase``); ``noise_bits`` rows
    (INJECT noise bit of neuron n); bias codes
    ``d_units`` (``clip_bits - 1`` bits), ``inject_units``, ``clip_units`` (``clip_bits``
    each; charge units);
    conductance port ``g_we``, ``g_re``, ``g_row``, ``g_col``, ``g_wdata``, ``g_rdata``
    (cell (g_row, g_col) of the last ``g_re``, `G_READ_CLOCKS` clocks after it); debug
    ``dbg_nrn`` -> ``dbg_charge``
    (integrator charge of that neuron); RPU pulses ``rpu_valid``, ``rpu_up``,
    ``row_pulse``, ``col_pulse`` and the step per coincidence ``rpu_step`` (codes).

    ``offset_bits`` > 0 adds static per-neuron comparator offsets (golden ``offsets``, charge
    units, signed ``offset_bits``): every comparison is ``q_integ + offset > 0``; port
    ``off_we``, ``off_nrn``, ``off_wdata`` writes neuron ``off_nrn``'s offset (reset 0).
    """

    def __init__(self, config: CoreConfig, *, g_bits: int = 16, offset_bits: int = 0):
        self._take_config(config)
        if not 4 <= g_bits <= 24:
            raise ValueError(f"g_bits = {g_bits} is out of range [4, 24]")
        cb = clip_bits(config)
        if not 0 <= offset_bits <= cb:
            raise ValueError(f"offset_bits = {offset_bits} is out of range [0, {cb}]")
        self._g_bits, self._clip_bits = g_bits, cb
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
            "d_units": In(cb - 1),
            "inject_units": In(cb),
            "clip_units": In(cb, init=(1 << cb) - 1),
            "g_we": In(1),
            "g_re": In(1),
            "g_row": In(range(max(rows, 2))),
            "g_col": In(range(max(cols, 2))),
            "g_wdata": In(g_bits),
            "g_rdata": Out(g_bits),
            "dbg_nrn": In(range(max(rows, 2))),
            "dbg_charge": Out(signed(cb + 2)),
            "rpu_valid": In(1),
            "rpu_up": In(1),
            "row_pulse": In(rows),
            "col_pulse": In(cols),
            "rpu_step": In(g_bits),
            **offset_ports,
        })

    @property
    def g_bits(self) -> int:
        return self._g_bits

    @property
    def clip_bits(self) -> int:
        return self._clip_bits

    @property
    def charge_bits(self) -> int:
        return self._clip_bits + 2

    @property
    def offset_bits(self) -> int:
        return self._offset_bits

    def elaborate(self, platform):
        cfg, gb, cb = self._config, self._g_bits, self._clip_bits
        n = cfg.rows  # lines per side == neurons
        ana = self.analog
        m = Module()

        # ---------------------------------------------------------------- array memory
        m.submodules.mem = mem = Memory(shape=n * gb, depth=n, init=[])
        wr = mem.write_port(granularity=gb)
        rd = mem.read_port()
        g = lines(m, rd.data, n, gb, "g")
        self._read_back(m, g)

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
        # the line registers are reset-less: every pulse clears or loads them before they
        # are read (the forward clear, the backward shift of every line, INIT, DIV)
        acc_p = [Signal(ab, name=f"acc_p{k}", reset_less=True) for k in range(n)]
        acc_d = [Signal(db, name=f"acc_d{k}", reset_less=True) for k in range(n)]
        val = [Signal(signed(LINE_BITS), name=f"val{k}", reset_less=True) for k in range(n)]
        dz = [Signal(name=f"dz{k}", reset_less=True) for k in range(n)]
        # driver code of the input side
        ins = [Signal(Drive, name=f"ins{k}", reset_less=True) for k in range(n)]
        side_bl = Signal()  # 1: outputs on the BLs (backward), 0: outputs on the SLs
        stages = tree_stages(n)  # the backward tree's pipeline
        extra = stream_stages(n)  # the stream's clocks after its last row
        cnt = Signal(range(max(n + extra, LINE_BITS) + 1))
        # the stream's read address, ``cnt + 1`` in every STREAM clock, kept as a register
        # of its own (1 at the WL_PULSE word, stepped with ``cnt``): no carry chain and no
        # counter enable between the word's phase and the array's read address
        rd_next = Signal.like(cnt, name="rd_next")
        # per-row flags of the pulse, shift registers (row cnt's at bit 0 while streaming):
        # WL on, and forward conducting with s + 1 = 2 / 1 / any
        r_wl, r_two, r_one, r_act = (Signal(n, name=f"row_{x}") for x in
                                     ("wl", "two", "one", "act"))
        # the forward read register: the previous clock's row (its flags are the line
        # groups' copies, `_line_control`)
        g_fwd = [Signal(gb, name=f"g_fwd{k}") for k in range(n)]
        m.d.sync += [r.eq(x) for r, x in zip(g_fwd, g, strict=True)]

        m.d.comb += rd.addr.eq(self.g_row)
        # ``hold`` is the WL_PULSE word's decode in the idle pulse, or a register:
        # ``hold_q`` is loaded with the hold of the next clock (``pulse_hold`` for the
        # states of the pulse below, ``rpu_hold`` for the RPU queue), so the engine's stall
        # path starts at a register or at the word register
        pulse_hold = Signal()  # the pulse's stall in the next clock
        hold_q = Signal()

        # ---------------------------------------------------------------- RPU queue
        # (sets the read address in its states; the core issues no MVM or PROGRAM while
        # an update runs, and the queue holds ``hold`` until it has written every slot)
        apply_we, apply_row, apply_data, apply_en, rpu_hold = self._rpu_queue(m, g, rd)
        # the array's read port reads in every clock: no reader needs its data held. The
        # programming read registers them only in the clock after a ``g_re``, the stream
        # and the queue use each row in the clock after its read. So no word decode or
        # state reaches a read enable
        m.d.comb += rd.en.eq(1)
        m.d.comb += [
            wr.addr.eq(Mux(apply_we, apply_row, self.g_row)),
            wr.data.eq(apply_data),  # the programming code outside the queue's writes
            wr.en.eq(Mux(apply_we, apply_en,
                         Cat(*(self.g_we & (self.g_col == k) for k in range(n))))),
        ]

        # The pulse's sequencer: the array's read address, the row flags and ``hold``. The
        # line registers take their loads from the line groups' own copies of its state
        # (`_line_control`), not from this FSM.
        bl_any = Signal()  # the WL_PULSE word drives a BL: forward
        m.d.comb += bl_any.eq(ana.drv_bl != 0)
        with m.FSM(name="pulse") as pulse_fsm:
            with m.State("IDLE"):
                with m.If(phase == Phase.WL_PULSE):
                    m.d.comb += [rd.addr.eq(0), pulse_hold.eq(1)]
                    m.d.sync += [side_bl.eq(~bl_any), r_wl.eq(ana.wl_en), cnt.eq(0),
                                 rd_next.eq(1)]
                    for k in range(n):
                        # forward rows only: a driven BL (no ``bl_any``: with the BLs
                        # floating every flag is 0 anyway)
                        on, code = ana.wl_en[k], drv_bl[k]
                        m.d.sync += [r_two[k].eq(on & (code == Drive.HIGH)),
                                     r_one[k].eq(on & (code == Drive.REF)),
                                     r_act[k].eq(on & (code != Drive.OFF))]
                    m.next = "STREAM"
            with m.State("STREAM"):
                # rows + extra clocks: the backward tree's last sum leaves the pipeline,
                # the forward read register's last row is added
                m.d.comb += [pulse_hold.eq(1), rd.addr.eq(rd_next)]
                m.d.sync += [cnt.eq(cnt + 1), rd_next.eq(rd_next + 1),
                             r_wl.eq(r_wl >> 1), r_two.eq(r_two >> 1),
                             r_one.eq(r_one >> 1), r_act.eq(r_act >> 1)]
                with m.If(cnt == n + extra - 1):
                    m.next = "INIT"
            with m.State("INIT"):
                m.d.comb += pulse_hold.eq(1)  # DIV's first step holds
                m.d.sync += cnt.eq(0)
                m.next = "DIV"
            with m.State("DIV"):
                # hold asks for an IDLE word in the next clock: none after the last step
                m.d.comb += pulse_hold.eq(cnt < LINE_BITS - 2)
                m.d.sync += cnt.eq(cnt + 1)
                with m.If(cnt == LINE_BITS - 1):
                    m.next = "IDLE"

        # backward: row r's cells summed over the driven SLs by an adder tree that runs in
        # every clock (its registers need no enable: in STREAM clock c >= stages the tree's
        # output is row c - stages, read in the stream), with the row's WL bit beside it
        tp = [Mux(ins[k] == Drive.HIGH, g[k] << 1, Mux(ins[k] == Drive.REF, g[k], 0))
              for k in range(n)]
        td = [Mux(ins[k] != Drive.OFF, g[k], 0) for k in range(n)]
        wl_d = r_wl[0]
        for i in range(stages):
            nxt = Signal(name=f"tree_wl{i}")
            m.d.sync += nxt.eq(wl_d)
            wl_d = nxt
        sum_p, sum_d = Signal(ab), Signal(db)
        m.d.comb += [sum_p.eq(Mux(wl_d, _tree(m, tp, "tree_p"), 0)),
                     sum_d.eq(Mux(wl_d, _tree(m, td, "tree_d"), 0))]

        size = 1 << PULSE_GROUP_BITS
        for first in range(0, n, size):
            lc = self._line_control(m, first // size, phase, bl_any, (r_two, r_one, r_act))
            for k in range(first, min(first + size, n)):
                # the line's driven code: its BL's if driven, else its SL's (one side
                # is driven in every pulse; no ``bl_any`` net to every line)
                self._line(m, k, lc, (acc_p, acc_d, val, dz, ins), g_fwd, (sum_p, sum_d),
                           Mux(drv_bl[k] != Drive.OFF, drv_bl[k], drv_sl[k]))

        m.d.sync += hold_q.eq(pulse_hold | rpu_hold)
        m.d.comb += ana.hold.eq((pulse_fsm.ongoing("IDLE") & (phase == Phase.WL_PULSE))
                                | hold_q)

        # ---------------------------------------------------------------- neurons
        # A neuron keeps its charge as the comparator's input minus one, qc = q_integ +
        # offset - 1, so the comparison q_integ + offset > 0 is the sign bit of a register
        # (no comparator between the integrator and the engine's converter logic). Every
        # clock is one adder with register operands: qc + operand + carry-in. The operand is
        # the sample register, which also holds the DECREMENT step: the COMPARE_SIGN /
        # COMPARE word before a DECREMENT (whose previous word carries the DECREMENT's
        # dac_code, so ``step`` is its shift) loads ~step or step for a comparison of 1
        # or 0 and the DECREMENT adds it with carry-in 1 or 0 (-step = ~step + 1), so
        # neither a shifter nor a negation sits in front of the adder. INJECT works the
        # same way, one word late: it adds what the sample register and cmp hold (as
        # INTEGRATE does) and loads inject_units, or ~inject_units with cmp 1 (lfsr bit 0:
        # -inject = ~inject + 1), which the next word adds: the engine's INTEGRATE after
        # the last INJECT (golden ``CycleCore``: INJECT charges C_sample). So the adder's
        # operand, carry-in and sign are always the same three registers, with no select
        # (and no strobe or LFSR net) in front of the adder.
        #
        # Saturation (INTEGRATE, INJECT) from the integrator's sum, with no register of its
        # own: the operand's sign is known at the start of the clock (the sample register's
        # sign bit), and from a charge within +/-clip a non-negative operand can only
        # cross +clip, a negative one only -clip. So one bound per neuron
        # and clock, picked by the sign beside the adder (bound = clip - 1 + offset or -clip
        # - 1 + offset, the saturated qc), and one carry chain after the adder, tot + ~bound
        # + neg, whose sign says tot < bound (neg) or tot > bound (not neg); the saturated
        # charge is the bound itself. The bounds are registers, one copy per group of
        # neurons (`lim_hi`, `lim_lo`, below), loaded at PRECHARGE and moved beyond every
        # charge by COMPARE_SIGN / COMPARE, so a DECREMENT takes the sum unsaturated, as
        # the golden bank does, with no phase in the saturation logic. (Until wt-cfm two
        # headroom registers per neuron, clip - q and clip + q, decided it in parallel with
        # the adder: a quarter of the medium design's area.)
        unit = 1 << CHARGE_FRAC_BITS
        qb = cb + 2  # integrator: |q| <= clip + 2 d < 2**(cb+1) (module docstring)
        # sample register (the adder's operand): a sample, +/-step - (0 or 1), or
        # +/-inject - (0 or 1)
        sw = max(cb + 1, LINE_BITS)

        def drive_value(code):
            return Mux(code == Drive.HIGH, unit, Mux(code == Drive.LOW, -unit, 0))

        # the bias codes change rarely: two registers each (`BIAS_STAGES`). The first stage
        # is the only load of the input (a bare top's pin), so the pins do not pull the
        # neurons. The second stage is one copy per group of `NEURON_GROUP` neurons
        # (``group_copy``), loaded at the group's own phase flags, so no register's net
        # reaches all neurons (nextpnr does not replicate drivers; docs/fpga.md, branch
        # wt-nb): ``inj{g}`` at PRECHARGE; ``step{g}`` (below) for d_units; ``lim_hi{g}``
        # and ``lim_lo{g}`` for clip_units. An MVM therefore uses the codes of two clocks
        # before its PRECHARGE, which the contract (constant from then through READOUT)
        # makes the same as the codes of every one of its clocks.
        d_in = _bias_stage(m, self.d_units, "d_in")
        inj_in = Signal(signed(cb + 1), name="inj_in")  # inject_units, one bit wider
        m.d.sync += inj_in.eq(self.inject_units)
        # clip - 1 and -clip - 1, the bounds of q_integ + offset - 1 (see lim_hi, lim_lo)
        clip_init = self.clip_units.init
        clip_hi = Signal(signed(qb + 1), init=clip_init - 1, name="clip_hi_in")
        clip_lo = Signal(signed(qb + 1), init=-clip_init - 1, name="clip_lo_in")
        m.d.sync += [clip_hi.eq(self.clip_units - 1), clip_lo.eq(-self.clip_units - 1)]
        # the DECREMENT step: d_units >> dac_code of the previous word with a neuron phase
        # (the DAC settles for two clocks: docs/cycle_interface.md). One shifter on the
        # first stage, and per group a register of it, loaded at every word that loads the
        # group's sample registers, so the word's dac_code and the shifter end at
        # flip-flops instead of fanning out to every neuron's sample register. (IDLE,
        # WL_PULSE and READOUT words do not load it; the word before a COMPARE_SIGN,
        # COMPARE or DECREMENT is always one of the others.) The copy cannot be a second
        # register behind a shared one: a DECREMENT's code is on the word two before it,
        # and the COMPARE before the DECREMENT loads the step, one clock after that word.
        shift = Signal(signed(sw), name="step_shift")
        m.d.comb += shift.eq(d_in >> ana.dac_code)
        flags = lines(m, ana.nrn_flags, neuron_groups(n), len(NeuronFlag), "nrn_flags")
        # the saturation bounds of q_integ + offset - 1, without the offset (registers):
        # clip - 1 and -clip - 1 from PRECHARGE to the first COMPARE_SIGN / COMPARE, then
        # (and from reset) beyond every charge, so DECREMENT and anything after a comparison
        # take the adder's sum unsaturated, as the golden bank does, with no phase or flag
        # in the saturation logic
        hi_free, lo_free = (1 << qb) - 1, -(1 << qb)
        # the pulse's side (``side_bl``) for the sample registers: one copy per group,
        # loaded in every word that sets none of the group's flags, so no register's net
        # reaches every neuron's sample mux. ``side_bl`` changes only at the edge after a
        # WL_PULSE word, and the word after that is IDLE (the pulse holds), so every copy
        # is current from that word's next edge, before any SAMPLE word
        side = []
        inj, step, lim_hi, lim_lo, any_flag = [], [], [], [], []
        for g in range(neuron_groups(n)):
            f = flags[g]
            pre, cmpf = f[NeuronFlag.PRECHARGE], f[NeuronFlag.COMPARE]
            anyf = Signal(name=f"nrn_any{g}")  # the word loads the group's sample registers
            m.d.comb += anyf.eq(f.any())
            any_flag.append(anyf)
            side.append(group_copy(m, f"nrn_side{g}", side_bl, ~anyf))
            inj.append(group_copy(m, f"inj{g}", inj_in, pre))
            step.append(group_copy(m, f"step{g}", shift, anyf))
            lim_hi.append(group_copy(m, f"lim_hi{g}", Mux(pre, clip_hi, hi_free), pre | cmpf,
                                     init=hi_free))
            lim_lo.append(group_copy(m, f"lim_lo{g}", Mux(pre, clip_lo, lo_free), pre | cmpf,
                                     init=lo_free))
        q_s = [Signal(signed(sw), name=f"q_sample{k}") for k in range(n)]
        # q_integ + offset - 1: |offset| <= 2**(cb-1), so qb + 1 signed bits
        qc = [Signal(signed(qb + 1), name=f"q_cmp{k}") for k in range(n)]
        cmp = [Signal(name=f"cmp{k}") for k in range(n)]
        positive = [Signal(name=f"positive{k}") for k in range(n)]  # comparator input > 0
        m.d.comb += [positive[k].eq(~qc[k][-1]) for k in range(n)]
        if self._offset_bits:
            off = [Signal(signed(self._offset_bits), name=f"offset{k}") for k in range(n)]
            for k in range(n):
                with m.If(self.off_we & (self.off_nrn == k)):
                    m.d.sync += off[k].eq(self.off_wdata)
        else:
            off = [C(0, signed(1))] * n
        # The carry-in is the latched cmp in every clock: 0 in every INTEGRATE and in the
        # first INJECT (PRECHARGE and INTEGRATE clear it), ~lfsr after an INJECT, and the
        # comparison after COMPARE_SIGN / COMPARE, which is what a DECREMENT needs (-step =
        # ~step + 1); in every other phase the sum is unused. So no word strobe or phase
        # reaches the adder's inputs.
        for k in range(n):
            sl = corelet_sl_line(cfg.corelet, k)  # neuron k senses BL k and this SL
            grp = k // NEURON_GROUP
            opd, cin = q_s[k], cmp[k]
            neg = Signal(name=f"opd_neg{k}")  # operand + cin <= 0 if set, >= 0 if not
            m.d.comb += neg.eq(q_s[k][-1])
            # x + operand + cin as one carry chain: (2x + 1 + 2 operand + cin) >> 1
            odd = Cat(cin, opd).as_signed()
            tot = Signal(signed(qb + 1), name=f"tot{k}")  # qc + operand + cin
            m.d.comb += tot.eq((Cat(C(1, 1), qc[k]).as_signed() + odd) >> 1)
            # the bound in the operand's direction, and tot - bound - 1 + neg as one chain
            # (carry-in neg): its sign says tot < bound (neg) or tot <= bound (not neg).
            # |tot| <= 2**qb, |bound| <= 2**qb + 2**(cb-1): qb + 3 signed bits hold it
            bound = Signal(signed(qb + 2), name=f"sat_bound{k}")
            past = Signal(signed(qb + 3), name=f"sat_diff{k}")
            sat = Signal(name=f"sat{k}")
            m.d.comb += [
                bound.eq(Mux(neg, lim_lo[grp], lim_hi[grp]) + off[k]),
                past.eq((Cat(C(1, 1), tot).as_signed() + Cat(neg, ~bound).as_signed()) >> 1),
                sat.eq(past[-1] == neg),
            ]
            q_next = Signal(signed(qb + 1), name=f"q_next{k}")
            m.d.comb += q_next.eq(Mux(sat, bound, tot))
            # the word's phase from the group's flags (one-hot registers of the engine's):
            # the sample register's next value as an OR of the flagged terms, with no phase
            # decode or priority chain in front of its load
            f = flags[grp]
            pre, smp_sl, smp_bl, integ, injf, dec, cmpf = (f[x] for x in NeuronFlag)
            sample = Mux(smp_sl, Mux(side[grp], drive_value(ins[sl]), val[sl]),
                         Mux(side[grp], val[k], drive_value(ins[k])))
            with m.If(any_flag[grp]):
                m.d.sync += q_s[k].eq(
                    Mux(smp_sl | smp_bl, sample, 0)
                    | Mux(injf, Mux(lfsr[k], inj[grp], ~inj[grp]), 0)
                    # DECREMENT: the next DECREMENT would repeat the code: reload for the
                    # latched cmp; COMPARE_SIGN / COMPARE: for this comparison
                    | Mux(dec, Mux(cmp[k], ~step[grp], step[grp]), 0)
                    | Mux(cmpf, Mux(positive[k], ~step[grp], step[grp]), 0))
            with m.If(pre):
                m.d.sync += qc[k].eq(off[k] - 1)
            with m.Elif(integ | injf | (dec & dec_en[k])):
                # DECREMENT is never saturated: see lim_hi, lim_lo
                m.d.sync += qc[k].eq(q_next)
            with m.If(pre | integ):
                m.d.sync += cmp[k].eq(0)
            with m.Elif(injf):
                m.d.sync += cmp[k].eq(~lfsr[k])
            with m.Elif(cmpf):
                m.d.sync += cmp[k].eq(positive[k])
        # cmp is the comparator's output in every clock, a register's sign bit: in a
        # COMPARE_SIGN / COMPARE clock that clock's comparison (the engine samples it at
        # the edge that ends it and ignores cmp in every other clock); the latched bits
        # stay here, for DECREMENT. No phase decode or mux sits between the integrator
        # and the engine's counters.
        m.d.comb += [
            ana.cmp.eq(Cat(*positive)),
            # q_integ = qc - offset + 1 (a debug port: the subtraction is off every path)
            self.dbg_charge.eq(Array(qc[k] - off[k] + 1 for k in range(n))[self.dbg_nrn]),
        ]
        return m

    def _line_control(self, m, j, phase, bl_any, row_flags):
        """Line group ``j``'s own copy of the pulse's state, and the loads of its line
        registers, each a register set one clock ahead (see `PULSE_GROUP_BITS`).

        The group's counter and state follow the pulse FSM of `elaborate` clock for clock
        (both start at the WL_PULSE word in IDLE), so every flag is computed from the
        group's own registers: the copies have their own D logic, not one shared net, and
        synthesis cannot merge them (no two copies have the same inputs). Only the word's
        phase and ``bl_any`` (the side, at the WL_PULSE word) come from outside the group.
        The forward term flags are copies of the row flags' bit 0 (`group_copy`, loaded in
        the group's STREAM clocks).
        """
        n = self._config.rows
        stages, extra = tree_stages(n), stream_stages(n)
        span = n + extra  # STREAM clocks
        cnt = Signal(range(max(span, LINE_BITS) + 1), name=f"lc{j}_cnt")
        stream, init, div = (Signal(name=f"lc{j}_{x}") for x in ("stream", "init", "div"))
        side = Signal(name=f"lc{j}_side")
        idle = ~(stream | init | div)
        start, pre_word = Signal(name=f"lc{j}_start"), Signal(name=f"lc{j}_pre_word")
        m.d.comb += [start.eq(idle & (phase == Phase.WL_PULSE)),
                     pre_word.eq(idle & (phase == Phase.PRECHARGE))]
        stream_end, div_end = cnt == span - 1, cnt == LINE_BITS - 1
        stream_next = start | (stream & ~stream_end)
        init_next = stream & stream_end
        div_next = init | (div & ~div_end)
        with m.If(start | init):
            m.d.sync += cnt.eq(0)
        with m.Elif(stream | div):
            m.d.sync += cnt.eq(cnt + 1)
        m.d.sync += [stream.eq(stream_next), init.eq(init_next), div.eq(div_next)]
        with m.If(start):
            m.d.sync += side.eq(~bl_any)
        # the next clock's STREAM count is 0 after ``start``, else cnt + 1: is it in the
        # backward shift window [stages, rows + stages)?
        win = C(1, 1) if stages <= 1 else (cnt >= stages - 1)
        if extra > stages:
            win = win & (cnt < n + stages - 1)
        win_next = Mux(start, stages == 0, win)
        # the side in the next clock; after ``start`` the forward clear (``clr``) overrides
        # every other load, so the side register is soon enough, except where the backward
        # window opens at once (no tree register: rows <= 2)
        side_next = Mux(start, ~bl_any, side) if stages == 0 else side
        shift = stream_next & (~side_next | win_next)  # STREAM: add (forward) or shift
        flags = {
            # the stream's first clock: forward accumulators cleared (the term is 0)
            "clr": start & bl_any if stages == 0 else start,
            "ce_p": shift | init_next | div_next,
            "ce_d": shift,
            "post": init_next | div_next,  # INIT or DIV: acc_p's select, val's load
            "sel0": div_next | (stream_next & side_next),  # DIV, or the backward shift
            "last": div & (cnt == LINE_BITS - 2),  # the last DIV step: val = quotient - 2**24
            "pre": pre_word,  # the clock after a PRECHARGE word: clear val, ins
        }
        out = {}
        for name, value in flags.items():
            reg = Signal(name=f"lc{j}_{name}")
            m.d.sync += reg.eq(value)
            out[name] = reg
        for name, flag in zip(("f_two", "f_one", "f_act"), row_flags, strict=True):
            out[name] = group_copy(m, f"lc{j}_{name}", flag[0], 0, stream, reset_less=True)
        return SimpleNamespace(start=start, side=side, init=init, **out)

    @staticmethod
    def _line(m, k, lc, regs, g_fwd, tail, code):
        """Line ``k``'s registers, loaded by its group's flags ``lc`` (`_line_control`):
        no state decode or count compare in front of them. ``regs`` = (acc_p, acc_d, val,
        dz, ins) of every line; ``tail`` = the backward tree's (P, Den) sums, shifted into
        the last line; ``code`` = the line's driver code at the WL_PULSE word."""
        acc_p, acc_d, val, dz, ins = regs
        n, ab = len(acc_p), len(acc_p[k])
        nxt_p, nxt_d = (acc_p[k + 1], acc_d[k + 1]) if k + 1 < n else tail
        # forward: the read register's row conducts into the SL (flags 0 outside its rows)
        add_p = acc_p[k] + Mux(lc.f_two, g_fwd[k] << 1, Mux(lc.f_one, g_fwd[k], 0))
        add_d = acc_d[k] + Mux(lc.f_act, g_fwd[k], 0)
        # one restoring-division step: remainder in acc_p, quotient shifting into val
        sh = Cat(val[k][-1], acc_p[k][:ab - 1])
        diff = Signal(signed(ab + 1), name=f"diff{k}")
        q_next = Signal(LINE_BITS, name=f"q_next{k}")
        ge = ~diff[-1]
        m.d.comb += [diff.eq(sh - acc_d[k]), q_next.eq(Cat(ge, val[k][:-1]))]
        with m.If(lc.clr):
            m.d.sync += [acc_p[k].eq(0), acc_d[k].eq(0)]
        with m.Else():
            with m.If(lc.ce_p):
                # INIT: dividend P * 2**24 = {P >> 2, P[1:0] << 24} (val takes P[1:0])
                m.d.sync += acc_p[k].eq(Mux(lc.post,
                                            Mux(lc.sel0, Mux(ge, diff[:ab], sh), acc_p[k] >> 2),
                                            Mux(lc.sel0, nxt_p, add_p)))
            with m.If(lc.ce_d):
                m.d.sync += acc_d[k].eq(Mux(lc.side, nxt_d, add_d))
        with m.If(lc.pre):
            m.d.sync += val[k].eq(0)
        with m.Elif(lc.post):
            last = Mux(dz[k], 0, q_next - (1 << CHARGE_FRAC_BITS))
            m.d.sync += val[k].eq(Mux(lc.init, Cat(C(0, CHARGE_FRAC_BITS), acc_p[k][:2]),
                                      Mux(lc.last, last, q_next)))
        with m.If(lc.init):
            m.d.sync += dz[k].eq(acc_d[k] == 0)
        with m.If(lc.start):
            m.d.sync += ins[k].eq(code)
        with m.Elif(lc.pre):
            m.d.sync += ins[k].eq(Drive.OFF)

    def _read_back(self, m, g):
        """The programming read ``g_rdata``: a ``read_group`` : 1 multiplexer per group of
        adjacent columns, registered, then one over the groups' registers (see
        `read_group`). The column of a read is kept through both stages, and both stages
        load only for a read, so ``g_rdata`` is the cell of the last ``g_re``,
        `G_READ_CLOCKS` clocks after it."""
        cols = self._config.cols
        size = read_group(cols)
        lo = (size - 1).bit_length()  # column bits that select within a group
        re1 = Signal()  # the read port's data are this clock's read's
        col1 = Signal.like(self.g_col)
        col2 = Signal(max(len(self.g_col) - lo, 1))
        m.d.sync += re1.eq(self.g_re)
        with m.If(self.g_re):
            m.d.sync += col1.eq(self.g_col)
        part = [Signal(self._g_bits, name=f"g_part{j}") for j in range(-(-cols // size))]
        with m.If(re1):
            m.d.sync += col2.eq(col1[lo:])
            for j, reg in enumerate(part):
                group = Array(g[k] for k in range(j * size, min(cols, (j + 1) * size)))
                m.d.sync += reg.eq(group[col1[:lo]] if lo else group[0])
        m.d.comb += self.g_rdata.eq(Array(part)[col2] if len(part) > 1 else part[0])

    def _rpu_queue(self, m, g, rd):
        """The RPU slot queue and its row-serial write-back (see the module docstring).

        Returns (write enable, row, write data, lane enables) for the array's write port and
        the queue's ``hold`` of the next clock; the write data are ``g_wdata`` in every lane
        outside the queue's writes (the programming path).
        A slot is queued only if some row and some column pulse in it; the clamp is applied
        per coincidence, in slot order, as a device would see the pulses.
        """
        cfg, gb = self._config, self._g_bits
        rows, cols = cfg.rows, cfg.cols
        depth = rpu_slots(cfg)
        m.submodules.rpu_slots = smem = Memory(shape=rows + cols + 1, depth=depth, init=[])
        sw = smem.write_port()
        # the slot memory is read at ``rp`` in every clock, and its read data go to a
        # register with no logic behind the block RAM (``slot_next``), which FETCH takes: a
        # block RAM's read data are slow out of their clock edge (5.8 ns on an ECP5), so
        # they must not meet the lanes' operand mux or the row shift register. The word
        # FETCH needs is the one read two clocks earlier: ``rp`` does not change in the two
        # clocks before a FETCH (FETCH follows IDLE; ``rp`` steps in FETCH, or returns to
        # 0 in an IDLE clock with nothing queued, which is then not followed by a FETCH),
        # and a slot pushed into an empty queue is written two clocks before its FETCH at
        # the earliest, into the address being read: a registered bypass (``byp``,
        # ``byp_word``) stands for the memory in that case. (A transparent read port is
        # emitted as a registered address and an asynchronous read, and synthesis then
        # merges ``slot_next`` into the block RAM as its output register: the read data
        # would again come straight out of the block RAM.)
        sr = smem.read_port()
        wp = Signal(range(depth + 1))
        rp = Signal(range(depth + 1))
        # the slot inputs registered first (the translators' comparisons feed them): a slot
        # is queued one clock after its pulse; ``hold`` covers that clock (below). Whether
        # it is queued (some row and some column pulse) is decided from those registers, so
        # the comparisons end at flip-flops, not behind an OR over every line
        push, slot_valid = Signal(), Signal()
        slot_in = Signal(rows + cols + 1)
        m.d.sync += [slot_valid.eq(self.rpu_valid),
                     slot_in.eq(Cat(self.row_pulse, self.col_pulse, self.rpu_up))]
        m.d.comb += push.eq(slot_valid & slot_in[:rows].any()
                            & slot_in[rows:rows + cols].any())
        m.d.comb += [sw.en.eq(push), sw.addr.eq(wp), sw.data.eq(slot_in),
                     sr.en.eq(1), sr.addr.eq(rp)]
        slot_next = Signal(rows + cols + 1)  # the slot word at ``rp``, two clocks late
        byp = Signal()  # the previous clock wrote the address it read
        byp_word = Signal(rows + cols + 1)  # the word written in the previous clock
        m.d.sync += [byp.eq(push & (wp == rp)), byp_word.eq(slot_in),
                     slot_next.eq(Mux(byp, byp_word, sr.data))]
        # the slot being applied, registered from the read port in FETCH (no slot memory
        # output in front of the array's write enables): its rows as a shift register whose
        # bit 0 is the row being written, its columns and its sign
        slot_rows = Signal(rows)
        slot_cols_q = Signal(cols)
        slot_cols = lines(m, slot_cols_q, cols, 1, "slot_cols")
        slot_up = Signal()
        # a bias code too: two registers. Both of the lanes' operands (`lane_operand` of
        # either direction) are second stages of their own, so the slot word's sign from the
        # slot memory (a block RAM's read data, slow out of its clock edge) picks one with a
        # single LUT per bit in FETCH, with no subtraction behind the read data
        step_in = _bias_stage(m, self.rpu_step, "rpu_step_in")
        opd_up = Signal(gb + 1)
        opd_down = Signal(gb + 1)
        m.d.sync += [opd_up.eq(lane_operand(step_in, 1, gb)),
                     opd_down.eq(lane_operand(step_in, 0, gb))]
        # the lanes' operand of the slot, a register loaded with ``slot_up`` (``rpu_step`` is
        # constant through an update): no direction mux in front of the lanes' adders
        slot_opd = Signal(gb + 1)
        row = Signal(range(max(rows, 2)))
        we = Signal()
        last = Signal()
        hit = Signal()
        m.d.comb += [last.eq(row == rows - 1), hit.eq(slot_rows[0])]
        idle_empty = Signal()
        # ``queued`` is the register rp != wp, loaded from the pointers' next values; the
        # queue's part of ``hold`` is returned as its next-clock value (the caller keeps it
        # in a register), so no pointer compare sits in front of the engine's stall. A push
        # always leaves a slot queued (rp <= wp, and the push moves wp past rp), so both
        # are ``push`` OR a compare of the pointers without the push (``rest``): the push,
        # decided late in the clock, is one OR gate before the registers
        rp_new, rp_step, wp_new = Signal.like(rp), Signal.like(rp), Signal.like(wp)
        queued, rest = Signal(), Signal()
        m.d.comb += [rp_step.eq(rp), rp_new.eq(rp_step), wp_new.eq(wp)]
        with m.FSM(name="rpu_queue") as fsm:
            with m.State("IDLE"):
                with m.If(queued):
                    m.next = "FETCH"
                with m.Else():
                    m.d.comb += idle_empty.eq(1)
            with m.State("FETCH"):  # take the slot word (``slot_next``), read array row 0
                m.d.comb += [rd.addr.eq(0), rp_step.eq(rp + 1)]
                m.d.sync += [row.eq(0), slot_rows.eq(slot_next[:rows]),
                             slot_cols_q.eq(slot_next[rows:rows + cols]),
                             slot_up.eq(slot_next[-1]),
                             slot_opd.eq(Mux(slot_next[-1], opd_up, opd_down))]
                m.next = "ROW"
            with m.State("ROW"):  # array row ``row`` is out: write it back, read the next
                m.d.comb += [we.eq(1), rd.addr.eq(row + 1)]
                m.d.sync += [row.eq(row + 1), slot_rows.eq(slot_rows >> 1)]
                with m.If(last):
                    m.next = "IDLE"
        with m.If(push):
            m.d.comb += wp_new.eq(wp + 1)
        with m.Elif(idle_empty):  # queue empty between updates: start the next one at 0
            m.d.comb += [wp_new.eq(0), rp_new.eq(0)]
        # the state is IDLE in the next clock after IDLE with nothing queued, or the last row
        to_idle = (fsm.ongoing("IDLE") & ~queued) | (fsm.ongoing("ROW") & last)
        m.d.comb += rest.eq(~idle_empty & (rp_step != wp))
        m.d.sync += [rp.eq(rp_new), wp.eq(wp_new), queued.eq(push | rest)]
        # the queue's stall of the next clock: a valid slot (whether or not it is pushed:
        # ``rpu_valid`` instead of the push decision keeps the translators' comparisons and
        # their OR trees out of ``hold``), a slot queued or being applied
        hold_next = Signal()
        m.d.comb += hold_next.eq(self.rpu_valid | ~to_idle | push | rest)

        # one lane of the write data per column
        new = saturating_lanes(m, [g[k] for k in range(cols)], slot_opd, slot_up, gb, "rpu_g",
                               other=self.g_wdata, use_other=~we)
        data = Signal(cols * gb)
        en = Signal(cols)
        m.d.comb += [data.eq(Cat(*new)),
                     en.eq(Cat(*(slot_cols[k] & hit for k in range(cols))))]
        return we, row, data, en, hold_next
