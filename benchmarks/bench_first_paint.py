"""First paint of every page in headless Chromium against a warm `streamlit run` server: the time from opening the
page until its title and controls show ("text"), and until every chart on it has drawn ("charts").

    python benchmarks/bench_first_paint.py --label before             # every registered page
    python benchmarks/bench_first_paint.py --label after --pages elbo  # one page (url path; "home" for the home page)

Each run stores its medians under its label in benchmarks/results/first_paint.json (earlier labels are kept, so a
page's engineer records "before" and "after" for their page) and rewrites benchmarks/results/first_paint.md from it.
The server is warmed by one unmeasured visit per page; each measured visit is a fresh browser context (a new session,
as a student opening the link), so session-state caches start empty while the server's st.cache_* stay warm.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402
from ui.pages import PAGES  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
VIEWPORT = {"width": 1400, "height": 900}
TIMEOUT_MS = 180_000

# Recorded in the page itself, on every animation frame from the first: performance.now() counts from navigation
# start, so the figures include the HTML, Streamlit's bundle, the websocket, the script run and plotly's drawing.
PAINT_PROBE = """
window.__paint = {text: null, charts: null, nCharts: 0};
(function poll() {
    const main = document.querySelector('[data-testid="stMain"]');
    const app = document.querySelector('[data-testid="stApp"]');
    const now = performance.now();
    if (main && window.__paint.text === null && main.querySelector('h1')
            && main.querySelector('[data-testid="stWidgetLabel"], [data-testid="stButton"]')) {
        window.__paint.text = now;
    }
    if (main && window.__paint.text !== null && app && app.dataset.testScriptState === 'notRunning'
            && !main.querySelector('[data-testid="stSkeleton"]')) {
        const charts = [...main.querySelectorAll('.stPlotlyChart')];
        if (charts.length && charts.every(c => c.querySelector('.js-plotly-plot svg.main-svg'))) {
            window.__paint.charts = now;
            window.__paint.nCharts = charts.length;
            return;
        }
    }
    requestAnimationFrame(poll);
})();
"""


def visit(browser, url: str) -> dict:
    """open url in a fresh context; seconds until text and controls show, and until every chart has drawn"""
    context = browser.new_context(viewport=VIEWPORT)
    context.add_init_script(PAINT_PROBE)
    page = context.new_page()
    try:
        page.goto(url)
        page.wait_for_function("() => window.__paint && window.__paint.charts !== null", timeout=TIMEOUT_MS)
        paint = page.evaluate("() => window.__paint")
    finally:
        context.close()
    return {"text_s": paint["text"] / 1000, "charts_s": paint["charts"] / 1000, "charts": paint["nCharts"]}


def measure(pages, repeats: int) -> dict[str, dict]:
    from playwright.sync_api import sync_playwright

    out = {}
    with tempfile.TemporaryDirectory() as logs, serve_app(Path(logs)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for entry in pages:
            visit(browser, f"{url}/{entry.url_path}")  # warm: imports, st.cache_*, plotly's bundle in the server
        for entry in pages:
            runs = [visit(browser, f"{url}/{entry.url_path}") for _ in range(repeats)]
            name = entry.url_path or "home"
            out[name] = {"text_s": statistics.median(r["text_s"] for r in runs),
                         "charts_s": statistics.median(r["charts_s"] for r in runs),
                         "charts": runs[-1]["charts"], "repeats": repeats,
                         "load": round(os.getloadavg()[0], 1),
                         "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
            r = out[name]
            print(f"{name}: text {r['text_s']:.2f} s, {r['charts']} charts {r['charts_s']:.2f} s (load {r['load']})",
                  flush=True)
        browser.close()
    return out


def write_report(results: dict[str, dict[str, dict]]) -> str:
    labels = list(results)
    names = [p.url_path or "home" for p in PAGES]
    lines = ["# First paint in headless Chromium", "",
             "Seconds from opening a page (server warm, fresh browser session) until its title and controls show, "
             "and until every chart has drawn; medians. Load is the 1-minute load average when the page was measured "
             "(2 shared cores: the browser, the server and other work compete).", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.", "",
             "| page | " + " | ".join(f"{label}: text / charts (n) | load" for label in labels) + " |",
             "|---|" + "---:|---:|" * len(labels)]
    for name in names:
        cells = []
        for label in labels:
            r = results[label].get(name)
            cells += ([f"{r['text_s']:.2f} / {r['charts_s']:.2f} s ({r['charts']})", str(r["load"])] if r
                      else ["-", "-"])
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Dates: " + "; ".join(f"{label}: {next(iter(results[label].values()))['date']}" for label in labels),
              "", "Run: `python benchmarks/bench_first_paint.py --label LABEL [--pages PAGE ...]`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--label", required=True, help='e.g. "before" or "after"')
    parser.add_argument("--pages", nargs="*", help="url paths to measure (home for the home page); default: all")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"no Chromium at {CHROMIUM}")
    wanted = set(args.pages or [])
    pages = [p for p in PAGES if not wanted or (p.url_path or "home") in wanted]
    store = RESULTS / "first_paint.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    results.setdefault(args.label, {}).update(measure(pages, args.repeats))
    RESULTS.mkdir(exist_ok=True)
    store.write_text(json.dumps(results, indent=1) + "\n")
    report = write_report(results)
    (RESULTS / "first_paint.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main()
