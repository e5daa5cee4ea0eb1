"""Analog torch layers and ``convert_to_analog`` (Gokmen & Vlasov 2016: forward,
backward and update cycles).

The forward pass reads the tile through the periphery model, the backward pass multiplies
the errors by the transposed array through the same model, and the backward pass also
records (x, -dL/dy) on the tile: the optimiser (:class:`~.optimizer.AnalogSGD`) turns them
into pulses. The bias is one more array input driven by a constant 1, as in the RPU paper,
so it is analog and pulse-updated too. A zero-size parameter ``analog_ctx`` carries the tile
into the optimiser and makes autograd visit the layer even when its input needs no gradient.
AnalogConv2d unfolds its input (im2col): every output position is one array read and, in
the update, one rank-1 pulse update.

``convert_to_analog`` turns every ``nn.Sequential`` into an :class:`AnalogSequential`: where
its children are analog linear layers and element-wise activations only, its forward runs
the whole chain as one autograd node (:class:`_AnalogChain`), with the very operations of
the layer-by-layer path in the same order - so the same outputs, gradients and recorded
updates, bit for bit (tested) - without a module call, a pad node and an autograd node per
layer: at batch 1 those cost more than the arithmetic.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .io import analog_mvm
from .tile import RPUConfig, make_tile

__all__ = ["AnalogLinear", "AnalogConv2d", "AnalogSequential", "convert_to_analog"]


class _AnalogMVM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, analog_ctx, tile):
        ctx.tile = tile
        ctx.save_for_backward(x)
        w = tile.read()
        return analog_mvm(x, w, tile.cfg.forward, tile.generator(w.device),
                          tile.cfg.fused)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        tile = ctx.tile
        w = tile.read()
        dx = None
        if ctx.needs_input_grad[0]:
            dx = analog_mvm(grad, w.T, tile.cfg.backward, tile.generator(w.device),
                            tile.cfg.fused)
        tile.record(x, -grad)
        return dx, None, None


# element-wise activations the chain runs itself: forward, and the backward torch's own
# autograd node calls (same kernel, so the same gradients)
_ACTIVATIONS = {
    nn.Sigmoid: (torch.sigmoid, torch.ops.aten.sigmoid_backward),
    nn.Tanh: (torch.tanh, torch.ops.aten.tanh_backward),
    nn.ReLU: (torch.relu, lambda g, y: torch.ops.aten.threshold_backward(g, y, 0)),
}


class _AnalogChain(torch.autograd.Function):
    """Analog linear layers and activations of an :class:`AnalogSequential` as one node:
    per layer the bias pad, :func:`.io.analog_mvm` and the activation going forward, and
    going back the activation's backward, the transposed read (none for the first layer
    when the input needs no gradient) and the tile's record - the per-layer nodes' work."""

    @staticmethod
    def forward(ctx, x, plan, *analog_ctxs):
        saved = []
        h = x
        first = None
        for k, (layer, act) in enumerate(plan):
            if act is not None:
                h = _ACTIVATIONS[act][0](h)
                saved.append(h)
                continue
            if h.shape[-1] != layer.in_features:
                raise ValueError(f"AnalogLinear expects {layer.in_features} input features, "
                                 f"got {h.shape[-1]}")
            if first is None:
                first = k
            if layer.use_bias:
                h = F.pad(h, (0, 1), value=1.0)
            saved.append(h)
            tile = layer.tile
            w = tile.read()
            h = analog_mvm(h, w, tile.cfg.forward, tile.generator(w.device), tile.cfg.fused)
        ctx.plan, ctx.saved, ctx.first = plan, saved, first
        return h

    @staticmethod
    def backward(ctx, grad):
        plan, saved, first = ctx.plan, ctx.saved, ctx.first
        # below the first analog layer a gradient flows only if the input needs one (as in
        # the per-layer graph, where no node is made there otherwise)
        for k in range(len(plan) - 1, -1, -1):
            if grad is None:
                break
            layer, act = plan[k]
            if act is not None:
                grad = _ACTIVATIONS[act][1](grad, saved[k])
                continue
            tile = layer.tile
            dx = None
            if k > first or ctx.needs_input_grad[0]:
                w = tile.read()
                dx = analog_mvm(grad, w.T, tile.cfg.backward, tile.generator(w.device),
                                tile.cfg.fused)
                if layer.use_bias:
                    dx = dx[:, :-1]
            tile.record(saved[k], -grad)
            grad = dx
        return (grad, None) + (None,) * (len(ctx.needs_input_grad) - 2)


class AnalogContext(nn.Parameter):
    """Zero-size parameter that points at its layer's tile (kept across ``deepcopy``)."""

    def __new__(cls, tile):
        p = super().__new__(cls, torch.zeros(0), requires_grad=True)
        p._rpu_tile = tile
        return p

    def __deepcopy__(self, memo):
        if id(self) not in memo:
            memo[id(self)] = AnalogContext(copy.deepcopy(self._rpu_tile, memo))
        return memo[id(self)]


class _AnalogBase(nn.Module):
    def _setup(self, out_size: int, in_size: int, bias: bool, cfg: RPUConfig | None, index):
        self.rpu_config = cfg if cfg is not None else RPUConfig()
        self.use_bias = bias
        self.tile = make_tile(out_size, in_size + int(bias), self.rpu_config, index)
        self.analog_ctx = AnalogContext(self.tile)

    def _mvm(self, x2d: torch.Tensor) -> torch.Tensor:
        if self.use_bias:
            x2d = F.pad(x2d, (0, 1), value=1.0)
        return _AnalogMVM.apply(x2d, self.analog_ctx, self.tile)

    def set_weights(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        """Program the array (clipped to the device bounds); ``bias`` into the last input."""
        w = weight.detach().reshape(weight.shape[0], -1)
        if self.use_bias:
            b = bias.detach() if bias is not None else torch.zeros(w.shape[0])
            w = torch.cat([w, b.to(w).unsqueeze(1)], dim=1)
        self.tile.set_weight(w)

    def get_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(weight, bias) as the array holds them now (no read noise)."""
        w = self.tile.read()
        if self.use_bias:
            return w[:, :-1], w[:, -1]
        return w, None


class AnalogLinear(_AnalogBase):
    """y = analog(W [x; 1]) with W on an RPU array."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rpu_config: RPUConfig | None = None, index: int = 0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._setup(out_features, in_features, bias, rpu_config, index)
        lim = in_features ** -0.5
        w = torch.empty(out_features, in_features).uniform_(
            -lim, lim, generator=torch.Generator().manual_seed(self.tile._seed))
        self.set_weights(w, torch.zeros(out_features) if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(f"AnalogLinear expects {self.in_features} input features, got "
                             f"{x.shape[-1]}")
        lead = x.shape[:-1]
        y = self._mvm(x.reshape(-1, self.in_features))
        return y.reshape(*lead, self.out_features)


class AnalogConv2d(_AnalogBase):
    """2-D convolution on an RPU array via im2col (groups = 1, dilation = 1)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, rpu_config: RPUConfig | None = None, index: int = 0):
        super().__init__()
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, ks
        self.stride, self.padding = stride, padding
        fan_in = in_channels * ks[0] * ks[1]
        self._setup(out_channels, fan_in, bias, rpu_config, index)
        lim = fan_in ** -0.5
        w = torch.empty(out_channels, fan_in).uniform_(
            -lim, lim, generator=torch.Generator().manual_seed(self.tile._seed))
        self.set_weights(w, torch.zeros(out_channels) if bias else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"AnalogConv2d expects (N, {self.in_channels}, H, W), got "
                             f"{tuple(x.shape)}")
        n, _, h, w = x.shape
        cols = F.unfold(x, self.kernel_size, padding=self.padding, stride=self.stride)
        n_pos = cols.shape[2]
        y = self._mvm(cols.transpose(1, 2).reshape(n * n_pos, -1))
        s = (self.stride, self.stride) if isinstance(self.stride, int) else self.stride
        p = (self.padding, self.padding) if isinstance(self.padding, int) else self.padding
        ho = (h + 2 * p[0] - self.kernel_size[0]) // s[0] + 1
        wo = (w + 2 * p[1] - self.kernel_size[1]) // s[1] + 1
        return y.reshape(n, n_pos, self.out_channels).transpose(1, 2).reshape(
            n, self.out_channels, ho, wo)


class AnalogSequential(nn.Sequential):
    """nn.Sequential whose analog linear layers and element-wise activations (Sigmoid, Tanh,
    ReLU), when they are all its children, run as one autograd node (:class:`_AnalogChain`);
    with any other child, a hook on a child, or an input that is not 2-D: the plain
    layer-by-layer forward."""

    def _plan(self, x: torch.Tensor):
        if x.dim() != 2:
            return None
        mods = tuple(self._modules.values())
        cache = self.__dict__.get("_chain")
        if cache is None or cache[0] != mods:
            plan = []
            for m in mods:
                if type(m) is AnalogLinear:  # a subclass may have its own forward
                    plan.append((m, None))
                elif type(m) in _ACTIVATIONS:
                    plan.append((m, type(m)))
                else:
                    plan = None
                    break
            if plan is not None and all(act is not None for _, act in plan):
                plan = None
            cache = (mods, tuple(plan) if plan is not None else None)
            self.__dict__["_chain"] = cache
        plan = cache[1]
        if plan is not None:
            for m, _ in plan:
                if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks \
                        or m._backward_pre_hooks:
                    return None
        return plan

    def forward(self, x):
        plan = self._plan(x)
        if plan is None:
            return super().forward(x)
        return _AnalogChain.apply(x, plan, *(m.analog_ctx for m, act in plan if act is None))


def convert_to_analog(model: nn.Module, rpu_config: RPUConfig | None = None) -> nn.Module:
    """A copy of ``model`` with every nn.Linear and nn.Conv2d on analog arrays (weights kept)
    and every nn.Sequential an :class:`AnalogSequential`."""
    cfg = rpu_config if rpu_config is not None else RPUConfig()
    model = copy.deepcopy(model)
    counter = [0]

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            new = None
            if type(child) is nn.Sequential:
                swap(child)
                child.__class__ = AnalogSequential  # a subclass without state of its own
                continue
            if isinstance(child, nn.Linear):
                new = AnalogLinear(child.in_features, child.out_features,
                                   child.bias is not None, cfg, counter[0])
            elif isinstance(child, nn.Conv2d):
                if child.groups != 1 or child.dilation not in (1, (1, 1)) or isinstance(
                        child.padding, str):
                    raise ValueError(f"convert_to_analog: Conv2d {name!r} needs groups=1, "
                                     f"dilation=1 and numeric padding")
                new = AnalogConv2d(child.in_channels, child.out_channels, child.kernel_size,
                                   child.stride, child.padding, child.bias is not None, cfg,
                                   counter[0])
            if new is None:
                swap(child)
                continue
            counter[0] += 1
            new.to(device=child.weight.device, dtype=child.weight.dtype)
            new.set_weights(child.weight, child.bias)
            setattr(parent, name, new)

    swap(model)
    if type(model) is nn.Sequential:
        model.__class__ = AnalogSequential
    return model
