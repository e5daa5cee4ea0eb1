"""Analog tiles: the arrays behind one layer, their reads and their pulsed updates.

* :class:`AnalogTile` - one array W: RPU-SGD (Gokmen & Vlasov 2016).
* :class:`TransferTile` - a fast array A that receives every gradient update and a slow array
  C that holds the weight, W = gamma*A + C, with every ``transfer_every`` samples column k of
  A read by a one-hot forward pass and written into column k of C by a pulsed update, k
  cycling over the inputs (Tiki-Taka, Gokmen & Haensch 2020, Sec. 2). A reads against a
  reference array programmed to its symmetry point (``reference="array"``), or against
  nothing (``"symmetry_point"``: A's own symmetry point is the zero, one array saved).
  Stochastic Hamiltonian Descent (Onen et al. 2022) uses the same coupled A/C dynamics with
  its hardware savings; :func:`shd_transfer` gives both variants. ``buffered=True`` is TTv2
  (Gokmen 2021): a digital buffer between the read and the write.

Tile arrays are buffers, so ``state_dict`` and ``.to(device)`` carry them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .closed_form import apply_signed
from .devices import ConstantStepDevice, DeviceState
from .fused import new_state
from .io import IOParameters, analog_mvm
from .pulses import BernoulliSource
from .update import pulsed_update

__all__ = ["RPUConfig", "TransferConfig", "AnalogTile", "TransferTile", "make_tile",
           "shd_transfer", "tiki_taka_transfer"]


@dataclass(frozen=True)
class TransferConfig:
    """Tiki-Taka / SHD settings (defaults: Tiki-Taka with a reference array)."""

    gamma: float = 0.0
    """Share of A in the weight read W = gamma*A + C."""
    transfer_every: int = 1
    """n_s: samples between transfers."""
    n_reads: int = 1
    """Columns of A transferred per transfer."""
    transfer_lr: float = 0.01
    """lambda: learning rate of the pulsed write into C."""
    reference: str = "array"
    """"array": A reads minus a reference at its symmetry point; "symmetry_point": raw."""
    transfer_io: IOParameters = IOParameters()
    """Periphery of the one-hot read of A."""
    buffered: bool = False
    """TTv2 (Gokmen 2021): reads accumulate in a digital buffer H (in steps of C's dw_min);
    the whole steps, trunc(H), are pulsed into C and subtracted from H."""

    def __post_init__(self):
        if self.reference not in ("array", "symmetry_point"):
            raise ValueError(f"reference must be 'array' or 'symmetry_point', got "
                             f"{self.reference!r}")
        if self.transfer_every < 1 or self.n_reads < 1:
            raise ValueError("transfer_every and n_reads must be >= 1")


def tiki_taka_transfer(**kw) -> TransferConfig:
    """Tiki-Taka (TTv1): W = C, A read against a reference array (3 arrays per layer)."""
    return TransferConfig(gamma=0.0, reference="array", **kw)


def shd_transfer(variant: str = "shared_pair", **kw) -> TransferConfig:
    """SHD with one of its two hardware savings (a reconstruction, see docs/rpu_training.md).

    ``"shared_pair"``: A and C are the two devices of one differential pair, read together
    (W = A + C), and A's symmetry point is its zero: 2 arrays where Tiki-Taka needs 4 devices.
    ``"sp_reference"``: W = C, A read raw against its own symmetry point (no reference array).
    """
    if variant == "shared_pair":
        return TransferConfig(gamma=1.0, reference="symmetry_point", **kw)
    if variant == "sp_reference":
        return TransferConfig(gamma=0.0, reference="symmetry_point", **kw)
    raise ValueError(f"SHD variant must be 'shared_pair' or 'sp_reference', got {variant!r}")


@dataclass
class RPUConfig:
    """Everything about one analog layer's arrays: device, periphery, update, algorithm."""

    device: ConstantStepDevice = field(default_factory=ConstantStepDevice)
    bl: int = 10
    """Stochastic stream length BL (Table 1: 10)."""
    half_select: float = 0.0
    """k: weight change of a lone half-amplitude pulse relative to a coincidence."""
    forward: IOParameters = field(default_factory=IOParameters)
    backward: IOParameters = field(default_factory=IOParameters)
    source: object = field(default_factory=BernoulliSource)
    """Pulse source: BernoulliSource() or an LfsrSource (RTL streams)."""
    transfer: TransferConfig | None = None
    """None: RPU-SGD on one array; else Tiki-Taka / SHD."""
    transfer_device: ConstantStepDevice | None = None
    """Device of the C array (default: ``device``)."""
    seed: int = 0
    batch_update: str = "merged"
    """"merged": a mini-batch's coincidence counts are summed and applied in one pass (fast);
    "sequential": one rank-1 pulsed update per sample, in order (as a hardware array would)."""
    fused: bool = True
    """On the CPU, run the pulsed update in the fused numba kernel where it applies (float32,
    no half-selects; Bernoulli source, or the counts of an LFSR source) and the reads'
    periphery in its numba passes; False: the torch path (the reference, and the path on
    CUDA)."""

    def __post_init__(self):
        if self.batch_update not in ("merged", "sequential"):
            raise ValueError(f"batch_update must be 'merged' or 'sequential', got "
                             f"{self.batch_update!r}")
        if not isinstance(self.bl, int) or self.bl < 1:
            raise ValueError(f"bl must be an integer >= 1, got {self.bl!r}")
        if not 0.0 <= self.half_select < 1.0:
            raise ValueError(f"half_select must lie in [0, 1), got {self.half_select}")


class _TileBase(nn.Module):
    def __init__(self, out_size: int, in_size: int, cfg: RPUConfig, index: int):
        super().__init__()
        self.cfg, self.out_size, self.in_size = cfg, out_size, in_size
        self._seed = cfg.seed * 1_000_003 + index
        self._gen, self._gen_device = None, None
        self._rng = new_state(self._seed)  # the fused kernel's generator state
        self._pending: list[tuple[torch.Tensor, torch.Tensor]] = []

    def generator(self, device) -> torch.Generator:
        """A generator on ``device`` (re-seeded deterministically when the tile moves)."""
        if self._gen is not None and device == self._gen_device:  # the per-call case: cheap
            return self._gen
        device = torch.device(device)
        if self._gen is None or self._gen_device != device:
            self._gen = torch.Generator(device=device)
            self._gen.manual_seed(self._seed)
            self._gen_device = device
        return self._gen

    def _states(self, prefix: str, dev: ConstantStepDevice, shape, gen):
        st = dev.sample(shape, generator=gen)
        self.register_buffer(f"{prefix}_device", st.pack())
        return st

    def _state(self, prefix: str, dev: ConstantStepDevice):
        """The array's per-cell device parameters (stored as one (4, out, in) buffer); the
        views are built once per buffer (a fresh DeviceState per update cost 10 us)."""
        packed = self._buffers[f"{prefix}_device"]
        cache = self.__dict__.setdefault("_state_cache", {})
        hit = cache.get(prefix)
        if hit is None or hit.packed is not packed:
            hit = DeviceState.unpack(packed, float(dev.dw_min_std), dev.soft)
            cache[prefix] = hit
        return hit

    def record(self, x: torch.Tensor, d: torch.Tensor) -> None:
        """Keep the inputs and (negative-gradient) errors of a backward pass for the update."""
        self._pending.append((x.detach(), d.detach()))

    def step(self, lr: float) -> None:
        """Pulse-update with everything recorded since the last step."""
        if not self._pending:
            return
        if len(self._pending) == 1:
            x, d = self._pending[0]
        else:
            x = torch.cat([p[0] for p in self._pending])
            d = torch.cat([p[1] for p in self._pending])
        self._pending.clear()
        if self.cfg.batch_update == "sequential" and x.shape[0] > 1:
            if isinstance(self, AnalogTile):  # one call: pulsed_update runs them in order
                self.update(x, d, lr, sequential=True)
                return
            for i in range(x.shape[0]):  # samples, not cells or pulses
                self.update(x[i: i + 1], d[i: i + 1], lr)
        else:
            self.update(x, d, lr)

    def _pulse(self, w, st, dev, x, d, lr, sequential=False):
        cfg = self.cfg
        return pulsed_update(w, st, x, d, lr, bl=cfg.bl, dw_min=dev.dw_min, source=cfg.source,
                             half_select=cfg.half_select, generator=self.generator(w.device),
                             sequential=sequential, fused=cfg.fused, rng=self._rng)


class AnalogTile(_TileBase):
    """One array W (n_out, n_in): RPU-SGD."""

    def __init__(self, out_size: int, in_size: int, cfg: RPUConfig, index: int = 0):
        super().__init__(out_size, in_size, cfg, index)
        gen = torch.Generator().manual_seed(self._seed)
        self._states("w", cfg.device, (out_size, in_size), gen)
        self.register_buffer("w", torch.zeros(out_size, in_size))

    def set_weight(self, w: torch.Tensor) -> None:
        self.w.copy_(self._state("w", self.cfg.device).clip(w.to(self.w)))

    def read(self) -> torch.Tensor:
        return self._buffers["w"]

    def update(self, x, d, lr: float, sequential: bool = False) -> None:
        st = self._state("w", self.cfg.device)
        w = self._buffers["w"]
        new = self._pulse(w, st, self.cfg.device, x, d, lr, sequential)
        if new is not w:  # the pulsed update works in place; no Module.__setattr__ per step
            self.w = new


class TransferTile(_TileBase):
    """Arrays A (gradient) and C (weight): Tiki-Taka and SHD."""

    def __init__(self, out_size: int, in_size: int, cfg: RPUConfig, index: int = 0):
        super().__init__(out_size, in_size, cfg, index)
        self.tc: TransferConfig = cfg.transfer
        self.dev_c = cfg.transfer_device or cfg.device
        gen = torch.Generator().manual_seed(self._seed)
        st_a = self._states("a", cfg.device, (out_size, in_size), gen)
        self._states("c", self.dev_c, (out_size, in_size), gen)
        sp = st_a.symmetry_point()
        self.register_buffer("a", sp.clone())  # A starts relaxed to its symmetry point
        self.register_buffer("ref", sp.clone() if self.tc.reference == "array"
                             else torch.zeros_like(sp))
        self.register_buffer("c", torch.zeros(out_size, in_size))
        self.register_buffer("w", torch.zeros(out_size, in_size))
        self.register_buffer("h", torch.zeros(out_size, in_size) if self.tc.buffered else None)
        self.samples = 0
        self.pointer = 0
        self.transfers = 0

    def set_weight(self, w: torch.Tensor) -> None:
        self.c.copy_(self._state("c", self.dev_c).clip(w.to(self.c)))
        self._refresh()

    def _refresh(self) -> None:
        self.w = self.c + self.tc.gamma * (self.a - self.ref) if self.tc.gamma else self.c

    def read(self) -> torch.Tensor:
        return self.w

    def update(self, x, d, lr: float) -> None:
        cfg, tc = self.cfg, self.tc
        self.a = self._pulse(self.a, self._state("a", cfg.device), cfg.device, x, d, lr)
        before = self.samples
        self.samples += x.shape[0]
        due = self.samples // tc.transfer_every - before // tc.transfer_every
        for _ in range(due * tc.n_reads):
            self._transfer_column(self.pointer)
            self.pointer = (self.pointer + 1) % self.in_size
            self.transfers += 1
        self._refresh()

    def _transfer_column(self, k: int) -> None:
        """Read column k of A with a one-hot forward pass, pulse it into column k of C."""
        gen = self.generator(self.a.device)
        a_k = (self.a[:, k] - self.ref[:, k]).unsqueeze(1)
        u = torch.ones(1, 1, device=self.a.device, dtype=self.a.dtype)
        v = analog_mvm(u, a_k, self.tc.transfer_io, gen, self.cfg.fused)  # (1, n_out)
        if self.tc.buffered:
            self._buffered_write(k, v[0])
            return
        if self.cfg.half_select:
            e = torch.zeros(1, self.in_size, device=self.a.device, dtype=self.a.dtype)
            e[0, k] = 1
            self.c = self._pulse(self.c, self._state("c", self.dev_c), self.dev_c, e, v,
                                 self.tc.transfer_lr)
            return
        col = slice(k, k + 1)
        sub = self._state("c", self.dev_c).cols(col)
        self.c[:, col] = self._pulse(self.c[:, col], sub, self.dev_c, u, v, self.tc.transfer_lr)


    def _buffered_write(self, k: int, v: torch.Tensor) -> None:
        """TTv2: H[:, k] += lr v / dw_min; pulse trunc(H[:, k]) whole steps into C[:, k]."""
        h = self.h[:, k] + self.tc.transfer_lr * v / self.dev_c.dw_min
        n = torch.trunc(h)
        self.h[:, k] = h - n
        col = slice(k, k + 1)
        st = self._state("c", self.dev_c).cols(col)
        self.c[:, col] = apply_signed(self.c[:, col], st, n.unsqueeze(1), self.generator(n.device))


def make_tile(out_size: int, in_size: int, cfg: RPUConfig, index: int = 0) -> _TileBase:
    cls = TransferTile if cfg.transfer is not None else AnalogTile
    return cls(out_size, in_size, cfg, index)
