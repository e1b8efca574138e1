"""Benchmark the shallow-mixtures page: EM's whole trajectory and its browser-side animation (core), the page's
reruns (AppTest), and R = 50 restarts.

Run by hand: `python benchmarks/bench_mixtures.py [--repeats 15]`. Writes benchmarks/results/mixtures.md.
2,000 points of the "overlapping" preset, K = 10, full covariances. The animation's frame rate in the browser is
measured by bench_animation.py.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import gmm  # noqa: E402
from lvm_core.datasets import make_dataset  # noqa: E402

N, K = 2000, 10
# random data points as the start: with K = 10 on 2,000 points, random responsibilities give ten near-identical
# components whose first EM step changes the likelihood by less than tol, so EM stops at once
INIT = "random_from_data"


CPU: dict[int, list[float]] = {}  # id(wall-time list) -> CPU seconds of this process per repeat


def timed(fn, repeats: int) -> list[float]:
    """Wall-clock seconds per call; the process's CPU seconds per call go to CPU (robust to other jobs' load)."""
    out, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        out.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU[id(out)] = cpu
    return out


def bench_core_step(X, repeats: int) -> list[float]:
    trace = gmm.em_start(X, K, "full", "kmeans", seed=0)
    return timed(lambda: gmm.em_extend(trace, X, 1), repeats)


def bench_trajectory(X, repeats: int) -> tuple[list[float], list[float], int, int]:
    """EM to convergence (`gmm.em_run`), then the animation: frames (`gmm.em_frames`) and the figure with its JSON"""
    import plotly.io as pio

    from lvm_core.plots import click_grid
    from lvm_core.plots import mixtures as figs

    out = {}

    def run():
        out["trace"] = gmm.em_run(X, K, "full", INIT, seed=1)

    def animate():
        trace = out["trace"]
        xlim, ylim = figs.plot_limits(X)
        frames = gmm.em_frames(trace, X, gmm.frame_iterations(trace.n_iter, 60), xlim, ylim)
        fig = figs.em_animation_figure(X, frames, trace.log_likelihoods, trace.converged_at,
                                       clicks=click_grid(xlim, ylim, 30), xlim=xlim, ylim=ylim)
        out["json"] = pio.to_json(fig.to_dict(), validate=False)
        out["frames"] = len(frames)

    em = timed(run, max(1, repeats // 5))
    figure = timed(animate, max(1, repeats // 5))
    return em, figure, out["frames"], len(out["json"])


def bench_page(repeats: int) -> tuple[list[float], list[float], list[float]]:
    """AppTest: the page with 2,000 points and K = 10: a rerun with nothing changed, a view change (the animation
    rebuilt from the cached trajectory), and a rerun with restarts and model selection shown"""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update({"mx_preset": "Overlapping blobs", "mx_n": str(N), "mx_K": str(K),
                            "mx_init": gmm.INIT_LABELS[INIT]})
    at.run()
    at.switch_page("views/mixtures.py").run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    reruns = timed(lambda: at.run(), repeats)  # the page's fixed cost
    modes = iter(["heatmap", "contours"] * repeats)
    views = timed(lambda: at.segmented_control(key="mx_density").set_value(next(modes)).run(), repeats)
    at.slider(key="mx_R").set_value(50).run()
    at.toggle(key="mx_restarts_on").set_value(True).run()
    at.toggle(key="mx_select_on").set_value(True).run()
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    full = timed(lambda: at.run(), repeats)
    return reruns, views, full


def bench_restarts(X, repeats: int) -> tuple[list[float], int]:
    result = {}

    def run():
        result["r"] = gmm.run_restarts(X, K, 50, "full", "random_from_data", seed=0)

    times = timed(run, repeats)
    return times, len(result["r"].optima)


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--restart-repeats", type=int, default=3)
    args = parser.parse_args()
    threadpool_limits(1, user_api="blas")  # as app.py does at start-up (lvm_core.gmm never changes it)
    X = make_dataset("overlapping", n=N, seed=0)

    core = bench_core_step(X, 50)
    em, figure, n_frames, n_bytes = bench_trajectory(X, args.repeats)
    reruns, views, full = bench_page(args.repeats)
    restarts, n_optima = bench_restarts(X, args.restart_repeats)

    med = statistics.median
    rows = [
        (name, med(times), med(CPU[id(times)]), len(times))
        for name, times in [
            ("one EM step, core (`gmm.em_extend`, 1 iteration)", core),
            ("EM to convergence, every iteration kept (`gmm.em_run`, random data points, seed 1)", em),
            (f"the animation: {n_frames} frames, figure and its JSON ({n_bytes / 1e6:.1f} MB)", figure),
            ("whole-page rerun, nothing changed (AppTest)", reruns),
            ("density contours <-> heatmap + rerun: the animation rebuilt, EM cached (AppTest)", views),
            ("whole-page rerun with restarts (R = 50) and model selection shown (AppTest)", full),
            (f"R = 50 restarts to convergence (`gmm.run_restarts`; {n_optima} distinct optima)", restarts),
        ]
    ]  # fmt: skip
    lines = [
        "# Shallow mixtures: benchmark",
        "",
        f"{N:,} points (overlapping preset), K = {K}, full covariances, random data points as EM's start, "
        f"random data points for the restarts; tol {gmm.DEFAULT_TOL:g}.",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared with other work), "
        f"Python {platform.python_version()}. Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average at the end {os.getloadavg()[0]:.1f} (other engineers' jobs share the cores: medians are "
        "inflated accordingly).",
        "",
        "| what | median wall time | median CPU time | repeats |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {fmt(value)} | {fmt(cpu)} | {n} |" for name, value, cpu, n in rows],
        "",
        "CPU time is this process's (all threads), so it does not count waiting for the cores: on an idle machine "
        "the wall time approaches it.",
        "AppTest times include AppTest's own overhead: it reads and compiles app.py and the page script on every "
        "run, which a running server caches. Playing and scrubbing EM's iterations cost the server nothing: the "
        "browser animates the frames (bench_animation.py).",
        "",
        "Run: `python benchmarks/bench_mixtures.py`.",
    ]  # fmt: skip
    out = ROOT / "benchmarks" / "results" / "mixtures.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
