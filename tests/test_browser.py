"""A real Chromium visits every registered page: no exception box, charts drawn, a screenshot saved for a human."""

import pytest

from ui.pages import PAGES

pytestmark = pytest.mark.browser

EXCEPTION = '[data-testid="stException"]'
PLOTLY_SVG = ".js-plotly-plot svg.main-svg"


def _screenshot(page, screenshot_dir, name: str) -> None:
    # Streamlit scrolls inside its main container, so grow the viewport to that content's height to see the whole page
    height = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], min(height, 10_000))})
    page.wait_for_timeout(500)  # plotly reflows to the new size
    page.screenshot(path=str(screenshot_dir / f"{name}.png"), full_page=True)
    page.set_viewport_size(viewport)


@pytest.mark.parametrize("entry", PAGES, ids=lambda p: p.url_path or "home")
def test_page_renders_charts_without_exception(open_app, screenshot_dir, entry):
    page = open_app(entry.url_path)
    _screenshot(page, screenshot_dir, entry.url_path or "home")
    assert page.locator(EXCEPTION).count() == 0, page.locator(EXCEPTION).first.inner_text()
    page.wait_for_selector(PLOTLY_SVG)  # at least one plotly chart drew its svg
    assert page.locator(".js-plotly-plot").count() >= 1


def test_infinite_seed_in_url_is_dropped_without_traceback(open_app, screenshot_dir):
    page = open_app("", "?seed=inf")
    _screenshot(page, screenshot_dir, "home-seed-inf")
    assert page.locator(EXCEPTION).count() == 0
    assert "seed=inf" not in page.url
    page.wait_for_selector(PLOTLY_SVG)


def test_resample_moves_the_url_to_the_next_seed(open_app):
    page = open_app("", "?seed=7")
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Resample").click()
    # the new randomness is a new seed, so the bookmarked URL reproduces it
    page.wait_for_function("() => window.location.search.includes('seed=8')")
    assert page.locator(EXCEPTION).count() == 0


def test_presentation_mode_enlarges_text(open_app):
    page = open_app("")
    normal = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    page = open_app("", "?presentation=true")
    large = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert large > normal
