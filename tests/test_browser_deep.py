"""Real-browser checks of the deep-LVM page: the infinite mixture draws, a short run trains, Stop keeps the best."""

import pytest

from tests.conftest import wait_for_app

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'
PLOTLY_SVG = ".js-plotly-plot svg.main-svg"


def _screenshot(page, screenshot_dir, name: str) -> None:
    # Streamlit scrolls inside its main container: grow the viewport to the content to capture the whole page
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], min(height, 10_000))})
    page.wait_for_timeout(800)
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)
    page.set_viewport_size(viewport)


def test_deep_page_draws_the_mixture_and_trains_a_short_run(open_app, screenshot_dir):
    page = open_app("deep-lvm", "?dl_seed_noise=0.2&dl_steps=150")
    assert page.locator(EXCEPTION).count() == 0
    page.wait_for_selector(PLOTLY_SVG)
    assert page.locator(".js-plotly-plot").count() >= 2  # the infinite mixture and p(z)
    assert page.locator(".katex").count() >= 4
    _screenshot(page, screenshot_dir, "deep-lvm-model")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Trained 150 steps", timeout=240_000)
    wait_for_app(page)
    assert page.locator(EXCEPTION).count() == 0
    assert page.locator(".js-plotly-plot").count() >= 6  # + curves, density, samples, latent space
    assert page.get_by_text("exact held-out log p(x)").count() >= 1
    _screenshot(page, screenshot_dir, "deep-lvm-trained")


def test_stop_button_ends_a_long_run_and_keeps_the_best_model(open_app, screenshot_dir):
    page = open_app("deep-lvm", "?dl_steps=5000")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector('[data-testid="stProgress"]', timeout=120_000)
    page.wait_for_timeout(1500)
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True).click()
    page.wait_for_selector("text=Stopped after", timeout=120_000)
    wait_for_app(page)
    assert page.locator(EXCEPTION).count() == 0
    assert page.get_by_text("(stopped)").count() >= 1  # the run is kept in the overlay, labelled
    _screenshot(page, screenshot_dir, "deep-lvm-stopped")
