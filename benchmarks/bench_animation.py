"""Browser-side animations (plotly frames) in headless Chromium against a warm `streamlit run` server: frames per
second while playing, scrub latency (a click on the figure's slider until the frame is painted), and proof that the
server is idle meanwhile (no message from the browser to the server, so no rerun).

    python benchmarks/bench_animation.py                 # every case; writes benchmarks/results/animation.md
    python benchmarks/bench_animation.py --cases "EM, contours"

A page adds its animated figure to CASES: the page's url path, a query that sets the view (ask for the fastest play
speed the page offers, so the frame rate measures the browser, not the page's pacing) and the key of the chart
(kit.chart(key=...); a key with a per-run suffix, e.g. "mx_chart_0", is matched by its prefix). A figure that a run
produces names the button that starts the run (click); a figure whose page paces Play slower than the display gets
Play's pacing set to one display frame in the browser (frame_ms) before it is measured.

Frames per second: plotly's `plotly_animatingframe` events during a 10 s window of Play; when the animation reaches
its last frame it is started again from the first with the figure's own Play arguments. Scrub latency: for 20 clicks
on the slider's rail, the time from the mouse press to the first display frame after plotly reports the frame drawn.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_for_app  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TICKS = os.sysconf("SC_CLK_TCK")
WINDOW_S = 10.0
SCRUB_CLICKS = 20
TARGET_FPS = 30


@dataclass(frozen=True)
class Case:
    name: str
    url_path: str
    query: str
    chart_key: str
    click: str | None = None  # a button to press first, for a figure that a run produces
    frame_ms: float | None = None  # Play's pacing, for a figure whose page offers no faster speed


FASTEST_MS = 1000 / 60  # one display frame


CASES = [
    Case("EM, contours (mixtures default, overlapping blobs, K = 3)", "mixtures",
         "?mx_preset=Overlapping+blobs&mx_speed=60", "mx_chart_"),
    Case("EM, heatmap density (a layout image per frame)", "mixtures",
         "?mx_preset=Overlapping+blobs&mx_speed=60&mx_density=heatmap", "mx_chart_"),
    Case("EM, 2,000 points, K = 10 (random data points start; the points an image per frame)", "mixtures",
         "?mx_preset=Overlapping+blobs&mx_n=2000&mx_K=10&mx_init=random+data+points&mx_speed=60", "mx_chart_"),
    Case("generative process, 30 draws", "mixtures", "?mx_speed=60", "mx_gen_chart", frame_ms=FASTEST_MS),
    Case("ELBO page, replay of phi's path (25 recorded steps)", "elbo", "", "elbo_replay_chart",
         click="Run 500 steps", frame_ms=FASTEST_MS),
    Case("Estimating page, the k sweep (histogram bars, no redraw)", "estimating", "", "est_sweep",
         frame_ms=FASTEST_MS),
]

PROBE = """([key]) => {
    const box = document.querySelector(`[class*="st-key-${key}"]`);
    box.scrollIntoView({block: 'center'});
    const gd = box.querySelector('.js-plotly-plot');
    window.__gd = gd;
    window.__frames = [];
    window.__lat = [];
    window.__down = null;
    gd.on('plotly_animatingframe', () => window.__frames.push(performance.now()));
    gd.on('plotly_animated', () => {
        if (window.__down !== null) {
            const down = window.__down;
            window.__down = null;
            requestAnimationFrame(() => window.__lat.push(performance.now() - down));
        }
        if (window.__loop && !window.__restarting) {  // again from the first frame, with the figure's Play arguments
            const play = gd.layout.updatemenus[0].buttons[0].args;
            if (play[0] !== null) {  // Play lists every frame from the first
                setTimeout(() => Plotly.animate(gd, play[0], play[1]), 0);
                return;
            }
            const names = gd._transitionData._frames.map(f => f.name);
            window.__restarting = true;  // the jump to the first frame ends in plotly_animated too
            // after plotly has finished the animation that just ended (from inside its event, the jump can stall)
            setTimeout(() => Plotly.animate(gd, [names[0]], {frame: {duration: 0, redraw: true}, mode: 'immediate',
                                                             transition: {duration: 0}})
                .then(() => { window.__restarting = false; return Plotly.animate(gd, null, play[1]); }), 0);
        }
    });
    document.addEventListener('mousedown', () => { window.__down = performance.now(); }, true);
    return gd._transitionData._frames.length;
}"""


FASTER = """([ms]) => Plotly.relayout(window.__gd, {'updatemenus[0].buttons[0].args[1].frame.duration': ms})"""


def _descendants(pid: int) -> list[int]:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) used so far by this process's descendants: the browser's processes, the
    Streamlit server's (counted apart) and the Playwright driver's"""
    out = {"browser": 0.0, "server": 0.0}
    for pid in _descendants(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / TICKS
        if b"streamlit" in cmdline:
            out["server"] += used
        elif b"chrom" in cmdline:
            out["browser"] += used
    return out


def run_case(browser, url: str, case: Case) -> dict:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(180_000)
    sent = []  # messages from the browser to the server: a rerun needs one
    page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    try:
        page.goto(f"{url}/{case.url_path}{case.query}")
        wait_for_app(page)
        if case.click:
            page.get_by_role("button", name=case.click).click()
            page.wait_for_timeout(500)
            wait_for_app(page)
            page.locator(f'[class*="st-key-{case.chart_key}"] .js-plotly-plot').first.wait_for()
        n_frames = page.evaluate(PROBE, [case.chart_key])
        if case.frame_ms:
            page.evaluate(FASTER, [case.frame_ms])
        page.wait_for_timeout(500)
        box = page.locator(f'[class*="st-key-{case.chart_key}"]').first
        before = len(sent)
        # fps: the figure's own Play button, looped for the window
        page.evaluate("() => { window.__loop = true; }")
        box.get_by_text("▶ Play").click()
        page.wait_for_timeout(1000)  # the first frames after a click: not counted
        n0, cpu0 = page.evaluate("() => window.__frames.length"), cpu_seconds()
        page.wait_for_timeout(int(WINDOW_S * 1000))
        n1, cpu1 = page.evaluate("() => window.__frames.length"), cpu_seconds()
        page.evaluate("() => { window.__loop = false; }")
        times = page.evaluate("() => window.__frames")[n0:n1]
        page.wait_for_timeout(1500)
        # scrub: clicks along the slider's rail
        rail = box.locator(".slider-rail-rect").first.bounding_box()
        for i in range(SCRUB_CLICKS):
            x = rail["x"] + 8 + (rail["width"] - 16) * ((i * 7919) % SCRUB_CLICKS) / (SCRUB_CLICKS - 1)
            page.mouse.click(x, rail["y"] + rail["height"] / 2)
            page.wait_for_timeout(300)
        latencies = page.evaluate("() => window.__lat")
        messages = len(sent) - before
        state = page.evaluate("() => document.querySelector('[data-testid=stApp]').dataset.testScriptState")
    finally:
        context.close()
    span = (times[-1] - times[0]) / 1000 if len(times) > 1 else float("nan")
    fps = (len(times) - 1) / span if len(times) > 1 else 0.0
    browser_cpu = cpu1["browser"] - cpu0["browser"]
    latencies = sorted(latencies)
    return {"frames in figure": n_frames, "fps": fps, "frames counted": len(times),
            "fps per browser CPU-second": (n1 - n0) / browser_cpu if browser_cpu > 0 else float("nan"),
            "server CPU s": cpu1["server"] - cpu0["server"],
            "scrub median ms": statistics.median(latencies) if latencies else float("nan"),
            "scrub p95 ms": latencies[int(0.95 * (len(latencies) - 1))] if latencies else float("nan"),
            "scrubs": len(latencies), "messages to server": messages, "script state": state}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", nargs="*", help="case names (prefixes) to run; default: all")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    cases = [c for c in CASES if not args.cases or any(c.name.startswith(p) for p in args.cases)]
    results = {}
    with tempfile.TemporaryDirectory() as logs, serve_app(Path(logs)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for case in cases:  # warm the server's caches: the figures are built once per content
            page = browser.new_page()
            page.set_default_timeout(180_000)
            page.goto(f"{url}/{case.url_path}{case.query}")
            wait_for_app(page)
            page.close()
        for case in cases:
            results[case.name] = run_case(browser, url, case) | {"load": round(os.getloadavg()[0], 1)}
            r = results[case.name]
            print(f"{case.name}: {r['fps']:.1f} fps ({r['fps per browser CPU-second']:.1f} per browser CPU-second, "
                  f"server {r['server CPU s']:.2f} CPU s), scrub {r['scrub median ms']:.0f} ms median "
                  f"({r['scrub p95 ms']:.0f} p95), {r['messages to server']} messages to the server, "
                  f"load {r['load']}", flush=True)
        browser.close()
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = ["# Browser-side animations (plotly frames)", "",
             f"Headless Chromium (software rendering, {CHROMIUM}) against `streamlit run` on the same machine: "
             f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; measured {when}. "
             f"Target: >= {TARGET_FPS} fps with the server idle.", "",
             "| case | frames in figure | fps while playing | frames per browser CPU-second | scrub latency, "
             "median / p95 | messages to the server | server CPU during play | load |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['frames in figure']} | **{r['fps']:.1f}** | {r['fps per browser CPU-second']:.1f} "
                     f"| {r['scrub median ms']:.0f} / {r['scrub p95 ms']:.0f} ms ({r['scrubs']} clicks) | "
                     f"{r['messages to server']} | {r['server CPU s']:.2f} s | {r['load']} |")
    lines += ["", "fps: plotly_animatingframe events per second over a 10 s window of the figure's own Play at the "
              "page's fastest speed (one frame per display frame asked for), restarted from the first frame when it "
              "ends. Scrub: a click on the slider's rail to the first display frame after plotly_animated. Messages "
              "to the server: websocket frames the browser sent while playing and scrubbing (0: no rerun, the "
              "server idle). Frames per browser CPU-second: frames shown per CPU second all of Chromium's processes "
              "used in the window, i.e. the frame rate the browser reaches on one free core; the wall-clock fps "
              "depends on how many other processes share the 2 cores (the load column).", "",
              "Run: `python benchmarks/bench_animation.py`."]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "animation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
