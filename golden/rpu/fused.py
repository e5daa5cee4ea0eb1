"""Fused CPU kernel (numba) of the stochastic pulse update: one pass, in place, no temporaries.

Why: on the CPU the torch path (:mod:`.pulses`, :mod:`.closed_form`) is two dozen eager
operations per rank-1 update, each a few to 90 microseconds whatever the array size, and the
mini-batch's sequential updates are one Python iteration each. Here one call does the whole
mini-batch, sample after sample, on the weight array itself:

1. per line (inputs x_i, errors d_j) a BL-bit pulse mask: slot t fires when a 16-bit uniform
   u < round(min(gain*|v|, 1) * 2^16), exactly the resolution of
   :func:`.pulses.bernoulli_bits` (four uniforms per 64-bit xoshiro256** word);
2. per cell n_ij = popcount(mask_x_i & mask_d_j), direction sign(x_i)*sign(d_j), computed
   only on the output lines and inputs that pulsed at all;
3. the closed-form response of :mod:`.closed_form` to the n same-sign coincidences
   (constant step: mean n*dw, std dw*c2c*sqrt(n); soft bounds: the log-normal product),
   then the bounds, written into w.

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

__all__ = ["AVAILABLE", "new_state", "sequential_update", "apply_counts_inplace", "normals",
           "merged_update"]

_F32 = np.float32
_SCALE16 = _F32(65536.0)


def new_state(seed: int) -> np.ndarray:
    """Generator state: xoshiro256** words (seeded by splitmix64 from ``seed``), a buffered
    word and its unused 16-bit chunks, two words reserved (``f``: a float64 scratch view)."""
    s = np.zeros(8, np.uint64)
    z = seed & (2**64 - 1)
    for k in range(4):
        z = (z + 0x9E3779B97F4A7C15) & (2**64 - 1)
        v = z
        v = ((v ^ (v >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        v = ((v ^ (v >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        s[k] = v ^ (v >> 31)
    return s


def _rotl(x, k):
    return (x << np.uint64(k)) | (x >> np.uint64(64 - k))


def _next(s):
    """xoshiro256** (Blackman & Vigna 2018): the next 64-bit word; advances s[0:4]."""
    result = _rotl(s[1] * np.uint64(5), 7) * np.uint64(9)
    t = s[1] << np.uint64(17)
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


def _u16(s):
    """A uniform integer in [0, 2^16): four per word, the buffered word's chunks first."""
    if s[5] == 0:
        s[4] = _next(s)
        s[5] = np.uint64(4)
    s[5] -= np.uint64(1)
    v = s[4] & np.uint64(0xFFFF)
    s[4] >>= np.uint64(16)
    return v


def _zig_tables(c: int = 128, r: float = 3.442619855899, v: float = 9.91256303526217e-3):
    """Ziggurat layers of the normal density (Doornik 2005, ZIGNOR): edges x, ratios x'/x."""
    x = np.zeros(c + 1)
    f = math.exp(-0.5 * r * r)
    x[0], x[1] = v / f, r
    for i in range(2, c):
        x[i] = math.sqrt(-2 * math.log(v / x[i - 1] + f))
        f = math.exp(-0.5 * x[i] * x[i])
    return x, x[1:] / x[:-1]


_ZIG_X, _ZIG_R = _zig_tables()
_ZIG_TAIL = 3.442619855899


def _uniform(s):
    """A uniform on (0, 1]: 53 random bits."""
    return (float(_next(s) >> np.uint64(11)) + 1.0) * (1.0 / 9007199254740992.0)


def _zig_slow(u, i, s):
    """The ziggurat after its rectangle test failed for abscissa u in layer i."""
    while True:
        if i == 0:  # the base layer: a draw from the tail beyond R (Marsaglia 1964)
            while True:
                xt = math.log(_uniform(s)) / _ZIG_TAIL
                y = math.log(_uniform(s))
                if -2.0 * y >= xt * xt:
                    break
            return xt - _ZIG_TAIL if u < 0 else _ZIG_TAIL - xt
        xv = u * _ZIG_X[i]
        f0 = math.exp(-0.5 * (_ZIG_X[i] * _ZIG_X[i] - xv * xv))
        f1 = math.exp(-0.5 * (_ZIG_X[i + 1] * _ZIG_X[i + 1] - xv * xv))
        if f1 + _uniform(s) * (f0 - f1) < 1.0:
            return xv
        word = _next(s)  # rejected: a new draw
        u = 2.0 * (float(word >> np.uint64(11)) * (1.0 / 9007199254740992.0)) - 1.0
        i = np.int64(word & np.uint64(0x7F))
        if abs(u) < _ZIG_R[i]:
            return u * _ZIG_X[i]


def _normal(s, f):
    """A standard normal: the ziggurat of Doornik (2005), exact; one 64-bit word in 98.8 %
    of draws (53 bits for the abscissa, the 7 lowest for the layer). ``f``: the scratch view
    (unused by the ziggurat; kept so that every sampler has one signature)."""
    word = _next(s)
    u = 2.0 * (float(word >> np.uint64(11)) * (1.0 / 9007199254740992.0)) - 1.0
    i = np.int64(word & np.uint64(0x7F))
    if abs(u) < _ZIG_R[i]:
        return u * _ZIG_X[i]
    return _zig_slow(u, i, s)


def _fill_normals(buf, k, s, f):
    """buf[:k] = standard normals: the ziggurat's fast path with the generator state in
    local variables (a store to an array could alias it, so a call per draw reloads it),
    its rare rejections (1.2 %) by :func:`_normal` on the stored state."""
    s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    for q in range(k):
        word = _rotl(s1 * np.uint64(5), 7) * np.uint64(9)
        t = s1 << np.uint64(17)
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        u = 2.0 * (float(word >> np.uint64(11)) * (1.0 / 9007199254740992.0)) - 1.0
        i = np.int64(word & np.uint64(0x7F))
        if abs(u) < _ZIG_R[i]:
            buf[q] = u * _ZIG_X[i]
            continue
        s[0], s[1], s[2], s[3] = s0, s1, s2, s3
        buf[q] = _zig_slow(u, i, s)
        s0, s1, s2, s3 = s[0], s[1], s[2], s[3]
    s[0], s[1], s[2], s[3] = s0, s1, s2, s3


def _normals(n, s):
    """n standard normals (for the tests)."""
    f = s[6:8].view(np.float64)
    out = np.empty(n)
    _fill_normals(out, n // 2, s, f)
    for k in range(n // 2, n):  # both paths
        out[k] = _normal(s, f)
    return out


def _mask(v, gain, bl, s):
    """BL pulse bits of a line with value v: slot t fires with P = min(gain*|v|, 1)."""
    p = min(gain * abs(v), _F32(1.0))
    thr = np.uint64(np.rint(p * _SCALE16))
    if thr == 0:
        return np.uint64(0)
    m = np.uint64(0)
    for t in range(bl):
        if _u16(s) < thr:
            m |= np.uint64(1) << np.uint64(t)
    return m


def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


def _cell(w, dev, j, i, down, n, c2c, soft, s, f):
    """w[j, i] after n (> 0) coincidences in one direction (``down`` 0: up, 1: down):
    :func:`.closed_form.apply_direction` in float32, operation for operation; bounds last.
    The direction selects by index and sign, not by branch (it is random from cell to cell).
    Inlined by hand where it is hot (a call costs more than the update)."""
    nf = _F32(n)
    dw = dev[down, j, i]
    if not soft:
        step = dw * nf
        if c2c != 0:
            step = step + dw * c2c * _F32(math.sqrt(nf)) * _F32(_normal(s, f))
        wv = w[j, i] + _F32(1.0 - 2.0 * down) * step  # w - step exactly when down
    else:
        wv = w[j, i]
        bound = dev[2 + down, j, i]
        a = dw / abs(bound)
        log_m = nf * _F32(math.log1p(-a))
        if c2c != 0:
            r = (a * c2c) ** 2
            s2 = nf * _F32(math.log1p(r / (_F32(1.0) - a) ** 2))
            log_m = log_m - _F32(0.5) * s2 + _F32(math.sqrt(s2)) * _F32(_normal(s, f))
        wv = wv - (bound - wv) * _F32(math.expm1(log_m))
    w[j, i] = min(max(wv, dev[3, j, i]), dev[2, j, i])


def _sequential_update(w, dev, x, d, gain, bl, c2c, soft, s):
    """One rank-1 pulsed update per sample (rows of x (N, n_in), d (N, n_out)), in order.

    Per output line that pulsed: the counts of all inputs that pulsed in one branch-free
    pass, the cells with n > 0 gathered without branches, then updated (the constant-step
    case written out: as a call, _cell costs twenty times the arithmetic)."""
    f = s[6:8].view(np.float64)
    n_smp, n_in = x.shape
    n_out = d.shape[1]
    mx = np.empty(n_in, np.uint64)
    act = np.empty(n_in, np.int64)
    neg = np.empty(n_in, np.int64)
    cnt = np.empty(n_in, np.int64)
    hit = np.empty(n_in, np.int64)
    z = np.empty(n_in)
    for b in range(n_smp):
        na = 0
        for i in range(n_in):
            m = _mask(x[b, i], gain, bl, s)
            if m != 0:
                mx[na] = m
                act[na] = i
                neg[na] = 1 if x[b, i] < 0 else 0
                na += 1
        for j in range(n_out):
            mj = _mask(d[b, j], gain, bl, s)
            if mj == 0 or na == 0:
                continue
            neg_d = 1 if d[b, j] < 0 else 0
            k = 0
            for t in range(na):
                c = np.int64(_popcount(mx[t] & mj))
                cnt[t] = c
                hit[k] = t
                k += 1 if c != 0 else 0
            if soft:
                for q in range(k):
                    t = hit[q]
                    _cell(w, dev, j, act[t], neg[t] ^ neg_d, cnt[t], c2c, soft, s, f)
                continue
            if c2c != 0:
                _fill_normals(z, k, s, f)
            for q in range(k):
                t = hit[q]
                i = act[t]
                down = neg[t] ^ neg_d
                nf = _F32(cnt[t])
                dw = dev[down, j, i]
                step = dw * nf
                if c2c != 0:
                    step = step + dw * c2c * _F32(math.sqrt(nf)) * _F32(z[q])
                wv = w[j, i] + _F32(1.0 - 2.0 * down) * step
                w[j, i] = min(max(wv, dev[3, j, i]), dev[2, j, i])


def _merged_update(w, dev, x, d, gain, bl, c2c, soft, s):
    """The N samples' coincidences summed per cell and direction, then applied once (up,
    then down): the torch path's ``merged`` mini-batch update. Counts are accumulated on the
    lines that pulsed only, then each touched row is applied."""
    f = s[6:8].view(np.float64)
    n_smp, n_in = x.shape
    n_out = d.shape[1]
    cnt = np.zeros((2, n_out, n_in), np.int32)
    touched = np.zeros(n_out, np.bool_)
    mx = np.empty(n_in, np.uint64)
    act = np.empty(n_in, np.int64)
    neg = np.empty(n_in, np.int64)
    for b in range(n_smp):
        na = 0
        for i in range(n_in):
            m = _mask(x[b, i], gain, bl, s)
            if m != 0:
                mx[na] = m
                act[na] = i
                neg[na] = 1 if x[b, i] < 0 else 0
                na += 1
        for j in range(n_out):
            mj = _mask(d[b, j], gain, bl, s)
            if mj == 0 or na == 0:
                continue
            touched[j] = True
            neg_d = 1 if d[b, j] < 0 else 0
            for t in range(na):
                cnt[neg[t] ^ neg_d, j, act[t]] += np.int32(_popcount(mx[t] & mj))
    for j in range(n_out):
        if touched[j]:
            for down in range(2):
                for i in range(n_in):
                    if cnt[down, j, i] != 0:
                        _cell(w, dev, j, i, down, cnt[down, j, i], c2c, soft, s, f)


def _apply_counts(w, dev, n_up, n_down, c2c, soft, s):
    """Up counts, then down counts, per cell (each cell's n and direction as the torch path)."""
    f = s[6:8].view(np.float64)
    n_out, n_in = w.shape
    for j in range(n_out):
        for i in range(n_in):
            if n_up[j, i] != 0:
                _cell(w, dev, j, i, 0, n_up[j, i], c2c, soft, s, f)
            if n_down[j, i] != 0:
                _cell(w, dev, j, i, 1, n_down[j, i], c2c, soft, s, f)


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
    _rotl = njit(inline="always", **_opts)(_rotl)
    _next = njit(inline="always", **_opts)(_next)
    _u16 = njit(inline="always", **_opts)(_u16)
    _uniform = njit(inline="always", **_opts)(_uniform)
    _zig_slow = njit(**_opts)(_zig_slow)
    _normal = njit(**_opts)(_normal)
    _fill_normals = njit(**_opts)(_fill_normals)
    _normals = njit(**_opts)(_normals)
    _mask = njit(inline="always", **_opts)(_mask)
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
    """(x after noise management, input clamp and DAC; the per-row scales), float32."""
    out = np.empty_like(x)
    scale = np.empty(x.shape[0], np.float32)
    _io_in(x, _F32(inp_bound), _F32(inp_step), abs_max, out, scale)
    return out, scale


def periphery_out(y: np.ndarray, z: np.ndarray, noise: float, out_bound: float,
                  out_step: float, abs_max: bool, scale: np.ndarray) -> None:
    """In place on y (float32): output noise noise*z, clamp, ADC, times the input scale."""
    _io_out(y, z, _F32(noise), _F32(out_bound), _F32(out_step), abs_max, scale)


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
