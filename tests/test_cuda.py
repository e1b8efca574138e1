"""The core on a CUDA device: the same answers as on the CPU, and seeded runs reproducible there.

Skipped without a GPU (the suite runs on the CPU); run on a machine with one: pytest tests/test_cuda.py.
"""

import math

import pytest
import torch

from lvm_core.datasets import load_binarized_digits, make_dataset, standardize
from lvm_core.estimators import exact_marginal, importance_log_marginal, importance_log_weights, log_mean_exp
from lvm_core.models import MLPLVM, BernoulliMLPLVM, LinearGaussianLVM
from lvm_core.proposals import sample
from lvm_core.training import train_lvm

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda")


def _moons(n=400):
    X, _, _ = standardize(make_dataset("two_moons", n=n, seed=0))
    return X


def test_an_int_seed_draws_the_same_proposal_samples_on_either_device():
    loc, scale = torch.tensor([[0.5, -1.0]], dtype=torch.float64), torch.tensor([[0.3, 2.0]], dtype=torch.float64)
    q_cpu = torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)
    q_gpu = torch.distributions.Independent(torch.distributions.Normal(loc.to(CUDA), scale.to(CUDA)), 1)
    a = sample(q_cpu, (1000,), torch.Generator().manual_seed(3))
    b = sample(q_gpu, (1000,), torch.Generator(device=CUDA).manual_seed(3))
    assert b.device.type == "cuda" and a.shape == b.shape
    # each device's generator is reproducible on its own
    torch.testing.assert_close(b, sample(q_gpu, (1000,), torch.Generator(device=CUDA).manual_seed(3)), rtol=0, atol=0)


def test_exact_marginal_on_cuda_equals_the_cpu_to_the_quadrature_promise():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=32, depth=2, seed=1, dtype=torch.float64)
    x = torch.as_tensor(_moons(200), dtype=torch.float64)
    cpu = exact_marginal(model, x)
    gpu = exact_marginal(model.to(CUDA), x.to(CUDA))
    assert gpu.log_px.device.type == "cuda"
    assert float((gpu.log_px.cpu() - cpu.log_px).abs().max()) < 2e-4


def test_exact_marginal_of_a_bernoulli_model_on_cuda_equals_the_cpu():
    _, X_test, _, _ = load_binarized_digits()
    model = BernoulliMLPLVM(hidden=64, seed=0, dtype=torch.float64)
    x = torch.as_tensor(X_test[:50], dtype=torch.float64)
    cpu = exact_marginal(model, x).log_px
    gpu = exact_marginal(model.to(CUDA), x.to(CUDA)).log_px.cpu()
    assert float((gpu - cpu).abs().max()) < 2e-4


def test_importance_sampling_on_cuda_is_reproducible_and_agrees_with_the_closed_form():
    W = torch.tensor([[1.0, 0.5], [-0.3, 2.0], [0.7, -1.0]], dtype=torch.float64)
    model = LinearGaussianLVM(W, torch.zeros(3, dtype=torch.float64), 0.5).to(CUDA)
    x = model.sample(4, generator=0)[0]  # an int seed: the same x on any device
    assert x.device.type == "cuda"
    exact = exact_marginal(model, x).log_px
    q = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(4, 2, dtype=x.dtype, device=CUDA),
                                                                   torch.ones(4, 2, dtype=x.dtype, device=CUDA)), 1)
    a = importance_log_marginal(model, x, q, k=20_000, trials=4, seed=5)
    b = importance_log_marginal(model, x, q, k=20_000, trials=4, seed=5)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    log_w, _ = importance_log_weights(model, x, q, k=20_000, seed=5)
    w = torch.exp(log_w - log_w.max(0).values)
    se = (w / w.mean(0)).std(0) / math.sqrt(20_000)  # delta method: SE of the log of the mean
    assert torch.all((log_mean_exp(log_w) - exact).abs() < 5 * se + 1e-6)


def test_training_on_cuda_is_reproducible_and_returns_the_model_home():
    X = _moons()
    runs = []
    for _ in range(2):
        model = MLPLVM(latent_dim=2, hidden=16, seed=0)
        history = train_lvm(model, X, steps=200, warmup=20, seed=0, device="cuda")
        assert history.finished and history.config["device"] == "cuda"
        assert next(model.parameters()).device.type == "cpu"
        runs.append(history.bound)
    assert runs[0] == runs[1]
    assert sum(runs[0][-20:]) / 20 > runs[0][0] + 0.5
