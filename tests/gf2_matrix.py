"""Independent GF(2) reference for the LFSR chains: the shift register as a matrix.

Written from the definition of a Fibonacci shift register only (new stage 0 = XOR of the
tapped stages, every other stage takes its neighbour), with no code shared with
cimflow.golden.lfsr or cimflow.gf2, so a bug in either cannot hide here.
"""

import numpy as np


def step_matrix(taps, length):
    """One shift of an L-stage register: stage q holds x(t - q); x(t+1) = XOR x(t+1-k)."""
    m = np.zeros((length, length), dtype=np.int64)
    for k in taps:
        m[0, k - 1] ^= 1
    for q in range(1, length):
        m[q, q - 1] = 1
    return m


def matmul2(a, b):
    return (a @ b) & 1


def matpow2(m, e):
    result = np.eye(m.shape[0], dtype=np.int64)
    while e:
        if e & 1:
            result = matmul2(result, m)
        m = matmul2(m, m)
        e >>= 1
    return result


def load_state(seed, degree, length):
    """State right after a seed load: stage q = seed bit q for q < degree, others 0."""
    s = np.zeros(length, dtype=np.int64)
    for q in range(degree):
        s[q] = (seed >> q) & 1
    return s
