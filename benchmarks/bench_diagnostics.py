"""Diagnostics and gradient estimators: the time of each new computation, as a ratio against a reference measured in
the same run, and the numbers behind the hard posteriors (which proposals fail, which help).

    python benchmarks/bench_diagnostics.py     # writes benchmarks/results/diagnostics.md

Timings:
- Pareto k-hat of the estimating page's R = 200 trials x k = 1,000 weights, against drawing those weights;
- forward KL(p(z|x) || q) and the ELBO-best Gaussian for one point, against exact log p(x) for that point;
- the ELBO page's three gradient histograms (1,000 draws each), against inference.elbo_gradient_samples (two);
- the IWAE SNR sweep over k = 1, 2, 4, ..., 64 (1,000 draws per k) on an MLPLVM, against a Python loop of autograd
  calls over draws (timed on 50 draws per k, scaled to 1,000).
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.distributions import Normal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import estimators as est  # noqa: E402
from lvm_core import gradients as gr  # noqa: E402
from lvm_core.inference import LocalGaussian, elbo_gradient_samples  # noqa: E402
from lvm_core.models import HARD_POSTERIORS, MLPLVM, SeedLVM, hard_posterior  # noqa: E402
from lvm_core.proposals import sample  # noqa: E402

REPEATS = 5
S, TRIALS = 1_000, 40  # draws per importance-sampling estimate and trials behind each k-hat in the evidence table


def median_time(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ------------------------------------------------------------------------------------------------------ draws
def gaussian_draws(q, shape, g):
    return sample(q, shape, g)


def student_t_draws(q, shape, g, df=3):
    return sample(q, shape, g)


def mixture_draws(q, shape, g):
    return sample(q, shape, g)


# ------------------------------------------------------------------------------------------------------ timings
def timings() -> list[tuple[str, str, str]]:
    rows = []
    g = torch.Generator().manual_seed(0)
    seed_model = SeedLVM(latent_dim=2, seed=0, noise_scale=0.3)
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    q = est.moment_matched_gaussian(seed_model, x)

    def draw_weights():
        z = gaussian_draws(q, (S, 200), g)  # (k, trials, 1, 2)
        return seed_model.log_joint(x, z) - q.log_prob(z)

    log_w = draw_weights()
    t_draw = median_time(draw_weights)
    t_khat = median_time(lambda: est.pareto_khat(log_w, dim=0))
    rows.append(("Pareto k-hat, R = 200 trials x k = 1,000 (seed model, 2-D latent)",
                 f"{t_khat * 1e3:.0f} ms", f"{t_khat / t_draw:.1f}x drawing the weights ({t_draw * 1e3:.0f} ms)"))
    log_w_big = torch.cat([log_w] * 5, 0)  # k = 5,000
    t_big = median_time(lambda: est.pareto_khat(log_w_big, dim=0), 3)
    rows.append(("Pareto k-hat, R = 200 x k = 5,000", f"{t_big * 1e3:.0f} ms", "-"))

    for name in HARD_POSTERIORS:
        model, xh = hard_posterior(name)
        qh = est.moment_matched_gaussian(model, xh)
        t_exact = median_time(lambda: est.exact_log_marginal(model, xh))  # noqa: B023
        t_fwd = median_time(lambda: est.forward_kl(model, xh, qh))  # noqa: B023
        t_best = median_time(lambda: est.best_gaussian_elbo(model, xh), 3)  # noqa: B023
        t_mix = median_time(lambda: est.fit_mixture_proposal(model, xh, 2), 3)  # noqa: B023
        rows.append((f"forward KL, one point, {name}", f"{t_fwd * 1e3:.0f} ms",
                     f"{t_fwd / t_exact:.1f}x exact log p(x) ({t_exact * 1e3:.0f} ms)"))
        rows.append((f"ELBO-best full-covariance Gaussian (L-BFGS, Gauss-Hermite), {name}", f"{t_best * 1e3:.0f} ms",
                     f"{t_best / t_exact:.1f}x exact log p(x)"))
        rows.append((f"2-component mixture proposal (scikit-learn EM on 20,000 grid draws), {name}",
                     f"{t_mix * 1e3:.0f} ms", f"{t_mix / t_exact:.1f}x exact log p(x)"))

    loc, log_scale = q.loc, torch.log(q.stddev)
    phi = LocalGaussian(loc, log_scale)
    t_ours = median_time(lambda: gr.elbo_gradient_draws(seed_model, x, loc, log_scale, 1_000, g))
    t_ref = median_time(lambda: [elbo_gradient_samples(seed_model, x, phi, e, replicates=1_000)
                                 for e in ("reparameterisation", "score function")])
    rows.append(("ELBO gradient histograms: 3 estimators x 1,000 draws (seed model)", f"{t_ours * 1e3:.0f} ms",
                 f"{t_ours / t_ref:.2f}x inference.elbo_gradient_samples for 2 estimators ({t_ref * 1e3:.0f} ms)"))

    mlp = MLPLVM(latent_dim=2, data_dim=2, hidden=64, seed=0, dtype=torch.float32)
    xm = torch.randn(1, 2, generator=g)
    lm, lsm = torch.zeros(1, 2), torch.full((1, 2), -0.5)
    ks = [1, 2, 4, 8, 16, 32, 64]
    t_sweep = median_time(lambda: gr.iwae_snr_sweep(mlp, xm, lm, lsm, ks, 1_000, g), 3)

    def loop_reference(n=50):
        params = list(mlp.parameters())
        for k in ks:
            for _ in range(n):
                loc_r, ls_r = lm.clone().requires_grad_(True), lsm.clone().requires_grad_(True)
                eps = torch.randn(k, 1, 2, generator=g)
                z = loc_r + torch.exp(ls_r) * eps
                log_w = mlp.log_joint(xm, z) - Normal(loc_r, torch.exp(ls_r)).log_prob(z).sum(-1)
                torch.autograd.grad(est.log_mean_exp(log_w, 0).sum(), [*params, loc_r, ls_r])

    t_loop = median_time(loop_reference, 3) * (1_000 / 50)
    rows.append(("IWAE SNR sweep, k = 1..64 (7 values) x 1,000 draws, MLPLVM 64 wide, with DReG",
                 f"{t_sweep:.2f} s", f"{t_sweep / t_loop:.2f}x a Python loop of autograd calls ({t_loop:.1f} s, "
                 "IWAE gradient alone)"))
    return rows


# ----------------------------------------------------------------------------------------- hard posteriors
def evidence() -> list[tuple]:
    rows = []
    for name in HARD_POSTERIORS:
        model, x = hard_posterior(name)
        proposals = {
            "ELBO-best mean-field Gaussian": (est.best_gaussian_elbo(model, x, full_covariance=False), gaussian_draws),
            "ELBO-best full-covariance Gaussian": (est.best_gaussian_elbo(model, x), gaussian_draws),
            "moment-matched Gaussian (forward-KL best)": (est.moment_matched_gaussian(model, x), gaussian_draws),
            "Student-t, 3 df (posterior mean and sd)": (est.student_t_proposal(model, x, 3), student_t_draws),
            "2-component mixture": (est.fit_mixture_proposal(model, x, 2), mixture_draws),
            "3-component mixture": (est.fit_mixture_proposal(model, x, 3), mixture_draws),
        }
        for label, (q, draw) in proposals.items():
            gap = est.quadrature_kl(model, x, q).item()
            fwd = est.forward_kl(model, x, q).item()
            z = draw(q, (S, TRIALS), torch.Generator().manual_seed(0))
            khat = est.pareto_khat(model.log_joint(x, z) - q.log_prob(z), dim=0)[:, 0]
            rows.append((name, label, gap, fwd, math.exp(min(fwd, 700.0)), khat.mean().item(), khat.std().item()))
    return rows


def main() -> None:
    torch.set_num_threads(1)
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t_rows = timings()
    e_rows = evidence()
    load_after = os.getloadavg()
    lines = [
        "# Diagnostics and gradient estimators",
        "",
        f"Measured {started} on {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"1 torch thread; load average {load[0]:.1f} before, {load_after[0]:.1f} after (2 cores shared). "
        f"Medians of {REPEATS} repeats (3 for the slow rows).",
        "",
        "## Time of each new computation",
        "",
        "| what | median | against the reference in the same run |",
        "|---|---:|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in t_rows],
        "",
        "## Hard posteriors: which proposals fail and which help",
        "",
        f"Each model at its default point (`lvm_core.models.HARD_POSTERIORS`). ELBO gap = KL(q || p(z|x)) and forward "
        f"KL = KL(p(z|x) || q), both by quadrature in nats; draws needed = exp(forward KL) (Chatterjee and Diaconis); "
        f"k-hat: mean and SD over {TRIALS} trials of S = {S:,} draws (threshold {est.khat_threshold(S):.3f}; above "
        f"0.5 the weights' variance is infinite, above 1 their mean).",
        "",
        "| model | proposal q | ELBO gap (nats) | forward KL (nats) | draws needed | k-hat |",
        "|---|---|---:|---:|---:|---:|",
        *[f"| {m} | {label} | {gap:.3f} | {fwd:.3f} | {need:,.1f} | {kh:.2f} +- {sd:.2f} |"
          if need < 1e6 else f"| {m} | {label} | {gap:.3f} | {fwd:.3f} | {need:.2g} | {kh:.2f} +- {sd:.2f} |"
          for m, label, gap, fwd, need, kh, sd in e_rows],
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = ROOT / "benchmarks" / "results" / "diagnostics.md"
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
