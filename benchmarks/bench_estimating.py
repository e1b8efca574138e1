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
from lvm_core.proposals import ProposalSpec  # noqa: E402

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
    at.switch_page("views/estimating.py").run()
    assert not at.exception, at.exception
    assert at.select_slider(key="est_k").value == K and at.slider(key="est_R").value == TRIALS

    def move_q(v):
        at.slider(key="est_qloc_0").set_value(v).run()

    def new_seed(v):
        at.session_state["seed"] = v
        at.run()

    def move_k(seed):
        at.session_state["seed"] = seed  # untimed: a fresh seed at k = 500, so k = 1,000 below is not cached
        at.select_slider(key="est_k").set_value(500).run()
        t0 = time.perf_counter()
        at.select_slider(key="est_k").set_value(K).run()
        return time.perf_counter() - t0

    out = {
        # q's location: importance sampling recomputes (naive MC and prior sampling come from the cache)
        "q slider": timed(move_q, [round(0.1 + 0.01 * i, 2) for i in range(repeats)]),
        # a new seed: all three estimators recompute
        "seed": timed(new_seed, range(100, 100 + repeats)),
    }
    # k moved to 1,000 (from 500): all three estimators recompute at k = 1,000
    out["k slider"] = [move_k(seed) for seed in range(300, 300 + repeats)]
    out["cached"] = timed(move_q, [0.1] * repeats)  # a value seen before: the estimates come from the cache
    assert not at.exception and not at.error, (at.exception, [e.value for e in at.error])
    return out


_WATCH_STATE = """() => {
  window.__states = [];
  const app = document.querySelector('[data-testid="stApp"]');
  new MutationObserver(() => window.__states.push([app.getAttribute('data-test-script-state'), performance.now()]))
    .observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def bench_browser(repeats: int, port: int = 8604) -> list[float]:
    """A real browser: seconds from a key press on q's location slider until the (fragment) rerun has finished."""
    import subprocess
    import urllib.request

    from playwright.sync_api import sync_playwright

    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.headless",
               "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            done = '[data-testid="stApp"][data-test-script-state="notRunning"]'
            for path in ("", "estimating"):  # home first: see tests/test_browser_estimating.py
                page.goto(f"{url}/{path}")
                page.wait_for_selector(done, timeout=120_000)
                page.wait_for_timeout(1500)
            slider = page.get_by_role("slider", name="location μ1")
            out = []
            for _ in range(repeats):
                page.evaluate(_WATCH_STATE)
                t0 = page.evaluate("() => performance.now()")
                slider.press("ArrowRight")  # one step: a value not seen before, so importance sampling recomputes
                page.wait_for_function("() => window.__states.some(s => s[0] === 'notRunning')", timeout=60_000)
                t1 = page.evaluate("() => window.__states.filter(s => s[0] === 'notRunning').pop()[1]")
                out.append((t1 - t0) / 1000)
                page.wait_for_timeout(300)
            browser.close()
        return out
    finally:
        server.terminate()
        server.wait(timeout=20)


def bench_bare(repeats: int) -> dict[str, list[float]]:
    """run_estimator alone, on torch's current thread count"""
    model = SeedLVM(latent_dim=1)
    x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    mean, std, _ = ex.posterior_moments(model, x)
    proposals = ex.default_proposals(model, (-4.0, 4.0), ProposalSpec("gaussian", tuple(mean), tuple(std)))

    def one(seed):
        ex.run_estimator(model, x, proposals["importance"], K, TRIALS, seed)

    def three(seed):
        for p in proposals.values():
            ex.run_estimator(model, x, p, K, TRIALS, seed)

    def one_without_khat(seed):
        real = ex.pareto_khat
        ex.pareto_khat = lambda log_w, dim=0: torch.full(log_w.shape[1:], float("nan"), dtype=log_w.dtype)
        try:
            one(seed)
        finally:
            ex.pareto_khat = real

    out = {"one": [], "one no khat": []}
    for seed in range(repeats):  # interleaved, so the load is shared alike
        out["one"] += timed(one, [seed])
        out["one no khat"] += timed(one_without_khat, [seed])
    out["three"] = timed(three, range(repeats))
    return out


def bench_diagnostics(repeats: int) -> dict[str, list[float]]:
    """the page's other new numbers for its importance proposal, one point: both KLs (experiments.proposal_divergences)
    and q fitted to the posterior (a 2-component mixture), on the seed model and on the banana"""
    from lvm_core.estimators import fit_mixture_proposal
    from lvm_core.models import hard_posterior

    out = {}
    seed_model = SeedLVM(latent_dim=1)
    seed_x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    banana, banana_x = hard_posterior("banana")
    for name, model, x in (("seed", seed_model, seed_x), ("banana", banana, banana_x)):
        mean, std, _ = ex.posterior_moments(model, x)
        q = ProposalSpec("gaussian", tuple(mean), tuple(std))
        out[f"kl {name}"] = timed(lambda _, m=model, x=x, q=q: ex.proposal_divergences(m, x, q), range(repeats))
    out["mixture banana"] = timed(lambda _: fit_mixture_proposal(banana, banana_x, 2), range(max(3, repeats // 3)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--browser", action="store_true", help="also time slider changes in Chromium (port 8604)")
    args = parser.parse_args()
    default_threads = torch.get_num_threads()
    load = os.getloadavg()[0]
    med = statistics.median
    # lvm_core never changes torch's threads: this script, the process's owner, sets them for each section
    results = {f"bare2 {k}": v for k, v in bench_bare(args.repeats).items()}
    torch.set_num_threads(1)  # as app.py does at start-up (the page section runs app.py, which sets 1 too)
    results |= {f"bare {k}": v for k, v in bench_bare(args.repeats).items()}
    results |= {f"diag {k}": v for k, v in bench_diagnostics(args.repeats).items()}
    results |= {f"page {k}": v for k, v in bench_page(args.repeats).items()}
    browser = bench_browser(args.repeats) if args.browser else None

    names = [
        ("bare one", "bare: importance sampling alone (`run_estimator`, 1 torch thread, as the page runs it)"),
        ("bare one no khat", "bare: importance sampling alone without its Pareto k-hat (the share k-hat costs)"),
        ("bare three", "bare: all three estimators (1 torch thread)"),
        ("diag kl seed", "both KLs and the draws needed for q (`proposal_divergences`), seed model, one point"),
        ("diag kl banana", "both KLs and the draws needed for q, banana (a 2-D latent, quadrature), one point"),
        ("diag mixture banana", "q fitted to p(z|x): a 2-component mixture (`fit_mixture_proposal`), banana"),
        ("bare2 one", f"bare: importance sampling alone with torch's default {default_threads} threads"),
        ("bare2 three", f"bare: all three estimators with torch's default {default_threads} threads"),
        ("page q slider", "page: q slider moved (importance sampling recomputes) + rerun (AppTest)"),
        ("page k slider", "page: k slider moved to 1,000 (all three recompute) + rerun (AppTest)"),
        ("page seed", "page: new seed (all three recompute) + rerun (AppTest)"),
        ("page cached", "page: q slider back to a seen value (all cached) + rerun: the UI overhead"),
    ]
    lines = [
        "# Estimating p(x): benchmark",
        "",
        f"Seed model (latent 1), x = (0.5, 0.5), R = {TRIALS} trials x k = {K:,} samples; median of {args.repeats} "
        "runs each, every run with a new slider value or seed so the estimators really recompute (except the cached "
        "row). AppTest reruns the whole page script, recompiling it each time (a browser reruns only the estimator "
        "fragment, from a cached script).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {load:.1f} at the start "
        f"(shared with other work); torch {torch.__version__}.",
        "",
        "| what | median (s) |",
        "|---|---:|",
        *[f"| {label} | {med(results[key]):.3f} |" for key, label in names],
        "",
        *([f"In Chromium (a real server): a step of q's location slider until its fragment rerun finished, median "
           f"{med(browser):.3f} s (min {min(browser):.3f}, max {max(browser):.3f}) over {len(browser)} steps; this "
           "includes the websocket round trip and the browser redrawing five plotly charts on the same busy CPUs.",
           ""] if browser else []),
        "UI overhead of a recomputing slider change (AppTest page rerun minus the bare computation it triggers): "
        f"q slider {med(results['page q slider']) - med(results['bare one']):.3f} s, "
        f"k slider {med(results['page k slider']) - med(results['bare three']):.3f} s.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    out = ROOT / "benchmarks" / "results" / "estimating.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)


if __name__ == "__main__":
    main()
