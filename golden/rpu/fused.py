"""Fused CPU kernel (numba) of the stochastic pulse update: one pass, in place, no temporaries.

Why: on the CPU the torch path (:mod:`.pulses`, :mod:`.closed_form`) is two dozen eager
operations per rank-1 update, each a few to 90 microseconds whatever the array size, and the
mini-batch's sequential updates are one Python iteration each. Here one call does the whole
mini-batch, sample after sample, on the weight array itself:

1. per line (inputs x_i, errors d_j) a BL-bit pulse mask: slot t fires when a 16-bit uniform
   u < round(min(gain*|v|, 1) * 2^16), exactly the resolution of
   :func:`.pulses.bernoulli_bits` (four uniforms per 64-bit counter-based word, :func:`_masks`);
2. per cell n_ij = popcount(mask_x_i & mask_d_j), direction sign(x_i)*sign(d_j), computed
   only on the output lines that pulsed at all (the line-mask loop is :func:`_lines`);
3. the closed-form response of :mod:`.closed_form` to the n same-sign coincidences
   (constant step: mean n*dw, std dw*c2c*sqrt(n); soft bounds: the log-normal product),
   then the bounds, written into w. A rank-1 constant-step update does a pulsed output
   row in one branch-free pass over its inputs, which vectorises; its cycle-to-cycle
   normals come in bulk per row from the table-free Box-Muller of :mod:`..bulk_normals`
   (the per-cell paths draw one at a time from the ziggurat of :mod:`..fused_cpu`).

:func:`apply_counts_inplace` applies given signed counts (from any source, e.g. the RTL's
LFSR streams of :class:`.pulses.LfsrSource`) with the same arithmetic, operation for
operation in float32, as :func:`.closed_form.apply_counts`: without cycle-to-cycle noise a
constant-step array ends bit-identical to the torch path's (tested), so a step stays
replayable in the RTL. The kernel's random numbers come from its own generator state
(:func:`new_state`), so Bernoulli updates equal the torch path's in distribution, not draw
for draw (two-sample tests). numba is optional: without it (``AVAILABLE`` False) the torch
path runs on the CPU too. Half-selects (k > 0) stay on the torch path. :func:`merged_update`
is the ``merged`` mini-batch mode (counts of all samples summed per direction, then applied).
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    AVAILABLE = True
except ImportError:  # pragma: no cover - exercised where numba is not installed
    AVAILABLE = False

from ..bulk_normals import fill_pairs
from ..fused_cpu import _normal, _word

__all__ = ["AVAILABLE", "new_state", "sequential_update", "apply_counts_inplace", "normals",
           "merged_update"]

_F32 = np.float32
_SCALE16 = _F32(65536.0)
_U16 = np.uint64(0xFFFF)


def new_state(seed: int) -> np.ndarray:
    """Generator state: two counter-based streams (:func:`..fused_cpu._word`), s[4] the key
    and s[5] the counter of the pulse bits', s[6] and s[7] those of the cycle-to-cycle
    normals (keys seeded by splitmix64; s[0:4] unused, kept for the layout)."""
    s = np.zeros(8, np.uint64)
    z = seed & (2**64 - 1)
    for k in (4, 6):
        z = (z + 0x9E3779B97F4A7C15) & (2**64 - 1)
        v = z
        v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        s[k] = v ^ (v >> 31)
    return s


def _draw_normal(s):
    """One standard normal from the state's counter-based stream (key s[6], counter s[7])."""
    c = s[7]
    s[7] = c + np.uint64(1)
    return _normal(_word(s[6], c))


def _normals(n, s):
    """n standard normals (for the tests): the first half from the bulk sampler of the
    rank-1 rows (:func:`..bulk_normals.fill_pairs`), the rest one by one (the ziggurat of
    the other paths)."""
    out = np.empty(n)
    h = n // 2
    buf = np.empty(2 * ((h + 1) // 2), np.float32)
    fill_pairs(buf, h, s, np.empty(buf.size, np.uint32))
    for k in range(h):
        out[k] = buf[k]
    for k in range(h, n):
        out[k] = _draw_normal(s)
    return out


def _slot(word, u, thr, lim):
    """Bit u (0-3) of a line's 4-slot group: the 16-bit uniform u of word below thr, where
    the group has more than u slots (lim)."""
    return np.uint64(((word >> np.uint64(16 * u)) & _U16) < thr) & np.uint64(u < lim)


def _masks(v, b, gain, bl, s, m):
    """m[i] = the BL-bit pulse mask of line i of sample b of v (N, L): slot t fires when a
    16-bit uniform u < round(min(gain*|v|, 1) * 2^16); four uniforms per word of the
    counter-based stream of key s[4] (counter s[5]), slots 4g to 4g + 3 of line i from word
    s[5] + g L + i. Word group by word group, each a loop over the lines with no state
    carried from line to line, so that it vectorises (a sequential generator cost 5 ns a
    line)."""
    n = v.shape[1]
    key, c0 = s[4], s[5]
    for g in range((bl + 3) // 4):
        base = c0 + np.uint64(g * n)
        lim = bl - 4 * g
        sh = np.uint64(4 * g)
        for i in range(n):
            p = min(gain * abs(v[b, i]), _F32(1.0))
            thr = np.uint64(np.rint(p * _SCALE16))
            word = _word(key, base + np.uint64(i))
            bits = (_slot(word, 0, thr, lim) | (_slot(word, 1, thr, lim) << np.uint64(1))
                    | (_slot(word, 2, thr, lim) << np.uint64(2))
                    | (_slot(word, 3, thr, lim) << np.uint64(3)))
            m[i] = (m[i] if g else np.uint64(0)) | (bits << sh)
    s[5] = c0 + np.uint64(((bl + 3) // 4) * n)


def _lines(v, b, gain, bl, s, m, idx, neg):
    """The lines of sample b of v (N, L) that pulse at least once in BL slots, packed at the
    front of m (pulse masks, :func:`_masks`), idx (line indices) and neg (1: negative
    value); returns how many. Branch-free: whether a line pulses is random."""
    _masks(v, b, gain, bl, s, m)
    n = 0
    for i in range(v.shape[1]):
        mi = m[i]
        m[n] = mi
        idx[n] = i
        neg[n] = 1 if v[b, i] < 0 else 0
        n += mi != 0
    return n


def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


def _cell(w, dev, j, i, down, n, c2c, soft, s):
    """w[j, i] after n (> 0) coincidences in one direction (``down`` 0: up, 1: down):
    :func:`.closed_form.apply_direction` in float32, operation for operation; bounds last.
    The direction selects by index and sign, not by branch (it is random from cell to cell).
    The constant-step case is written out where it is hot (a call costs more than the
    update)."""
    nf = _F32(n)
    dw = dev[down, j, i]
    if not soft:
        step = dw * nf
        if c2c != 0:
            step = step + dw * c2c * _F32(math.sqrt(nf)) * _F32(_draw_normal(s))
        wv = w[j, i] + _F32(1.0 - 2.0 * down) * step  # w - step exactly when down
    else:
        wv = w[j, i]
        bound = dev[2 + down, j, i]
        a = dw / abs(bound)
        log_m = nf * _F32(math.log1p(-a))
        if c2c != 0:
            r = (a * c2c) ** 2
            s2 = nf * _F32(math.log1p(r / (_F32(1.0) - a) ** 2))
            log_m = log_m - _F32(0.5) * s2 + _F32(math.sqrt(s2)) * _F32(_draw_normal(s))
        wv = wv - (bound - wv) * _F32(math.expm1(log_m))
    w[j, i] = min(max(wv, dev[3, j, i]), dev[2, j, i])


def _sequential_update(w, dev, x, d, gain, bl, c2c, soft, s):
    """One rank-1 pulsed update per sample (rows of x (N, n_in), d (N, n_out)), in order.

    Per output line j that pulsed, the whole row in one branch-free pass over the inputs
    (so that it vectorises; 4x the speed of gathering the cells with n > 0): n_ij =
    popcount(mask_x_i & mask_d_j), the step, the bounds. Cells with
    n = 0 take a zero step and stay as they are (the torch path likewise clips whole pulsed
    rows); their unused normals cost less than gathering the cells with n > 0 would. The
    output lines are drawn first: when none pulsed, the input lines are not drawn at all."""
    n_smp, n_in = x.shape
    n_out = d.shape[1]
    mx = np.empty(n_in, np.uint64)
    sx = np.empty(n_in, np.float32)  # sign(x_i) as +-1: the row pass stays in 32-bit lanes
    md = np.empty(n_out, np.uint64)
    act_d = np.empty(n_out, np.int64)
    neg_d = np.empty(n_out, np.int64)
    cnt = np.empty(n_in, np.int32)
    z = np.zeros(2 * ((n_in + 1) // 2), np.float32)
    halves = np.empty(z.size, np.uint32)
    noisy = c2c != 0
    for b in range(n_smp):
        nd = _lines(d, b, gain, bl, s, md, act_d, neg_d)
        if nd == 0:  # no output line pulsed: no coincidence, no input line needed
            continue
        _masks(x, b, gain, bl, s, mx)
        for i in range(n_in):
            sx[i] = _F32(-1.0) if x[b, i] < 0 else _F32(1.0)
        for q in range(nd):
            j, mj = act_d[q], md[q]
            sd = _F32(-1.0) if neg_d[q] else _F32(1.0)
            if soft:
                for i in range(n_in):
                    c = np.int64(_popcount(mx[i] & mj))
                    if c != 0:
                        _cell(w, dev, j, i, np.int64(sx[i] * sd < 0), c, c2c, soft, s)
                continue
            for i in range(n_in):
                cnt[i] = np.int32(_popcount(mx[i] & mj))
            if noisy:
                fill_pairs(z, n_in, s, halves)
            wr, up, dn, hi, lo = w[j], dev[0, j], dev[1, j], dev[2, j], dev[3, j]
            for i in range(n_in):
                nf = _F32(cnt[i])
                sg = sx[i] * sd  # +1 up, -1 down
                dw_up, dw_dn = up[i], dn[i]
                dw = dw_dn if sg < 0 else dw_up
                step = dw * nf
                if noisy:
                    step = step + dw * c2c * np.sqrt(nf) * z[i]
                wv = wr[i] + sg * step  # w - step exactly when down
                wr[i] = min(max(wv, lo[i]), hi[i])


def _merged_update(w, dev, x, d, gain, bl, c2c, soft, s):
    """The N samples' coincidences summed per cell and direction, then applied once (up,
    then down): the torch path's ``merged`` mini-batch update. Counts are accumulated on the
    lines that pulsed only, then each touched row is applied."""
    n_smp, n_in = x.shape
    n_out = d.shape[1]
    cnt = np.zeros((2, n_out, n_in), np.int32)
    touched = np.zeros(n_out, np.bool_)
    mx = np.empty(n_in, np.uint64)
    act = np.empty(n_in, np.int64)
    neg = np.empty(n_in, np.int64)
    md = np.empty(n_out, np.uint64)
    act_d = np.empty(n_out, np.int64)
    neg_d = np.empty(n_out, np.int64)
    for b in range(n_smp):
        nd = _lines(d, b, gain, bl, s, md, act_d, neg_d)
        if nd == 0:  # no output line pulsed: no coincidence, no input line needed
            continue
        na = _lines(x, b, gain, bl, s, mx, act, neg)
        for q in range(nd):
            j, mj, sd = act_d[q], md[q], neg_d[q]
            touched[j] = True
            for t in range(na):
                cnt[neg[t] ^ sd, j, act[t]] += np.int32(_popcount(mx[t] & mj))
    for j in range(n_out):
        if touched[j]:
            for down in range(2):
                for i in range(n_in):
                    if cnt[down, j, i] != 0:
                        _cell(w, dev, j, i, down, cnt[down, j, i], c2c, soft, s)


def _apply_counts(w, dev, n_up, n_down, c2c, soft, s):
    """Up counts, then down counts, per cell (each cell's n and direction as the torch path)."""
    n_out, n_in = w.shape
    for j in range(n_out):
        for i in range(n_in):
            if n_up[j, i] != 0:
                _cell(w, dev, j, i, 0, n_up[j, i], c2c, soft, s)
            if n_down[j, i] != 0:
                _cell(w, dev, j, i, 1, n_down[j, i], c2c, soft, s)


def _io_in(x, inp_bound, inp_step, abs_max, out, scale):
    """Periphery before the array, per row: scale by max |x| (noise management), clamp to
    the input bound, DAC-quantise (step 0: off); as :func:`.io.analog_mvm`, in float32."""
    n, m = x.shape
    for b in range(n):
        sc = _F32(1.0)
        if abs_max:
            mx = _F32(0.0)
            for i in range(m):
                mx = max(mx, abs(x[b, i]))
            if mx > 0:
                sc = mx
        scale[b] = sc
        for i in range(m):
            v = x[b, i] / sc if abs_max else x[b, i]
            v = min(max(v, -inp_bound), inp_bound)
            if inp_step != 0:
                v = np.rint(v / inp_step) * inp_step
            out[b, i] = v


def _io_out(y, z, noise, out_bound, out_step, abs_max, scale):
    """Periphery after the array, in place: output noise (z: standard normals, size 0:
    none), clamp to the output bound, ADC-quantise (step 0: off), undo the input scale."""
    n, m = y.shape
    noisy = z.size > 0
    for b in range(n):
        sc = scale[b]
        for j in range(m):
            v = y[b, j]
            if noisy:
                v = v + noise * z[b, j]
            v = min(max(v, -out_bound), out_bound)
            if out_step != 0:
                v = np.rint(v / out_step) * out_step
            y[b, j] = v * sc if abs_max else v


if AVAILABLE:
    _opts = {"cache": True, "nogil": True}
    _draw_normal = njit(**_opts)(_draw_normal)
    _normals = njit(**_opts)(_normals)
    _slot = njit(inline="always", **_opts)(_slot)
    _masks = njit(**_opts)(_masks)
    _lines = njit(**_opts)(_lines)
    _popcount = njit(inline="always", **_opts)(_popcount)
    _cell = njit(**_opts)(_cell)
    _sequential_update = njit(**_opts)(_sequential_update)
    _merged_update = njit(**_opts)(_merged_update)
    _io_in = njit(**_opts)(_io_in)
    _io_out = njit(**_opts)(_io_out)
    _apply_counts = njit(**_opts)(_apply_counts)


def sequential_update(w: np.ndarray, dev: np.ndarray, x: np.ndarray, d: np.ndarray,
                      gain: float, bl: int, c2c: float, soft: bool, state: np.ndarray) -> None:
    """Bernoulli pulsed updates of w (n_out, n_in) float32 in place, one per row of x and d.

    ``dev`` is the (4, n_out, n_in) packed device state (dw_up, dw_down, b_max, b_min).
    """
    if not 1 <= bl <= 64:
        raise ValueError(f"the fused kernel packs BL <= 64 slots, got {bl}")
    _sequential_update(w, dev, x, d, _F32(gain), bl, _F32(c2c), bool(soft), state)


def periphery_in(x: np.ndarray, inp_bound: float, inp_step: float, abs_max: bool):
    """(x after noise management, input clamp and DAC; the per-row scales), float32; the
    constants float32 (:meth:`.io.IOParameters.fused_args`)."""
    out = np.empty_like(x)
    scale = np.empty(x.shape[0], np.float32)
    _io_in(x, inp_bound, inp_step, abs_max, out, scale)
    return out, scale


def periphery_out(y: np.ndarray, z: np.ndarray, noise: float, out_bound: float,
                  out_step: float, abs_max: bool, scale: np.ndarray) -> None:
    """In place on y (float32): output noise noise*z, clamp, ADC, times the input scale;
    the constants float32 (:meth:`.io.IOParameters.fused_args`)."""
    _io_out(y, z, noise, out_bound, out_step, abs_max, scale)


def normals(n: int, state: np.ndarray) -> np.ndarray:
    """n standard normals from the kernel's generator (what its cycle-to-cycle noise uses)."""
    return _normals(n, state)


def merged_update(w: np.ndarray, dev: np.ndarray, x: np.ndarray, d: np.ndarray, gain: float,
                  bl: int, c2c: float, soft: bool, state: np.ndarray) -> None:
    """Bernoulli pulsed update of w in place with the counts of all N samples merged."""
    if not 1 <= bl <= 64:
        raise ValueError(f"the fused kernel packs BL <= 64 slots, got {bl}")
    _merged_update(w, dev, x, d, _F32(gain), bl, _F32(c2c), bool(soft), state)


def apply_counts_inplace(w: np.ndarray, dev: np.ndarray, n_up: np.ndarray, n_down: np.ndarray,
                         c2c: float, soft: bool, state: np.ndarray) -> None:
    """Given up and down coincidence counts (float32, (n_out, n_in)), update w in place."""
    _apply_counts(w, dev, n_up, n_down, _F32(c2c), bool(soft), state)
