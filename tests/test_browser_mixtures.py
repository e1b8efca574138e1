"""Real-browser checks of the shallow-mixtures and home pages: the EM animation plays in the browser with the server
idle, clicks add and delete points, a 30-digit x is refused without a traceback, the URL round trip, presentation
mode at 1280x720, the slides and embed flags, sliders by keyboard."""

import re

import pytest

from tests.conftest import APP_RUN_TIMEOUT_MS, assert_page_clean, screenshot, wait_for_app

pytestmark = pytest.mark.browser

EM_CHART = '[class*="st-key-mx_chart_"]'
METRICS = "els => els.map(e => e.innerText)"


def _n_points(page) -> int:
    text = page.get_by_text(re.compile(r"Current data:")).first.inner_text()
    return int(re.search(r"([\d,]+) points", text).group(1).replace(",", ""))


def _numbers(page) -> dict:
    """what a view shows: metric values, the rendered equations' text, slider values"""
    return {"metrics": page.locator('[data-testid="stMetricValue"]').evaluate_all(METRICS),
            "latex": page.locator(".katex-html").evaluate_all(METRICS),
            "sliders": page.get_by_role("slider").evaluate_all("els => els.map(e => e.getAttribute('aria-valuetext'))")}


def _settled_numbers(page, before: dict) -> dict:
    """the view's numbers once a change has been drawn: different from `before`, then unchanged for a second"""
    deadline = 120
    last = None
    for _ in range(deadline * 2):
        page.wait_for_timeout(500)
        wait_for_app(page)
        now = _numbers(page)
        if now != before and now == last:
            return now
        last = now
    raise AssertionError("the view did not settle after the change")


def _fresh(browser, url: str, viewport=None):
    page = browser.new_context(viewport=viewport or {"width": 1400, "height": 900}).new_page()
    page.set_default_timeout(APP_RUN_TIMEOUT_MS)
    page.goto(url)
    wait_for_app(page)
    return page


def test_em_animation_plays_in_the_browser_with_the_server_idle(browser_page, open_app, screenshot_dir):
    sent = []  # what the browser sends to the server: a rerun needs a message
    browser_page.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    page = open_app("mixtures", "?mx_preset=Overlapping+blobs&mx_speed=30")
    screenshot(page, screenshot_dir, "mixtures")
    chart = page.locator(EM_CHART).first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    sent_before = len(sent)
    frames = chart.evaluate("""el => {
        const gd = el.querySelector('.js-plotly-plot');
        window.__shown = [];
        gd.on('plotly_animatingframe', e => window.__shown.push(e.name));
        return gd._transitionData._frames.length;
    }""")
    assert frames > 5
    assert "EM iteration 0:" in chart.inner_text()
    chart.get_by_text("▶ Play").click()
    page.wait_for_function(f"() => window.__shown.length >= {frames - 1}", timeout=60_000)
    page.wait_for_timeout(500)
    assert re.search(r"EM iteration \d+: mean log p\(x\) = .* \(converged\)", chart.inner_text())
    assert page.locator('[data-testid="stApp"]').get_attribute("data-test-script-state") == "notRunning"
    assert len(sent) == sent_before  # no rerun: the browser played every frame on its own
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "mixtures-em-played")


def test_em_animation_of_2000_points_swaps_their_image_and_keeps_them_out_of_the_page(open_app, screenshot_dir):
    page = open_app("mixtures", "?mx_preset=Overlapping+blobs&mx_n=2000&mx_K=10&mx_init=random+data+points&mx_speed=30")
    chart = page.locator(EM_CHART).first
    chart.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    probe = """el => {
        const gd = el.querySelector('.js-plotly-plot');
        window.__shown = window.__shown || [];
        gd.on('plotly_animatingframe', e => window.__shown.push(e.name));
        return {frames: gd._transitionData._frames.length,
                image: el.querySelector('g.imagelayer image').getAttribute('href'),
                markers: el.querySelectorAll('path.point').length};
    }"""
    first = chart.evaluate(probe)
    assert first["frames"] > 5 and first["image"].startswith("data:image/png")
    assert first["markers"] < 100  # the 2,000 points and the 900 click targets are not elements of the page
    chart.get_by_text("▶ Play").click()
    page.wait_for_function(f"() => window.__shown.length >= {first['frames'] - 1}", timeout=60_000)
    page.wait_for_timeout(500)
    assert re.search(r"EM iteration \d+: .* \(converged\)", chart.inner_text())
    last = chart.evaluate("el => el.querySelector('g.imagelayer image').getAttribute('href')")
    assert last.startswith("data:image/png") and last != first["image"]  # the points' colours followed the frames
    assert_page_clean(page)
    screenshot(page, screenshot_dir, "mixtures-em-2000-played")


def test_a_click_on_empty_space_adds_a_point(open_app, screenshot_dir):
    page = open_app("mixtures", "?mx_click=add+points")  # select boxes and segmented controls bind their labels
    before = _n_points(page)
    chart = page.locator(EM_CHART).first
    chart.scroll_into_view_if_needed()
    plot_area = chart.locator(".nsewdrag").first.bounding_box()  # the mixture panel, without axes and legend
    # the well-separated preset leaves the centre-top of the plot empty: the invisible click grid catches the click
    page.mouse.click(plot_area["x"] + plot_area["width"] * 0.5, plot_area["y"] + plot_area["height"] * 0.55)
    page.wait_for_function(f"() => /Current data: .* {before + 1} points/.test(document.body.innerText)",
                           timeout=60_000)
    wait_for_app(page)
    assert _n_points(page) == before + 1
    assert_page_clean(page)


@pytest.mark.parametrize("points", ["", "&mx_n=2000"])  # 2,000: the points drawn in an image, their trace invisible
def test_a_box_drag_in_delete_mode_deletes_the_points_inside(open_app, points):
    page = open_app("mixtures", "?mx_click=delete+points" + points)
    before = _n_points(page)
    chart = page.locator(EM_CHART).first
    chart.scroll_into_view_if_needed()
    area = chart.locator(".nsewdrag").first.bounding_box()
    # a box over the upper middle of the plot, where the top blob of the well-separated preset lies
    x0, y0 = area["x"] + area["width"] * 0.3, area["y"] + area["height"] * 0.05
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + area["width"] * 0.2, y0 + area["height"] * 0.2, steps=5)
    page.mouse.move(x0 + area["width"] * 0.4, y0 + area["height"] * 0.35, steps=5)
    page.mouse.up()
    page.wait_for_function("() => /Current data: .* \\(edited\\), [\\d,]+ points/.test(document.body.innerText)",
                           timeout=60_000)
    wait_for_app(page)
    assert _n_points(page) < before
    assert_page_clean(page)


def test_thirty_nines_typed_into_x1_are_refused_without_a_traceback(open_app, screenshot_dir):
    page = open_app("mixtures")
    x1 = page.get_by_label("x₁")
    x1.scroll_into_view_if_needed()
    x1.fill("9" * 30)
    x1.press("Enter")
    page.wait_for_timeout(1500)
    wait_for_app(page)
    page.reload()  # the next full run cleans whatever reached the URL
    wait_for_app(page)
    assert_page_clean(page)
    value = float(page.get_by_label("x₁").input_value())
    assert abs(value) <= 1e6
    screenshot(page, screenshot_dir, "mixtures-thirty-nines")


@pytest.mark.parametrize("url_path, query", [
    ("mixtures", "?mx_preset=Two+moons&mx_K=5&mx_cov=spherical+%28circles%29&mx_px=0.5"),
    ("", "?home_pi=0.7&home_n=200&seed=4"),
    ("estimating", "?est_model=banana&est_k=500&est_R=40&seed=2"),
    ("elbo", "?elbo_model=linear&elbo_k=4&seed=3"),
    ("deep-lvm", "?dl_source=Random+MLP+decoder&dl_latent_dim=2&seed=5"),
], ids=["mixtures", "home", "estimating", "elbo", "deep-lvm"])
def test_url_round_trip_gives_the_same_numbers(open_app, browser, url_path, query):
    page = open_app(url_path, query)
    # change one more control by keyboard, as a user would, so the URL is written by the page itself
    slider = page.locator('[data-testid="stMain"]').get_by_role("slider").first
    before = _numbers(page)
    slider.focus()
    slider.press("ArrowRight")
    shown = _settled_numbers(page, before)
    fresh = _fresh(browser, page.url)
    try:
        assert_page_clean(fresh)
        assert _numbers(fresh) == shown
    finally:
        fresh.context.close()


def test_a_slider_moves_by_keyboard(open_app):
    page = open_app("mixtures")
    k = page.locator('[data-testid="stMain"]').get_by_role("slider", name=re.compile("Components K"))
    k.focus()
    k.press("ArrowRight")
    page.wait_for_function("() => window.location.search.includes('mx_K=4')", timeout=60_000)
    wait_for_app(page)
    assert k.get_attribute("aria-valuetext") == "4"
    assert_page_clean(page)


def _overlaps(page) -> list:
    """pairs of the main column's blocks whose boxes overlap, and blocks cut at the right edge of the viewport"""
    return page.evaluate("""() => {
        const main = document.querySelector('[data-testid="stMainBlockContainer"]');
        const boxes = [...main.querySelectorAll(':scope > div > [data-testid="stElementContainer"], '
                       + ':scope > div > [data-testid="stLayoutWrapper"]')]
            .map(e => [e, e.getBoundingClientRect()]).filter(([e, r]) => r.width > 0 && r.height > 0);
        const out = [];
        for (let i = 0; i < boxes.length; i++) {
            const [a, ra] = boxes[i];
            if (ra.right > window.innerWidth + 1) out.push(['cut', a.innerText.slice(0, 40)]);
            for (let j = i + 1; j < boxes.length; j++) {
                const rb = boxes[j][1];
                const dx = Math.min(ra.right, rb.right) - Math.max(ra.left, rb.left);
                const dy = Math.min(ra.bottom, rb.bottom) - Math.max(ra.top, rb.top);
                const b = boxes[j][0];
                if (dx > 1 && dy > 1) out.push(['overlap', a.innerText.slice(0, 40), b.innerText.slice(0, 40)]);
            }
        }
        return out;
    }""")


@pytest.mark.parametrize("url_path", ["mixtures", ""], ids=["mixtures", "home"])
def test_presentation_mode_at_1280x720_has_nothing_overlapping_or_cut(browser, streamlit_server, screenshot_dir,
                                                                      url_path):
    page = _fresh(browser, f"{streamlit_server}/{url_path}?presentation=true", {"width": 1280, "height": 720})
    try:
        assert_page_clean(page)
        screenshot(page, screenshot_dir, f"{url_path or 'home'}-presentation-1280x720", full_page=False)
        screenshot(page, screenshot_dir, f"{url_path or 'home'}-presentation-1280x720-full")
        assert _overlaps(page) == []
        # every chart fits the main column
        width = page.locator('[data-testid="stMainBlockContainer"]').bounding_box()["width"]
        for box in page.locator(".js-plotly-plot").evaluate_all("els => els.map(e => e.getBoundingClientRect().width)"):
            assert box <= width + 1
    finally:
        page.context.close()


@pytest.mark.parametrize("url_path", ["mixtures", ""], ids=["mixtures", "home"])
def test_slides_flag_hides_the_explanations_and_keeps_charts_and_controls(open_app, screenshot_dir, url_path):
    page = open_app(url_path)
    words = len(page.locator('[data-testid="stMain"]').inner_text().split())
    charts, sliders = page.locator(".js-plotly-plot").count(), page.get_by_role("slider").count()
    page = open_app(url_path, "?slides=true")
    screenshot(page, screenshot_dir, f"{url_path or 'home'}-slides")
    assert len(page.locator('[data-testid="stMain"]').inner_text().split()) < 0.8 * words
    assert page.locator(".js-plotly-plot").count() == charts and page.get_by_role("slider").count() == sliders
    page = open_app(url_path, "?embed=true")
    assert page.locator('[data-testid="stToolbar"]').count() == 0  # Streamlit's embed mode: no toolbar, no menu
    assert page.locator(".js-plotly-plot").count() == charts
    screenshot(page, screenshot_dir, f"{url_path or 'home'}-embed")
