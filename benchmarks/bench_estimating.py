"""Benchmark the "Estimating p(x)" page: a slider change redrawn through AppTest against the bare computation.

Run by hand: `python benchmarks/bench_estimating.py [--repeats 10]`. Writes benchmarks/results/estimating.md.
The seed model (latent 1, noise_scale 1), x = (0.5, 0.5), R = 200 trials, k = 1,000 samples (the page's defaults).
Every timed rerun uses a new slider value, so the estimators really recompute (nothing is served from the cache),
except the row that says "cached".
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from lvm_core import experiments as ex  # noqa: E402
from lvm_core.models import SeedLVM  # noqa: E402

K, TRIALS = 1_000, 200


def timed(fn, values) -> list[float]:
    out = []
    for v in values:
        t0 = time.perf_counter()
        fn(v)
        out.append(time.perf_counter() - t0)
    return out


def bench_page(repeats: int) -> dict[str, list[float]]:
    """AppTest of app.py on the estimating page; each sample is one widget change plus the rerun it causes."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page("pages/estimating.py").run()
    assert not at.exception, at.exception
    assert at.select_slider(key="est_k").value == K and at.slider(key="est_R").value == TRIALS

    def move_q(v):
        at.slider(key="est_qloc_0").set_value(v).run()

    def new_seed(v):
        at.session_state["seed"] = v
        at.run()

    out = {
        # q's location: importance sampling recomputes (naive MC and prior sampling come from the cache)
        "q slider": timed(move_q, [round(0.1 + 0.01 * i, 2) for i in range(repeats)]),
        # a new seed: all three estimators recompute
        "seed": timed(new_seed, range(100, 100 + repeats)),
    }
    out["cached"] = timed(move_q, [0.1] * repeats)  # a value seen before: the estimates come from the cache
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return out


def bench_bare(repeats: int) -> dict[str, list[float]]:
    model = SeedLVM(latent_dim=1)
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    mean, std, _ = ex.posterior_moments(model, x)
    proposals = ex.default_proposals(model, (-4.0, 4.0), ex.Proposal("gaussian", tuple(mean), tuple(std)))

    def one(seed):
        ex.run_estimator(model, x, proposals["importance"], K, TRIALS, seed)

    def three(seed):
        for p in proposals.values():
            ex.run_estimator(model, x, p, K, TRIALS, seed)

    return {"one": timed(one, range(repeats)), "three": timed(three, range(repeats))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    load = os.getloadavg()[0]
    med = statistics.median
    results = {}
    for threads in (default_threads, 1):
        # the same measurements with torch's default intra-op threads and with one: on a shared 2-core machine the
        # threads of small tensor ops mostly wait for each other
        torch.set_num_threads(threads)
        results[threads] = {**{f"bare {k}": v for k, v in bench_bare(args.repeats).items()},
                            **{f"page {k}": v for k, v in bench_page(args.repeats).items()}}
    torch.set_num_threads(default_threads)

    names = [
        ("bare one", "bare: importance sampling alone (`run_estimator`)"),
        ("bare three", "bare: all three estimators"),
        ("page q slider", "page: q slider moved (IS recomputes) + rerun (AppTest)"),
        ("page seed", "page: new seed (all three recompute) + rerun (AppTest)"),
        ("page cached", "page: q slider back to a seen value (cached) + rerun: the UI overhead"),
    ]
    header = " | ".join(f"{t} torch thread{'s' if t > 1 else ''}" for t in results)
    lines = [
        "# Estimating p(x): benchmark",
        "",
        f"Seed model (latent 1), x = (0.5, 0.5), R = {TRIALS} trials x k = {K:,} samples; median of {args.repeats} "
        "runs each, every run with a new slider value or seed so the estimators really recompute (except the cached "
        "row). AppTest reruns the whole page script, recompiling it each time (a browser reruns only the estimator "
        "fragment, from a cached script), so the page rows are an upper bound on what a viewer waits for.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the start "
        f"(shared with other work); torch {torch.__version__}.",
        "",
        f"| what (median seconds) | {header} |",
        "|---|" + "---:|" * len(results),
        *[f"| {label} | " + " | ".join(f"{med(results[t][key]):.3f}" for t in results) + " |" for key, label in names],
        "",
        "UI overhead of a recomputing slider change (page rerun minus bare importance sampling): "
        + ", ".join(f"{med(results[t]['page q slider']) - med(results[t]['bare one']):.3f} s with {t} thread(s)"
                    for t in results) + ".",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "estimating.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
