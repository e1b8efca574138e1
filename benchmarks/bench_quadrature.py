"""exact_log_marginal on a 2-D latent: the shared lattice against a plain shared grid, accuracy, memory.

    python benchmarks/bench_quadrature.py            # cases 1-4 (~15 min on one free core)
    python benchmarks/bench_quadrature.py --quick    # a smoke run of the script: small sizes, not the figures
    python benchmarks/bench_quadrature.py --digits   # case 5 alone (~10 min): benchmarks/results/quadrature_digits.md
    python benchmarks/bench_quadrature.py --page-model   # case 6 alone (~6 min): benchmarks/results/quadrature_page.md

One process, one torch thread (set once here). Writes benchmarks/results/quadrature.md. Cases:

1. the 1,000 held-out points of standardised two moons (noise 0.05, 3,000 train / 1,000 held-out) under an
   MLPLVM(2, 2, 64) trained with train_lvm's defaults: exact_log_marginal against a plain shared-grid pass (every
   point on one m x m grid over [-7, 7]^2, the decoder run once per node) at the smallest m that reaches 1e-4 nats at
   every point, interleaved repeats; the per-point adaptive grid (the fallback) timed once; errors against a fine
   reference;
2. a sharpened MLPLVM (min_scale 0.01, last layer x5, sigma(z) pulled down): posteriors 0.02-0.1 wide;
3. far and narrow posteriors (a linear-Gaussian model integrated as if it had no closed form), where the lattice
   refines and the per-point grid takes the points beyond its pilot box;
4. peak memory for 100,000 points, in a fresh process;
5. the shipped digits model (lvm_core.pretrained, a BernoulliMLPLVM: 64 binary pixels, 2-D latent) on its 360
   held-out images: ours against the plain pass at the m that reaches 1e-4, the reference a float64 grid of
   1401 x 1401 over [-7, 7]^2, itself checked against 2801 x 2801 on the images with the narrowest posteriors.
6. the Deep LVM page's default model (two moons, MLPLVM(2, 2, 64) trained as the page trains it: train_lvm's full
   defaults, 6,000 steps, the best step by the live held-out curve): its posteriors are fans with a thin ridge, and the
   plain pass that reaches 1e-4 at every point needs a grid finer than this script can afford as a reference. So the
   plain pass is timed at rising m and compared with ours: where they differ by D at a point, the plain pass is at
   least D - 1e-4 off there (ours is within 1e-4), a lower bound on its error.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import quadrature  # noqa: E402
from lvm_core.datasets import make_dataset, standardize, train_test_split_points  # noqa: E402
from lvm_core.estimators import exact_marginal  # noqa: E402
from lvm_core.models import MLPLVM, LinearGaussianLVM  # noqa: E402
from lvm_core.training import save_lvm, train_lvm  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "quadrature.md"
DIGITS_RESULTS = ROOT / "benchmarks" / "results" / "quadrature_digits.md"
PAGE_RESULTS = ROOT / "benchmarks" / "results" / "quadrature_page.md"
TOL = 1e-4
PLAIN_CHUNK = 1 << 18  # (node, point) pairs per log_joint call of the plain pass (2^14..2^20 time alike)


def load() -> float:
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------------------------ contenders
@torch.no_grad()
def plain_grid(model, x: torch.Tensor, m: int, half_width: float) -> torch.Tensor:
    """log p(x) by the trapezoid rule on one m x m grid over [-half_width, half_width]^2 shared by all points: the
    decoder runs once per node (z (n, 1, 2) against x (batch, D)), a running logsumexp joins the chunks. (batch,)."""
    axis = torch.linspace(-half_width, half_width, m, dtype=x.dtype)
    z = torch.cartesian_prod(axis, axis)
    h = 2 * half_width / (m - 1)
    step = max(1, PLAIN_CHUNK // x.shape[0])
    acc = torch.full((x.shape[0],), -math.inf, dtype=x.dtype)
    for i in range(0, z.shape[0], step):
        acc = torch.logaddexp(acc, torch.logsumexp(model.log_joint(x, z[i:i + step, None, :]), 0))
    return acc + 2 * math.log(h)  # the edge weights are immaterial: the integrand is ~e^-25 there


def ours(model, x):
    return exact_marginal(model, x)


def timed(fn, *args):
    """(result, wall seconds, CPU seconds of this process)"""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def as_float64(model):
    model64 = copy.deepcopy(model).double()
    model64.eval()
    return model64


class HiddenClosedForm(torch.nn.Module):
    """A linear-Gaussian model that hides its closed form from the estimators, so log p(x) is integrated."""

    discrete = False

    def __init__(self, model: LinearGaussianLVM):
        super().__init__()
        self.inner = model
        self.latent_dim, self.data_dim = model.latent_dim, model.data_dim

    def log_joint(self, x, z):
        return self.inner.log_joint(x, z)


# ------------------------------------------------------------------------------------------------------ cases
def moons_model(quick: bool):
    X, _, _ = standardize(make_dataset("two_moons", n=4000, noise=0.05, seed=0))
    X_train, X_test = train_test_split_points(X, test_fraction=0.25, seed=0)
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=64, seed=0)
    start = time.perf_counter()
    train_lvm(model, X_train, steps=200 if quick else 2000)
    model.eval()
    return model, torch.tensor(X_test, dtype=torch.float32), time.perf_counter() - start


def sharpened_model():
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=64, min_scale=0.01, seed=1)
    with torch.no_grad():
        model.net[-1].weight.mul_(5.0)
        model.net[-1].bias[2:] -= 2.5  # the raw log-sigma outputs: sigma(z) shrinks towards min_scale
    model.eval()
    return model


def reference(model, x, m: int, half_width: float, adaptive_resolution: int | None, n_check: int):
    """The float64 reference: a fine plain grid, checked on the first n_check points against a coarser one (its own
    convergence) and, where asked, against the per-point adaptive grid at a high resolution (an independent method)."""
    model64, x64 = as_float64(model), x.double()
    fine = plain_grid(model64, x64, m, half_width)
    coarser = plain_grid(model64, x64[:n_check], (m - 1) * 4 // 5 + 1, half_width)
    row = {"fine": fine, "m": m, "half_width": half_width, "self": (fine[:n_check] - coarser).abs().max().item(),
           "n_check": n_check}
    if adaptive_resolution:
        adaptive = quadrature.adaptive_log_marginal(model64, x64[:n_check], resolution=adaptive_resolution)
        row["adaptive"] = (fine[:n_check] - adaptive).abs().max().item()
        row["adaptive_resolution"] = adaptive_resolution
    return row


def check_hardest(model, x, ours_log_px, ref, ref_m: int, half_width: float, n: int = 4) -> dict:
    """The reference checked against a grid twice as fine at the n points where ours differs from it most:
    {"m": that grid's m, "ref_self": the reference's own error there, "ours": ours against that grid}."""
    hardest = torch.topk((ours_log_px.double() - ref).abs(), min(n, len(x))).indices
    m = 2 * (ref_m - 1) + 1
    finer = plain_grid(as_float64(model), x[hardest].double(), m, half_width)
    return {"m": m, "ref_self": (ref[hardest] - finer).abs().max().item(),
            "ours": (ours_log_px.double()[hardest] - finer).abs().max().item()}


def reaching_resolution(model, x, ref, half_width: float, candidates) -> tuple[int, dict]:
    """The smallest m in candidates whose plain grid over [-half_width, half_width]^2 is within TOL at every point."""
    errors = {}
    for m in candidates:
        errors[m] = (plain_grid(model, x, m, half_width).double() - ref).abs().max().item()
        if errors[m] < TOL:
            return m, errors
    return candidates[-1], errors


def side_by_side(model, x, m: int, half_width: float, repeats: int) -> dict:
    """Interleaved repeats of ours and the plain pass at m: medians of wall and CPU seconds."""
    walls, cpus = {"ours": [], "plain": []}, {"ours": [], "plain": []}
    for _ in range(repeats):
        for name, fn, args in (("ours", ours, (model, x)), ("plain", plain_grid, (model, x, m, half_width))):
            _, wall, cpu = timed(fn, *args)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return {name: (statistics.median(walls[name]), statistics.median(cpus[name])) for name in walls}


def model_case(name, model, x, half_width, candidates, ref_m, ref_half_width, adaptive_resolution, repeats,
               n_check, n_fallback):
    print(f"-- {name}: {len(x)} points", flush=True)
    row = {"name": name, "points": len(x), "load": load()}
    row["ref"] = reference(model, x, ref_m, ref_half_width, adaptive_resolution, n_check)
    ref = row["ref"]["fine"]
    row["m"], row["plain_errors"] = reaching_resolution(model, x, ref, half_width, candidates)
    row["half_width"] = half_width
    result = ours(model, x)  # warm-up, and the values checked
    err = (result.log_px.double() - ref).abs()
    row["max_err"], row["mean_err"] = err.max().item(), err.mean().item()
    row["hardest"] = check_hardest(model, x, result.log_px, ref, ref_m, ref_half_width)
    row["methods"] = Counter(result.method)
    row["times"] = side_by_side(model, x, row["m"], half_width, repeats)
    if n_fallback:
        values, wall, cpu = timed(quadrature.adaptive_log_marginal, model, x[:n_fallback])
        row["fallback"] = {"wall": wall, "cpu": cpu, "points": n_fallback,
                           "max_err": (values.double() - ref[:n_fallback]).abs().max().item()}
    row["load_after"] = load()
    print(row["times"], f"max err {row['max_err']:.1e}", dict(row["methods"]), flush=True)
    return row


def far_case(quick: bool):
    """Posteriors far from the origin (6 to 36 prior SDs) and narrow (SD ~0.002 to 0.03), against the closed form."""
    W = torch.tensor([[1.0, 0.9], [0.8, 1.0], [0.3, -0.2]], dtype=torch.float64)
    rows = []
    g = torch.Generator().manual_seed(0)
    n = 20 if quick else 200
    for sigma in (0.05, 0.003):
        model = LinearGaussianLVM(W, torch.zeros(3, dtype=torch.float64), sigma)
        radius = torch.empty(n, dtype=torch.float64).uniform_(6.0, 36.0, generator=g)
        angle = torch.empty(n, dtype=torch.float64).uniform_(0, 2 * math.pi, generator=g)
        z = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1)
        x = z @ W.T + sigma * torch.randn(n, 3, generator=g, dtype=torch.float64)
        result, wall, cpu = timed(ours, HiddenClosedForm(model), x)
        err = (result.log_px - model.closed_form_log_marginal(x)).abs().detach()
        sd = torch.linalg.eigvalsh(model.closed_form_posterior(x[:1]).covariance_matrix[0]).sqrt()
        inside = (radius < 9.0).sum().item()
        rows.append({"sigma": sigma, "points": n, "inside": inside, "wall": wall, "cpu": cpu,
                     "max_err": err.max().item(), "methods": Counter(result.method), "sd": sd.tolist()})
        print(rows[-1], flush=True)
    return rows


_MEMORY_SCRIPT = textwrap.dedent("""
    import sys, time, torch
    torch.set_num_threads(1)
    from lvm_core.estimators import exact_log_marginal
    from lvm_core.training import load_lvm

    def status_mib(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key)) / 1024

    model, _, _ = load_lvm(open(sys.argv[1], "rb").read())
    n = int(sys.argv[2])
    x, _ = model.sample(n, generator=7)
    exact_log_marginal(model, x[:50])  # warm up kernels and the allocator
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    base = status_mib("VmRSS:")
    start = time.perf_counter()
    out = exact_log_marginal(model, x)
    elapsed = time.perf_counter() - start
    assert out.shape == (n,) and bool(torch.isfinite(out).all())
    print(base, status_mib("VmHWM:") - base, elapsed, x.numel() * 4 / 2**20)
""")


def memory_case(model, n: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".pt", delete=False) as f:
        f.write(save_lvm(model))
        path = f.name
    try:
        before = load()
        result = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT, path, str(n)], cwd=ROOT, capture_output=True,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        if result.returncode != 0:
            raise RuntimeError(result.stderr)
        base, growth, elapsed, data_mib = map(float, result.stdout.split())
    finally:
        os.unlink(path)
    return {"points": n, "base": base, "growth": growth, "time": elapsed, "data_mib": data_mib, "load": before}


# ------------------------------------------------------------------------------------------------------ report
def report(trained_seconds, cases, far, mem, quick) -> str:
    lines = ["# exact_log_marginal on a 2-D latent (`python benchmarks/bench_quadrature.py`)", ""]
    if quick:
        lines += ["**Quick run (reduced sizes): not the recorded figures.**", ""]
    lines += [
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread. Times are medians of interleaved repeats in one process; the "
        "ratio is ours / the plain pass, on wall and on CPU time (CPU time is steadier while other jobs share the "
        "cores). The plain pass evaluates every point on one m x m grid over [-7, 7]^2, the decoder once per node; m "
        "is the smallest of the candidates whose error is below 1e-4 nats at every point (it needs knowing the "
        "answer: ours does not).",
        "",
        "| case | points | ours: wall / CPU (s) | plain pass at m: wall / CPU (s) | ratio wall / CPU | m | "
        "ours: max / mean error (nats) | method per point |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in cases:
        (ow, oc), (pw, pc) = c["times"]["ours"], c["times"]["plain"]
        methods = ", ".join(f"{k} {v}" for k, v in c["methods"].items())
        lines.append(f"| {c['name']} | {c['points']:,} | {ow:.2f} / {oc:.2f} | {pw:.2f} / {pc:.2f} | "
                     f"**{ow / pw:.2f}x / {oc / pc:.2f}x** | {c['m']} | {c['max_err']:.1e} / {c['mean_err']:.1e} | "
                     f"{methods} |")
    lines += ["", "Plain pass errors (max over points, nats) by resolution m, and the references:", ""]
    for c in cases:
        errs = ", ".join(f"m = {m}: {e:.1e}" for m, e in c["plain_errors"].items())
        r = c["ref"]
        ref = (f"{r['m']} x {r['m']} over [-{r['half_width']:g}, {r['half_width']:g}]^2 in float64 (on the first "
               f"{r['n_check']} points it moves by {r['self']:.0e} from {(r['m'] - 1) * 4 // 5 + 1} x "
               f"{(r['m'] - 1) * 4 // 5 + 1}")
        if "adaptive" in r:
            ref += (f", and the per-point adaptive grid at {r['adaptive_resolution']} per axis is "
                    f"{r['adaptive']:.0e} away")
        hard = c["hardest"]
        lines.append(f"- {c['name']}: {errs}. Reference: {ref}). At the 4 points where ours is furthest from it, "
                     f"the reference moves by {hard['ref_self']:.0e} at {hard['m']} x {hard['m']} and ours is "
                     f"{hard['ours']:.1e} from that. Load {c['load']:.1f} before, {c['load_after']:.1f} after.")
    for c in cases:
        if "fallback" in c:
            f = c["fallback"]
            (ow, oc) = c["times"]["ours"]
            per_point = f["cpu"] / f["points"]
            lines += ["", f"The per-point adaptive grid alone (the fallback; the former default method, with its "
                      f"halving test now over all 2^d sub-grids at 1e-5), {c['name']}, on the first {f['points']} "
                      f"points: {f['wall']:.1f} s wall / {f['cpu']:.1f} s CPU ({per_point:.2f} s CPU per point, so "
                      f"~{per_point * c['points']:.0f} s for all {c['points']:,}), max error {f['max_err']:.1e} nats "
                      "against the reference (an independent method, agreeing with it). "
                      f"Ours: **{per_point * c['points'] / oc:.0f}x** less CPU for the {c['points']:,} points."]
    wall, cpu = cases[0]["untrained"]
    lines += ["", f"The trained model: train_lvm's defaults, {trained_seconds:.1f} s. The deep-LVM page scores all "
              f"held-out points at every evaluation of its live curve: {cases[0]['times']['ours'][1]:.2f} s CPU "
              f"for the trained model above, {cpu:.2f} s CPU for the same network at initialisation (step 0).", "",
              "## Far and narrow posteriors (linear-Gaussian, integrated as if it had no closed form)", "",
              "Posteriors centred 6 to 36 prior SDs from the origin; those beyond the pilot box ([-10, 10)^2) go to "
              "the per-point adaptive grid, the rest are refined on the lattice.", "",
              "| observation noise | posterior SDs | points (centre inside 9 SDs) | wall / CPU (s) | max error vs "
              "closed form | method per point |", "|---|---|---:|---:|---:|---|"]
    for r in far:
        methods = ", ".join(f"{k} {v}" for k, v in r["methods"].items())
        lines.append(f"| {r['sigma']} | {r['sd'][0]:.3f}, {r['sd'][1]:.3f} | {r['points']} ({r['inside']}) | "
                     f"{r['wall']:.2f} / {r['cpu']:.2f} | {r['max_err']:.1e} | {methods} |")
    lines += ["", "## Memory", "",
              "A fresh process: the peak RSS growth (VmHWM after resetting it) while exact_log_marginal scores the "
              "points, beyond the RSS after loading the model, drawing the points and a warm-up call.", "",
              "| points | RSS before (MiB) | peak growth (MiB) | the points themselves (MiB) | time (s) | load |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in mem:
        lines.append(f"| {r['points']:,} | {r['base']:.0f} | **{r['growth']:.0f}** | {r['data_mib']:.1f} | "
                     f"{r['time']:.1f} | {r['load']:.1f} |")
    pilot = quadrature.PILOT_HALF_WIDTH / (quadrature.PILOT_TILES * quadrature.TILE[2])
    lines += ["", f"Lattice settings: tile {quadrature.TILE[2]} x {quadrature.TILE[2]} nodes, pilot spacing {pilot:g}, "
              f"spacings halving from there, halving tolerance {quadrature.HALVING_TOL:g}, "
              f"{quadrature.POINT_CHUNK} points per chunk, {quadrature.MAX_TILE_PAIRS} (point, tile) pairs per pass.",
              ""]
    return "\n".join(lines)


def digits_case() -> str:
    """Case 5: the shipped digits model on its held-out set; returns the report."""
    from lvm_core.datasets import load_binarized_digits
    from lvm_core.pretrained import load_pretrained

    model = load_pretrained("digits")[0].eval()
    _, X_test, _, _ = load_binarized_digits(seed=0)
    x = torch.as_tensor(X_test, dtype=torch.float32)
    model64, x64 = as_float64(model), x.double()
    load_before = load()
    fine = plain_grid(model64, x64, 1401, 7.0)
    result, wall, cpu = timed(ours, model, x)
    err = (result.log_px.double() - fine).abs()
    hard = check_hardest(model, x, result.log_px, fine, 1401, 7.0)
    m, errors = reaching_resolution(model, x, fine, 7.0, (401, 601, 801, 1001, 1201))
    times = side_by_side(model, x, m, 7.0, 3)
    (ow, oc), (pw, pc) = times["ours"], times["plain"]
    methods = ", ".join(f"{k} {v}" for k, v in Counter(result.method).items())
    errs = ", ".join(f"m = {k}: {e:.1e}" for k, e in errors.items())
    lines = [
        "# exact_log_marginal on the shipped digits model (`python benchmarks/bench_quadrature.py --digits`)", "",
        f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared; load {load_before:.1f} "
        f"before, {load():.1f} after), torch {torch.__version__}, one torch thread. BernoulliMLPLVM from "
        "lvm_core.pretrained (64 binary pixels, 2-D latent), the 360 held-out images of "
        "load_binarized_digits(seed=0), float32 as the app runs it. Times: medians of 3 interleaved repeats.", "",
        "| what | measured |", "|---|---:|",
        f"| ours: wall / CPU | {ow:.2f} / {oc:.2f} s |",
        f"| plain pass at m = {m} (the smallest candidate within 1e-4 at every image): wall / CPU | "
        f"{pw:.2f} / {pc:.2f} s |",
        f"| ratio ours / plain, wall / CPU (target <= 2x) | **{ow / pw:.2f}x / {oc / pc:.2f}x** |",
        f"| ours: max / mean error vs the reference | **{err.max().item():.1e}** / {err.mean().item():.1e} nats |",
        f"| ours at the 4 images furthest from the reference, vs {hard['m']} x {hard['m']} | {hard['ours']:.1e} nats |",
        f"| the reference's own error there (1401 vs {hard['m']}) | {hard['ref_self']:.1e} nats |",
        f"| method per image | {methods} |", "",
        f"Plain pass errors (max over images) by m: {errs}.", "",
    ]
    return "\n".join(lines)


def page_model_case() -> str:
    """Case 6: the Deep LVM page's default model on its 1,000 held-out points; returns the report."""
    X, _, _ = standardize(make_dataset("two_moons", n=4000, noise=0.05, seed=0))
    X_train, X_test = train_test_split_points(X, test_fraction=0.25, seed=0)
    model = MLPLVM(latent_dim=2, hidden=64, depth=3, activation="tanh", seed=0)
    _, train_wall, _ = timed(lambda: train_lvm(model, X_train, seed=0, eval_X=X_test, eval_every=1200,
                                               eval_tol=1e-2))
    model.eval()
    x = torch.as_tensor(X_test, dtype=model.dtype)
    print(f"-- the page's model, trained in {train_wall:.1f} s; {len(x)} points", flush=True)
    result, ours_wall, ours_cpu = timed(ours, model, x)
    rows = []
    for m in (801, 1201, 1601, 2001, 2401):
        plain, wall, cpu = timed(plain_grid, model, x, m, 7.0)
        gap = (plain.double() - result.log_px.double()).abs()
        rows.append((m, wall, cpu, gap.max().item(), int((gap > 2 * TOL).sum())))
        print(rows[-1], flush=True)
    lines = ["# exact_log_marginal on the Deep LVM page's default model (`bench_quadrature.py --page-model`)", "",
             f"Measured {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, one torch thread, load "
             f"{load():.1f}. Two moons (noise 0.05), MLPLVM(2, 2, 64, depth 3, tanh) trained as the page trains it "
             f"({train_wall:.0f} s); its 1,000 held-out points.", "",
             f"Ours (`exact_log_marginal`, 1e-4 nats per point): **{ours_wall:.1f} s wall / {ours_cpu:.1f} s CPU** "
             f"({dict(Counter(result.method))}).", "",
             "The plain pass (every point on one m x m grid over [-7, 7]^2, the decoder once per node) at rising m. "
             "Where it differs from ours by D, it is at least D - 1e-4 off (ours is within 1e-4), so a largest "
             "difference beyond 2e-4 means the plain pass has not reached 1e-4 at that m:", "",
             "| m | spacing | plain pass wall / CPU (s) | ours / plain (CPU) | largest difference from ours (nats) | "
             "points more than 2e-4 apart |", "|---:|---:|---:|---:|---:|---:|"]
    for m, wall, cpu, gap, apart in rows:
        lines.append(f"| {m} | {14 / (m - 1):.4f} | {wall:.1f} / {cpu:.1f} | **{ours_cpu / cpu:.2f}x** | {gap:.1e} | "
                     f"{apart} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--digits", action="store_true", help="case 5 only")
    parser.add_argument("--page-model", action="store_true", help="case 6 only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.page_model:
        text = page_model_case()
        print(text)
        PAGE_RESULTS.write_text(text)
        print(f"wrote {PAGE_RESULTS.relative_to(ROOT)}")
        return
    if args.digits:
        text = digits_case()
        print(text)
        DIGITS_RESULTS.write_text(text)
        print(f"wrote {DIGITS_RESULTS.relative_to(ROOT)}")
        return
    model, X_test, trained_seconds = moons_model(args.quick)
    n = 100 if args.quick else len(X_test)
    cases = [model_case("two moons, trained MLPLVM(2, 2, 64)", model, X_test[:n], 7.0,
                        (161, 241, 321, 401, 481, 641, 801, 961, 1201), 1601, 8.0, None, 2 if args.quick else 3,
                        n_check=20 if args.quick else 100, n_fallback=10 if args.quick else 200)]
    untrained = MLPLVM(latent_dim=2, data_dim=2, hidden=64, seed=0).eval()
    _, wall, cpu = timed(ours, untrained, X_test[:n])
    cases[0]["untrained"] = (wall, cpu)
    sharp = sharpened_model()
    xs, _ = sharp.sample(50 if args.quick else 200, generator=1)
    cases.append(model_case("sharpened MLPLVM (min_scale 0.01, last layer x5)", sharp, xs, 7.0,
                            (241, 321, 401, 481, 561, 641, 801, 961), 1121, 7.0, None, 2 if args.quick else 3,
                            n_check=10 if args.quick else 50, n_fallback=0))
    far = far_case(args.quick)
    mem = [memory_case(model, n) for n in ((2_000,) if args.quick else (10_000, 100_000))]
    text = report(trained_seconds, cases, far, mem, args.quick)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"wrote {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
