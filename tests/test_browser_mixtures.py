"""Real-browser checks of the shallow-mixtures page: charts draw, Step advances EM, a click adds a point."""

import re

import pytest

from tests.conftest import assert_page_clean, screenshot, wait_for_app

pytestmark = pytest.mark.browser

PLOTLY_SVG = ".js-plotly-plot svg.main-svg"


def _iteration(page) -> int:
    return int(page.locator('[data-testid="stMetricValue"]').first.inner_text())


def _n_points(page) -> int:
    text = page.get_by_text(re.compile(r"Current data:")).first.inner_text()
    return int(re.search(r"([\d,]+) points", text).group(1).replace(",", ""))


def test_mixtures_page_draws_its_charts_and_step_advances_em(open_app, screenshot_dir):
    page = open_app("mixtures", "?mx_preset=Overlapping+blobs&mx_K=4&mx_init=random+data+points")
    assert_page_clean(page)
    page.wait_for_selector(PLOTLY_SVG)
    assert page.locator(".js-plotly-plot").count() >= 4  # mixture, log-likelihood, decomposition, samples
    assert page.locator(".katex").count() >= 3  # the model, the live mixture and the decomposition equations
    screenshot(page, screenshot_dir, "mixtures-iteration-0")
    assert _iteration(page) == 0 and "Overlapping blobs" in page.get_by_text(re.compile("Current data:")).inner_text()
    page.get_by_role("button", name="Step").click()
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"stMetricValue\"]').innerText.trim() === '1'", timeout=30_000
    )
    wait_for_app(page)
    assert _iteration(page) == 1 and "mx_iter=1" in page.url
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "mixtures-iteration-1")


def test_a_click_on_empty_space_adds_a_point(open_app, screenshot_dir):
    page = open_app("mixtures", "?mx_click=add+points")  # select boxes and segmented controls bind their labels
    before = _n_points(page)
    chart = page.locator(".js-plotly-plot").first
    chart.scroll_into_view_if_needed()
    plot_area = chart.locator(".nsewdrag").first.bounding_box()  # the plotting area, without axes and legend
    # the well-separated preset leaves the centre-top of the plot empty: the invisible click grid catches the click
    page.mouse.click(plot_area["x"] + plot_area["width"] * 0.5, plot_area["y"] + plot_area["height"] * 0.55)
    page.wait_for_function(
        f"() => /Current data: .* {before + 1} points/.test(document.body.innerText)", timeout=30_000
    )
    wait_for_app(page)
    assert _n_points(page) == before + 1
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "mixtures-added-point")


def test_a_box_drag_in_delete_mode_deletes_the_points_inside(open_app, screenshot_dir):
    page = open_app("mixtures", "?mx_click=delete+points")
    before = _n_points(page)
    chart = page.locator(".js-plotly-plot").first
    chart.scroll_into_view_if_needed()
    area = chart.locator(".nsewdrag").first.bounding_box()
    # a box over the upper middle of the plot, where the top blob of the well-separated preset lies
    x0, y0 = area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.05
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + area["width"] * 0.2, y0 + area["height"] * 0.2, steps=5)
    page.mouse.move(x0 + area["width"] * 0.4, y0 + area["height"] * 0.35, steps=5)
    page.mouse.up()
    page.wait_for_function(
        "() => /Current data: .* \\(edited\\), [\\d,]+ points/.test(document.body.innerText)", timeout=30_000
    )
    wait_for_app(page)
    assert _n_points(page) < before
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "mixtures-deleted-box")
