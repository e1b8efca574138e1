"""A real Chromium visits every registered page: no exception box, charts drawn, a screenshot saved for a human."""

import pytest

from tests.conftest import assert_page_clean, screenshot, serve_app, wait_for_app
from ui.pages import PAGES

pytestmark = pytest.mark.browser

PLOTLY_SVG = ".js-plotly-plot svg.main-svg"


@pytest.mark.parametrize("entry", PAGES, ids=lambda p: p.url_path or "home")
def test_page_renders_charts_without_exception(open_app, screenshot_dir, entry):
    page = open_app(entry.url_path)
    screenshot(page, screenshot_dir, entry.url_path or "home")
    assert_page_clean(page)
    page.wait_for_selector(PLOTLY_SVG)  # at least one plotly chart drew its svg
    assert page.locator(".js-plotly-plot").count() >= 1


def test_infinite_seed_in_url_is_dropped_without_traceback(open_app, screenshot_dir):
    page = open_app("", "?seed=inf")
    screenshot(page, screenshot_dir, "home-seed-inf")
    assert_page_clean(page)
    assert "seed=inf" not in page.url
    page.wait_for_selector(PLOTLY_SVG)


def test_resample_moves_the_url_to_the_next_seed(open_app):
    page = open_app("", "?seed=7")
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Resample").click()
    # the new randomness is a new seed, so the bookmarked URL reproduces it
    page.wait_for_function("() => window.location.search.includes('seed=8')")
    assert_page_clean(page)


def test_presentation_mode_enlarges_text(open_app):
    page = open_app("")
    normal = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    page = open_app("", "?presentation=true")
    large = page.evaluate("() => parseFloat(getComputedStyle(document.documentElement).fontSize)")
    assert large > normal


def test_a_bookmarked_deep_link_on_a_fresh_server_runs_the_whole_app(browser_page, tmp_path):
    # the first request a fresh server sees is a deep link: the app shell (sidebar seed, URL cleaning) must run, not
    # the page script alone (what Streamlit does when it finds a pages/ folder; ours is views/ for that reason)
    with serve_app(tmp_path) as url:
        browser_page.goto(f"{url}/mixtures?seed=inf")
        wait_for_app(browser_page)
        assert_page_clean(browser_page)
        sidebar = browser_page.locator('[data-testid="stSidebar"]')
        assert sidebar.get_by_text("Seed").count() >= 1
        assert sidebar.get_by_text("Estimating p(x)").count() == 1  # st.navigation's registry, not auto-discovery
        assert "seed=inf" not in browser_page.url
