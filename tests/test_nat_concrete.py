"""The Concrete ADC quantiser against its properties (docs/chip_training.md#concrete-adc).

Independent references: scipy's logistic CDF for p_k, round-and-clip for the hard
quantiser, the Gumbel-max theorem (argmax frequencies) for the Concrete sample, central
finite differences for the gradients. Random checks use fixed seeds; each sampling bound is
3 or 5 binomial standard errors, stated at the assertion.
"""

import numpy as np
import pytest
import torch
from scipy.stats import logistic

from cimflow.golden.nat.concrete import (
    class_probs,
    concrete_quantize,
    concrete_weights,
    hard_quantize,
    level_indices,
    levels,
    logistic_noise,
    ste_quantize,
)

torch.set_num_threads(1)
D = torch.float64


def test_levels_hold_zero_and_span_the_signed_grid():
    r = levels(torch.tensor(0.5, dtype=D), torch.tensor(0.0, dtype=D), 3)
    assert r.tolist() == [-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="ADC bits"):
        level_indices(0)


@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_probs_match_logistic_cdf_sum_to_one_and_peak_at_nearest(sigma):
    alpha, bits = 0.5, 3
    x = torch.linspace(-4, 4, 1601, dtype=D) + 1e-3  # off the midpoints
    p = class_probs(x, alpha, 0.0, sigma, bits)
    assert torch.allclose(p.sum(-1), torch.ones_like(x), atol=1e-12)
    r = levels(torch.tensor(alpha, dtype=D), 0.0, bits).numpy()
    edges = np.concatenate([[-np.inf], (r[1:] + r[:-1]) / 2, [np.inf]])
    ref = (logistic.cdf(edges[None, 1:], loc=x.numpy()[:, None], scale=sigma)
           - logistic.cdf(edges[None, :-1], loc=x.numpy()[:, None], scale=sigma))
    np.testing.assert_allclose(p.numpy(), ref, atol=1e-12)
    # the peak is the nearest level wherever the open-ended end bins do not collect more
    # mass than it: noise below one step and x between the second and the last-but-one level
    if sigma < alpha:
        inner = (x > r[1]) & (x < r[-2])
        nearest = torch.round(x[inner] / alpha) + 4
        assert torch.equal(p[inner].argmax(-1), nearest.long())
    # the inner bins (the end bins are open-ended) are unimodal at every sigma: rising up to
    # their peak and falling after it, as alpha times the logistic density is
    q = p[:, 1:-1]
    d = torch.diff(q, dim=-1)
    k = torch.arange(d.shape[1])
    peak = q.argmax(-1, keepdim=True)
    assert bool(((d >= -1e-15) | (k >= peak)).all()) and bool(((d <= 1e-15) | (k < peak)).all())


def test_small_sigma_gives_one_hot_and_small_tau_gives_round_and_clip():
    alpha, bits = 0.25, 4
    x = torch.linspace(-3, 3, 999, dtype=D)
    x = x[(torch.remainder(x / alpha, 1.0) - 0.5).abs() > 1e-3]  # off the decision thresholds
    p = class_probs(x, alpha, 0.0, 1e-5, bits)
    nearest = (torch.clamp(torch.round(x / alpha), -8, 7) + 8).long()
    onehot = torch.nn.functional.one_hot(nearest, 16).to(D)
    assert torch.allclose(p, onehot, atol=1e-6)
    g = torch.Generator().manual_seed(1)
    u = torch.rand(x.shape + (16,), generator=g, dtype=D)
    xh = concrete_quantize(x, alpha, 0.0, 1e-5, bits, 1e-4, u)
    assert torch.allclose(xh, torch.clamp(torch.round(x / alpha), -8, 7) * alpha, atol=1e-6)
    assert torch.equal(hard_quantize(x, alpha, 0.0, bits), torch.clamp(torch.round(x / alpha),
                                                                       -8, 7) * alpha)


@pytest.mark.parametrize("tau", [0.1, 1.0, 10.0])
def test_argmax_of_concrete_sample_is_categorical_p(tau):
    # Gumbel-max: argmax pi ~ Categorical(p) at every tau. Bound 3 sqrt(p(1-p)/N) per class
    # (0.27 % two-sided per class; fixed seed, so the test is deterministic).
    n = 40000
    p = torch.tensor([0.05, 0.15, 0.3, 0.5], dtype=D).expand(n, 4)
    g = torch.Generator().manual_seed(7)
    pi = concrete_weights(p, tau, torch.rand(p.shape, generator=g, dtype=D))
    freq = torch.bincount(pi.argmax(-1), minlength=4).to(D) / n
    p0 = p[0]
    assert bool(((freq - p0).abs() <= 3 * torch.sqrt(p0 * (1 - p0) / n)).all()), freq


def test_output_within_levels_for_any_input_and_noise():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5000, generator=g, dtype=D) * 10
    sigma = torch.rand(5000, generator=g, dtype=D) + 0.01
    xh = concrete_quantize(x, 0.3, 0.0, sigma, 3, 0.7)
    assert float(xh.min()) >= -4 * 0.3 - 1e-12 and float(xh.max()) <= 3 * 0.3 + 1e-12


def test_temperature_limits():
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=D).expand(2000, 4)
    g = torch.Generator().manual_seed(5)
    u = torch.rand(p.shape, generator=g, dtype=D)
    pi = concrete_weights(p, 1e-3, u)
    # one-hot to 1e-6 unless the two largest perturbed logits are within tau ln(1e6) (then
    # exp(-gap / tau) > 1e-6 by arithmetic); such near ties are rare
    z = torch.log(p) - torch.log(-torch.log(u))
    top2 = z.topk(2, -1).values
    near_tie = (top2[:, 0] - top2[:, 1]) < 1e-3 * np.log(1e6)
    onehot = (1 - pi.max(-1).values) < 1e-6
    assert bool((onehot | near_tie).all()) and float(near_tie.to(D).mean()) < 0.05
    flat = concrete_weights(p, 1e6, u)
    assert torch.allclose(flat, torch.full_like(flat, 0.25), atol=1e-4)


def test_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(40, generator=g, dtype=D) * 0.8).requires_grad_()
    alpha = torch.tensor(0.3, dtype=D, requires_grad=True)
    beta = torch.tensor(0.05, dtype=D, requires_grad=True)
    u = torch.rand(40, 8, generator=g, dtype=D)
    w = torch.randn(40, generator=g, dtype=D)

    def f(x_, a_, b_):
        return (w * concrete_quantize(x_, a_, b_, 0.2, 3, 0.5, u)).sum()

    f(x, alpha, beta).backward()
    h = 1e-6
    for name, var, grad in (("x", x, x.grad), ("alpha", alpha, alpha.grad),
                            ("beta", beta, beta.grad)):
        flat = var.detach().clone().reshape(-1)
        fd = torch.empty_like(flat)
        for i in range(flat.numel()):
            up, dn = flat.clone(), flat.clone()
            up[i] += h
            dn[i] -= h
            args = {"x": x.detach(), "alpha": alpha.detach(), "beta": beta.detach()}
            args[name] = up.reshape(var.shape)
            fu = f(args["x"], args["alpha"], args["beta"])
            args[name] = dn.reshape(var.shape)
            fdn = f(args["x"], args["alpha"], args["beta"])
            fd[i] = (fu - fdn) / (2 * h)
        assert torch.isfinite(grad).all()
        rel = (grad.reshape(-1) - fd).norm() / fd.norm()
        assert rel < 1e-3, (name, float(rel))


def test_noisy_hard_quantiser_reads_level_k_with_probability_p_k():
    # the evaluation path (x + logistic noise, then round) against the class probabilities;
    # bound 5 binomial standard errors per level
    n, sigma, alpha = 200000, 0.15, 0.25
    x = torch.full((n,), 0.31, dtype=D)
    g = torch.Generator().manual_seed(13)
    xh = hard_quantize(x, alpha, 0.0, 3, sigma, generator=g)
    k = torch.round(xh / alpha).long() + 4
    freq = torch.bincount(k, minlength=8).to(D) / n
    p = class_probs(x[:1], alpha, 0.0, sigma, 3)[0]
    assert bool(((freq - p).abs() <= 5 * torch.sqrt(p * (1 - p) / n) + 1e-12).all())


def test_logistic_noise_has_logistic_variance():
    n, s = 400000, 0.7
    e = logistic_noise((n,), s, torch.Generator().manual_seed(2), like=torch.zeros(1, dtype=D))
    var = s**2 * np.pi**2 / 3
    # sample variance standard error sqrt((mu4 - var^2)/n), logistic excess kurtosis 1.2
    se = np.sqrt((2 + 1.2) * var**2 / n)
    assert abs(float(e.var()) - var) < 5 * se and abs(float(e.mean())) < 5 * np.sqrt(var / n)


def test_ste_rounds_clips_and_passes_gradient_inside_only():
    x = torch.linspace(-3, 3, 601, dtype=D).requires_grad_()
    alpha = torch.tensor(0.4, dtype=D)
    y = ste_quantize(x, alpha, 0.0, 3)
    u = x.detach() / 0.4
    assert torch.allclose(y, torch.clamp(torch.round(u), -4, 3) * 0.4)
    y.sum().backward()
    assert torch.equal(x.grad, ((u >= -4) & (u <= 3)).to(D))


def test_bad_parameters_are_refused_in_one_line():
    with pytest.raises(ValueError, match="sigma must be > 0") as e:
        class_probs(torch.zeros(3), 1.0, 0.0, 0.0, 2)
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match="tau must be > 0"):
        concrete_weights(torch.full((2, 4), 0.25), 0.0)
