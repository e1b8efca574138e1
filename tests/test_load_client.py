"""The load generator's client (benchmarks/load_client.py) against a real server: a widget change it sends must rerun
what a browser's would, and show the same numbers. Without that, the load figures would measure something else."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from benchmarks.load_client import Session
from tests.conftest import plotly_array, run_async, wait_for_app


def latex(run) -> list[str]:
    """the TeX of every st.latex element a run drew"""
    return [el.body.strip().removeprefix("$$").removesuffix("$$").strip()
            for el in run.find("markdown") if el.body.lstrip().startswith("$$")]


def metrics(run) -> dict[str, str]:
    return {el.label: el.body for el in run.find("metric")}


def importance_equation(run) -> str:
    """importance sampling's estimate with trial 1's numbers (it moves with q)"""
    return next(t for t in latex(run) if t.startswith(r"\hat p(x)") and r"\sim q(z)" in t)


async def _estimating_q_moves(url: str) -> tuple:
    session = Session(url)
    opened = await session.open("estimating")
    moved = await session.set_value("est_qloc_0", 1.5)
    fresh = Session(url)
    at_url = await fresh.open("estimating", "est_qloc_0=1.5")
    await session.close()
    await fresh.close()
    return opened, moved, at_url, session


def test_a_slider_in_a_fragment_reruns_that_fragment_with_the_new_value(streamlit_server):
    opened, moved, at_url, session = run_async(_estimating_q_moves(streamlit_server))
    assert opened.status == "full" and not opened.exception
    assert moved.status == "fragment" and not moved.exception
    # the estimator fragment was drawn again (its widgets and charts), the model picker above it was not
    drawn = {el.id.split("-", 2)[-1] for kind, el in moved.elements if getattr(el, "id", "")}
    assert {"est_qloc_0", "est_hist", "est_latent"} <= drawn and "est_model" not in drawn
    # q moved: importance sampling's trial-1 estimate changed, and equals a fresh page opened at that URL
    assert importance_equation(moved) != importance_equation(opened)
    assert importance_equation(moved) == importance_equation(at_url)
    assert session.widgets["est_qloc_0"].state.double_array_value.data[0] == 1.5


async def _mixtures_k(url: str):
    session = Session(url)
    opened = await session.open("mixtures")
    moved = await session.set_value("mx_K", 5)
    await session.close()
    return opened, moved


def test_a_slider_outside_fragments_reruns_the_page_with_the_new_value(streamlit_server):
    opened, moved = run_async(_mixtures_k(streamlit_server))
    assert moved.status == "full" and not moved.exception
    chart = json.loads(next(el.spec for el in moved.find("plotly_chart") if el.id.endswith("mx_chart_0")))
    means = next(t for t in chart["data"] if t.get("name", "").startswith("means"))
    assert len(plotly_array(means["x"])) == 5  # K = 5 components drawn
    assert metrics(moved)["mean log p(x) at the end"] != metrics(opened)["mean log p(x) at the end"]


def _settled(page, read, wanted, seconds: float = 60.0):
    """read(page) once it satisfies wanted, or its last value after `seconds`: on a loaded machine a rerun can end
    after wait_for_app has returned, so the numbers a browser shows are read until they settle"""
    value = read(page)
    for _ in range(int(seconds * 2)):
        if wanted(value):
            break
        page.wait_for_timeout(500)
        value = read(page)
    return value


def _browser_tex(page) -> list[str]:
    return [t.strip() for t in page.locator('annotation[encoding="application/x-tex"]').all_text_contents()]


def _browser_metrics(page) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in zip(page.get_by_test_id("stMetricLabel").all_inner_texts(),
                                                  page.get_by_test_id("stMetricValue").all_inner_texts(), strict=True)}


@pytest.mark.browser
def test_client_and_chromium_show_the_same_numbers_after_the_same_slider_move(open_app, streamlit_server):
    # the browser: two arrow-key steps on q's location, then the K slider of the mixtures page one step up
    page = open_app("estimating")
    page.get_by_role("slider", name="location μ1").press("ArrowRight")
    wait_for_app(page)
    page.get_by_role("slider", name="location μ1").press("ArrowRight")
    wait_for_app(page)
    q_loc = float(parse_qs(urlsplit(page.url).query)["est_qloc_0"][0])

    async def client():
        session = Session(streamlit_server)
        await session.open("estimating")
        estimating = await session.set_value("est_qloc_0", q_loc)
        await session.switch_page("mixtures")
        mixtures = await session.set_value("mx_K", 4)
        await session.close()
        return estimating, mixtures

    estimating, mixtures = run_async(client())
    browser_tex = _settled(page, _browser_tex, lambda tex: set(latex(estimating)) <= set(tex))
    assert importance_equation(estimating) in browser_tex
    assert set(latex(estimating)) <= set(browser_tex)
    page = open_app("mixtures")
    page.get_by_role("slider", name="Components K").press("ArrowRight")
    wait_for_app(page)
    assert _settled(page, _browser_metrics, lambda shown: shown == metrics(mixtures)) == metrics(mixtures)
