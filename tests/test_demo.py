"""The main job end to end (quick mode: digits on the emulated Cortex-M4) and its report."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tinysift.errors import TinysiftError
from tinysift.pipeline.config import PipelineConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "quick"
    r = subprocess.run([sys.executable, "-m", "tinysift.cli.app", "demo", "--quick", "--out",
                        str(out)], capture_output=True, text=True, timeout=1200, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, r.stdout


def test_demo_summary_side_by_side(demo):
    out, stdout = demo
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["rows"]
    methods = {r["method"] for r in rows}
    assert methods == {"full", "random", "vq", "flow"}
    full = next(r for r in rows if r["method"] == "full")
    for r in rows:
        assert r["acc_after"] > r["acc_before"]  # the head is learned on the device
        assert r["cycles_per_epoch"] > 0 and r["energy_mj_per_epoch"] > 0
        if r["method"] != "full":
            assert r["samples"] < full["samples"]
            assert r["energy_mj_per_epoch"] < full["energy_mj_per_epoch"]
    assert summary["counter"] == "systick-icount"
    assert "Best pruned set" in summary["headline"] and "Best pruned set" in stdout


def test_report_renders_every_plot_in_chromium(demo, tmp_path):
    out, _ = demo
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("chromium is not installed (tools/setup.sh installs it)")
    html = (out / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # self-contained
    n_images = html.count("<img ")
    assert n_images == 4
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          (out / "report.html").as_uri()], capture_output=True, text=True,
                         timeout=120)
    m = re.search(r'data-images-rendered="(\d+)"', dom.stdout)
    assert m and int(m.group(1)) == n_images, dom.stderr[-2000:]
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1000,2400",
                    (out / "report.html").as_uri()], capture_output=True, timeout=120)
    assert shot.stat().st_size > 50_000


def test_killed_demo_resumes_from_cache(demo):
    out, _ = demo
    before = json.loads((out / "base" / "manifest.json").read_text())["stages"]
    from tinysift.pipeline.run import run_pipeline

    cfg = PipelineConfig.quick().override(out=str(out))
    run_pipeline(cfg, log=lambda *_: None)
    after = json.loads((out / "base" / "manifest.json").read_text())["stages"]
    for stage in ("train", "quantize", "export"):
        assert after[stage]["started"] == before[stage]["started"]  # not re-run


def test_pipeline_toml_and_overrides(tmp_path):
    cfg = PipelineConfig.from_toml(ROOT / "pipelines" / "demo.toml")
    assert cfg.dataset == "fashion-mnist" and cfg.budgets == [50, 150, 500]
    cfg2 = cfg.override(dataset="digits", epochs=3)
    assert cfg2.dataset == "digits" and cfg2.epochs == 3 and cfg2.board == cfg.board
    bad = tmp_path / "bad.toml"
    bad.write_text('datasett = "digits"\n')
    with pytest.raises(TinysiftError, match="unknown pipeline settings"):
        PipelineConfig.from_toml(bad)
    with pytest.raises(TinysiftError, match="budgets"):
        cfg.override(budgets=[0])
