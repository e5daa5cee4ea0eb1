"""The neuron ADC's reference algorithm on real-valued charge, bit by bit.

A second, deliberately literal reading of the conversion (one subtract-or-add step per
output bit) against which the closed form and the integer converters are checked.
"""

from __future__ import annotations

import numpy as np

__all__ = ["adc_reference"]


def adc_reference(q: np.ndarray, k: int):
    """The step-by-step reference algorithm (docs/model.md#conversion) on real q, vectorised."""
    r = np.array(q, dtype=np.float64)
    s = (r > 0).astype(np.uint8)
    mag = np.zeros(r.shape, dtype=np.int64)
    for m in range(k):
        r = np.where(r >= 0, r - 2.0**-m, r + 2.0**-m)
        mag = (mag << 1) | (r >= 0)
    mag = np.where(s == 1, mag, (1 << k) - 1 - mag)
    return s, mag
