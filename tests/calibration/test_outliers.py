"""Outlier statistics: the paper's per-sample inf-norm and kurtosis, hooks on RoadNet's named modules."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from calibration.outliers import collect, outliers, per_sample_stats, plot, summary  # noqa: E402


def _numpy_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = x.reshape(len(x), -1).astype(np.float64)
    mu = flat.mean(1, keepdims=True)
    std = flat.std(1, ddof=1)
    return np.abs(flat).max(1), ((flat - mu) ** 4).mean(1) / (std**4 + 1e-6)


def test_per_sample_stats_match_definition():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2, (3, 4, 50, 50)).astype(np.float32)
    x[1, 0, 0, 0] = 300.0  # one huge outlier in sample 1
    inf, kurt = per_sample_stats(torch.from_numpy(x))
    want_inf, want_kurt = _numpy_stats(x)
    np.testing.assert_allclose(inf, want_inf, rtol=1e-6)
    np.testing.assert_allclose(kurt, want_kurt, rtol=1e-6)
    assert abs(kurt[0] - 3.0) < 0.15 and kurt[1] > 100  # Gaussian ~3 (non-excess); an outlier explodes it
    assert inf[1] == 300.0


def test_collect_averages_over_samples_and_splits_heads():
    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head_out = torch.nn.Identity()

        def forward(self, x):
            y = self.stem(x)
            return self.head_out(y.view(len(x), 2, 2, -1))  # (B, heads, d_head, N)

    net = Net()
    rng = np.random.default_rng(1)
    batches = [rng.normal(size=(2, 3, 8, 8)).astype(np.float32) for _ in range(3)]
    stats = collect(net, iter(batches), {"stem out": ("stem", "output"), "stem in": ("stem", "input"), "heads": ("head_out", "heads")})
    assert set(stats) == {"stem out", "stem in", "head 0", "head 1"}
    x = np.concatenate(batches)
    with torch.no_grad():
        y = net.stem(torch.from_numpy(x)).numpy()
    for label, tensor in (("stem in", x), ("stem out", y), ("head 1", y.reshape(6, 2, 2, -1)[:, 1])):
        inf, kurt = _numpy_stats(tensor)
        assert stats[label]["samples"] == 6
        assert stats[label]["inf_norm"] == pytest.approx(inf.mean(), rel=1e-5)
        assert stats[label]["inf_norm_max"] == pytest.approx(inf.max(), rel=1e-5)
        assert stats[label]["kurtosis"] == pytest.approx(kurt.mean(), rel=1e-5)
    headline = summary(stats)
    assert headline["max_inf_norm"] == max(stats["head 0"]["inf_norm"], stats["head 1"]["inf_norm"])
    peak = max(stats, key=lambda k: stats[k]["inf_norm"])
    assert headline["network_max_at"] == peak and headline["network_max_inf_norm"] == stats[peak]["inf_norm"]


def test_outliers_on_a_roadnet_checkpoint(tiny_roadnet, image_dir, tmp_path):
    weights, _ = tiny_roadnet
    result = outliers(weights, [str(image_dir)], n=5, batch=2)
    stats = result["stats"]
    assert result["frames"] == 5 and result["attention"] == "clipped+gated"
    for label in ("attention input", "attention output", "head 0", "head 1", "ffn output", "backbone stage3", "neck top3"):
        assert stats[label]["samples"] == 5, label
    assert "head 2" not in stats  # n size: 2 heads of 64
    assert set(result["summary"]) == {"max_inf_norm", "avg_kurtosis", "max_kurtosis", "network_max_inf_norm", "network_max_at"}
    png = plot({"a": result, "b": result}, tmp_path / "o.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
