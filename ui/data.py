"""The shared data picker: a preset (URL-bound) or an uploaded CSV, kept in session state; bad files never lose data.

Used by the mixtures page and the deep-LVM page, each with its own page-prefixed keys:

    from ui.data import DataKeys, data_picker
    X = data_picker(DataKeys("mx", data=state.DATASET, meta=state.DATASET_META))   # (n, 2) float64
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from lvm_core.datasets import (
    MAX_UPLOAD_BYTES,
    PRESET_LABELS,
    PRESET_NAMES,
    PRESETS,
    DataError,
    load_points_csv,
    make_dataset,
    to_csv_bytes,
)
from ui import kit
from ui.state import DatasetMeta

N_RANGE = (20, 5000)  # the points slider; uploads may hold up to datasets.MAX_POINTS


@dataclass(frozen=True)
class DataKeys:
    """Session-state / widget keys of one page's data picker. `data` holds X (n, 2); `meta` a state.DatasetMeta
    saying where X came from."""

    prefix: str
    data: str | None = None
    meta: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "data", self.data or f"{self.prefix}_points")
        object.__setattr__(self, "meta", self.meta or f"{self.prefix}_points_meta")

    @property
    def preset(self) -> str:
        return f"{self.prefix}_preset"

    @property
    def n(self) -> str:
        return f"{self.prefix}_n"

    @property
    def noise(self) -> str:
        return f"{self.prefix}_noise"

    @property
    def seed(self) -> str:
        return f"{self.prefix}_data_seed"

    @property
    def upload(self) -> str:
        return f"{self.prefix}_upload"

    @property
    def widgets(self) -> tuple[str, ...]:
        """the keys of the controls that define the data (a page's "Reset to defaults" keeps them)"""
        return (self.preset, self.n, self.noise, self.seed, self.upload)

    @property
    def col_x(self) -> str:
        return f"{self.prefix}_col_x"

    @property
    def col_y(self) -> str:
        return f"{self.prefix}_col_y"


@st.cache_data(max_entries=64, show_spinner=False)
def generate(name: str, n: int, noise_scale: float, seed: int) -> np.ndarray:
    """The preset `name` with noise = noise_scale x its default noise -> X (n, 2) (cached)."""
    return make_dataset(name, n=n, noise=PRESETS[name].noise * noise_scale, seed=seed)


@st.cache_data(max_entries=8, show_spinner=False)
def _csv_bytes(X: np.ndarray) -> bytes:
    return to_csv_bytes(X)


@st.cache_data(max_entries=8, show_spinner=False)
def _load(raw: bytes, columns: tuple[str, str] | None):
    return load_points_csv(raw, columns=columns)


def current_points(keys: DataKeys) -> np.ndarray | None:
    """The data the picker holds now (None before its first run)."""
    return st.session_state.get(keys.data)


def current_meta(keys: DataKeys) -> DatasetMeta | None:
    """Where the picker's data came from (None before its first run)."""
    return st.session_state.get(keys.meta)


def set_points(keys: DataKeys, X: np.ndarray, note: str | None = None) -> None:
    """Replace the picker's data by hand-edited points, e.g. after the user added or deleted points on a chart (call
    from a callback)."""
    meta = current_meta(keys) or DatasetMeta(source="edited", label="data", n=0)
    st.session_state[keys.data] = np.ascontiguousarray(X, dtype=np.float64)
    st.session_state[keys.meta] = replace(meta, source="edited", n=len(X), upload_error=None,
                                          label=meta.label.removesuffix(" (edited)") + " (edited)",
                                          notices=(note,) if note else ())


def data_picker(keys: DataKeys, default_preset: str = "well_separated", default_n: int = 500) -> np.ndarray:
    """Draw the data controls (preset, n, noise, seed, upload, download) and return the current X (n, 2).

    A changed preset control regenerates the data (dropping uploads and edits); a new upload replaces them only if it
    is valid, otherwise st.error explains and the previous data stay.
    """
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    preset = c1.selectbox(
        "Data set",
        PRESET_NAMES,
        index=PRESET_NAMES.index(default_preset),
        format_func=PRESET_LABELS.get,
        key=keys.preset,
        help="; ".join(f"{p.label}: {p.description}" for p in PRESETS.values()),
        bind="query-params",
        persist_state="session",
    )
    n = c2.slider(
        "Points", *N_RANGE, value=default_n, step=10, key=keys.n, bind="query-params", persist_state="session"
    )
    noise = c3.slider(
        "Noise (x default)",
        0.0,
        3.0,
        value=1.0,
        step=0.05,
        key=keys.noise,
        help="Scales the preset's spread: cluster width for blobs, jitter for moons and rings.",
        bind="query-params",
        persist_state="session",
    )
    seed = c4.slider("Data seed", 0, 999, value=0, key=keys.seed, bind="query-params", persist_state="session")

    signature = (preset, int(n), float(noise), int(seed))
    meta = current_meta(keys)
    if keys.data not in st.session_state or not isinstance(meta, DatasetMeta) or meta.signature != signature:
        _use_preset(keys, signature)

    _upload_controls(keys)

    meta = current_meta(keys)
    X = st.session_state[keys.data]
    for notice in meta.notices:  # may quote the file's own column names: shown literally
        st.info(kit.literal(notice), icon=":material/info:")
    left, right = st.columns([3, 1])
    source = {"preset": "generated", "upload": "uploaded", "edited": "edited by hand"}[meta.source]
    # the label may come from a file name: shown literally, never as Markdown or HTML
    left.caption(f"Current data: **{kit.literal(meta.label)}**, {len(X):,} points ({source}).")
    if meta.source != "preset":
        left.button(
            "Back to the preset", key=f"{keys.prefix}_back_to_preset", on_click=_use_preset, args=(keys, signature)
        )
    with right:
        kit.csv_download(_csv_bytes(X), f"{_safe_name(meta.label)}.csv", key=f"{keys.prefix}_download",
                         label="Download the data (CSV)")
    return X


def _safe_name(label: str) -> str:
    """a file name from a label: letters, digits, - and _ only"""
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in label.lower())
    return name.strip("_")[:60] or "data"


def _use_preset(keys: DataKeys, signature: tuple) -> None:
    name, n, noise, seed = signature
    old = current_meta(keys)
    st.session_state[keys.data] = generate(name, n, noise, seed)
    st.session_state[keys.meta] = DatasetMeta(
        source="preset", label=PRESET_LABELS[name], n=n, signature=signature,
        # a handled file is not re-applied
        upload_id=old.upload_id if isinstance(old, DatasetMeta) else None,
    )


def _upload_controls(keys: DataKeys) -> None:
    """Apply a newly uploaded file once; on a bad file show why and keep the data as they were."""
    with st.expander("Upload your own points (CSV)", expanded=False):
        st.caption(
            f"Two numeric columns (the first two are used, or choose below), one point per row; "
            f"at most {MAX_UPLOAD_BYTES // 2**20} MB. Rows with missing values are dropped."
        )
        uploaded = st.file_uploader("CSV file", type=["csv", "txt", "tsv"], key=keys.upload)
        if uploaded is None:
            return
        if uploaded.file_id != current_meta(keys).upload_id:
            _apply_upload(keys, uploaded.file_id, uploaded.name, uploaded.getvalue(), None)
        meta = current_meta(keys)
        if meta.upload_error:
            st.error(kit.literal(meta.upload_error), icon=":material/error:")
        numeric = list(meta.numeric_columns)
        if meta.source == "upload" and len(numeric) > 2:
            cx, cy = st.columns(2)
            tag = str(meta.upload_id)[:8]  # per-file keys: another file's column names never linger
            col_x = cx.selectbox("x1 column", numeric, index=numeric.index(meta.columns[0]), key=f"{keys.col_x}_{tag}")
            col_y = cy.selectbox("x2 column", numeric, index=numeric.index(meta.columns[1]), key=f"{keys.col_y}_{tag}")
            if (col_x, col_y) != tuple(meta.columns):
                _apply_upload(keys, meta.upload_id, meta.file_name, meta.raw, (col_x, col_y))
                if current_meta(keys).upload_error:
                    st.error(kit.literal(current_meta(keys).upload_error), icon=":material/error:")


def _apply_upload(keys: DataKeys, upload_id: str, name: str, raw: bytes, columns) -> None:
    meta = replace(current_meta(keys), upload_id=upload_id)
    try:
        if len(raw) > MAX_UPLOAD_BYTES:  # Streamlit's server.maxUploadSize stops most; say why for the rest
            raise DataError(f"The file is over the {MAX_UPLOAD_BYTES // 2**20} MB limit; upload a smaller CSV.")
        loaded = _load(raw, tuple(columns) if columns else None)
    except DataError as exc:
        st.session_state[keys.meta] = replace(
            meta, upload_error=f"Could not use {name!r}: {exc} The previous data are kept.")
        return
    st.session_state[keys.data] = loaded.X
    st.session_state[keys.meta] = replace(
        meta, source="upload", label=name.rsplit(".", 1)[0] or "upload", n=len(loaded.X),
        notices=tuple(loaded.notices), columns=tuple(loaded.columns), numeric_columns=tuple(loaded.numeric_columns),
        file_name=name, raw=raw, upload_error=None)
