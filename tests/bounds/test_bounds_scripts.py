"""The benchmark and the Fig. 2/3 reproduction script run end to end on tiny settings."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load(relpath: str, name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / relpath)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module          # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_reproduce_fig2_fig3_tiny(tmp_path, capsys):
    script = _load("examples/reproduce_fig2_fig3.py", "reproduce_fig2_fig3")
    rc = script.main(["--out", str(tmp_path), "--max-depth", "2", "--widths", "80",
                      "--seeds", "1", "--width-per-layer", "80"])
    assert rc == 0
    rows = list(csv.DictReader((tmp_path / "fig2_fig3.csv").open()))
    assert len(rows) == 2 * 2          # depths x (1 fixed width + proportional)
    for r in rows:
        assert float(r["lemma2"]) >= float(r["kappa"]) * (1 - 1e-9)
        assert r["lemma2_valid"] == "True" and int(r["rank"]) == 640
    assert (tmp_path / "fig2_fig3.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "kappa grows with depth at fixed width: yes" in out
    assert "both bounds >= kappa everywhere: yes" in out


def test_reproduce_fig2_fig3_rejects_bad_flags(tmp_path):
    script = _load("examples/reproduce_fig2_fig3.py", "reproduce_fig2_fig3")
    with pytest.raises(SystemExit):
        script.main(["--out", str(tmp_path), "--seeds", "0"])


def test_bench_bounds_quick(capsys):
    bench = _load("benchmarks/bench_bounds.py", "bench_bounds")
    assert bench.main(["--quick", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| A-quick | 16 | 128 | 6 | 4 | 64 | lemma2 |" in out
    assert "DISAGREES" not in out and "float64" in out and "numpy" in out
