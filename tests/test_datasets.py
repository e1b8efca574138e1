"""Tests for lvm_core.datasets: presets are deterministic 2-D arrays; every bad CSV raises a DataError that says why."""

import io

import numpy as np
import pytest

from lvm_core.datasets import (
    DIGITS_THRESHOLD,
    MAX_POINTS,
    MAX_UPLOAD_BYTES,
    PRESET_LABELS,
    PRESET_NAMES,
    DataError,
    load_binarized_digits,
    load_points_csv,
    make_dataset,
    standardize,
    to_csv_bytes,
    train_test_split_points,
)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_preset_is_finite_n_by_2_and_deterministic_by_seed(name):
    X = make_dataset(name, n=257, seed=3)
    assert X.shape == (257, 2) and X.dtype == np.float64 and np.isfinite(X).all()
    np.testing.assert_array_equal(X, make_dataset(name, n=257, seed=3))
    assert not np.array_equal(X, make_dataset(name, n=257, seed=4))
    assert name in PRESET_LABELS


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_minus_zero_noise_is_zero_noise(name):
    # -0.0 passes a ">= 0" check; numpy's samplers look at the sign bit and refuse it
    zero = make_dataset(name, n=50, noise=0.0, seed=1)
    np.testing.assert_array_equal(make_dataset(name, n=50, noise=-0.0, seed=1), zero)


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_noise_controls_the_spread(name):
    # more noise -> larger total variance around the same structure
    lo = make_dataset(name, n=2000, noise=0.02, seed=0).var(axis=0).sum()
    hi = make_dataset(name, n=2000, noise=1.5, seed=0).var(axis=0).sum()
    assert hi > lo


def test_labels_are_returned_on_request():
    X, y = make_dataset("well_separated", n=90, seed=0, return_labels=True)
    assert X.shape == (90, 2) and y.shape == (90,) and set(np.unique(y)) == {0, 1, 2}


def test_unknown_preset_and_bad_n_raise_data_error():
    with pytest.raises(DataError, match="choose one of"):
        make_dataset("spirals")
    with pytest.raises(DataError, match="at least 2"):
        make_dataset("rings", n=1)


def test_standardize_gives_zero_mean_unit_std_and_inverts():
    X = make_dataset("anisotropic", n=500, seed=1)
    Z, mean, std = standardize(X)
    np.testing.assert_allclose(Z.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(Z.std(0), 1, atol=1e-12)
    np.testing.assert_allclose(Z * std + mean, X, atol=1e-12)


def test_split_partitions_the_points():
    X = make_dataset("two_moons", n=101, seed=0)
    train, test = train_test_split_points(X, 0.25, seed=2)
    assert len(train) + len(test) == 101 and len(test) == 25
    both = np.concatenate([train, test])
    np.testing.assert_array_equal(np.sort(both, axis=0), np.sort(X, axis=0))
    np.testing.assert_array_equal(test, train_test_split_points(X, 0.25, seed=2)[1])


def test_csv_round_trip_is_exact():
    X = make_dataset("pinwheel", n=50, seed=0)
    loaded = load_points_csv(to_csv_bytes(X))
    np.testing.assert_array_equal(loaded.X, X)
    assert loaded.notices == [] and loaded.columns == ("x1", "x2")


def test_csv_without_header_semicolons_and_file_objects():
    loaded = load_points_csv(io.BytesIO(b"1;2\n3;4\n5;6\n"))
    np.testing.assert_array_equal(loaded.X, [[1, 2], [3, 4], [5, 6]])


def test_csv_picks_first_two_numeric_columns_and_named_ones():
    text = b"name,a,b,c\np,1,2,3\nq,4,5,6\nr,7,8,9\n"
    loaded = load_points_csv(text)
    assert loaded.columns == ("a", "b") and loaded.numeric_columns == ("a", "b", "c")
    assert any("3 numeric columns" in n for n in loaded.notices)
    np.testing.assert_array_equal(load_points_csv(text, columns=("c", "a")).X, [[3, 1], [6, 4], [9, 7]])
    with pytest.raises(DataError, match="not numeric"):
        load_points_csv(text, columns=("name", "a"))


# --- each kind of bad file ------------------------------------------------------------------------------------


def test_empty_file():
    for raw in (b"", b"   \n\n"):
        with pytest.raises(DataError, match="empty"):
            load_points_csv(raw)


def test_one_numeric_column():
    with pytest.raises(DataError, match="Only one numeric column"):
        load_points_csv(b"x\n1\n2\n3\n")
    with pytest.raises(DataError, match="Only one numeric column"):
        load_points_csv(b"x,label\n1,a\n2,b\n3,c\n")


def test_non_numeric_columns():
    with pytest.raises(DataError, match="No numeric columns"):
        load_points_csv(b"name,city\nann,paris\nbob,rome\n")


def test_nan_and_inf_rows_are_dropped_with_a_count():
    loaded = load_points_csv(b"x,y\n1,2\nnan,3\n4,inf\n5,\n-inf,1\n7,8\noops,9\n")
    np.testing.assert_array_equal(loaded.X, [[1, 2], [7, 8]])
    assert any("Dropped 5 of 7 rows" in n for n in loaded.notices)


def test_one_row():
    with pytest.raises(DataError, match="only one valid point"):
        load_points_csv(b"x,y\n1,2\n")
    with pytest.raises(DataError, match="only one valid point"):
        load_points_csv(b"x,y\n1,2\nnan,1\n")


def test_no_finite_row():
    with pytest.raises(DataError, match="No row has two finite numbers"):
        load_points_csv(b"x,y\nnan,1\ninf,2\n")


def test_all_points_identical():
    with pytest.raises(DataError, match="identical"):
        load_points_csv(b"x,y\n1,2\n1,2\n1,2\n")


def test_more_than_max_rows_is_subsampled_with_a_notice():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((MAX_POINTS + 5000, 2)).round(3)
    loaded = load_points_csv(to_csv_bytes(X), seed=1)
    assert loaded.X.shape == (MAX_POINTS, 2)
    assert any("subsample" in n for n in loaded.notices)
    np.testing.assert_array_equal(loaded.X, load_points_csv(to_csv_bytes(X), seed=1).X)  # deterministic


def test_binary_file():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    with pytest.raises(DataError, match="not a text CSV"):
        load_points_csv(png)
    with pytest.raises(DataError, match="not a text CSV"):
        load_points_csv(bytes(np.random.default_rng(0).integers(1, 32, 4000, dtype=np.uint8)))


def test_latin1_text_is_still_read():
    loaded = load_points_csv("caf\u00e9,b\n1,2\n3,4\n".encode("latin-1"))
    assert loaded.columns == ("caf\u00e9", "b")


def test_file_over_the_upload_limit():
    raw = b"x,y\n" + b"1,2\n" * (MAX_UPLOAD_BYTES // 4 + 10)
    with pytest.raises(DataError, match="limit is 10 MB"):
        load_points_csv(raw)


def test_binarized_digits_are_a_stratified_80_20_split_of_binary_float32_images():
    from sklearn.datasets import load_digits

    X_train, X_test, y_train, y_test = load_binarized_digits(seed=0)
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert X_train.dtype == X_test.dtype == np.float32 and y_train.shape == (1437,) and y_test.shape == (360,)
    assert set(np.unique(X_train)) == set(np.unique(X_test)) == {0.0, 1.0}
    # stratified: every digit's share of the held-out part is its share of the whole, up to rounding one image
    digits = load_digits()
    counts = np.bincount(digits.target, minlength=10)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.2 * counts) <= 1)
    assert np.array_equal(np.bincount(y_train, minlength=10) + np.bincount(y_test, minlength=10), counts)
    # the split partitions the data set: every image (with its label) appears exactly once, binarised at >= 8
    ours = sorted(map(bytes, np.concatenate([np.c_[X_train, y_train], np.c_[X_test, y_test]]).astype(np.uint8)))
    theirs = sorted(map(bytes, np.c_[digits.data >= DIGITS_THRESHOLD, digits.target].astype(np.uint8)))
    assert ours == theirs


def test_binarized_digits_split_is_deterministic_by_seed():
    first, again, other = load_binarized_digits(0), load_binarized_digits(0), load_binarized_digits(1)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(first[1], other[1])
