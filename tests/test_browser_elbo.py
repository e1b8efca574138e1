"""The "ELBO and variational inference" page in a real Chromium: it renders with its equations and charts, Step
advances the optimisation and the gap shrinks, Play animates, a control writes the URL. Screenshots go to
screenshots/ for a human to look at."""

import pytest

from tests.conftest import assert_page_clean, screenshot, wait_for_app

pytestmark = pytest.mark.browser


def _open(open_app, query: str = ""):
    return open_app("elbo", query)


def _metric(page, label_start: str) -> str:
    block = page.locator('[data-testid="stMetric"]').filter(has_text=label_start).first
    return block.locator('[data-testid="stMetricValue"]').inner_text()


def test_elbo_page_renders_and_step_closes_the_gap(open_app, screenshot_dir):
    page = _open(open_app)
    assert_page_clean(page)
    assert page.locator(".js-plotly-plot").count() >= 4  # picker, latent picture, gap chart, gradients, learning
    assert page.locator(".katex").count() >= 3  # the identity, with numbers, and the amortisation split
    assert _metric(page, "step t") == "0"
    gap0 = float(_metric(page, "gap"))
    page.get_by_role("button", name="Step", exact=True).click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                           ".some(e => e.innerText.trim() === '5')", timeout=60_000)
    wait_for_app(page)
    assert float(_metric(page, "gap")) < gap0
    page.get_by_role("button", name="Run 500 steps").click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                           ".some(e => e.innerText.trim() === '505')", timeout=90_000)
    wait_for_app(page)
    assert float(_metric(page, "gap")) < 0.01
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "elbo")


def test_elbo_play_animates_and_a_control_writes_the_url(open_app, screenshot_dir):
    page = _open(open_app, "?elbo_model=Linear-Gaussian+%28closed+form%29&elbo_lin_d=2&elbo_family=full+covariance")
    assert_page_clean(page)
    page.get_by_role("button", name="Play", exact=True).first.click()
    # 5 steps per frame: step 30 means the fragment has redrawn at least 5 times on its own
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                           ".some(e => parseInt(e.innerText) >= 30)", timeout=30_000)
    page.get_by_role("button", name="Pause", exact=True).first.click()
    wait_for_app(page)
    screenshot(page, screenshot_dir, "elbo-linear-full-playing")
    # a control defines the view: one more sample per step (the k select slider, by keyboard) goes into the URL
    k_slider = page.get_by_role("slider", name="Samples per step k")
    k_slider.first.focus()
    k_slider.first.press("ArrowRight")
    page.wait_for_function("() => window.location.search.includes('elbo_k=16')", timeout=60_000)
    wait_for_app(page)
    assert_page_clean(page)
