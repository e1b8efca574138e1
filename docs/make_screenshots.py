"""Take the README's screenshots: each page in headless Chromium against `streamlit run`, the first screenful.

    python docs/make_screenshots.py      # writes docs/screenshots/<page>.png (needs /usr/bin/chromium)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import CHROMIUM, CHROMIUM_ARGS, serve_app, wait_for_app  # noqa: E402

OUT = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 1400, "height": 1000}
SHOTS = {  # file name -> (URL path and query, a button to click first or None, a heading to scroll to or None)
    "home": ("", None, None),
    "mixtures": ("mixtures?mx_preset=Overlapping+blobs&mx_iter=4", None, "2 · Fit by EM, iteration by iteration"),
    "deep-lvm": ("deep-lvm?dl_latent_dim=2&dl_seed_noise=0.3", None, "The model, seen"),
    "estimating": ("estimating?est_seed_d=2&est_noise=0.3", None, "2 · Naive Monte Carlo against importance sampling"),
    "elbo": ("elbo?elbo_model=The+notes%27+seed+model&elbo_seed_d=2&elbo_noise=0.3&elbo_family=full+covariance",
             "Run 500 steps", "2 · Fit q(z; φ) by stochastic gradient ascent on the ELBO"),
}


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as logs, serve_app(Path(logs)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        for name, (path, click, heading) in SHOTS.items():
            page = browser.new_context(viewport=VIEWPORT, device_scale_factor=1).new_page()
            page.set_default_timeout(120_000)
            page.goto(f"{url}/{path}")
            wait_for_app(page)
            if click:
                page.get_by_role("button", name=click).first.click()
                page.wait_for_timeout(500)
                wait_for_app(page)
            if heading:  # Streamlit scrolls inside its main container: bring the section's heading to the top
                page.get_by_role("heading", name=heading).first.evaluate("e => e.scrollIntoView({block: 'start'})")
            page.wait_for_timeout(800)
            page.screenshot(path=str(OUT / f"{name}.png"))
            print(f"wrote {OUT / name}.png")
            page.context.close()
        browser.close()


if __name__ == "__main__":
    main()
