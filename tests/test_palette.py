"""The palette stays readable for viewers with the common colour-vision deficiencies, on light and dark themes.

Colours are compared in CAM02-UCS (colorspacious), a perceptually uniform space: a distance of 1 is about a
just-noticeable difference between large patches side by side. Marks on a chart are small (6-pixel points, 2-pixel
lines), and the difference needed to tell small marks apart at a glance grows to roughly 10 units or more (Szafir,
"Modelling colour difference for visualization design", IEEE TVCG 2018, finds 5-6x the large-patch threshold for
thin marks). We require MIN_DISTANCE = 12 for every pair of roles, in normal vision and after simulating full
deuteranopia and protanopia (Machado et al. 2009, severity 100).
"""

import itertools

import numpy as np
import pytest

colorspacious = pytest.importorskip("colorspacious")

from lvm_core.plots import COMPONENTS, PALETTE  # noqa: E402

ROLES = ("data", "model", "truth", "estimate", "naive", "importance")  # drawn together on the pages' charts
MIN_DISTANCE = 12.0
VISION = (None, "deuteranomaly", "protanomaly")  # colorspacious' names; severity 100 is full -opia
MIN_CONTRAST = 2.5  # against white (light theme) and Streamlit's dark background
DARK_BACKGROUND = "#0E1117"


def _rgb(hex_color: str) -> np.ndarray:
    h = hex_color.lstrip("#")
    return np.array([int(h[i : i + 2], 16) for i in (0, 2, 4)]) / 255


def _ucs(hex_color: str, vision: str | None) -> np.ndarray:
    rgb = _rgb(hex_color)
    if vision is not None:
        cvd = {"name": "sRGB1+CVD", "cvd_type": vision, "severity": 100}
        rgb = np.clip(colorspacious.cspace_convert(rgb, cvd, "sRGB1"), 0, 1)
    return colorspacious.cspace_convert(rgb, "sRGB1", "CAM02-UCS")


def _luminance(hex_color: str) -> float:
    c = _rgb(hex_color)
    c = np.where(c <= 0.03928, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return float(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2])


def _contrast(a: str, b: str) -> float:
    hi, lo = sorted([_luminance(a), _luminance(b)], reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@pytest.mark.parametrize("vision", VISION, ids=["normal", "deuteranopia", "protanopia"])
def test_data_model_truth_and_estimator_colours_stay_distinct(vision):
    too_close = [(a, b, round(float(np.linalg.norm(_ucs(PALETTE[a], vision) - _ucs(PALETTE[b], vision))), 1))
                 for a, b in itertools.combinations(ROLES, 2)]
    too_close = [pair for pair in too_close if pair[2] < MIN_DISTANCE]
    assert not too_close, f"{vision or 'normal'} vision: {too_close} below {MIN_DISTANCE} CAM02-UCS units"


def test_simulation_is_not_the_identity():
    # the check above would pass vacuously if the simulation did nothing: red and green collapse for deuteranopes
    red, green = "#D62728", "#2CA02C"
    normal = np.linalg.norm(_ucs(red, None) - _ucs(green, None))
    assert np.linalg.norm(_ucs(red, "deuteranomaly") - _ucs(green, "deuteranomaly")) < normal / 2


@pytest.mark.parametrize("role", ROLES)
def test_role_colours_read_on_light_and_dark_themes(role):
    assert _contrast(PALETTE[role], "#FFFFFF") >= MIN_CONTRAST
    assert _contrast(PALETTE[role], DARK_BACKGROUND) >= MIN_CONTRAST


def test_component_colours_are_distinct_in_normal_vision():
    # mixture components are told apart by position as well as colour; in normal vision they must differ clearly
    distances = [np.linalg.norm(_ucs(a, None) - _ucs(b, None)) for a, b in itertools.combinations(COMPONENTS, 2)]
    assert min(distances) >= MIN_DISTANCE
