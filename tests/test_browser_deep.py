"""Real-browser checks of the deep-LVM page: the infinite mixture draws, a short run trains, Stop keeps the best."""

import re

import pytest

from tests.conftest import assert_page_clean, screenshot, wait_for_app

pytestmark = pytest.mark.browser

PLOTLY_SVG = ".js-plotly-plot svg.main-svg"


def test_deep_page_draws_the_mixture_and_trains_a_short_run(open_app, screenshot_dir):
    page = open_app("deep-lvm", "?dl_seed_noise=0.2&dl_steps=150")
    assert_page_clean(page)
    page.wait_for_selector(PLOTLY_SVG)
    assert page.locator(".js-plotly-plot").count() >= 2  # the infinite mixture and p(z)
    assert page.locator(".katex").count() >= 4
    screenshot(page, screenshot_dir, "deep-lvm-model")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Trained 150 steps", timeout=240_000)
    wait_for_app(page)
    assert_page_clean(page)
    assert page.locator(".js-plotly-plot").count() >= 6  # + curves, density, samples, latent space
    assert page.get_by_text("exact held-out log p(x)").count() >= 1
    screenshot(page, screenshot_dir, "deep-lvm-trained")


def test_stop_button_ends_a_long_run_and_keeps_the_best_model(open_app, screenshot_dir):
    page = open_app("deep-lvm", "?dl_steps=5000")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector('[data-testid="stProgress"]', timeout=120_000)
    page.wait_for_timeout(1500)
    page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop", exact=True).click()
    page.wait_for_selector("text=Stopped after", timeout=120_000)
    wait_for_app(page)
    assert_page_clean(page)
    message = page.get_by_text("Stopped after").first.inner_text()
    done, best = map(int, re.search(r"Stopped after (\d+) steps.*\(step (\d+)\)", message).groups())
    assert 0 < best <= done  # the weights kept are those of a step the run reached
    assert page.get_by_text("(stopped)").count() >= 1  # the run is kept in the overlay, labelled
    screenshot(page, screenshot_dir, "deep-lvm-stopped")


def test_digits_view_draws_the_manifold_and_trains_a_short_run(open_app, screenshot_dir):
    page = open_app("deep-lvm", "?dl_data=digits&dl_dg_steps=100")
    assert_page_clean(page)
    manifold = page.locator('[class*="st-key-dl_dg_manifold"]')
    manifold.locator(PLOTLY_SVG).first.wait_for()
    assert manifold.locator(".heatmaplayer").count() >= 1  # the decoded images, tiled
    screenshot(page, screenshot_dir, "deep-lvm-digits")
    page.get_by_role("button", name="Train", exact=True).click()
    page.wait_for_selector("text=Trained 100 steps", timeout=240_000)
    wait_for_app(page)
    assert_page_clean(page)
    assert manifold.locator(PLOTLY_SVG).count() >= 1  # the trained model's manifold replaces the shipped one
    screenshot(page, screenshot_dir, "deep-lvm-digits-trained")
