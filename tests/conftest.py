"""Shared fixtures: AppTest for pages, a live Streamlit server, a Chromium page, and the screenshot folder."""

import asyncio
import base64
import concurrent.futures
import contextlib
import functools
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import sklearn.mixture  # noqa: F401  (loads scipy's BLAS, so the limit below reaches it)
import torch
from threadpoolctl import threadpool_limits

# the process's thread settings, made once as app.py makes them at start-up (lvm_core never changes them)
torch.set_num_threads(1)
threadpool_limits(1, user_api="blas")

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOT_DIR = ROOT / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
APPTEST_TIMEOUT = 60  # seconds per AppTest run; the first import of torch and plotly takes seconds on contended cores
SERVER_START_TIMEOUT = 90  # seconds for `streamlit run` to answer /_stcore/health
APP_RUN_TIMEOUT_MS = 90_000  # a page's first run in the browser (cold caches, model fits)


# ---------------------------------------------------------------------------------------------------------- AppTest


def page_failures(at) -> list[str]:
    """what went wrong in the AppTest's last run: exceptions, st.error messages, sections recorded as failed"""
    from ui import state

    failures = [f"exception: {e.message}" for e in at.exception]
    failures += [f"st.error: {e.value}" for e in at.error]
    if state.SECTION_ERRORS in at.session_state:
        failures += [f"failed section: {s}" for s in at.session_state[state.SECTION_ERRORS] or []]
    return failures


def assert_clean(at) -> None:
    """the last run showed no exception, no st.error and recorded no failed section"""
    failures = page_failures(at)
    assert not failures, "the page failed:\n" + "\n".join(failures)


@functools.cache
def _checked_app_test_class():
    from streamlit.testing.v1 import AppTest

    class CheckedAppTest(AppTest):
        """An AppTest that checks every run (``at.run()``, ``at.button(...).click().run()``, ...) with assert_clean.

        A test that provokes a failure on purpose says so: ``with at.expecting_errors(): ...`` for the runs inside
        the block (which must then show at least one failure), or ``expect_errors=True`` for every run."""

        expect_errors = False
        _expecting = 0
        _failed_while_expecting = False

        def _run(self, widget_state=None, timeout=None):
            super()._run(widget_state, timeout)
            if self.expect_errors:
                return self
            if self._expecting:
                self._failed_while_expecting |= bool(page_failures(self))
            else:
                assert_clean(self)
            return self

        @contextlib.contextmanager
        def expecting_errors(self):
            """runs inside the block may fail (an error message is the expected answer); one of them must"""
            outer = self._failed_while_expecting
            self._expecting += 1
            self._failed_while_expecting = False
            try:
                yield self
            finally:
                self._expecting -= 1
            failed, self._failed_while_expecting = self._failed_while_expecting, outer
            assert failed, "expecting_errors(): no run inside the block showed an error"

    return CheckedAppTest


def checked(at):
    """make any AppTest (from_file, from_string, from_function) check every run with assert_clean"""
    at.__class__ = _checked_app_test_class()
    return at


@pytest.fixture
def app_test():
    """factory: app_test("views/x.py", query_params={"seed": "3"}) -> an AppTest of app.py on that page, already run.

    Every run of the returned AppTest is checked with assert_clean (no exception, no st.error, no failed section);
    pass expect_errors=True, or wrap runs in ``with at.expecting_errors():``, where a failure is provoked on purpose."""

    def make(page_path: str, query_params: dict[str, str] | None = None, expect_errors: bool = False):
        from streamlit.testing.v1 import AppTest

        at = checked(AppTest.from_file(str(ROOT / "app.py"), default_timeout=APPTEST_TIMEOUT))
        at.expect_errors = expect_errors
        at.query_params.update(query_params or {})
        at.run()  # the default page (home); AppTest resolves st.navigation's pages only after a first run
        if page_path != "views/home.py":
            # note: after switch_page, AppTest 1.67 leaves app.py's sidebar widgets out of its element tree
            at.switch_page(page_path).run()
        return at

    return make


def chart(at, key: str) -> dict:
    """the plotly figure (as JSON) of the AppTest chart whose element id contains `key`"""
    return json.loads(next(c.proto.spec for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id))


def plotly_array(value) -> np.ndarray:
    """a plotly array from a chart's JSON: a list, or plotly's typed-array encoding {"bdata", "dtype"}"""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return np.asarray(value, dtype=float)


def png_pixels(source: str) -> np.ndarray:
    """a data-URI PNG (a plotly layout image's source) as (rows, cols, 4) uint8, its first row the image's top"""
    from PIL import Image

    head = "data:image/png;base64,"
    assert source.startswith(head)
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source[len(head):]))).convert("RGBA"))


@pytest.fixture
def downloads(monkeypatch):
    """downloads(button) -> the bytes an AppTest download button serves (captured as Streamlit stores them)"""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    saved = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        file_id = original(self, path_or_data, mimetype, kind, filename)
        saved[file_id] = path_or_data
        return file_id

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return lambda button: next(data for file_id, data in saved.items() if file_id in button.proto.url)


# ----------------------------------------------------------------------------------------------- live server, browser


def run_async(coroutine):
    """run a coroutine to completion in a thread of its own: Playwright's sync API (the session's browser) keeps an
    event loop running in the main thread, where asyncio.run would refuse to start"""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()



def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def serve_app(log_dir: Path):
    """run `streamlit run app.py` on a free port until the block ends; yields the base URL"""
    port = _free_port()
    log_path = log_dir / f"server-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port)]
    # no file watcher: other engineers edit files while tests run, and a reload mid-test would flake
    command += ["--server.headless", "true", "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"streamlit did not start on {url}; log:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def streamlit_server(tmp_path_factory):
    """one app server for the whole session; yields the base URL"""
    with serve_app(tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """a headless Chromium for the session; skipped without Chromium, except in CI (CI=true), where that fails"""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but Chromium is missing at {CHROMIUM}: install it (apt-get install -y chromium)")
        pytest.skip(f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def browser_page(browser):
    """a fresh browser tab (own context, 1400x900 viewport), closed after the test"""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(APP_RUN_TIMEOUT_MS)
    yield page
    context.close()


CHARTS_DRAWN = """() => {
    const main = document.querySelector('[data-testid="stMain"]');
    if (!main || main.querySelector('[data-testid="stSkeleton"]')) return false;
    return [...main.querySelectorAll('.stPlotlyChart')].every(c => c.querySelector('.js-plotly-plot svg.main-svg'));
}"""


def wait_for_app(page) -> None:
    """wait until the script has finished running (Streamlit marks the app root) and the page has settled"""
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=APP_RUN_TIMEOUT_MS)
    page.wait_for_load_state("networkidle")
    # Lazily loaded elements (plotly's bundle) show a skeleton until their code has arrived, and plotly draws after
    # the run ends: wait until no skeleton is left and every chart has drawn its SVG, not for a fixed time.
    page.wait_for_function(CHARTS_DRAWN, timeout=APP_RUN_TIMEOUT_MS)
    page.wait_for_timeout(300)  # the last relayout


EXCEPTION = '[data-testid="stException"]'  # Streamlit's exception box
ERROR_ALERT = '[data-testid="stAlertContentError"]'  # st.error
NOT_DRAWN = "could not be drawn"  # kit.guarded's message for a failed section


def page_errors(page) -> list[str]:
    """what a browser page shows of a failure: exception boxes, st.error alerts, "could not be drawn" messages"""
    errors = [f"exception: {t}" for t in page.locator(EXCEPTION).all_inner_texts()]
    errors += [f"st.error: {t}" for t in page.locator(ERROR_ALERT).all_inner_texts()]
    if NOT_DRAWN in page.locator('[data-testid="stMain"]').inner_text() and not errors:
        errors.append(f"'{NOT_DRAWN}' on the page")
    return errors


def assert_page_clean(page) -> None:
    """no exception box, no st.error and no "could not be drawn" on the browser page"""
    errors = page_errors(page)
    assert not errors, "the page failed:\n" + "\n".join(errors)


@pytest.fixture
def open_app(browser_page, streamlit_server):
    """open_app("mixtures", "?seed=3") -> the playwright page at <server>/<url_path><query>, after the app settled;
    checked with assert_page_clean unless expect_errors=True"""

    def open_(url_path: str = "", query: str = "", expect_errors: bool = False):
        browser_page.goto(f"{streamlit_server}/{url_path}{query}")
        wait_for_app(browser_page)
        if not expect_errors:
            assert_page_clean(browser_page)
        return browser_page

    return open_


# ------------------------------------------------------------------------------------------------------- screenshots


@pytest.fixture(scope="session")
def screenshot_dir(pytestconfig) -> Path:
    """folder for browser screenshots (gitignored); its path is printed at the end of the session"""
    SCREENSHOT_DIR.mkdir(exist_ok=True)
    pytestconfig.stash[_screenshots_used] = True
    return SCREENSHOT_DIR


_screenshots_used = pytest.StashKey[bool]()


def screenshot(page, screenshot_dir: Path, name: str, full_page: bool = True) -> Path:
    """save <screenshot_dir>/<name>.png of the browser page; full_page grows the viewport to the content first
    (Streamlit scrolls inside its main container, so a plain full-page shot would cut the page at the viewport)"""
    path = screenshot_dir / f"{name}.png"
    if not full_page:
        page.screenshot(path=str(path))
        return path
    height = page.evaluate("() => document.querySelector('[data-testid=stMain]').scrollHeight")
    viewport = page.viewport_size
    page.set_viewport_size({"width": viewport["width"], "height": max(viewport["height"], min(height, 10_000))})
    page.wait_for_timeout(800)  # plotly reflows to the new size
    page.screenshot(path=str(path), full_page=True)
    page.set_viewport_size(viewport)
    return path


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if config.stash.get(_screenshots_used, False):
        terminalreporter.write_sep("-", "browser screenshots")
        terminalreporter.write_line(f"saved under {SCREENSHOT_DIR} (look at them)")
