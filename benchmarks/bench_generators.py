"""Explicit generators and one estimator path, against the code before them: interleaved in one process.

Run by hand from the repository root: `python benchmarks/bench_generators.py [--against REF] [--repeats 15]`. The
reference is `lvm_core` at the git revision REF (default: the commit before lvm_core/proposals.py was added), unpacked
with `git archive` into a temporary folder under another package name, so both versions run in the same process,
turn by turn (reference, ours, reference, ...): machine load hits both alike and the ratios hold on a busy machine.
Writes benchmarks/results/generators.md.

Cases: the Estimating page's three estimators (seed model, R = 200, k = 1,000, as the page runs them); the documented
importance_log_marginal and naive_mc_log_marginal (linear-Gaussian, batch 64, k = 1,000, 20 trials, as bench_core);
a frame of the ELBO page (5 steps of the per-point optimiser); 200 training steps of train_lvm (ELBO, batch 128).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import estimators, experiments, inference, models, training  # noqa: E402
from lvm_core.proposals import ProposalSpec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "generators.md"


def reference_package(ref: str) -> tuple[str, Path]:
    """lvm_core at git revision ref, importable as lvm_core_ref (a temporary folder on sys.path)."""
    folder = Path(tempfile.mkdtemp(prefix="lvm_ref_"))
    archive = subprocess.run(["git", "archive", ref, "lvm_core"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    package = folder / "lvm_core_ref"
    (folder / "lvm_core").rename(package)
    for path in package.rglob("*.py"):
        path.write_text(re.sub(r"\blvm_core\b", "lvm_core_ref", path.read_text()))
    sys.path.insert(0, str(folder))
    rev = subprocess.run(["git", "rev-parse", "--short", ref], cwd=ROOT, check=True, capture_output=True, text=True)
    return rev.stdout.strip(), folder


def interleaved(pairs: dict[str, tuple], repeats: int) -> dict[str, tuple[float, float]]:
    """median seconds of (reference, ours) for each case, one warm-up call each, then turn by turn"""
    out = {}
    for name, (ref, ours) in pairs.items():
        ref(0), ours(0)
        times = ([], [])
        for r in range(repeats):
            for i, fn in enumerate((ref, ours)):
                t = time.perf_counter()
                fn(r + 1)
                times[i].append(time.perf_counter() - t)
        out[name] = (statistics.median(times[0]), statistics.median(times[1]))
        print(f"{name}: reference {out[name][0]:.4f} s, ours {out[name][1]:.4f} s ({out[name][1] / out[name][0]:.2f}x)")
    return out


def cases(old) -> dict[str, tuple]:
    x1 = torch.tensor([[0.5, 0.5]], dtype=torch.float64)

    def page(ex, mod, spec):
        model = mod.SeedLVM(latent_dim=1)
        mean, std, _ = ex.posterior_moments(model, x1)
        proposals = ex.default_proposals(model, (-4.0, 4.0), spec("gaussian", tuple(mean), tuple(std)))
        def run(seed):
            for p in proposals.values():
                ex.run_estimator(model, x1, p, 1000, 200, seed)
        return run

    def linear(mod, est, naive):
        model = mod.LinearGaussianLVM.random(latent_dim=2, data_dim=4, sigma=0.5, seed=0)
        x, _ = model.sample(64, generator=0)
        post = model.closed_form_posterior(x)
        q = torch.distributions.Independent(torch.distributions.Normal(post.loc.detach(), 1.5 * post.stddev.detach()),
                                            1)
        if naive:
            return lambda seed: est.naive_mc_log_marginal(model, x, 1000, trials=20, seed=seed)
        return lambda seed: est.importance_log_marginal(model, x, q, 1000, trials=20, seed=seed)

    def frame(vi, mod, full):
        model = mod.SeedLVM(2 if full else 1, seed=0, noise_scale=0.3 if full else 1.0)
        d = model.latent_dim
        opt = vi.PhiOptimizer(model, x1, loc=torch.full((1, d), 2.0, dtype=torch.float64), full_covariance=full)
        return lambda seed: opt.step(5)

    def train(tr, mod):
        X = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))

        def run(seed):
            tr.train_lvm(mod.MLPLVM(latent_dim=2, seed=seed), X, steps=200, warmup=0, seed=seed)
        return run

    return {
        "Estimating page: three estimators, R = 200, k = 1,000 (run_estimator)":
            (page(old.experiments, old.models, old.experiments.Proposal), page(experiments, models, ProposalSpec)),
        "importance_log_marginal, linear, batch 64, k = 1,000, 20 trials":
            (linear(old.models, old.estimators, False), linear(models, estimators, False)),
        "naive_mc_log_marginal, the same": (linear(old.models, old.estimators, True), linear(models, estimators, True)),
        "ELBO page frame: 5 optimiser steps, seed model 1-D, mean-field":
            (frame(old.inference, old.models, False), frame(inference, models, False)),
        "ELBO page frame: 5 optimiser steps, seed model 2-D, full covariance":
            (frame(old.inference, old.models, True), frame(inference, models, True)),
        "train_lvm: 200 ELBO steps, batch 128": (train(old.training, old.models), train(training, models)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--against", default="", help="git revision of the reference (default: before proposals.py)")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    ref = args.against or subprocess.run(
        ["git", "log", "--diff-filter=A", "--format=%H", "--", "lvm_core/proposals.py"], cwd=ROOT, check=True,
        capture_output=True, text=True).stdout.split()[-1] + "^"
    torch.set_num_threads(1)  # as app.py does at start-up (the reference's per-call thread setting is then a no-op)
    rev, folder = reference_package(ref)
    try:
        old = type("Reference", (), {name: importlib.import_module(f"lvm_core_ref.{name}") for name in
                                     ("estimators", "experiments", "inference", "models", "training")})
        load = "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"
        medians = interleaved(cases(old), args.repeats)
        load_after = "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    lines = [
        "# Explicit generators and one estimator path: against the code before them",
        "",
        f"`python benchmarks/bench_generators.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{platform.machine()}, torch {torch.__version__}, 1 torch thread. Reference: lvm_core at {rev}, imported "
        f"as a second package in the same process. Median of {args.repeats} interleaved repeats (reference, ours, "
        f"...) after one warm-up each; {load} before, {load_after} after.",
        "",
        "| case | reference (s) | ours (s) | ours / reference |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {r:.4f} | {o:.4f} | {o / r:.2f}x |" for name, (r, o) in medians.items()],
        "",
        "Below 1x is faster. The random numbers differ (explicit generators instead of the global one, uniforms "
        "pushed through each family's transform), so the values differ draw by draw; their distributions do not.",
        "",
    ]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
