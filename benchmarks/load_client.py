"""A Streamlit client without a browser: one `Session` speaks a browser tab's WebSocket protocol (/_stcore/stream).

What the frontend does, and so what a Session does:
- open a page: BackMsg.rerun_script with a ClientState (query string, page name from the URL path, no widget states);
- learn the widgets from the ForwardMsg deltas: each widget element proto carries its id, its default or current
  value, and the delta carries the id of the st.fragment it was drawn in;
- change a widget: BackMsg.rerun_script carrying every known widget's state (the changed one new), with the widget's
  fragment id when it sits in a fragment, so the server reruns that fragment only;
- a run ends with ForwardMsg.script_finished;
- keep messages the server marks cacheable and name their hashes in the next ClientState (the frontend's message
  cache), so the server may send a reference (ref_hash) instead of the element again;
- upload a file: ask for upload URLs over the socket (file_urls_request), PUT the file with the XSRF cookie as a
  header, then rerun with the file uploader's state.

Used by benchmarks/bench_load.py (simulated students) and tests/test_serve_class.py (a session through nginx).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.Common_pb2 import FileURLs, UploadedFileInfo
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.Slider_pb2 import Slider
from streamlit.proto.WidgetStates_pb2 import WidgetState
from websockets.asyncio.client import connect

XSRF_COOKIE = "_streamlit_xsrf"
CACHE_RUNS = 4  # forget a cached message not seen for this many runs (the frontend also ages its cache by runs)
FINISHED = {
    ForwardMsg.FINISHED_SUCCESSFULLY: "full",
    ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY: "fragment",
    ForwardMsg.FINISHED_EARLY_FOR_RERUN: "interrupted",
    ForwardMsg.FINISHED_WITH_COMPILE_ERROR: "compile error",
}


@dataclass
class Widget:
    """a widget as the frontend knows it: element proto, the fragment it lives in, its current state"""

    key: str  # the user key (widget ids end in "-<key>")
    kind: str  # the element type: slider, selectbox, button_group, checkbox, number_input, button, ...
    proto: object
    fragment_id: str
    state: WidgetState | None  # None for widgets that only send a trigger (buttons) or nothing yet (uploaders)


@dataclass
class Run:
    """one script run as the client saw it: seconds from the BackMsg sent to script_finished, and what arrived"""

    seconds: float
    status: str  # "full", "fragment", "interrupted", ...
    elements: list[tuple[str, object]] = field(default_factory=list)  # (element type, element proto) in arrival order
    received_bytes: int = 0
    exception: str | None = None  # the text of an st.exception element, if the page showed one

    def find(self, kind: str, where=lambda el: True):
        """the elements of this type that satisfy `where`"""
        return [el for k, el in self.elements if k == kind and where(el)]


def _user_key(widget_id: str) -> str:
    # Streamlit widget ids: "$$ID-<hash>-<user key>" (keyed) or "$$ID-<hash>-None"
    return widget_id.split("-", 2)[-1]


def _initial_state(kind: str, el) -> WidgetState | None:
    """the state the frontend reports for a widget it has just drawn: its current value, else its default"""
    state = WidgetState(id=el.id)
    if kind == "slider":
        values = el.value if el.set_value else el.default
        if el.type == Slider.SELECT_SLIDER:  # values are option indices; the wire carries the formatted options
            state.string_array_value.data[:] = [el.options[int(i)] for i in values]
        else:
            state.double_array_value.data[:] = values
    elif kind == "checkbox":  # st.checkbox and st.toggle
        state.bool_value = el.value if el.set_value else el.default
    elif kind == "selectbox":
        if el.set_value:
            state.string_value = el.raw_value
        elif el.HasField("default") and el.default >= 0:
            state.string_value = el.options[el.default]
        else:
            return None
    elif kind == "button_group":  # st.segmented_control, st.pills
        state.string_array_value.data[:] = (
            list(el.raw_values) if el.set_value else [el.options[i].content for i in el.default]
        )
    elif kind == "number_input":
        value = el.value if el.set_value else el.default
        if el.data_type == type(el).INT:
            state.int_value = int(value)
        else:
            state.double_value = value
    else:
        return None
    return state


class Session:
    """One browser tab: a WebSocket to the app, the widgets of the page it shows, and the cookies of its origin."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.http = requests.Session()  # cookies: Streamlit's XSRF cookie, a load balancer's sticky cookie
        self.ws = None
        self.session_id = ""
        self.query_string = ""
        self.page_script_hash = ""
        self.pages: dict[str, str] = {}  # URL path ("" for home) -> page script hash
        self.widgets: dict[str, Widget] = {}
        self._cache: dict[str, tuple[ForwardMsg, int]] = {}  # hash -> (message, run it was last seen in)
        self._runs = 0

    # ------------------------------------------------------------------------------------------------- connection

    async def open(self, url_path: str = "", query: str = "", timeout: float = 120.0) -> Run:
        """load the page like a browser (GET the URL, keep its cookies), connect the socket and run the page"""
        url = f"{self.base_url}/{url_path}" + (f"?{query}" if query else "")
        await asyncio.to_thread(self.http.get, url, timeout=30)
        # the frontend checks the server's health before it connects; the answer also sets the XSRF cookie
        await asyncio.to_thread(self.http.get, self.base_url + "/_stcore/health", timeout=30)
        parts = urlsplit(self.base_url)
        ws_url = ("wss" if parts.scheme == "https" else "ws") + f"://{parts.netloc}{parts.path}/_stcore/stream"
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)
        headers = {"Origin": f"{parts.scheme}://{parts.netloc}", **({"Cookie": cookies} if cookies else {})}
        self.ws = await connect(ws_url, subprotocols=["streamlit"], additional_headers=headers, max_size=None,
                                ping_interval=None, open_timeout=30)
        self.query_string = query
        return await self._rerun(page_name=url_path, timeout=timeout)

    async def close(self) -> None:
        """close the socket (the server ends the session) and the HTTP connections"""
        if self.ws is not None:
            await self.ws.close()
            self.ws = None
        self.http.close()

    # ---------------------------------------------------------------------------------------------- interactions

    async def switch_page(self, url_path: str, timeout: float = 120.0) -> Run:
        """click the page in the sidebar navigation"""
        self.query_string = ""
        return await self._rerun(page_script_hash=self.pages[url_path], timeout=timeout)

    async def set_value(self, key: str, value, timeout: float = 120.0) -> Run:
        """move a widget to `value` (a slider's number or option label, a select box's label, a toggle's bool)"""
        widget = self.widgets[key]
        state = WidgetState(id=widget.proto.id)
        if widget.kind == "slider" and widget.proto.type == Slider.SELECT_SLIDER:
            state.string_array_value.data[:] = [str(value)]
        elif widget.kind == "slider":
            state.double_array_value.data[:] = [float(value)]
        elif widget.kind == "checkbox":
            state.bool_value = bool(value)
        elif widget.kind == "selectbox":
            state.string_value = str(value)
        elif widget.kind == "button_group":
            state.string_array_value.data[:] = [str(value)]
        elif widget.kind == "number_input" and widget.proto.data_type == type(widget.proto).INT:
            state.int_value = int(value)
        elif widget.kind == "number_input":
            state.double_value = float(value)
        else:
            raise ValueError(f"{key} is a {widget.kind}: use click() or upload()")
        widget.state = state
        return await self._rerun(fragment_id=widget.fragment_id, timeout=timeout)

    async def click(self, key: str, timeout: float = 600.0) -> Run:
        """press a button: a trigger sent once, with the other widgets' states"""
        widget = self.widgets[key]
        trigger = WidgetState(id=widget.proto.id, trigger_value=True)
        return await self._rerun(fragment_id=widget.fragment_id, extra=[trigger], timeout=timeout)

    async def upload(self, key: str, name: str, data: bytes, mime: str = "text/csv", timeout: float = 120.0) -> Run:
        """give a file uploader one file: ask for an upload URL, PUT the file, rerun with the uploader's state"""
        widget = self.widgets[key]
        request = BackMsg()
        request.file_urls_request.request_id = uuid.uuid4().hex
        request.file_urls_request.session_id = self.session_id
        request.file_urls_request.file_names.append(name)
        await self.ws.send(request.SerializeToString())
        urls = await self._wait_for_file_urls(request.file_urls_request.request_id, timeout)
        response = await asyncio.to_thread(
            self.http.put, self.base_url + urls.upload_url, files={"file": (name, data, mime)},
            headers={"X-Xsrftoken": self.http.cookies.get(XSRF_COOKIE, "")}, timeout=30)
        response.raise_for_status()
        state = WidgetState(id=widget.proto.id)
        state.file_uploader_state_value.uploaded_file_info.append(
            UploadedFileInfo(name=name, size=len(data), file_id=urls.file_id, file_urls=urls))
        widget.state = state
        return await self._rerun(fragment_id=widget.fragment_id, timeout=timeout)

    # ------------------------------------------------------------------------------------------------- protocol

    async def _rerun(self, page_name: str = "", page_script_hash: str = "", fragment_id: str = "",
                     extra: list[WidgetState] = (), timeout: float = 120.0) -> Run:
        msg = BackMsg()
        client = msg.rerun_script
        client.query_string = self.query_string
        client.page_name = page_name
        client.page_script_hash = page_script_hash or self.page_script_hash
        client.fragment_id = fragment_id
        client.widget_states.widgets.extend(w.state for w in self.widgets.values() if w.state is not None)
        client.widget_states.widgets.extend(extra)
        client.cached_message_hashes.extend(self._cache)
        self._runs += 1
        start = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        run = await asyncio.wait_for(self._receive_run(), timeout)
        run.seconds = time.perf_counter() - start
        for h in [h for h, (_, seen) in self._cache.items() if self._runs - seen >= CACHE_RUNS]:
            del self._cache[h]
        return run

    async def _receive_run(self) -> Run:
        run = Run(seconds=0.0, status="")
        drawn = set()  # widget ids drawn in this run
        while True:
            raw = await self.ws.recv()
            run.received_bytes += len(raw)
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":  # an element we announced as cached
                msg = self._cache[msg.ref_hash][0]
                kind = "delta"
            if msg.metadata.cacheable:
                self._cache[msg.hash] = (msg, self._runs)
            elif msg.hash in self._cache:
                self._cache[msg.hash] = (self._cache[msg.hash][0], self._runs)
            if kind == "script_finished":
                run.status = FINISHED.get(msg.script_finished, str(msg.script_finished))
                if run.status == "full":  # the frontend drops the elements a full run did not draw again
                    self.widgets = {k: w for k, w in self.widgets.items() if w.proto.id in drawn}
                return run
            if kind == "new_session":
                self.page_script_hash = msg.new_session.page_script_hash
                if msg.new_session.initialize.session_id:
                    self.session_id = msg.new_session.initialize.session_id
            elif kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in msg.navigation.app_pages}
                self.page_script_hash = msg.navigation.page_script_hash
            elif kind == "page_info_changed":  # the app changed the URL's query string: the browser's URL follows
                self.query_string = msg.page_info_changed.query_string
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                drawn.add(self._element(msg.delta, run))

    def _element(self, delta, run: Run) -> str:
        """record an element of this run; a widget's state is learned or kept. Returns the widget id ("" if none)"""
        element = delta.new_element
        kind = element.WhichOneof("type")
        el = getattr(element, kind)
        run.elements.append((kind, el))
        if kind == "exception":
            run.exception = f"{el.type}: {el.message}"
        widget_id = getattr(el, "id", "")
        if widget_id.startswith("$$ID-"):
            key = _user_key(widget_id)
            old = self.widgets.get(key)
            # a widget drawn again keeps the value this tab holds for it (unless the server sets a new one)
            state = old.state if old and old.proto.id == widget_id and not getattr(el, "set_value", False) else None
            self.widgets[key] = Widget(key, kind, el, delta.fragment_id, state or _initial_state(kind, el))
        return widget_id

    async def _wait_for_file_urls(self, request_id: str, timeout: float) -> FileURLs:
        async def wait() -> FileURLs:
            while True:
                msg = ForwardMsg()
                msg.ParseFromString(await self.ws.recv())
                if msg.WhichOneof("type") == "file_urls_response" and msg.file_urls_response.response_id == request_id:
                    if msg.file_urls_response.error_msg:
                        raise RuntimeError(msg.file_urls_response.error_msg)
                    return msg.file_urls_response.file_urls[0]

        return await asyncio.wait_for(wait(), timeout)
