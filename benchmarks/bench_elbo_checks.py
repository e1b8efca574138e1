"""The ELBO page's diagnostics of a fitted q: the time of each computation the page adds, as a ratio against the exact
log p(x) of the same point in the same run (what the page computes anyway).

    python benchmarks/bench_elbo_checks.py     # writes benchmarks/results/elbo_checks.md

Per model, at a q fitted by 500 steps of the page's optimiser (fit_local_posterior's defaults):
- "did it work?": inference.fit_check, S = 2,000 importance weights (k-hat, ESS) and both KLs;
- the family's ceiling: estimators.best_gaussian_elbo (mean-field) and the exact ELBO of the result;
- the gradient variance along the fit: inference.gradient_variance_path, 16 phi snapshots x 3 estimators x 500
  estimates of k = 8 samples;
- the IWAE-k SNR sweep: gradients.iwae_snr_sweep, k = 1, 2, ..., 128 (8 values) x 1,000 draws, IWAE and DReG.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import gradients as gr  # noqa: E402
from lvm_core import inference as vi  # noqa: E402
from lvm_core.estimators import best_gaussian_elbo, exact_log_marginal, quadrature_elbo  # noqa: E402
from lvm_core.models import MLPLVM, LinearGaussianLVM, SeedLVM, hard_posterior  # noqa: E402

REPEATS = 3
KS = (1, 2, 4, 8, 16, 32, 64, 128)


def median_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cases():
    point = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    yield "seed model, 1-D latent (the page's default)", SeedLVM(1, seed=0), point
    yield "seed model, 2-D latent, noise 0.3", SeedLVM(2, seed=0, noise_scale=0.3), point
    yield "linear-Gaussian, 2-D latent", LinearGaussianLVM.random(2, 2, 0.5, seed=0), point
    model, x = hard_posterior("banana")
    yield "banana (hard posterior)", model, x
    mlp = MLPLVM(latent_dim=2, data_dim=2, hidden=64, seed=0, dtype=torch.float32)
    yield "MLPLVM, 2-D latent, 64 wide (float32)", mlp, point.float()


def fmt(t: float) -> str:
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    for name, model, x in cases():
        q, _ = vi.fit_local_posterior(model, x, steps=500)
        qs = [q] * 16
        t_ref = median_time(lambda: exact_log_marginal(model, x))  # noqa: B023
        t_check = median_time(lambda: vi.fit_check(model, x, q, draws=2000, seed=0))  # noqa: B023
        t_best = median_time(lambda: quadrature_elbo(model, x, best_gaussian_elbo(model, x,  # noqa: B023
                                                                                 full_covariance=False)))
        t_path = median_time(lambda: vi.gradient_variance_path(model, x, qs, k=8, replicates=500))  # noqa: B023
        t_snr = median_time(lambda: gr.iwae_snr_sweep(model, x, q.mean, q.stddev.log(), KS, 1000,  # noqa: B023
                                                      torch.Generator().manual_seed(0)))
        rows.append((name, fmt(t_ref), *(f"{fmt(t)} ({t / t_ref:.1f}x)" for t in (t_check, t_best, t_path, t_snr))))
        print(rows[-1], flush=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# The ELBO page's diagnostics of a fitted q (`bench_elbo_checks.py`)",
        "",
        f"Measured {stamp}, torch {torch.__version__}, Python {platform.python_version()}, 1 torch thread, load "
        f"average {load:.1f}. Median of {REPEATS}; in brackets, the ratio against the exact log p(x) of the point.",
        "",
        "| model | exact log p(x) | fit check (S = 2,000, both KLs) | best mean-field Gaussian + its ELBO | "
        "variance path (16 x 3 x 500, k = 8) | IWAE SNR sweep (8 k x 1,000) |",
        "|---|---:|---:|---:|---:|---:|",
        *(f"| {' | '.join(r)} |" for r in rows),
        "",
    ]
    out = ROOT / "benchmarks" / "results" / "elbo_checks.md"
    out.write_text("\n".join(lines))
    print(out.read_text())


if __name__ == "__main__":
    main()
