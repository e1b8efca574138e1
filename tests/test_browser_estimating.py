"""The "Estimating p(x)" page in a real Chromium: it renders, a click on the density chart picks a new x, a slider
writes the URL, and the 2-D latent picture draws. Screenshots go to screenshots/ for a human to look at."""

import re

import pytest

from tests.conftest import assert_page_clean, screenshot, wait_for_app

pytestmark = pytest.mark.browser

SLIDER_VALUES = "els => els.map(e => e.getAttribute('aria-valuetext') || e.innerText)"
METRIC = '[data-testid="stMetricValue"]'


def _open(open_app, query: str = ""):
    return open_app("estimating", query)


def test_estimating_page_renders_and_a_click_picks_a_new_point(open_app, screenshot_dir):
    page = _open(open_app)
    assert_page_clean(page)
    assert page.locator(".js-plotly-plot").count() >= 5
    assert page.locator('[data-testid="stSidebar"]').get_by_role("slider").count() >= 1  # app.py's sidebar ran
    screenshot(page, screenshot_dir, "estimating")
    metric = page.locator(METRIC).first
    before = metric.inner_text()
    # the density chart is the page's first plotly chart; click its upper right, away from the chosen x
    area = page.locator(".stPlotlyChart").first.locator(".nsewdrag").first
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    page.mouse.click(box["x"] + 0.85 * box["width"], box["y"] + 0.15 * box["height"])
    page.wait_for_function("() => window.location.search.includes('est_x1=')", timeout=60_000)
    wait_for_app(page)
    after = page.locator(METRIC).first.inner_text()
    assert after != before, (before, after)
    x1 = float(re.search(r"est_x1=([-0-9.e]+)", page.url).group(1))
    assert x1 > 0.5  # the click was right of the old x = (0.5, 0.5)
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "estimating-after-click")


def test_estimating_slider_writes_the_url_and_2d_latent_draws(open_app, screenshot_dir):
    page = _open(open_app, "?est_seed_d=2&est_noise=0.3&est_qfamily=Student-t")
    assert_page_clean(page)
    k_slider = page.get_by_role("slider", name=re.compile("samples per estimate k"))
    if k_slider.count() == 0:  # older accessible names: the select slider is the first slider of section 2
        k_slider = page.locator('[data-testid="stSelectSlider"] [role="slider"]')
    k_slider.first.focus()
    k_slider.first.press("ArrowLeft")
    page.wait_for_function("() => window.location.search.includes('est_k=500')", timeout=60_000)
    wait_for_app(page)
    assert_page_clean(page)
    assert page.get_by_text("degrees of freedom ν").count() == 1  # Student-t came from the URL
    screenshot(page, screenshot_dir, "estimating-2d-latent")


def test_a_bookmark_restores_q_at_the_end_of_its_range(open_app, browser):
    # q's log-scale slider at its minimum (q 1e5 times too narrow): the URL must keep it, and opening that URL in a
    # fresh session must show the same q, not the fitted preset (a bound widget drops a value equal to its default)
    page = _open(open_app)
    scale = page.get_by_role("slider", name=re.compile("scale σ1")).first
    scale.focus()
    scale.press("Home")
    page.wait_for_function("() => window.location.search.includes('est_qlsc_0=-5')", timeout=60_000)
    wait_for_app(page)
    values = page.get_by_role("slider").evaluate_all(SLIDER_VALUES)
    fresh = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    fresh.set_default_timeout(90_000)
    try:
        fresh.goto(page.url)
        wait_for_app(fresh)
        assert_page_clean(fresh)
        restored = fresh.get_by_role("slider").evaluate_all(SLIDER_VALUES)
        assert restored == values and any(v.strip() in ("-5", "-5.00", "−5.00") for v in values), values
    finally:
        fresh.context.close()


def test_a_click_in_the_digits_gallery_changes_x(open_app, screenshot_dir):
    page = _open(open_app, "?est_model=digits&est_k=200&est_R=20")
    assert_page_clean(page)
    metric = page.locator(METRIC).first
    before = metric.inner_text()
    # the gallery is the second chart (after the chosen image): click the last tile of its first row (a 1)
    gallery = page.locator(".stPlotlyChart").nth(1).locator(".nsewdrag").first
    gallery.scroll_into_view_if_needed()
    box = gallery.bounding_box()
    page.mouse.click(box["x"] + 0.96 * box["width"], box["y"] + 0.12 * box["height"])
    page.wait_for_function("() => window.location.search.includes('est_digit=')", timeout=60_000)
    wait_for_app(page)
    assert page.locator(METRIC).first.inner_text() != before
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "estimating-digits")
