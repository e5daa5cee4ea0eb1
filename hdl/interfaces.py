"""The typed interfaces between the core's blocks, and the encodings their ports carry.

One definition per interface, shared by every block on either side and joined with
``wiring.connect``, so a port renamed or resized on one side fails at elaboration instead of
wiring the wrong bits (docs/cycle_interface.md describes the timing):

* ``MvmModeSignature``: the mode registers the controller holds and the MVM engine reads
  (constant during an MVM). The mode encodings are those of :mod:`cimflow.modes`.
* ``AnalogSignature``: the cycle interface from the MVM engine (digital) to the array and
  neurons (the behavioural ``AnalogMacro`` or a testbench): one control word per clock out,
  the comparator bits and ``hold`` back.
* ``HostSignature``: what a host (the FPGA board controller) drives: SPI, the parallel
  register port and the command port.

Line buses stay flat bit vectors at the ports (the Verilog tops keep their port names and
widths); blocks read them line by line through ``lines``, an ``ArrayLayout`` view.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Mux, Shape, Signal, Value
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from cimflow.config import CMD_ARG_BITS, LINE_ADDR_BITS, CoreConfig
from cimflow.modes import Activation, AdcMode, Direction

from .commands import Op

__all__ = [
    "Phase", "Drive", "NeuronInput", "MvmModeSignature", "AnalogSignature", "HostSignature",
    "lines", "mux_tree", "corelet_sl_line", "ConfiguredComponent", "LINE_GROUP_BITS",
    "group_copy", "flat_ports", "NEURON_GROUP", "NeuronFlag", "neuron_groups", "neuron_flags",
    "flat_view",
    "ADDR_BITS",
    "LINE_ADDR_BITS", "OP_BITS", "ARG_BITS",
]

ADDR_BITS = LINE_ADDR_BITS + 1
"""Host address: bank bit (bit 8, 0 = BL rows, 1 = SL columns) + line."""
OP_BITS = Shape.cast(Op).width
"""Width of a command opcode: the shape of ``Op`` (docs/command_set.md)."""
ARG_BITS = CMD_ARG_BITS
"""Width of a command argument: the limit ``CoreConfig`` validates against."""


class Phase(enum.Enum, shape=4):
    """Control-word phase (docs/cycle_interface.md); the values are the golden codes."""

    IDLE = 0
    PRECHARGE = 1
    WL_PULSE = 2
    SAMPLE = 3
    INTEGRATE = 4
    INJECT = 5
    COMPARE_SIGN = 6
    DECREMENT = 7
    COMPARE = 8
    READOUT = 9


class Drive(enum.Enum, shape=2):
    """Code of one BL/SL driver: the applied level s in {-1, 0, +1} is ``code - 2``."""

    OFF = 0
    """Not driven (floating)."""
    LOW = 1
    """s = -1."""
    REF = 2
    """s = 0 (the reference level; also the precharge level)."""
    HIGH = 3
    """s = +1."""


class NeuronInput(enum.Enum, shape=2):
    """Which lines the neurons sense (``nrn_in``)."""

    NONE = 0
    BL = 1
    SL = 2


LINE_GROUP_BITS = 4
"""Lines per local copy (``2**LINE_GROUP_BITS`` = 16) wherever one register or one gather
would otherwise reach every line: the register file's read groups, write enables and host
write data, the translators' threshold copies, the engine's bit select, phase flag and
readout mode copies. nextpnr does not replicate a high-fanout driver, so the HDL does
(docs/fpga.md)."""


NEURON_GROUP = 4
"""Neurons per copy of the analog side's neuron phase flags (``nrn_flags``). Each flag
loads every bit of a neuron's sample register (32-39 bits) and integrator, so a copy per
16 neurons (`LINE_GROUP_BITS`, sized for lines with a bit or two each) would still drive
500-600 loads; a copy per 4 neurons drives about as many as a line group's copy, and
small (16 neurons) gets four instead of one (docs/fpga.md, branch wt-nrn)."""


class NeuronFlag(enum.IntEnum):
    """Bit of one group's neuron phase flags (``nrn_flags``): the executed word's phase,
    decoded for what the neurons do in it (SAMPLE split by ``nrn_in``; COMPARE is
    COMPARE_SIGN or COMPARE). At most one is set; an IDLE, WL_PULSE or READOUT word sets
    none."""

    PRECHARGE = 0
    SAMPLE_SL = 1
    SAMPLE_BL = 2
    INTEGRATE = 3
    INJECT = 4
    DECREMENT = 5
    COMPARE = 6


_FLAG_OF = {
    Phase.PRECHARGE: NeuronFlag.PRECHARGE, Phase.INTEGRATE: NeuronFlag.INTEGRATE,
    Phase.INJECT: NeuronFlag.INJECT, Phase.DECREMENT: NeuronFlag.DECREMENT,
    Phase.COMPARE_SIGN: NeuronFlag.COMPARE, Phase.COMPARE: NeuronFlag.COMPARE,
}


def neuron_groups(rows: int) -> int:
    """Groups of `NEURON_GROUP` neurons (the last one may be smaller)."""
    return -(-rows // NEURON_GROUP)


def neuron_flags(phase: int, nrn_in: int, rows: int) -> int:
    """The ``nrn_flags`` bus of a word with ``phase`` and ``nrn_in`` (codes), every group
    the same: what a testbench that plays the engine drives beside ``phase``."""
    phase, nrn_in = Phase(phase), NeuronInput(nrn_in)
    if phase is Phase.SAMPLE:
        flag = {NeuronInput.SL: NeuronFlag.SAMPLE_SL,
                NeuronInput.BL: NeuronFlag.SAMPLE_BL}.get(nrn_in)
    else:
        flag = _FLAG_OF.get(phase)
    if flag is None:
        return 0
    return sum(1 << (len(NeuronFlag) * g + flag) for g in range(neuron_groups(rows)))


def group_copy(m, name: str, value, load, own=0, *, init=0,
               reset_less: bool = False) -> Signal:
    """A register that takes ``value`` at every edge where ``load`` or ``own`` is high.

    The local copy, for one group of lines or neurons (``2**LINE_GROUP_BITS`` lines,
    `NEURON_GROUP` neurons), of a signal that would otherwise be one net from one driver
    to every line (nextpnr does not replicate drivers). ``load`` must be high at every edge
    at which the readers need a new value; ``own`` is a condition of the group's own lines,
    which gives each copy its own clock enable so that synthesis keeps the copies apart
    (flip-flops with the same data and enable are merged; a ``load`` that is itself a
    per-group register, such as a neuron phase flag, does that alone). Loading the right
    value more often changes nothing. The copies still share ``value``'s net: where that
    net's length matters (a decode across the die), the group computes ``value`` from its
    own copies of the state it decodes, as the analog macro's line groups do
    (``AnalogMacro._line_control``). The copy has ``value``'s shape (signed stays signed)
    and the reset value ``init``; ``reset_less`` leaves it out of its domain's reset (a
    ``ResetInserter`` around the block), for copies whose value the reset does not need to
    set.
    """
    reg = Signal(Value.cast(value).shape(), name=name, init=init, reset_less=reset_less)
    with m.If(load | own):
        m.d.sync += reg.eq(value)
    return reg


class ConfiguredComponent(wiring.Component):
    """A component built for one CoreConfig, the single source of its sizes and limits.

    A subclass calls ``cfg = self._take_config(config)`` before it builds its signature
    (which reads the config's sizes), then ``super().__init__(signature)``; the config is
    then ``self.config``. A wrong type is refused with a one-line error that names the
    component, and the half-built component raises no UnusedElaboratable warning.
    """

    def _take_config(self, config) -> CoreConfig:
        if not isinstance(config, CoreConfig):
            self._MustUse__silence = True  # refused, not forgotten: no UnusedElaboratable
            raise TypeError(f"{type(self).__name__}: config must be a CoreConfig, "
                            f"got {type(config).__name__}")
        self._config = config
        return config

    @property
    def config(self) -> CoreConfig:
        return self._config


def lines(m, bus, count: int, width: int, name: str) -> data.View:
    """``bus`` (line k in bits k*width .. k*width+width-1) as an array of ``count`` lines.

    The bus is copied once into one signal of that layout, so indexing a line is a slice of
    one wire (slicing a wide expression per line makes the generated Verilog quadratic).
    """
    view = Signal(data.ArrayLayout(width, count), name=name)
    m.d.comb += view.eq(bus)
    return view


def mux_tree(values, index):
    """``values[index]`` as a balanced tree of 2:1 multiplexers, one level per index bit
    (LSB first); an index at or beyond ``len(values)`` gives an unspecified entry.

    ``Array(values)[index]`` is a case statement over every entry; for the line register
    file's shared read port at preset medium (two 64:1 gathers of 8-bit lines behind a
    multiplexed index) it synthesised to 900 LUT4 more than this tree (docs/fpga.md).
    """
    level = list(values)
    bit = 0
    while len(level) > 1:
        level = [Mux(index[bit], level[i + 1], level[i]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
        bit += 1
    return level[0]


def corelet_sl_line(corelet: int, neuron: int) -> int:
    """The SL that neuron ``n = c*i + j`` (corelet (i, j), c = corelet) senses: ``c*j + i``.

    The neuron senses BL n; the map is its own inverse, so it also gives the neuron on SL l.
    """
    return corelet * (neuron % corelet) + neuron // corelet


class MvmModeSignature(wiring.Signature):
    """What the controller (Out) hands the MVM engine (In): the mode registers (constant
    during an MVM because a command while busy is refused), the neuron-test and clock-gate
    bits, and the start / done handshake."""

    def __init__(self):
        super().__init__({
            "direction": Out(Direction),
            "adc_mode": Out(AdcMode),
            "out_k": Out(4),
            "in_m": Out(3),
            "act": Out(Activation),
            "inject_steps": Out(16),
            # pulse-generator widths in clocks (0 behaves as 1): WL, sample, integrate
            "t_wl": Out(4),
            "t_sample": Out(4),
            "t_integ": Out(8),
            "in_len": Out(9),
            "neuron_test": Out(1),
            "clk_gate": Out(1),
            "start": Out(1),
            "done": In(1),
        })


class AnalogSignature(wiring.Signature):
    """The cycle interface, from the digital side (Out) to array + neurons (In).

    ``nrn_flags`` says whether the word also carries the neuron phase flags (member
    ``nrn_flags``, `NeuronFlag` per group of `NEURON_GROUP` neurons): the behavioural macro
    (``AnalogMacro``, the FPGA core ``NeurramCoreFpga``) reads its neurons' phase from them;
    a macro that decodes ``phase`` and ``nrn_in`` itself (the chip's) does not need them, and
    a digital side built for it (``NeurramCore``, ``MvmEngine`` by default) leaves out their
    7 x ceil(rows / 4) registers. The signature's own default is the macro's: with them.
    """

    def __init__(self, rows: int, cols: int, *, nrn_flags: bool = True):
        # per group of NEURON_GROUP neurons, the word's phase decoded for the neurons
        # (`NeuronFlag`): registers of their own, near the neurons they load
        flags = {"nrn_flags": Out(len(NeuronFlag) * neuron_groups(rows))} if nrn_flags else {}
        super().__init__({
            "phase": Out(Phase),
            "drv_bl": Out(2 * rows),
            "drv_sl": Out(2 * cols),
            "wl_en": Out(rows),
            "nrn_in": Out(NeuronInput),
            "out_bl": Out(1),
            "dac_code": Out(4),
            "dec_en": Out(rows),
            **flags,
            "cmp": In(rows),
            "hold": In(1),
        })


class HostSignature(wiring.Signature):
    """Host ports, from the host (Out) to the core (In)."""

    def __init__(self, line_bits: int, op_shape=OP_BITS):
        super().__init__({
            "sck": Out(1), "cs_n": Out(1, init=1), "mosi": Out(1), "miso": In(1),
            "miso_oe": In(1),
            "p_addr": Out(ADDR_BITS), "p_wdata": Out(line_bits), "p_we": Out(1),
            "p_re": Out(1), "p_ready": In(1), "p_rdata": In(line_bits),
            "cmd_valid": Out(1), "cmd_op": Out(op_shape), "cmd_arg": Out(ARG_BITS),
            "busy": In(1), "done": In(1), "error": In(1), "status": In(8),
            "read_data": In(16),
        })


def flat_ports(component: wiring.Component) -> dict[str, tuple[wiring.Member, object]]:
    """Every port of ``component`` by its leaf name: ``mode.direction`` is ``direction``.

    The Verilog tops and the testbenches use these flat names (the cocotb testbenches were
    written against flat ports). Returns ``{name: (member, port)}`` with the member's flow
    as seen from outside ``component``; two ports with one leaf name are an error.
    """
    out: dict[str, tuple[wiring.Member, object]] = {}
    for path, member, port in component.signature.flatten(component):
        name = path[-1]
        if name in out:
            raise ValueError(f"two ports of {type(component).__name__} are named {name!r}")
        out[name] = (member, port)
    return out


def flat_view(signature: wiring.Signature, owner) -> SimpleNamespace:
    """``owner``'s flat ports named like the members of ``signature``, as an interface
    object that ``wiring.connect`` accepts: a top whose ports must stay flat (and whose
    internal signals stay in its own Verilog module) still joins a typed interface."""
    return SimpleNamespace(signature=signature,
                           **{name: getattr(owner, name) for name in signature.members})
