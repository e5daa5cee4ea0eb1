"""MNIST-shaped data the tests can learn from without the real files: each digit class
lights its own 7 x 7 block of a noisy 28 x 28 image (uint8, like the idx files)."""

import numpy as np


def synthetic_mnist(n, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 40, (n, 28, 28))
    for i, c in enumerate(y):
        r, col = 7 * (c // 4), 7 * (c % 4)
        x[i, r:r + 7, col:col + 7] += 200
    return x.astype(np.uint8), y.astype(np.uint8)
