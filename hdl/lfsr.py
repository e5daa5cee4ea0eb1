"""Two counter-propagating LFSR chains, XORed (docs/model.md#lfsr-chains).

Chain A is a shift register of ``L = config.lfsr_chain_length`` stages moving towards higher
positions: each step, position 0 takes the XOR of positions k-1 for k in the chain's taps
(a Fibonacci LFSR whose register is extended beyond its degree; the extra stages are a
delay line). Chain B moves the other way: each step, position L-1 takes the XOR of
positions L-k. The chains advance ``n = config.str_bits`` steps per enabled clock, so line k
(rows first, then columns) gets the n-bit word ``A[kn + j] ^ B[kn + j]`` (bit j) and the
single bit ``A[kn] ^ B[kn]`` every cycle (``bits``, a register that tracks the chains: the
same value in the same clock, computed one clock ahead).

Seeds are loaded at run time: ``load`` puts ``seed_a`` / ``seed_b`` into the first ``degree``
stages of each chain (stage q = seed bit q; B's stage q is position L-1-q) and clears the
rest; a zero seed would lock an LFSR up, so it is replaced by 1. The block then advances
``config.lfsr_warmup_cycles`` cycles on its own, with ``ready`` low, until every stage holds
sequence bits. Reset behaves like a load of seeds 1 and 1.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Mux, Signal
from amaranth.lib.wiring import In, Out

from cimflow.config import CoreConfig

from .interfaces import ConfiguredComponent

__all__ = ["LfsrChains"]


def _seeded(seed, degree: int, length: int, *, reverse: bool = False):
    """Register after a load: the seed (or 1 if zero) in stages 0..degree-1, the rest 0.

    ``reverse`` gives it in position order for a chain whose stage q sits at position L-1-q.
    """
    safe = Signal(degree)
    bits = [safe[i] for i in range(degree)]
    zeros = [C(0, length - degree)] if length > degree else []
    value = Cat(*reversed(bits)) if reverse else Cat(*bits)
    return Cat(*zeros, value) if reverse else Cat(value, *zeros), safe.eq(Mux(seed == 0, 1, seed))


class LfsrChains(ConfiguredComponent):
    """Ports: ``seed_a``, ``seed_b``, ``load``, ``en`` in; ``ready``, ``words``, ``bits`` out.

    ``words[k*n:(k+1)*n]`` is line k's random word this cycle, ``bits[k]`` its random bit.
    The chains advance at a clock edge where ``en`` is high (and during warm-up).
    """

    def __init__(self, config: CoreConfig):
        self._take_config(config)
        super().__init__({
            "seed_a": In(max(config.lfsr_a_taps)),
            "seed_b": In(max(config.lfsr_b_taps)),
            "load": In(1),
            "en": In(1),
            "ready": Out(1),
            "words": Out(config.lines * config.str_bits),
            "bits": Out(config.lines),
        })

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        L, n = cfg.lfsr_chain_length, cfg.str_bits
        da, db = max(cfg.lfsr_a_taps), max(cfg.lfsr_b_taps)

        a = Signal(L, init=1)  # a[p]: chain A at position p (= stage p)
        b = Signal(L, init=1 << (L - 1))  # b[p]: chain B at position p (= stage L-1-p)
        warm = Signal(range(cfg.lfsr_warmup_cycles + 1), init=cfg.lfsr_warmup_cycles)
        # ``warm != 0`` as a register of its own: the chains' step decision (load, warm-up
        # or ``en``) reaches every stage of both chains, so it starts at flip-flops, with
        # no counter comparison in front of that net
        warming = Signal(init=cfg.lfsr_warmup_cycles != 0)

        # n steps at once: stage q < n of the next state is the XOR of the tapped stages,
        # taken from the current state or from a newer bit computed in this same cycle.
        def new_stages(stage, taps):
            new = {}
            for q in reversed(range(n)):
                bit = 0
                for k in taps:
                    src = q + k - n
                    bit = bit ^ (stage(src) if src >= 0 else new[q + k])
                new[q] = bit
            return [new[q] for q in range(n)]

        new_a = new_stages(lambda q: a[q], cfg.lfsr_a_taps)
        new_b = new_stages(lambda q: b[L - 1 - q], cfg.lfsr_b_taps)
        a_next = Cat(*new_a, a[: L - n])  # chain A moves up
        b_next = Cat(b[n:], *reversed(new_b))  # chain B moves down

        load_a, set_a = _seeded(self.seed_a, da, L)
        load_b, set_b = _seeded(self.seed_b, db, L, reverse=True)
        m.d.comb += [set_a, set_b]
        # the state of the next clock, so that ``bits`` can be a register of its own
        a_new, b_new = Signal(L), Signal(L)
        m.d.comb += [a_new.eq(a), b_new.eq(b)]
        with m.If(self.load):
            m.d.comb += [a_new.eq(load_a), b_new.eq(load_b)]
            m.d.sync += [warm.eq(cfg.lfsr_warmup_cycles),
                         warming.eq(cfg.lfsr_warmup_cycles != 0)]
        with m.Elif(warming):
            m.d.comb += [a_new.eq(a_next), b_new.eq(b_next)]
            m.d.sync += [warm.eq(warm - 1), warming.eq(warm != 1)]
        with m.Elif(self.en):
            m.d.comb += [a_new.eq(a_next), b_new.eq(b_next)]
        m.d.sync += [a.eq(a_new), b.eq(b_new)]

        # ``bits`` (the neurons' INJECT noise, one bit per line fanned out to a wide
        # operand mux) is a register holding ``A[kn] ^ B[kn]`` of the current state: it
        # loads that XOR of the next state, so it equals the XOR below in every clock
        # and no XOR gate sits between the chains and the neurons
        taps = [k * n for k in range(cfg.lines)]
        init_bits = sum((((a.init ^ b.init) >> p) & 1) << k for k, p in enumerate(taps))
        bits = Signal(cfg.lines, init=init_bits)
        m.d.sync += bits.eq(Cat(a_new[p] ^ b_new[p] for p in taps))

        line_words = [Signal(n, name=f"word{k}") for k in range(cfg.lines)]
        m.d.comb += [
            Cat(*line_words).eq((a ^ b)[: cfg.lines * n]),
            self.words.eq(Cat(*line_words)),
            self.bits.eq(bits),
            self.ready.eq(~warming & ~self.load),
        ]
        return m
