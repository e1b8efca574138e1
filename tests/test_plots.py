"""The shared palette and figure conventions (lvm_core/plots/__init__.py) and the home page's builder."""

import re

import numpy as np
import plotly.graph_objects as go
import pytest

from lvm_core.gmm import sample_mixture_1d
from lvm_core.plots import COMPONENTS, PALETTE, density_colorscale, density_image, points_image, style_figure
from lvm_core.plots.home import mixture_1d_figure

HEX = re.compile(r"^#[0-9A-Fa-f]{6}$")
ROLES = set("data model truth estimate naive importance prior posterior proposal elbo gap kl".split())


def test_palette_has_every_role_with_its_own_hex_colour():
    assert ROLES <= set(PALETTE)
    assert all(HEX.match(c) for c in PALETTE.values())
    assert len({c.upper() for c in PALETTE.values()}) == len(PALETTE)


def _luminance(hex_colour: str) -> float:
    r, g, b = (int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.parametrize("colour", list(PALETTE.values()) + COMPONENTS)
def test_colours_are_mid_tone_so_they_read_on_light_and_dark_backgrounds(colour):
    assert 0.15 < _luminance(colour) < 0.85


def test_ten_distinct_component_colours():
    assert len(COMPONENTS) == 10 and len({c.upper() for c in COMPONENTS}) == 10


def test_density_colorscale_is_a_valid_plotly_scale_with_transparent_floor():
    stops = density_colorscale()
    assert stops[0][0] == 0.0 and stops[-1][0] == 1.0
    assert "rgba" in stops[0][1] and stops[0][1].replace(" ", "").endswith(",0)")
    go.Figure(go.Heatmap(z=[[0, 1], [2, 3]], colorscale=stops))  # plotly validates the stops
    assert "rgba" not in density_colorscale(fade_low=False)[0][1]


def test_density_image_with_nothing_to_show_is_transparent_not_an_error():
    from tests.conftest import png_pixels

    xs, ys = np.linspace(0, 1, 4), np.linspace(0, 2, 3)
    for density, top in ((np.zeros((3, 4)), 0.0), (np.full((3, 4), np.nan), 1.0)):
        pixels = png_pixels(density_image(xs, ys, density, top)["source"])
        assert pixels.shape == (3, 4, 4) and (pixels[..., 3] == 0).all()


def test_points_image_draws_each_point_as_a_disc_of_its_colour_where_it_lies():
    from tests.conftest import png_pixels

    X = np.array([[0.0, 0.0], [1.0, 0.5], [0.05, 0.0], [-1.9, -0.9]])
    rgb = np.array([[230, 20, 20], [20, 20, 230], [20, 200, 20], [200, 200, 20]], dtype=np.uint8)
    image = points_image(X, rgb, (-2.0, 2.0), (-1.0, 1.0), radius=0.01, width=400)
    assert (image["xref"], image["yref"], image["layer"], image["sizing"]) == ("x", "y", "below", "stretch")
    assert (image["x"], image["y"], image["sizex"], image["sizey"]) == (-2.0, 1.0, 4.0, 2.0)  # the top-left corner
    pixels = png_pixels(image["source"])
    assert pixels.shape == (200, 400, 4)  # as tall as the ranges' aspect asks
    # pixel (row, col) of z: col = (x + 2) / 4 * 400, row = (1 - y) / 2 * 200; the disc's radius is 4 pixels
    np.testing.assert_allclose(pixels[50, 300], [20, 20, 230, 255], atol=6)  # (1, 0.5)
    np.testing.assert_allclose(pixels[100, 205], [20, 200, 20, 255], atol=6)  # a later point covers an earlier one
    np.testing.assert_allclose(pixels[100, 197], [230, 20, 20, 255], atol=6)  # (0, 0), beside it
    np.testing.assert_allclose(pixels[190, 10], [200, 200, 20, 255], atol=6)  # (-1.9, -0.9), near the bottom left
    assert pixels[100, 100, 3] == 0 and pixels[0, 0, 3] == 0  # nothing drawn: transparent
    assert (pixels[..., 3] > 0).sum() < 4 * np.pi * 5.0**2  # four discs, nothing else


def test_style_figure_sets_axis_titles_legend_and_height():
    fig = style_figure(go.Figure(go.Scatter(x=[0, 1], y=[0, 1])), x_title="z", y_title="log p (nats)", height=300)
    assert fig.layout.xaxis.title.text == "z" and fig.layout.yaxis.title.text == "log p (nats)"
    assert fig.layout.height == 300 and fig.layout.legend.orientation == "h"
    assert fig.layout.yaxis.scaleanchor is None and not fig.layout.title.text


def test_style_figure_equal_aspect_anchors_y_to_x_and_sets_title():
    fig = style_figure(go.Figure(), x_title="x1", y_title="x2", equal_aspect=True, title="data")
    assert fig.layout.yaxis.scaleanchor == "x" and fig.layout.yaxis.scaleratio == 1
    assert fig.layout.title.text == "data"


# ----------------------------------------------------------------------------------------------------------- home


def test_home_mixture_density_integrates_to_one_and_is_the_sum_of_its_components():
    fig = mixture_1d_figure([0.3, 0.7], [-1.5, 1.5], [0.6, 0.9], x_range=(-10.0, 10.0))
    *components, total = [t for t in fig.data if isinstance(t, go.Scatter)]
    x, density = np.asarray(total.x), np.asarray(total.y)
    assert np.trapezoid(density, x) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(sum(np.asarray(c.y) for c in components), density, rtol=1e-10)


def test_home_samples_are_reproducible_by_seed_and_have_the_mixture_mean():
    weights, means, stds = [0.3, 0.7], [-1.5, 1.5], [0.6, 0.9]
    a, b = (sample_mixture_1d(weights, means, stds, n=20_000, seed=3) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sample_mixture_1d(weights, means, stds, n=20_000, seed=4))
    mean = 0.3 * -1.5 + 0.7 * 1.5
    variance = 0.3 * (0.6**2 + 1.5**2) + 0.7 * (0.9**2 + 1.5**2) - mean**2
    standard_error = np.sqrt(variance / len(a))
    assert abs(a.mean() - mean) < 4 * standard_error


def test_numbers_are_written_as_powers_of_ten_never_in_e_notation():
    from lvm_core.plots import latex_int, latex_number, text_number

    assert latex_number(2.0231e-6) == r"2.02 \times 10^{-6}" and latex_number(0.25) == "0.25"
    assert latex_number(-8.869e5, 4) == r"-8.869 \times 10^{5}" and latex_number(float("-inf")) == r"-\infty"
    assert text_number(2.0231e-6) == "2.02 × 10⁻⁶" and text_number(-8.869e5, 4) == "-8.869 × 10⁵"
    assert text_number(123.4, 4) == "123.4" and text_number(float("inf")) == "∞"
    assert latex_int(100000) == "100{,}000" and latex_int(7) == "7"
