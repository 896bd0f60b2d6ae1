"""Tests for gnadvisor.data: sources, shapes, subsampling, standardising, whitening, file errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gnadvisor._checks import GNAdvisorError
from gnadvisor.data import Dataset, data_covariance_condition, load_data


def _sigma(X: torch.Tensor) -> np.ndarray:
    F = X.reshape(X.shape[0], -1).numpy()
    return F.T @ F / F.shape[0]


# ---------------------------------------------------------------------------------- digits


def test_load_data_digits_defaults():
    ds = load_data()
    assert isinstance(ds, Dataset)
    assert ds.X.shape == (1797, 64) and ds.X.dtype == torch.float64
    assert ds.Y.shape == (1797, 10) and ds.Y.dtype == torch.float64
    assert ds.n_classes == 10 and ds.input_shape == (64,) and ds.name == "digits"
    assert (ds.n_samples, ds.n_features, ds.n_outputs) == (1797, 64, 10)
    assert float(ds.X.min()) == 0.0 and float(ds.X.max()) == 1.0
    assert torch.equal(ds.Y.sum(dim=1), torch.ones(1797))
    from sklearn.datasets import load_digits
    raw = load_digits()
    assert np.array_equal(ds.Y.argmax(dim=1).numpy(), raw.target)
    assert np.allclose(ds.X.numpy() * 16, raw.data)


def test_load_data_digits_reshape_keeps_pixels():
    flat = load_data(n_samples=50, seed=3)
    img = load_data(n_samples=50, seed=3, input_shape=(1, 8, 8))
    assert img.X.shape == (50, 1, 8, 8)
    assert torch.equal(img.X.reshape(50, 64), flat.X)
    assert torch.equal(img.Y, flat.Y)


def test_load_data_digits_upsample_to_cifar_shape():
    ds = load_data(n_samples=20, input_shape=(3, 32, 32))
    assert ds.X.shape == (20, 3, 32, 32) and ds.input_shape == (3, 32, 32)
    assert torch.equal(ds.X[:, 0], ds.X[:, 1]) and torch.equal(ds.X[:, 0], ds.X[:, 2])
    assert any("32x32" in note for note in ds.notes)
    small = load_data(n_samples=20, input_shape=(1, 8, 8)).X[:, 0]
    blocks = ds.X[:, 0].reshape(20, 8, 4, 8, 4).mean(dim=(2, 4))
    assert np.corrcoef(blocks.flatten(), small.flatten())[0, 1] > 0.95


def test_load_data_bilinear_upsample_is_exact_on_a_ramp(tmp_path):
    # bilinear interpolation reproduces an affine image exactly away from the border
    r, c = np.meshgrid(np.arange(8.0), np.arange(8.0), indexing="ij")
    np.save(tmp_path / "ramp.npy", (0.3 * r - 0.2 * c + 1.0)[None, None])
    ds = load_data(tmp_path / "ramp.npy", input_shape=(1, 32, 32))
    u = (np.arange(32) + 0.5) / 4 - 0.5  # source coordinate of each output pixel
    inner = (u >= 0) & (u <= 7)
    expected = 0.3 * u[:, None] - 0.2 * u[None, :] + 1.0
    assert np.allclose(ds.X[0, 0].numpy()[np.ix_(inner, inner)], expected[np.ix_(inner, inner)])


def test_load_data_digits_downsample_and_grey_shape():
    ds = load_data(n_samples=10, input_shape=(1, 7, 7))
    assert ds.X.shape == (10, 1, 7, 7)
    assert load_data(n_samples=10, input_shape=(4, 4)).X.shape == (10, 4, 4)


def test_load_data_constant_image_stays_constant_under_resize(tmp_path):
    X = np.full((3, 1, 8, 8), 0.25)
    path = tmp_path / "const.npy"
    np.save(path, X)
    ds = load_data(str(path), input_shape=(2, 20, 20))
    assert torch.allclose(ds.X, torch.full((3, 2, 20, 20), 0.25, dtype=torch.float64))


@pytest.mark.parametrize("shape", [(100,), (2, 3, 8, 8), (7,), (0, 8)])
def test_load_data_digits_bad_input_shape_raises(shape):
    with pytest.raises(GNAdvisorError, match="input_shape"):
        load_data(input_shape=shape)


def test_load_data_input_dim_and_shape_must_agree():
    assert load_data(input_dim=64, n_samples=5).X.shape == (5, 64)
    with pytest.raises(GNAdvisorError, match="input_dim"):
        load_data(input_dim=10, input_shape=(1, 8, 8))


# ------------------------------------------------------------------------------- subsampling


def test_load_data_subsample_is_seeded_prefix():
    a = load_data(n_samples=100, seed=7)
    b = load_data(n_samples=100, seed=7)
    c = load_data(n_samples=40, seed=7)
    d = load_data(n_samples=100, seed=8)
    assert torch.equal(a.X, b.X) and torch.equal(a.Y, b.Y)
    assert torch.equal(c.X, a.X[:40])
    assert not torch.equal(a.X, d.X)
    full = load_data().X
    rows = {tuple(r) for r in full.numpy().tolist()}
    assert all(tuple(r) in rows for r in a.X.numpy().tolist())


def test_load_data_too_many_samples_raises():
    with pytest.raises(GNAdvisorError, match="n_samples must be at most the 1797"):
        load_data(n_samples=5000)


@pytest.mark.parametrize("kw", [dict(n_samples=0), dict(seed=-1), dict(output_dim=0),
                                dict(targets="softmax"), dict(source="mnist")])
def test_load_data_bad_arguments_raise(kw):
    with pytest.raises(GNAdvisorError):
        load_data(**kw)


# ------------------------------------------------------------------- standardise and whiten


def test_load_data_standardize_zero_mean_unit_variance():
    ds = load_data(standardize=True)
    X = ds.X.numpy()
    std = X.std(axis=0)
    assert np.allclose(X.mean(axis=0), 0.0, atol=1e-12)
    const = np.array([0, 32, 39])  # constant-zero pixels of the digits
    assert np.allclose(std[np.setdiff1d(np.arange(64), const)], 1.0)
    assert np.all(X[:, const] == 0.0)


def test_load_data_whiten_full_rank_gives_identity_over_n():
    ds = load_data("synthetic", n_samples=200, input_dim=12, whiten=True, seed=1)
    n = ds.n_samples
    assert np.allclose(_sigma(ds.X), np.eye(12) / n, atol=1e-14)
    assert data_covariance_condition(ds.X) == pytest.approx(1.0, abs=1e-10)


def test_load_data_whiten_digits_projector_on_nonzero_directions():
    raw = load_data()
    ds = load_data(whiten=True)
    n = ds.n_samples
    S = _sigma(ds.X) * n  # should be a rank-61 orthogonal projector
    assert np.allclose(S @ S, S, atol=1e-12) and np.allclose(S, S.T, atol=1e-14)
    eig = np.linalg.eigvalsh(S)
    assert np.sum(eig > 0.5) == 61 and np.allclose(eig[eig > 0.5], 1.0)
    assert np.allclose(eig[eig <= 0.5], 0.0, atol=1e-12)
    assert float(ds.X[:, [0, 32, 39]].abs().max()) < 1e-12  # constant pixels stay 0
    # same span as the raw data: whitening is X <- U V^T
    P_raw = np.linalg.pinv(raw.X.numpy()) @ raw.X.numpy()
    assert np.allclose(S, P_raw, atol=1e-8)
    kappa, rank = data_covariance_condition(ds.X, return_rank=True)
    assert rank == 61 and kappa == pytest.approx(1.0, abs=1e-10)
    assert any("rank 61 of 64" in note for note in ds.notes)


def test_load_data_whiten_after_resize_and_standardize():
    ds = load_data(n_samples=30, input_shape=(1, 12, 12), standardize=True, whiten=True)
    assert ds.X.shape == (30, 1, 12, 12)
    kappa, rank = data_covariance_condition(ds.X, return_rank=True)
    assert kappa == pytest.approx(1.0, abs=1e-10) and rank <= 29  # centring costs one direction


# --------------------------------------------------------------------------------- synthetic


def test_load_data_synthetic_defaults_and_determinism():
    a = load_data("synthetic")
    assert a.X.shape == (1000, 64) and a.Y.shape == (1000, 10) and a.n_classes == 10
    assert torch.equal(a.Y.sum(dim=1), torch.ones(1000))
    assert set(np.unique(a.Y.numpy())) == {0.0, 1.0}
    b = load_data("synthetic")
    c = load_data("synthetic", seed=1)
    assert torch.equal(a.X, b.X) and torch.equal(a.Y, b.Y)
    assert not torch.equal(a.X, c.X)
    assert abs(float(a.X.mean())) < 0.02 and abs(float(a.X.std()) - 1) < 0.02


def test_load_data_synthetic_gaussian_targets_and_shape():
    ds = load_data("synthetic", n_samples=300, input_shape=(2, 3, 3), output_dim=4, targets="gaussian")
    assert ds.X.shape == (300, 2, 3, 3) and ds.Y.shape == (300, 4) and ds.n_classes is None
    assert abs(float(ds.Y.std()) - 1) < 0.1
    assert load_data("synthetic", n_samples=3, targets="none").Y is None


def test_load_data_digits_random_targets_replace_labels():
    ds = load_data(n_samples=50, targets="onehot", output_dim=3)
    assert ds.Y.shape == (50, 3) and ds.n_classes == 3
    with pytest.raises(GNAdvisorError, match="output_dim must be at least the 10 classes"):
        load_data(output_dim=5)


# ------------------------------------------------------------------------------------- files


def test_load_data_npy(tmp_path):
    X = np.arange(24, dtype=np.float32).reshape(6, 4)
    path = tmp_path / "x.npy"
    np.save(path, X)
    ds = load_data(path)
    assert ds.X.dtype == torch.float64 and np.array_equal(ds.X.numpy(), X)
    assert ds.Y is None and ds.name == "x.npy" and ds.input_shape == (4,)
    assert load_data(path, input_shape=(2, 2)).X.shape == (6, 2, 2)
    ds = load_data(path, targets="onehot", output_dim=3)
    assert ds.Y.shape == (6, 3)


def test_load_data_npz_labels_become_onehot(tmp_path):
    X = np.random.default_rng(0).normal(size=(5, 3))
    y = np.array([0, 2, 1, 2, 0])
    path = tmp_path / "d.npz"
    np.savez(path, X=X, y=y)
    ds = load_data(path)
    assert ds.n_classes == 3 and np.array_equal(ds.Y.numpy(), np.eye(3)[y])
    assert load_data(path, output_dim=4).Y.shape == (5, 4)
    np.savez(path, X=X, Y=X[:, :2] * 2.0)
    ds = load_data(path)
    assert ds.n_classes is None and np.allclose(ds.Y.numpy(), X[:, :2] * 2)
    np.savez(path, X=X)
    assert load_data(path).Y is None


def test_load_data_npz_missing_key_raises(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, inputs=np.zeros((2, 2)))
    with pytest.raises(GNAdvisorError, match="named 'X'"):
        load_data(path)


def test_load_data_pt_tensor_and_dict(tmp_path):
    X = torch.randn(4, 1, 2, 2)
    torch.save(X, tmp_path / "x.pt")
    ds = load_data(tmp_path / "x.pt")
    assert torch.equal(ds.X, X.double()) and ds.Y is None
    torch.save({"X": X, "Y": torch.tensor([1, 0, 1, 1])}, tmp_path / "xy.pt")
    ds = load_data(tmp_path / "xy.pt", input_shape=(4,))
    assert ds.X.shape == (4, 4) and ds.Y.tolist() == [[0, 1], [1, 0], [0, 1], [0, 1]]
    torch.save({"inputs": X}, tmp_path / "bad.pt")
    with pytest.raises(GNAdvisorError, match="key 'X'"):
        load_data(tmp_path / "bad.pt")


def test_load_data_csv_with_label_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1.0,2.0,1\n3.0,4.0,0\n5.0,6.5,2\n")
    ds = load_data(path)
    assert ds.X.tolist() == [[1.0, 2.0], [3.0, 4.0], [5.0, 6.5]]
    assert ds.Y.argmax(dim=1).tolist() == [1, 0, 2] and ds.n_classes == 3


def test_load_data_csv_without_label_column(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("1,2,3\n4,5,6\n")
    ds = load_data(path)
    assert ds.X.tolist() == [[1, 2, 3], [4, 5, 6]] and ds.Y is None
    path = tmp_path / "header.csv"
    path.write_text("f1,f2\n1,2\n3,4\n")
    ds = load_data(path)
    assert ds.X.tolist() == [[1, 2], [3, 4]] and ds.Y is None


def test_load_data_csv_float_target_is_regression(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("x,target\n1,0.5\n2,-1.5\n")
    ds = load_data(path)
    assert ds.Y.tolist() == [[0.5], [-1.5]] and ds.n_classes is None


def test_load_data_missing_file_raises(tmp_path):
    with pytest.raises(GNAdvisorError, match="does not exist"):
        load_data(tmp_path / "nope.npz")


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_load_data_unreadable_file_raises(tmp_path, suffix):
    path = tmp_path / f"garbage{suffix}"
    path.write_bytes(b"\x00\x01 this is not a valid file \xff" * 4)
    with pytest.raises(GNAdvisorError, match="could not be read") as info:
        load_data(path)
    assert "\n" not in str(info.value)


def test_load_data_non_numeric_csv_raises(tmp_path):
    path = tmp_path / "text.csv"
    path.write_text("a,b\n1,hello\n2,3\n")
    with pytest.raises(GNAdvisorError, match="numeric"):
        load_data(path)


def test_load_data_unsupported_suffix_raises(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("1 2 3")
    with pytest.raises(GNAdvisorError, match=r"\.npy, \.npz, \.pt, \.csv"):
        load_data(path)


def test_load_data_wrong_width_raises(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((4, 10)))
    with pytest.raises(GNAdvisorError, match="input_shape must have 10 entries"):
        load_data(path, input_shape=(12,))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_load_data_non_finite_raises(tmp_path, bad):
    X = np.ones((3, 2))
    X[1, 1] = bad
    np.save(tmp_path / "x.npy", X)
    with pytest.raises(GNAdvisorError, match="finite"):
        load_data(tmp_path / "x.npy")
    (tmp_path / "x.csv").write_text(f"1,2\n3,{bad}\n")
    with pytest.raises(GNAdvisorError, match="finite"):
        load_data(tmp_path / "x.csv")


def test_load_data_bad_labels_raise(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((3, 2)), y=np.array([0, -1, 2]))
    with pytest.raises(GNAdvisorError, match=">= 0"):
        load_data(path)
    np.savez(path, X=np.zeros((3, 2)), y=np.array([0, 1]))
    with pytest.raises(GNAdvisorError, match="3 rows"):
        load_data(path)


# -------------------------------------------------------------------- covariance condition


def test_data_covariance_condition_matches_eigenvalues():
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.normal(size=(50, 50)))
    scales = np.array([10.0, 3.0, 1.0, 0.5])
    X = Q[:, :4] * scales * np.sqrt(50)  # X^T X / n = diag(scales^2)
    X = np.hstack([X, np.zeros((50, 2))])  # two zero features: excluded by the rank rule
    kappa, rank = data_covariance_condition(X, return_rank=True)
    assert rank == 4 and kappa == pytest.approx((10.0 / 0.5) ** 2, rel=1e-10)
    assert data_covariance_condition(torch.from_numpy(X)) == pytest.approx(kappa)
    lam = np.linalg.eigvalsh(X.T @ X / 50)
    assert kappa == pytest.approx(lam[-1] / lam[lam > lam[-1] * 6 * np.finfo(float).eps][0], rel=1e-8)


def test_data_covariance_condition_is_scale_free():
    X = load_data(n_samples=200).X
    assert data_covariance_condition(X * 1e-6) == pytest.approx(data_covariance_condition(X), rel=1e-8)


def test_data_covariance_condition_bad_input_raises():
    with pytest.raises(GNAdvisorError, match="non-zero"):
        data_covariance_condition(np.zeros((3, 2)))
    with pytest.raises(GNAdvisorError, match="finite"):
        data_covariance_condition(np.array([[1.0, np.nan]]))
    with pytest.raises(GNAdvisorError, match="shape"):
        data_covariance_condition(np.ones(3))


def test_dataset_validates_on_construction():
    with pytest.raises(GNAdvisorError, match="float64"):
        Dataset(X=torch.zeros(2, 3, dtype=torch.float32), Y=None, name="x", input_shape=(3,))
    with pytest.raises(GNAdvisorError, match="input_shape"):
        Dataset(X=torch.zeros(2, 3, dtype=torch.float64), Y=None, name="x", input_shape=(4,))


# ---------------------------------------------------------------------------------- targets_file


def _digits_raw() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.asarray(load_digits().data, dtype=np.float64) / 16.0


def test_targets_file_rows_follow_the_subsample(tmp_path):
    # targets that are a function of the inputs: whatever rows the subsample picks, Y must equal X @ A
    A = np.random.default_rng(3).normal(size=(64, 3))
    path = tmp_path / "t.npy"
    np.save(path, _digits_raw() @ A)
    ds = load_data("digits", n_samples=40, seed=5, targets_file=path)
    assert ds.Y.shape == (40, 3) and ds.n_classes is None
    np.testing.assert_allclose(ds.Y.numpy(), ds.X.numpy() @ A, rtol=0, atol=1e-12)
    assert any("t.npy" in note for note in ds.notes)
    # with reshaping to images the rows still match
    ds = load_data("digits", n_samples=7, input_shape=(1, 8, 8), targets_file=path)
    np.testing.assert_allclose(ds.Y.numpy(), ds.X.reshape(7, 64).numpy() @ A, atol=1e-12)


def test_targets_file_formats(tmp_path):
    X = np.random.default_rng(0).normal(size=(5, 3))
    np.save(tmp_path / "x.npy", X)
    Yv = X[:, :2] * 3.0
    labels = np.array([2, 0, 1, 2, 0])
    np.savez(tmp_path / "a.npz", Y=Yv)
    np.savez(tmp_path / "single.npz", whatever=Yv)
    torch.save(torch.from_numpy(Yv), tmp_path / "t.pt")
    torch.save({"y": torch.from_numpy(labels)}, tmp_path / "d.pt")
    (tmp_path / "h.csv").write_text("u,v\n" + "\n".join(f"{a},{b}" for a, b in Yv) + "\n")
    (tmp_path / "lab.csv").write_text("\n".join(str(v) for v in labels) + "\n")
    for name in ("a.npz", "single.npz", "t.pt", "h.csv"):
        ds = load_data(tmp_path / "x.npy", targets_file=tmp_path / name)
        np.testing.assert_allclose(ds.Y.numpy(), Yv, rtol=1e-15, err_msg=name)
    for name in ("d.pt", "lab.csv"):
        ds = load_data(tmp_path / "x.npy", targets_file=tmp_path / name)
        assert np.array_equal(ds.Y.numpy(), np.eye(3)[labels]) and ds.n_classes == 3, name
    # replaces the source's own targets; synthetic data takes one row per generated sample
    np.savez(tmp_path / "xy.npz", X=X, Y=np.zeros((5, 4)))
    assert np.allclose(load_data(tmp_path / "xy.npz", targets_file=tmp_path / "a.npz").Y.numpy(), Yv)
    ds = load_data("synthetic", n_samples=5, input_dim=3, targets_file=tmp_path / "t.pt")
    np.testing.assert_allclose(ds.Y.numpy(), Yv)


def test_targets_file_errors_are_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((6, 2)))
    np.save(tmp_path / "short.npy", np.zeros((5, 2)))
    (tmp_path / "bad.npy").write_bytes(b"\x00 not numpy \xff" * 5)
    (tmp_path / "text.csv").write_text("a\nhello\nx\ny\nz\nw\n")
    np.savez(tmp_path / "two.npz", a=np.zeros((6, 1)), b=np.zeros((6, 1)))
    np.save(tmp_path / "cube.npy", np.zeros((6, 2, 2)))
    (tmp_path / "t.txt").write_text("1")
    cases = [
        ("short.npy", r"one row per sample of x\.npy \(6 rows.*got 5"),
        ("bad.npy", "could not be read as .npy"),
        ("text.csv", "must be numeric"),
        ("two.npz", "named 'Y'"),
        ("cube.npy", "1-D or 2-D"),
        ("t.txt", "must end in"),
        ("missing.npy", "does not exist"),
    ]
    for name, pattern in cases:
        with pytest.raises(GNAdvisorError, match=pattern) as info:
            load_data(tmp_path / "x.npy", targets_file=tmp_path / name)
        assert "\n" not in str(info.value), name
    with pytest.raises(GNAdvisorError, match="not both"):
        load_data(tmp_path / "x.npy", targets="onehot", targets_file=tmp_path / "short.npy")
    with pytest.raises(GNAdvisorError, match=r"1797 rows"):
        load_data("digits", n_samples=10, targets_file=tmp_path / "short.npy")
