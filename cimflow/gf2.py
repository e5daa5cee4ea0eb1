"""GF(2) polynomial arithmetic used to prove an LFSR polynomial is maximal-length.

An LFSR with recurrence ``a(t) = XOR_{k in taps} a(t - k)`` has characteristic polynomial
``P(x) = x^d + sum_{k in taps, k<d} x^(d-k) + 1`` (d = max(taps)). Its sequence has the
maximal period 2^d - 1 exactly when P is primitive: the multiplicative order of x modulo P
is 2^d - 1, i.e. x^(2^d-1) = 1 and x^((2^d-1)/q) != 1 for every prime q dividing 2^d - 1.
Polynomials are Python ints, bit i = coefficient of x^i.
"""

from __future__ import annotations

import math
import random

__all__ = ["char_poly", "is_primitive", "prime_factors"]


def char_poly(taps: tuple[int, ...]) -> int:
    """Characteristic polynomial of the recurrence a(t) = XOR a(t - k), k in taps."""
    d = max(taps)
    poly = (1 << d) | 1
    for k in taps:
        if k != d:
            poly ^= 1 << (d - k)
    return poly


def _mulmod(a: int, b: int, mod: int, deg: int) -> int:
    result = 0
    while b:
        if b & 1:
            result ^= a
        b >>= 1
        a <<= 1
        if a >> deg & 1:
            a ^= mod
    return result


def _powmod_x(exponent: int, mod: int, deg: int) -> int:
    result, base = 1, 2  # x itself; valid because deg >= 2
    while exponent:
        if exponent & 1:
            result = _mulmod(result, base, mod, deg)
        base = _mulmod(base, base, mod, deg)
        exponent >>= 1
    return result


def _is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    for p in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d //= 2
        s += 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = x * x % n
            if x == n - 1:
                break
        else:
            return False
    return True


def _pollard_brent(n: int, rng: random.Random) -> int:
    if n % 2 == 0:
        return 2
    while True:
        y, c, m = rng.randrange(1, n), rng.randrange(1, n), 128
        g, r, q = 1, 1, 1
        while g == 1:
            x = y
            for _ in range(r):
                y = (y * y + c) % n
            k = 0
            while k < r and g == 1:
                ys = y
                for _ in range(min(m, r - k)):
                    y = (y * y + c) % n
                    q = q * abs(x - y) % n
                g = math.gcd(q, n)
                k += m
            r *= 2
        if g == n:
            g = 1
            while g == 1:
                ys = (ys * ys + c) % n
                g = math.gcd(abs(x - ys), n)
        if g != n:
            return g


def prime_factors(n: int) -> set[int]:
    """Distinct prime factors of n (Miller-Rabin + Pollard-Brent; fine for 2^d - 1, d <= 64)."""
    rng = random.Random(0)
    out: set[int] = set()
    stack = [n]
    while stack:
        m = stack.pop()
        if m == 1:
            continue
        if _is_probable_prime(m):
            out.add(m)
            continue
        f = _pollard_brent(m, rng)
        stack += [f, m // f]
    return out


def is_primitive(taps: tuple[int, ...]) -> bool:
    """True when the LFSR with these taps has the maximal period 2^d - 1."""
    d = max(taps)
    poly = char_poly(taps)
    order = (1 << d) - 1
    if _powmod_x(order, poly, d) != 1:
        return False
    return all(_powmod_x(order // q, poly, d) != 1 for q in prime_factors(order))
