"""Bad input on every page: hostile query strings on every URL-bound widget, random extra keys, a key given twice,
every slider at both ends (alone and all together), and model files that are not models. Every case must end in a
clear message or a sane default: the checked AppTest fails a run on any exception, st.error or failed section, and
nothing the user typed may come back as HTML.

The widgets are discovered from each page's default run, so a control added to a page is fuzzed without editing
this file. Upload fuzz of CSV data lives with the mixtures page's tests (tests/test_pages_mixtures.py).
"""

import io
import json
import pickle
import random
import zipfile

import pytest
import torch

from lvm_core.models import MLPLVM
from lvm_core.training import load_lvm, save_lvm
from ui.pages import PAGES

WIDGET_TYPES = ("slider", "select_slider", "number_input", "selectbox", "text_input", "checkbox", "toggle", "radio",
                "multiselect", "segmented_control", "button_group", "pills", "color_picker", "date_input")

BAD_VALUES = {
    "inf": "inf",
    "1e400": "1e400",
    "nan": "nan",
    "minus zero": "-0",
    "thirty nines": "9" * 30,
    "script tag": "<script>alert(1)</script>",
    "NUL": "a\x00b",
    "invalid UTF-8": "%ff%fe\ufffd",  # what a server makes of bytes that are not UTF-8
    "10,000 characters": "x" * 10_000,
    "markdown link": "[click](javascript:alert(1))",
}
SCRIPT = "<script"


def widget_keys(at) -> list[str]:
    """the user keys of the page's widgets (the URL-bound ones among them name the query parameters)"""
    keys = []
    for kind in WIDGET_TYPES:
        for widget in at.get(kind):
            key = getattr(widget, "key", None)
            if key and not key.startswith("$$"):
                keys.append(key)
    return sorted(set(keys))


def shows_no_html_from_the_url(at) -> None:
    """nothing typed into the URL comes back as markup: no markdown, caption or text element holds a script tag"""
    for kind in ("markdown", "caption", "text", "latex", "info", "warning", "success", "error", "code"):
        for element in at.get(kind):
            assert SCRIPT not in str(getattr(element, "value", "")), f"{kind} shows a script tag from the URL"


@pytest.fixture(scope="module")
def page_keys():
    """{page path: its widget keys on the default view}, one default run per page"""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import APPTEST_TIMEOUT, ROOT, checked

    found = {}
    for page in PAGES:
        at = checked(AppTest.from_file(str(ROOT / "app.py"), default_timeout=APPTEST_TIMEOUT))
        at.run()
        if page.path != "views/home.py":
            at.switch_page(page.path).run()
        found[page.path] = widget_keys(at)
    return found


@pytest.mark.parametrize("page", [p.path for p in PAGES])
@pytest.mark.parametrize("label", list(BAD_VALUES))
def test_a_hostile_value_in_every_url_parameter_gives_a_clean_page(app_test, page_keys, page, label):
    keys = page_keys[page]
    assert keys, f"{page} shows no widget to fuzz"
    at = app_test(page, query_params={key: BAD_VALUES[label] for key in keys})
    shows_no_html_from_the_url(at)
    assert widget_keys(at), "the page still shows its controls"


@pytest.mark.parametrize("page", [p.path for p in PAGES])
def test_two_hundred_random_keys_and_a_key_given_twice_are_ignored(app_test, page_keys, page):
    rng = random.Random(0)
    params = {"".join(rng.choices("abcdefghijklmnopqrstuvwxyz_", k=rng.randint(1, 12))): str(rng.random())
              for _ in range(200)}
    keys = page_keys[page]
    params[keys[0]] = ["1", "2"]  # a key given twice
    at = app_test(page, query_params=params)
    shows_no_html_from_the_url(at)


# ------------------------------------------------------------------------------------------- sliders at both ends
RANGED = ("slider", "select_slider", "number_input")


def _ends(widget) -> tuple:
    """(lowest, highest) value of a slider, select slider or bounded number input; None where it has no bound"""
    if widget.type == "select_slider":  # AppTest lists the formatted labels ("1,000"); the widget takes values
        return _value(widget.options[0]), _value(widget.options[-1])
    low, high = getattr(widget, "min", None), getattr(widget, "max", None)
    return (low, high) if low is not None and high is not None else None


def _value(label: str):
    """a select slider's option from its label: a number where the label is one (thousands separators allowed)"""
    text = label.replace(",", "")
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return label


def _ranged(at) -> dict:
    """{key: (lowest, highest)} for the page's ranged widgets with a user key"""
    out = {}
    for kind in RANGED:
        for widget in at.get(kind):
            key, ends = getattr(widget, "key", None), _ends(widget)
            if key and not key.startswith("$$") and ends is not None:
                out[key] = (widget, ends)
    return out


def _set(at, key: str, value) -> None:
    widgets = _ranged(at)
    if key in widgets:  # a control may leave the page when another one moves (e.g. Student-t's degrees of freedom)
        widget, _ = widgets[key]
        if widget.type == "select_slider":
            widget.set_value(value)
        else:
            widget.set_value(type(widget.value)(value) if widget.value is not None else value)


@pytest.mark.parametrize("page", [p.path for p in PAGES])
def test_every_slider_at_both_ends_alone_and_all_together(app_test, page):
    at = app_test(page)
    ranged = {key: ends for key, (_, ends) in _ranged(at).items()}
    assert ranged or page == "views/home.py", f"{page} shows no slider"
    tried = 0
    for key, (low, high) in ranged.items():
        default = _ranged(at)[key][0].value if key in _ranged(at) else None
        for value in (low, high):
            _set(at, key, value)
            at.run()  # the checked AppTest fails here on any exception, st.error or failed section
            tried += 1
        if default is not None:
            _set(at, key, default)
            at.run()
    for end in (0, 1):  # every control at its lowest, then every control at its highest, at once
        for key, ends in ranged.items():
            _set(at, key, ends[end])
        at.run()
        tried += 1
    assert tried == 2 * len(ranged) + 2


# --------------------------------------------------------------------------------------------- model files
def _saved_model() -> bytes:
    return save_lvm(MLPLVM(latent_dim=2, data_dim=2, hidden=8, depth=1, seed=0), None, {"seed": 0})


def _nan_weights() -> bytes:
    model = MLPLVM(latent_dim=2, data_dim=2, hidden=8, depth=1, seed=0)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return save_lvm(model, None, {"seed": 0})


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model.txt", "not a model")
    return buffer.getvalue()


def _wrong_payload(**changes) -> bytes:
    payload = torch.load(io.BytesIO(_saved_model()), weights_only=True)
    payload.update(changes)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


BAD_MODEL_FILES = {
    "empty": lambda: b"",
    "random bytes": lambda: random.Random(1).randbytes(4096),
    "a zip renamed .pt": _zip,
    "a pickle renamed .pt": lambda: pickle.dumps({"format": "lvm-lab", "model": object.__name__}),
    "a pickle that would run code": lambda: b"cos\nsystem\n(S'echo pwned'\ntR.",
    "truncated": lambda: _saved_model()[:300],
    "weights holding NaN": _nan_weights,
    "a CSV renamed .pt": lambda: b"x1,x2\n0,1\n",
    "JSON": lambda: json.dumps({"format": "x"}).encode(),
    "wrong architecture": lambda: _wrong_payload(model_config={"kind": "MLPLVM", "latent_dim": -3}),
    "missing weights": lambda: _wrong_payload(model_state={}),
}


@pytest.mark.parametrize("label", list(BAD_MODEL_FILES))
def test_a_file_that_is_not_a_model_is_refused_with_a_message(label):
    with pytest.raises(ValueError, match=r"\w+.*(Upload|model)") as info:
        load_lvm(BAD_MODEL_FILES[label]())
    assert "Traceback" not in str(info.value)


def test_a_saved_model_still_loads():
    model, encoder, config = load_lvm(_saved_model())
    assert isinstance(model, MLPLVM) and encoder is None and config == {"seed": 0}
