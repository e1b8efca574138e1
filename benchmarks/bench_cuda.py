"""The core on a CUDA device against one CPU thread: exact log p(x), importance sampling, a training run.

    python benchmarks/bench_cuda.py

Prints one line per case (seconds on each device and the largest difference of the answers); needs a GPU.
"""

from __future__ import annotations

import time

import torch

from lvm_core.datasets import load_binarized_digits, make_dataset, standardize
from lvm_core.estimators import exact_marginal, importance_log_marginal
from lvm_core.models import MLPLVM
from lvm_core.pretrained import load_pretrained
from lvm_core.training import train_lvm


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main() -> None:
    torch.set_num_threads(1)
    cuda = torch.device("cuda")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    X, _, _ = standardize(make_dataset("two_moons", n=2000, seed=0))
    X = torch.as_tensor(X, dtype=torch.float32)
    moons = MLPLVM(2, 2, 64, seed=0)
    train_lvm(moons, X[:1000], steps=1500, seed=0)
    _, X_test, _, _ = load_binarized_digits()
    digits = load_pretrained("digits")[0]
    cases = {
        "exact log p(x), 1,000 two-moons points (MLPLVM trained 1,500 steps)": (moons, X[1000:]),
        "exact log p(x), 360 held-out digits (shipped model)": (digits, torch.as_tensor(X_test)),
    }
    for name, (model, x) in cases.items():
        cpu = torch.device("cpu")
        t_cpu, a = timed(lambda: exact_marginal(model.to(cpu), x).log_px, cpu)  # noqa: B023
        timed(lambda: exact_marginal(model.to(cuda), x[:10].to(cuda)), cuda)  # noqa: B023 (warm-up)
        t_gpu, b = timed(lambda: exact_marginal(model.to(cuda), x.to(cuda)).log_px, cuda)  # noqa: B023
        print(f"{name}: CPU {t_cpu:.2f} s, CUDA {t_gpu:.2f} s, max |diff| {float((a - b.cpu()).abs().max()):.1e}")
    x = X[1000:1100].to(torch.float64)
    model = moons.to(torch.float64)
    for device in (torch.device("cpu"), cuda):
        m, xd = model.to(device), x.to(device)
        q = torch.distributions.Independent(torch.distributions.Normal(torch.zeros(100, 2, dtype=torch.float64,
                                                                                   device=device), 1.0), 1)
        t, est = timed(lambda: importance_log_marginal(m, xd, q, k=10_000, trials=10, seed=0), device)  # noqa: B023
        print(f"importance sampling, 100 points x 10 trials x k=10,000 on {device.type}: {t:.2f} s")
    for device in ("cpu", "cuda"):
        t, _ = timed(lambda: train_lvm(MLPLVM(2, 2, 64, seed=0), X[:1000], steps=1000, seed=0, device=device),  # noqa: B023
                     torch.device(device))
        print(f"train_lvm defaults, 1,000 steps on {device}: {t:.1f} s")


if __name__ == "__main__":
    main()
