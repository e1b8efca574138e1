"""Play's frame rate on the ELBO page: one animation frame is what the page's fragment does on each tick (5 steps on
phi, the exact ELBO / KL / residual, the latent picture's grid, both figures built and serialised to JSON as
st.plotly_chart sends them). Also a whole-page AppTest rerun while playing, as an upper bound that includes the
sections outside the fragment. And end to end: a real `streamlit run` server and headless Chromium, Play clicked,
the "step t" metric read in the browser over a fixed window (frames = steps / steps per frame): websocket, Streamlit's
fragment run, marshalling and the browser's redraw all included. Target: at least 5 frames per second on the seed model.

    python benchmarks/bench_elbo.py     # writes benchmarks/results/elbo.md (the browser part needs /usr/bin/chromium)
"""

from __future__ import annotations

import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lvm_core import inference as vi  # noqa: E402
from lvm_core.models import LinearGaussianLVM, SeedLVM  # noqa: E402
from lvm_core.plots import elbo as figs  # noqa: E402

STEPS_PER_FRAME = 5  # the page's default
FRAMES = 30
BROWSER_WARMUP_S = 3.0  # Play runs this long before the window opens (first frames build the charts)
BROWSER_WINDOW_S = 10.0
BROWSER_CASES = {  # name -> the page's URL query (the view, as a lecturer would bookmark it)
    "seed model, 1-D latent, noise 1.0 (the page's default), mean-field": "",
    "seed model, 2-D latent, noise 0.3, full covariance":
        "?elbo_model=The+notes%27+seed+model&elbo_seed_d=2&elbo_noise=0.3&elbo_family=full+covariance",
    "linear-Gaussian, 2-D latent, full covariance":
        "?elbo_model=Linear-Gaussian+%28closed+form%29&elbo_lin_d=2&elbo_family=full+covariance",
}
STEP_METRIC_JS = """() => {
    const m = [...document.querySelectorAll('[data-testid="stMetric"]')].find(e => e.innerText.includes('step t'));
    return m ? parseInt(m.querySelector('[data-testid="stMetricValue"]').innerText) : -1;
}"""


def frame_times(model, x, full_covariance: bool) -> dict[str, float]:
    """median seconds per frame: total, and its parts (steps, exact terms, picture grid, figures + JSON)"""
    d = model.latent_dim
    opt = vi.PhiOptimizer(model, x, loc=torch.full((1, d), 2.0, dtype=x.dtype), full_covariance=full_covariance)
    log_px = opt.exact()["log_px"]  # computed once per run on the page too
    box = vi.view_box(model, x, [opt.q()])
    steps, exact_elbo = [0], [float(opt.exact(vi.live_resolution(d))["elbo"][0])]
    parts = {"steps": [], "exact": [], "picture grid": [], "figures + JSON": [], "frame": []}
    for _ in range(FRAMES):
        t0 = time.perf_counter()
        opt.step(STEPS_PER_FRAME)
        t1 = time.perf_counter()
        terms = opt.exact(vi.live_resolution(d))
        steps.append(opt.t)
        exact_elbo.append(float(terms["elbo"][0]))
        t2 = time.perf_counter()
        q = opt.q()
        box = vi.view_box(model, x, [q], base=box)
        dens = vi.latent_densities(model, x, q, *box, log_px, n=81)
        t3 = time.perf_counter()
        path = torch.stack(opt.loc_trace)[:, 0].double().numpy()
        mc = torch.stack(opt.elbo_trace)[:, 0].double().numpy()
        a = figs.latent_figure(dens, path).to_json()
        b = figs.gap_chart(np.arange(len(mc)), mc, np.array(steps), np.array(exact_elbo), float(log_px[0])).to_json()
        assert a and b
        t4 = time.perf_counter()
        for name, dt in (("steps", t1 - t0), ("exact", t2 - t1), ("picture grid", t3 - t2),
                         ("figures + JSON", t4 - t3), ("frame", t4 - t0)):
            parts[name].append(dt)
    return {name: statistics.median(v) for name, v in parts.items()}


def apptest_rerun(query: dict[str, str], runs: int = 5) -> float:
    """median seconds of a whole-page AppTest rerun while playing (every section of the page, not just the fragment)"""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.query_params.update(query)
    at.run()
    at.switch_page("views/elbo.py").run()
    at.button(key="elbo_play").click().run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
    assert not at.exception
    return statistics.median(times)


def play_tick_s() -> float:
    """the page's fragment tick (views/elbo.py), read from its source so this report never states a stale value"""
    text = (ROOT / "views" / "elbo.py").read_text()
    return float(re.search(r"^PLAY_TICK_S = ([0-9.]+)", text, re.M).group(1))


def browser_fps() -> dict[str, tuple[float, int]] | None:
    """end-to-end frames per second per case in Chromium against `streamlit run`; None without Chromium"""
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_for_app

    if not Path(CHROMIUM).exists():
        return None
    from playwright.sync_api import sync_playwright

    out = {}
    with tempfile.TemporaryDirectory() as logs, serve_app(Path(logs)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for name, query in BROWSER_CASES.items():
            page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/elbo{query}")
            wait_for_app(page)
            page.get_by_role("button", name="Play", exact=True).first.click()
            time.sleep(BROWSER_WARMUP_S)
            s0, t0 = page.evaluate(STEP_METRIC_JS), time.monotonic()
            time.sleep(BROWSER_WINDOW_S)
            s1, t1 = page.evaluate(STEP_METRIC_JS), time.monotonic()
            assert s0 >= 0 and s1 > s0, f"{name}: Play did not advance ({s0} -> {s1})"
            frames = (s1 - s0) // STEPS_PER_FRAME
            out[name] = (frames / (t1 - t0), frames)
            print(f"browser, {name}: {out[name][0]:.1f} fps ({frames} frames in {t1 - t0:.1f} s)")
            page.context.close()
        browser.close()
    return out


def main() -> None:
    torch.set_num_threads(1)  # as app.py does at start-up
    cases = {
        "seed model, 1-D latent, noise 1.0 (the page's default), mean-field": (SeedLVM(1, seed=0), False),
        "seed model, 2-D latent, noise 0.3, full covariance": (SeedLVM(2, seed=0, noise_scale=0.3), True),
        "linear-Gaussian, 2-D latent, full covariance": (LinearGaussianLVM.random(2, 2, 0.5, seed=0), True),
    }
    load = "load average " + " / ".join(f"{v:.2f}" for v in os.getloadavg()) + f" on {os.cpu_count()} cores"
    rows = []
    for name, (model, full) in cases.items():
        x = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
        t = frame_times(model, x, full)
        rows.append((name, t))
        print(f"{name}: {1 / t['frame']:.1f} fps ({t})")
    page = apptest_rerun({})
    print(f"AppTest whole-page rerun while playing (seed model default): {page:.3f} s")
    browser = browser_fps()
    tick = play_tick_s()
    lines = [
        "# ELBO page: Play's frame rate",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{torch.get_num_threads()} torch thread (set once at start, as app.py does), "
        f"{os.cpu_count()} cores. Medians over "
        f"{FRAMES} frames of {STEPS_PER_FRAME} steps each (the page's default), q starting at location 2.",
        "",
        "| case | frames / s | frame (ms) | steps (ms) | exact ELBO, KL, residual (ms) | picture grid (ms) "
        "| figures + JSON (ms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, t in rows:
        lines.append(f"| {name} | {1 / t['frame']:.1f} | {1e3 * t['frame']:.0f} | {1e3 * t['steps']:.0f} | "
                     f"{1e3 * t['exact']:.0f} | {1e3 * t['picture grid']:.0f} | {1e3 * t['figures + JSON']:.0f} |")
    lines += [
        "",
        f"Whole-page AppTest rerun while playing (seed model default, every section including the gradient "
        f"histograms of 2,000 replicates and the learning loop): {page:.2f} s. Play reruns only the fragment "
        f"(st.fragment(run_every={tick:g} s)), so the frame rate is the fragment's, above, capped at "
        f"{1 / tick:g} frames per second by the tick.",
        "",
        "## End to end in Chromium",
        "",
    ]
    if browser is None:
        lines.append("Not measured: no Chromium at /usr/bin/chromium.")
    else:
        lines += [
            f"`streamlit run app.py` (this repository's .streamlit/config.toml) and headless Chromium on one machine; "
            f"Play clicked, {BROWSER_WARMUP_S:g} s to settle, then the 'step t' metric read in the page at the start "
            f"and end of a {BROWSER_WINDOW_S:g} s window; frames = steps / {STEPS_PER_FRAME}. Before: "
            f"{load}.",
            "",
            "| case | frames / s | frames in the window |",
            "|---|---|---|",
        ]
        lines += [f"| {name} | {fps:.1f} | {frames} |" for name, (fps, frames) in browser.items()]
    lines += ["", "Target: at least 5 frames per second on the seed model."]
    out = ROOT / "benchmarks" / "results" / "elbo.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
