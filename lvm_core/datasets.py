"""2-D toy data sets for LVM Lab, and validation of user-uploaded CSV files.

Every preset is generated (numpy / sklearn.datasets generators), never downloaded, and is deterministic by seed.
Uploaded files are checked once, here, at the boundary: a bad file raises `DataError` whose message tells the user
what to do; everything downstream trusts the points it gets.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn import datasets as skd

MAX_POINTS = 100_000  # larger uploads are subsampled to this many rows
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # matches server.maxUploadSize = 10 (MB) in .streamlit/config.toml
CSV_COLUMNS = ("x1", "x2")


class DataError(ValueError):
    """A data set or uploaded file that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class Preset:
    """A named 2-D toy data set: `label` for people, `noise` its default noise level."""

    name: str
    label: str
    noise: float
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset("well_separated", "Well-separated blobs", 0.5, "three round clusters far apart"),
        Preset("overlapping", "Overlapping blobs", 1.0, "three round clusters that overlap"),
        Preset("anisotropic", "Anisotropic (stretched) clusters", 0.5, "three clusters stretched by a linear map"),
        Preset("unequal_variances", "Unequal variances", 0.6, "three clusters with very different spreads"),
        Preset("two_moons", "Two moons", 0.05, "two interleaving half circles"),
        Preset("rings", "Rings", 0.06, "two concentric circles"),
        Preset("pinwheel", "Pinwheel", 0.3, "five curved arms around the origin"),
    ]
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
PRESET_LABELS: dict[str, str] = {name: p.label for name, p in PRESETS.items()}

_BLOB_CENTERS = np.array([[-4.0, -2.0], [0.0, 4.0], [4.0, -1.5]])
_ANISO_MAP = np.array([[0.6, -0.64], [-0.41, 0.85]]) * 2.5


def make_dataset(
    name: str, n: int = 500, noise: float | None = None, seed: int = 0, return_labels: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Generate the preset `name`: X of shape (n, 2), float64 (and its generating labels of shape (n,) if asked).

    `noise` is each preset's spread: the cluster standard deviation for the blob presets, the standard deviation of
    the Gaussian jitter for two moons and rings, the radial standard deviation for the pinwheel. None: the default.
    """
    if name not in PRESETS:
        raise DataError(f"Unknown data set {name!r}; choose one of: {', '.join(PRESET_NAMES)}.")
    n = int(n)
    if n < 2:
        raise DataError("A data set needs at least 2 points; increase the number of points.")
    noise = PRESETS[name].noise if noise is None else float(noise)
    if not np.isfinite(noise) or noise < 0:
        raise DataError("The noise level must be a finite number >= 0.")
    noise = float(noise) + 0.0  # -0.0 passes ">= 0" but numpy's samplers refuse a negative-signed scale
    rng = np.random.default_rng(seed)
    rs = int(rng.integers(2**31 - 1))  # sklearn generators take an int seed
    if name == "well_separated":
        X, y = skd.make_blobs(n, centers=_BLOB_CENTERS, cluster_std=noise, random_state=rs)
    elif name == "overlapping":
        X, y = skd.make_blobs(n, centers=_BLOB_CENTERS * 0.45, cluster_std=noise, random_state=rs)
    elif name == "anisotropic":
        X, y = skd.make_blobs(n, centers=_BLOB_CENTERS * 0.6, cluster_std=noise, random_state=rs)
        X = X @ _ANISO_MAP
    elif name == "unequal_variances":
        X, y = skd.make_blobs(
            n, centers=_BLOB_CENTERS * 0.8, cluster_std=noise * np.array([0.4, 1.0, 2.5]), random_state=rs
        )
    elif name == "two_moons":
        X, y = skd.make_moons(n, noise=noise, random_state=rs)
    elif name == "rings":
        X, y = skd.make_circles(n, noise=noise, factor=0.5, random_state=rs)
    else:
        X, y = _pinwheel(n, radial_std=noise, rng=rng)
    X = np.ascontiguousarray(X, dtype=np.float64)
    return (X, np.asarray(y)) if return_labels else X


def _pinwheel(n: int, radial_std: float, rng: np.random.Generator, arms: int = 5, rate: float = 0.25):
    """Johnson et al. (2016)'s pinwheel: Gaussian blobs bent into arms by an angle growing with the radius."""
    labels = rng.permutation(np.arange(n) % arms)  # (n,)
    feats = rng.standard_normal((n, 2)) * np.array([radial_std, 0.05])
    feats[:, 0] += 1.0
    angles = 2 * np.pi * labels / arms + rate * np.exp(feats[:, 0])  # (n,)
    c, s = np.cos(angles), np.sin(angles)
    X = np.stack([c * feats[:, 0] - s * feats[:, 1], s * feats[:, 0] + c * feats[:, 1]], axis=1)  # rotate: (n, 2)
    return 2.0 * X, labels


def standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X - mean) / std per column -> (X_std (n, d), mean (d,), std (d,)); a constant column keeps std 1."""
    X = np.asarray(X, dtype=np.float64)
    mean = X.mean(axis=0)
    std = X.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (X - mean) / std, mean, std


def train_test_split_points(X: np.ndarray, test_fraction: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random split -> (X_train, X_test); each part keeps at least one point (X needs at least 2 rows)."""
    X = np.asarray(X)
    n = len(X)
    if n < 2:
        raise DataError("Splitting needs at least 2 points.")
    if not 0.0 < test_fraction < 1.0:
        raise DataError("The held-out fraction must lie strictly between 0 and 1.")
    n_test = min(max(int(round(test_fraction * n)), 1), n - 1)
    perm = np.random.default_rng(seed).permutation(n)
    return X[perm[n_test:]], X[perm[:n_test]]


def to_csv_bytes(X: np.ndarray) -> bytes:
    """The points as a UTF-8 CSV with a header `x1,x2`, full float precision (reads back with load_points_csv)."""
    X = np.asarray(X, dtype=np.float64)
    frame = pd.DataFrame(X, columns=list(CSV_COLUMNS[: X.shape[1]]) if X.shape[1] == 2 else None)
    return frame.to_csv(index=False, float_format="%.17g").encode("utf-8")


@dataclass
class LoadedPoints:
    """Validated points from a file: X (n, 2) float64, notices for the user, the two columns used, all numeric ones."""

    X: np.ndarray
    notices: list[str] = field(default_factory=list)
    columns: tuple[str, str] = CSV_COLUMNS
    numeric_columns: tuple[str, ...] = ()


def load_points_csv(file_or_bytes, columns: tuple[str, str] | list[str] | None = None, seed: int = 0) -> LoadedPoints:
    """Read and validate a CSV of 2-D points: the first two numeric columns, or the two named `columns`.

    Accepts bytes, str text, a path-like, or a file object (Streamlit's UploadedFile). Rows with a missing, non-numeric,
    NaN or infinite value in the chosen columns are dropped (counted in `notices`); more than MAX_POINTS rows are
    subsampled with `seed`. Raises DataError with a message that says what to do for anything unusable.
    """
    raw = _read_bytes(file_or_bytes)
    if len(raw) > MAX_UPLOAD_BYTES:
        raise DataError(
            f"The file is {len(raw) / 2**20:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 2**20} MB. "
            f"Upload at most {MAX_POINTS:,} rows of two numeric columns, or subsample the file first."
        )
    text = _decode(raw)
    if not text.strip():
        raise DataError("The file is empty. Upload a CSV with two numeric columns, e.g. a header `x1,x2` then rows.")
    frame = _parse_csv(text)
    numeric = _numeric_columns(frame)
    if len(numeric) == 0:
        raise DataError(
            "No numeric columns found (columns: "
            f"{_names(frame.columns)}). Upload a CSV with two columns of numbers, e.g. `x1,x2` then `0.5,1.2`."
        )
    if len(numeric) == 1:
        raise DataError(
            f"Only one numeric column ({numeric[0]!s}); a 2-D point needs two. Add a second numeric column."
        )
    notices: list[str] = []
    if columns is None:
        chosen = (numeric[0], numeric[1])
        if len(numeric) > 2:
            notices.append(
                f"The file has {len(numeric)} numeric columns; using {chosen[0]} and {chosen[1]}. "
                "Choose other columns below."
            )
    else:
        chosen = tuple(columns)
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise DataError("Choose two different columns.")
        missing = [c for c in chosen if c not in numeric]
        if missing:
            raise DataError(
                f"Column(s) {_names(missing)} are not numeric columns of this file; choose from {_names(numeric)}."
            )
    values = np.stack([_to_float(frame[c]) for c in chosen], axis=1)  # (rows, 2)
    finite = np.isfinite(values).all(axis=1)
    n_bad = int((~finite).sum())
    X = values[finite]
    if n_bad:
        notices.append(f"Dropped {n_bad:,} of {len(values):,} rows with a missing, non-numeric, NaN or infinite value.")
    if len(X) == 0:
        raise DataError("No row has two finite numbers. Check that the file holds numbers, one point per row.")
    if len(X) == 1:
        raise DataError("The file has only one valid point; a mixture needs at least 2. Add more rows.")
    if np.all(X == X[0]):
        raise DataError(
            f"All {len(X):,} points are identical ({X[0, 0]:g}, {X[0, 1]:g}); there is no spread to model. "
            "Upload points that differ."
        )
    if len(X) > MAX_POINTS:
        keep = np.sort(np.random.default_rng(seed).choice(len(X), MAX_POINTS, replace=False))
        notices.append(f"The file has {len(X):,} valid rows; using a random subsample of {MAX_POINTS:,}.")
        X = X[keep]
    return LoadedPoints(np.ascontiguousarray(X), notices, (str(chosen[0]), str(chosen[1])), tuple(map(str, numeric)))


def _read_bytes(file_or_bytes) -> bytes:
    if isinstance(file_or_bytes, bytes | bytearray | memoryview):
        return bytes(file_or_bytes)
    if isinstance(file_or_bytes, str):
        return file_or_bytes.encode("utf-8")
    if hasattr(file_or_bytes, "getvalue"):
        return bytes(file_or_bytes.getvalue())
    if hasattr(file_or_bytes, "read"):
        data = file_or_bytes.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    with open(file_or_bytes, "rb") as fh:  # a path
        return fh.read()


def _decode(raw: bytes) -> str:
    """UTF-8 (with or without BOM), else Latin-1 when it looks like text; binary files are refused."""
    binary_msg = (
        "This file is not a text CSV (it looks binary, e.g. an Excel workbook or an image). "
        "Save it as CSV (UTF-8) with two numeric columns and upload that."
    )
    if b"\x00" in raw[:65536]:
        raise DataError(binary_msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    sample = text[:65536]
    controls = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n") + sample.count("\ufffd")
    if sample and controls / len(sample) > 0.01:
        raise DataError(binary_msg)
    return text


def _parse_csv(text: str) -> pd.DataFrame:
    """Parse with the first separator (comma, semicolon, tab, whitespace) giving >= 2 columns; header if non-numeric."""
    first = None
    for sep in (",", ";", "\t", r"\s+"):
        try:
            frame = pd.read_csv(
                io.StringIO(text), sep=sep, header=None, dtype=str, engine="python", skip_blank_lines=True, comment=None
            )
        except (pd.errors.ParserError, ValueError, csv.Error) as exc:
            if first is None:
                first = exc
            continue
        if frame.shape[1] >= 2:
            break
        first = first if first is not None else frame
    else:
        if isinstance(first, pd.DataFrame):
            frame = first
        else:
            raise DataError(f"The file could not be read as CSV ({first}). Save it as a plain comma-separated file.")
    frame = frame.dropna(how="all")
    if frame.empty:
        raise DataError("The file is empty. Upload a CSV with two numeric columns, e.g. a header `x1,x2` then rows.")
    header = frame.iloc[0]
    header_is_text = pd.to_numeric(header, errors="coerce").isna() & header.notna()
    if header_is_text.any():  # a header row: name the columns by it
        names = [str(h).strip() if pd.notna(h) and str(h).strip() else f"column {i + 1}" for i, h in enumerate(header)]
        names = _dedupe(names)
        frame = frame.iloc[1:].reset_index(drop=True)
        frame.columns = names
    else:
        frame.columns = [f"column {i + 1}" for i in range(frame.shape[1])]
    return frame


def _dedupe(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} ({seen[name]})")
    return out


def _numeric_columns(frame: pd.DataFrame) -> list[str]:
    """Columns where at least half of the non-empty cells parse as numbers."""
    out = []
    for col in frame.columns:
        cells = frame[col].dropna()
        cells = cells[cells.astype(str).str.strip() != ""]
        if len(cells) == 0:
            continue
        parsed = pd.Series(_to_float(cells))
        # "nan"/"inf" parse as numbers on purpose: they are dropped later, with a count
        if parsed.notna().mean() >= 0.5:
            out.append(col)
    return out


def _to_float(column: pd.Series) -> np.ndarray:
    return pd.to_numeric(column.astype(str).str.strip(), errors="coerce").to_numpy(dtype=np.float64)


def _names(cols) -> str:
    return ", ".join(str(c) for c in cols)


# ------------------------------------------------------------------------------------------ handwritten digits
DIGITS_THRESHOLD = 8  # load_digits' pixels are counts 0..16; >= 8 is "ink"
DIGITS_SHAPE = (8, 8)


def load_binarized_digits(seed: int = 0, test_fraction: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                              np.ndarray]:
    """scikit-learn's handwritten digits (1,797 images of 8 x 8, shipped with scikit-learn), binarised at pixel
    value >= 8, split into train and held-out parts stratified by digit (the same split for the same seed).

    Returns X_train: (n_train, 64), X_test: (n_test, 64) float32 arrays of 0/1 (row-major 8 x 8 images), and
    y_train: (n_train,), y_test: (n_test,) the digits 0-9 (int64). The default split is 1,437 / 360.
    """
    from sklearn.model_selection import train_test_split

    digits = skd.load_digits()
    X = (digits.data >= DIGITS_THRESHOLD).astype(np.float32)  # (1797, 64)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_fraction, stratify=y, random_state=seed)
    return X_train, X_test, y_train, y_test
