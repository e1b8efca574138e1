"""The Deep LVM page's default training and what it computes afterwards, on the page's default data (standardised
two moons, noise 0.05, 3,000 train / 1,000 held-out, training seed 0):

    python benchmarks/bench_deep_page.py      # writes benchmarks/results/deep_page.md

- training with the page's defaults (train_lvm's: IWAE-8, 6,000 steps, cosine decay; MLPLVM(2, 2, 64, depth 3)),
  with the page's live curve (every held-out point to LIVE_TOL nats, every 1,200 steps);
- the live curve against the exact answer (1e-4 nats per point) and against the fixed per-point grids it replaced
  (the first 100 points on 41² grids), at the weights of each of its steps;
- the exact held-out log p(x) of the first SCORED_POINTS and of all held-out points, against a 10-component GMM on
  the same points;
- the density picture: one shared grid over z against the exact p(x) at a subsample of the picture's grid points.
"""

from __future__ import annotations

import copy
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import gmm  # noqa: E402
from lvm_core.datasets import make_dataset, standardize, train_test_split_points  # noqa: E402
from lvm_core.estimators import exact_marginal  # noqa: E402
from lvm_core.models import MLPLVM  # noqa: E402
from lvm_core.training import shared_grid_log_marginal, train_lvm  # noqa: E402

LIVE_POINTS, LIVE_TOL, SCORED_POINTS, PICTURE_Z_NODES = 2000, 1e-2, 300, 301  # as views/deep_lvm.py
FORMER_POINTS, FORMER_RESOLUTION = 100, 41  # the live curve before: fixed per-point grids on the first 100 points
RESULTS = ROOT / "benchmarks" / "results" / "deep_page.md"


def cpu(fn):
    t = time.process_time()
    out = fn()
    return out, time.process_time() - t


def main() -> None:
    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    X, _, _ = standardize(make_dataset("two_moons", n=4000, noise=0.05, seed=0))
    X_train, X_test = train_test_split_points(X, test_fraction=0.25, seed=0)
    model = MLPLVM(latent_dim=2, hidden=64, depth=3, activation="tanh", seed=0)
    snapshots = {}

    def keep(history) -> bool:  # the weights the live curve scored, to score them again below
        if history.steps_done % 1200 == 0:
            snapshots[history.steps_done] = copy.deepcopy(model.state_dict())
        return False

    wall = time.perf_counter()
    history, train_s = cpu(lambda: train_lvm(model, X_train, seed=0, callback=keep, eval_X=X_test[:LIVE_POINTS],
                                             eval_every=1200, eval_tol=LIVE_TOL))
    train_wall = time.perf_counter() - wall
    Xt = torch.as_tensor(X_test, dtype=model.dtype)
    live_rows = []
    for step, state in sorted(snapshots.items()):
        m = MLPLVM(latent_dim=2, hidden=64, depth=3, activation="tanh", seed=0)
        m.load_state_dict(state)
        m.eval()
        exact, s_exact = cpu(lambda m=m: exact_marginal(m, Xt).log_px.double())
        live, s_live = cpu(lambda m=m: exact_marginal(m, Xt, tol=LIVE_TOL).log_px.double())
        former, s_former = cpu(lambda m=m: exact_marginal(m, Xt[:FORMER_POINTS], FORMER_RESOLUTION).log_px.double())
        err = live - exact
        live_rows.append(f"| {step:,} | {s_live:.1f} s | {s_exact:.1f} s | {err.mean():+.1e} | "
                         f"{err.abs().max():.1e} | {int((err.abs() > LIVE_TOL).sum())} | {s_former:.1f} s | "
                         f"{former.mean() - exact.mean():+.3f} |")
    mixture = gmm.fit_mixture(X_train, 10, seed=0, max_iter=200)  # as the page's mixture_baselines
    gmm_lp = np.asarray(gmm.log_marginal(mixture, X_test))
    exact_300, s300 = cpu(lambda: exact_marginal(model, Xt[:SCORED_POINTS]).log_px.double().numpy())
    exact_all, s_all = cpu(lambda: exact_marginal(model, Xt).log_px.double().numpy())
    diff = exact_all - gmm_lp
    # the picture: 50 x 50 over the data's range, one shared grid over z, against exact p(x) at every 7th point
    xs = torch.linspace(-2.5, 2.5, 50, dtype=model.dtype)
    gx, gy = torch.meshgrid(xs, xs, indexing="xy")
    grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], -1)
    picture, s_pic = cpu(lambda: shared_grid_log_marginal(model, grid, PICTURE_Z_NODES))
    idx = torch.arange(0, grid.shape[0], 7)
    exact_pic, s_exact_pic = cpu(lambda: exact_marginal(model, grid[idx]).log_px)
    rel = lambda lp: torch.exp(lp - exact_pic.max())  # noqa: E731 - the picture's colours: density relative to the peak
    l1 = float((rel(picture[idx]) - rel(exact_pic)).abs().sum() / rel(exact_pic).sum())
    visible = exact_pic > exact_pic.max() - 6
    lines = [
        "# The Deep LVM page's default training and evaluation", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, one torch thread; load "
        f"average {load:.1f} at the start. CPU seconds (all threads).", "",
        "| what | measured |", "|---|---:|",
        f"| training, the page's defaults, with its live curve (all {len(X_test):,} held-out points to {LIVE_TOL:g} "
        f"nats, 5 times, in a worker thread beside training) | {train_s:.1f} s of CPU, {train_wall:.1f} s wall |",
        f"| exact held-out log p(x), first {SCORED_POINTS} points (the page's default) | {s300:.1f} s: "
        f"{exact_300.mean():.4f} (GMM-10 {gmm_lp[:SCORED_POINTS].mean():.4f}) |",
        f"| exact held-out log p(x), all {len(X_test):,} points | {s_all:.1f} s: {exact_all.mean():.4f} "
        f"(GMM-10 {gmm_lp.mean():.4f}) |",
        f"| deep LVM - GMM-10 per point, all points: mean +- standard error | {diff.mean():+.4f} +- "
        f"{diff.std(ddof=1) / np.sqrt(len(diff)):.4f} nats |",
        f"| the same on the first {SCORED_POINTS} | {diff[:SCORED_POINTS].mean():+.4f} +- "
        f"{diff[:SCORED_POINTS].std(ddof=1) / np.sqrt(SCORED_POINTS):.4f} nats |",
        f"| the picture: 50 x 50 points on one shared grid of {PICTURE_Z_NODES}² z | {s_pic:.1f} s |",
        f"| the same {len(idx)} of them exactly | {s_exact_pic:.1f} s |",
        f"| picture vs exact: relative density, L1 error (sum |p - p_exact| / sum p_exact) | {100 * l1:.2f}% |",
        f"| picture vs exact, log p(x) within 6 nats of the peak ({int(visible.sum())} points): median / max error | "
        f"{float((picture[idx] - exact_pic)[visible].abs().median()):.3f} / "
        f"{float((picture[idx] - exact_pic)[visible].abs().max()):.2f} nats |",
    ]
    lines += [
        "", f"The live curve at the weights of each of its steps: all {len(X_test):,} held-out points to {LIVE_TOL:g} "
        "nats, against the exact answer (1e-4 nats per point) and against the fixed per-point grids it replaced "
        f"(the first {FORMER_POINTS} points on {FORMER_RESOLUTION}² grids, an approximation).", "",
        f"| step | live ({LIVE_TOL:g}) | exact (1e-4) | live - exact: mean | max per point | points beyond "
        f"{LIVE_TOL:g} | former live curve | former - exact, mean |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|", *live_rows]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
