"""Training for the chip: noise-aware training, the Concrete ADC quantiser, calibration.

Torch only and device-agnostic; works on any model built of nn.Linear and nn.Conv2d
(docs/chip_training.md). ``noise_aware(model, NatConfig(...))`` is the one switch;
``plain(model)`` undoes it for export.
"""

from .adc import Adc
from .aware import (
    NatConfig,
    NoiseAware,
    aware_layers,
    noise_aware,
    plain,
    quant_settings,
    set_noise,
)
from .calibrate import OperatingPoint, calibrate, operating_point
from .export import Clip, chip_export
from .pact import Pact
from .srmp import Srmp, active_lines

__all__ = [
    "Adc", "NatConfig", "NoiseAware", "aware_layers", "noise_aware", "plain", "quant_settings",
    "set_noise", "OperatingPoint", "calibrate", "operating_point", "Pact", "Srmp",
    "active_lines", "Clip", "chip_export",
]
