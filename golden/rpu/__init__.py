"""Analog training on RPU crossbars (Gokmen & Vlasov 2016; Gokmen & Haensch 2020; Onen et al.
2022): device models, pulse sources, the stochastic pulse update, analog torch layers and the
optimiser that drives them. Pure torch, device-agnostic (CPU and CUDA alike).
"""

from .devices import ConstantStepDevice, IdealDevice, SoftBoundsDevice
from .io import IOParameters
from .layers import AnalogConv2d, AnalogLinear, AnalogSequential, convert_to_analog
from .optimizer import AnalogSGD
from .pulses import BernoulliSource, LfsrSource
from .tile import RPUConfig, TransferConfig

__all__ = [
    "ConstantStepDevice", "IdealDevice", "SoftBoundsDevice", "IOParameters",
    "AnalogLinear", "AnalogConv2d", "AnalogSequential", "convert_to_analog", "AnalogSGD",
    "BernoulliSource", "LfsrSource", "RPUConfig", "TransferConfig",
]
