"""Two sources of update pulse streams behind one interface (Gokmen & Vlasov 2016).

``source.counts(x, d, bl, gain, half, generator)`` turns a batch of row values x (N, n_in)
and column values d (N, n_out) into :class:`Counts`: per cell (in the torch weight layout,
(n_out, n_in)) the number of up and down coincidences and, when ``half`` is set, of
half-selected pulses. P(row i pulses in a slot) = min(gain*|x_i|, 1), likewise for columns;
each sample streams ``bl`` slots; counts of the N samples are summed.

* :class:`BernoulliSource`: ideal independent bits from a torch generator; a handful of
  GEMMs per batch, no loop over samples, cells or slots.
* :class:`LfsrSource`: the streams the RTL produces, bit for bit - the core's two LFSR chains
  and stochastic-translator bank (cimflow.golden.lfsr, cimflow.golden.stochastic_translator)
  with values quantised to ``str_bits`` magnitudes and the gain to the gain register, rows =
  inputs and columns = outputs, padded with zeros to the core size. Seeding it like the RTL
  replays one training step there. It loops over samples (a replay path, not a hot path).

Half-select rule (ours: the paper treats the non-linearity k only qualitatively): a row or
column pulse seen by cell (i, j) without its partner - within the BL slots of the phase in
which that cell's coincidences happen - counts as one half-select in the cell's direction
sign(x_i)*sign(d_j), zero counting as positive: h_ij = r_i + c_j - 2*n_ij.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cimflow.config import CoreConfig

from ..lfsr import LfsrChains
from ..stochastic_translator import str_update, thresholds

__all__ = ["Counts", "BernoulliSource", "LfsrSource", "phases"]


@dataclass
class Counts:
    """Coincidences and half-selects per cell, split by direction; shape (n_out, n_in)."""

    n_up: torch.Tensor | None
    n_down: torch.Tensor | None
    h_up: torch.Tensor | None = None
    h_down: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    """When set, the counts cover only these output lines (the others saw no coincidence)."""
    single: torch.Tensor | None = None
    """One sample, no half-selects: the signed counts alone (n_up, n_down left None)."""

    @property
    def signed(self) -> torch.Tensor:
        return self.single if self.single is not None else self.n_up - self.n_down


def phases(x, d) -> int:
    """Up/down phases of one update: 2 when every x >= 0, else 4 (Gokmen & Vlasov 2016)."""
    return 2 if bool((torch.as_tensor(x) >= 0).all()) else 4


def _split(n_signed, n_abs):
    return (n_abs + n_signed) * 0.5, (n_abs - n_signed) * 0.5


def _check(x, d):
    if x.dim() != 2 or d.dim() != 2 or x.shape[0] != d.shape[0]:
        raise ValueError(f"x and d must be (N, n_in) and (N, n_out), got {tuple(x.shape)} "
                         f"and {tuple(d.shape)}")


def bernoulli_bits(p: torch.Tensor, bl: int, generator=None) -> torch.Tensor:
    """(N, bl, L) bits with P(1) = p (N, L), as floats; p resolved to 2^-16 (error <= 2^-17).

    Each word from ``random_()`` (uniform on [0, 2^63), on every device) gives three 16-bit
    uniforms from its low 48 bits: torch draws one word in about the time of one float, so
    this is three times cheaper than torch.rand.
    """
    n, lines = p.shape
    count = n * bl * lines
    words = torch.empty((count + 2) // 3, dtype=torch.int64, device=p.device)
    words.random_(generator=generator)
    u = words.view(torch.int16).view(-1, 4)[:, :3].reshape(-1)[:count].view(n, bl, lines)
    thr = torch.round(p.clamp(0, 1) * 65536).to(torch.int32) - 32768
    return (u < thr.unsqueeze(1)).to(p.dtype)


class BernoulliSource:
    """Ideal Bernoulli pulse trains drawn from a torch generator (fast path)."""

    def counts(self, x, d, bl: int, gain: float, half: bool = False, generator=None,
               compact: bool = False) -> Counts:
        """``compact`` (without ``half``): keep only output lines that pulsed (``rows``)."""
        _check(x, d)
        n, n_in = x.shape
        bits = bernoulli_bits(gain * torch.cat([x, d], dim=1).abs(), bl, generator)
        a, b = bits[:, :, :n_in], bits[:, :, n_in:]  # one draw for rows and columns
        rows = None
        if compact and not half:
            rows = torch.nonzero(b.amax(dim=(0, 1))).flatten()
            if rows.numel() < d.shape[1]:
                b, d = b.index_select(2, rows), d.index_select(1, rows)
        n_out = d.shape[1]
        if n == 1 and not half:  # one sample: every cell's coincidences share one sign
            a2, b2 = a.reshape(bl, n_in), b.reshape(bl, n_out)
            single = (b2.T @ a2) * torch.sign(d).T * torch.sign(x)  # sign(0): no pulses anyway
            return Counts(None, None, rows=rows, single=single)
        sx = torch.where(x < 0, -1.0, 1.0).to(x.dtype)
        sd = torch.where(d < 0, -1.0, 1.0).to(x.dtype)
        a2, b2 = a.reshape(n * bl, n_in), b.reshape(n * bl, n_out)
        a_s = (a * sx.unsqueeze(1)).reshape(n * bl, n_in)
        b_s = (b * sd.unsqueeze(1)).reshape(n * bl, n_out)
        n_signed = b_s.T @ a_s
        n_abs = n_signed.abs() if n == 1 else b2.T @ a2
        out = Counts(*_split(n_signed, n_abs), rows=rows)
        if half:
            r, c = a.sum(1), b.sum(1)  # (N, n_in), (N, n_out) pulses per line
            h_signed = sd.T @ (sx * r) + (sd * c).T @ sx - 2 * n_signed
            h_abs = r.sum(0).unsqueeze(0) + c.sum(0).unsqueeze(1) - 2 * n_abs
            out.h_up, out.h_down = _split(h_signed, h_abs)
        return out


class LfsrSource:
    """The RTL's LFSR + stochastic-translator streams, bit-exact (replay path).

    ``config`` is the core; the chains start from ``seed_a``/``seed_b`` as after a seed load
    and keep running from update to update, as the hardware's do.
    """

    def __init__(self, config: CoreConfig, seed_a: int, seed_b: int):
        self.config = config
        self.chains = LfsrChains(config, seed_a, seed_b)

    def gain_code(self, gain: float) -> int:
        cfg = self.config
        code = int(round(gain * (1 << cfg.str_gain_frac_bits)))
        return min(max(code, 0), (1 << cfg.str_gain_bits) - 1)

    def magnitudes(self, v: np.ndarray) -> np.ndarray:
        """|v| as an str_bits magnitude: round(|v| * 2^n), saturating at 2^n - 1."""
        n = self.config.str_bits
        return np.minimum(np.rint(np.abs(v) * (1 << n)), (1 << n) - 1).astype(np.int64)

    def line_registers(self, x, d, gain: float):
        """(thr_rows, sign_rows, thr_cols, sign_cols) of one sample, padded to the core."""
        cfg = self.config
        if x.size > cfg.rows or d.size > cfg.cols:
            raise ValueError(f"a {d.size} x {x.size} layer does not fit a {cfg.cols} x "
                             f"{cfg.rows} core (outputs x inputs)")
        code = self.gain_code(gain)
        xr, dc = np.zeros(cfg.rows), np.zeros(cfg.cols)
        xr[: x.size], dc[: d.size] = x, d
        return (thresholds(cfg, self.magnitudes(xr), code), (xr < 0).astype(np.int64),
                thresholds(cfg, self.magnitudes(dc), code), (dc < 0).astype(np.int64))

    def sample_counts(self, x, d, bl: int, gain: float):
        """Signed coincidences and half-selects of one sample, numpy (n_in, n_out)."""
        n, h, ph = self.register_counts(*self.line_registers(x, d, gain), bl)
        return n[: x.size, : d.size], h[: x.size, : d.size], ph[: x.size, : d.size]

    def register_counts(self, thr_r, s_r, thr_c, s_c, bl: int):
        """Counts (rows x cols of the core) from the translator registers themselves.

        For an RTL replay: give the thresholds and sign bits the core's line registers hold
        (``stochastic_translator.thresholds`` of its magnitudes and gain code) and get the
        signed coincidences per cell that its ``RPU_UPDATE`` applies, plus half-selects and
        each cell's phase. The chains advance as the hardware's do.
        """
        s_r, s_c = np.asarray(s_r, np.int64), np.asarray(s_c, np.int64)
        tr = str_update(self.config, self.chains, thr_r, s_r, thr_c, s_c, bl)
        rp, cp = tr.row_pulse.astype(np.int64), tr.col_pulse.astype(np.int64)
        sgn = np.where(tr.up, 1, -1)
        n = np.einsum("t,ti,tj->ij", sgn, rp, cp)
        # the phase in which cell (i, j) coincides: 2*s_i + (s_i xor s_j)
        cell_phase = 2 * s_r[:, None] + (s_r[:, None] ^ s_c[None, :])
        r_ph = np.zeros((4, rp.shape[1]), np.int64)
        c_ph = np.zeros((4, cp.shape[1]), np.int64)
        np.add.at(r_ph, tr.phase, rp)
        np.add.at(c_ph, tr.phase, cp)
        rows = np.arange(rp.shape[1])[:, None]
        cols = np.arange(cp.shape[1])[None, :]
        h = r_ph[cell_phase, rows] + c_ph[cell_phase, cols] - 2 * np.abs(n)
        return n, h, cell_phase

    def counts(self, x, d, bl: int, gain: float, half: bool = False, generator=None) -> Counts:
        _check(x, d)
        xs = x.detach().double().cpu().numpy()
        ds = d.detach().double().cpu().numpy()
        n_in, n_out = xs.shape[1], ds.shape[1]
        tot = {k: np.zeros((n_in, n_out)) for k in ("nu", "nd", "hu", "hd")}
        for xi, di in zip(xs, ds, strict=True):
            n, h, ph = self.sample_counts(xi, di, bl, gain)
            up = (ph & 1) == 0
            tot["nu"] += np.maximum(n, 0)
            tot["nd"] += np.maximum(-n, 0)
            tot["hu"] += np.where(up, h, 0)
            tot["hd"] += np.where(up, 0, h)

        def t(a):
            return torch.as_tensor(a.T.copy(), dtype=x.dtype, device=x.device)

        out = Counts(t(tot["nu"]), t(tot["nd"]))
        if half:
            out.h_up, out.h_down = t(tot["hu"]), t(tot["hd"])
        return out


def gain_for(lr: float, dw_min: float, bl: int) -> float:
    """Translator gain C = sqrt(lr / (dw_min * BL)) of both streams (Eq. 1.3)."""
    if lr < 0 or dw_min <= 0 or bl < 1:
        raise ValueError(f"need lr >= 0, dw_min > 0, bl >= 1; got {lr}, {dw_min}, {bl}")
    return math.sqrt(lr / (dw_min * bl))
