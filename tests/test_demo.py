"""The main job end to end (quick mode: digits on the emulated Cortex-M4) and its report."""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
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
    """The device learns the new classes; a replay set keeps the old ones; without one the
    device forgets them. Every point has energy and a RAM plan."""
    out, stdout = demo
    summary = json.loads((out / "summary.json").read_text())
    res = summary["results"]
    pts = res["points"]
    assert {p["method"] for p in pts.values()} == {"none", "random", "herding", "vq"}
    floor = pts["none:0:head"]
    assert floor["acc_old"] < 0.3
    for p in pts.values():
        assert p["energy_mj"] > 0 and p["ram_plan"] > 0
        if p["method"] != "none":
            assert p["acc_old"] > floor["acc_old"] + 0.5
            assert p["acc_new"] > 0.5 and p["acc_mean"] > 0.85
    assert res["joint"]["acc_mean"] > 0.9
    fits = summary["plans"]["largest_replay_per_class_fitting"]
    assert fits["board"] == "nano33ble" and fits["by_update"]["head"] >= 10
    assert "Best replay" in summary["headline"] and "Best replay" in stdout


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


def _group(pgid: int) -> list[str]:
    """The processes of process group ``pgid`` (pid, state and name, from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            name, fields = rest.rsplit(") ", 1)
        except (OSError, ValueError):
            continue  # gone meanwhile
        state, _ppid, group = fields.split()[:3]
        if int(group) == pgid:
            found.append(f"{pid} {state} {name}")
    return found


def test_killed_demo_resumes_from_its_cache(demo):
    """A demo killed (SIGKILL to its whole process group) while a device run is in flight
    resumes: the rerun re-runs no stage and no finished device run, redoes the killed one
    (vq at 10 per class: its progress line and run folder removed first, so that the kill
    lands inside it) and gives the same numbers as the uninterrupted demo."""
    import os
    import signal
    import time

    out, _ = demo
    base = out / "work" / "device_new-classes_digits-s0" / "base"
    before = json.loads((base / "manifest.json").read_text())["stages"]
    summary = json.loads((out / "summary.json").read_text())
    (plog,) = (out / "progress").glob("device_*.jsonl")
    lines = plog.read_text().splitlines()
    kept = [ln for ln in lines if not ('"method": "vq"' in ln and '"point": "10:head"' in ln)]
    assert len(kept) == len(lines) - 1, "the demo logged vq at 10 per class once"
    plog.write_text("\n".join(kept) + "\n")
    victims = [d for d in (base / "device").iterdir() if d.is_dir() and "vq" in d.name
               and "10" in d.name]
    assert len(victims) == 1, sorted(d.name for d in (base / "device").iterdir())
    victim = victims[0]
    shutil.rmtree(victim)
    results = sorted((base / "device").glob("*/results.json"))
    stamps = {p: p.stat().st_mtime_ns for p in results}
    proc = subprocess.Popen([sys.executable, "-m", "tinysift.cli.app", "demo", "--quick",
                             "--out", str(out)], cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 600
        while not list(victim.glob("*.jsonl")):  # the device run has started logging
            assert proc.poll() is None and time.monotonic() < deadline, "no device run"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    killed = victim / "results.json"
    assert not killed.exists() or json.loads(killed.read_text())["status"] != "complete"
    assert len(plog.read_text().splitlines()) == len(kept)  # nothing logged for the victim
    from tinysift.bench.adapt_demo import AdaptDemoConfig, run_adapt_demo
    from tinysift.errors import RunBusy

    # One CI run on a loaded machine met RunBusy here, the killed demo named as the holder.
    # The likeliest holder, a forked child sharing the lock's open file, no longer keeps it
    # (runs._drop_held_in_child; tests/test_runs.py); the cause was never reproduced, so the
    # rerun still waits a while for a lock held past proc.wait(), and names who holds it.
    deadline = time.monotonic() + 60
    while True:
        try:
            again = run_adapt_demo(AdaptDemoConfig.quick().override(out=str(out)),
                                   log=lambda *_: None)
            break
        except RunBusy:
            assert time.monotonic() < deadline, (
                f"the killed demo's lock is still held; its group: {_group(proc.pid)}")
            time.sleep(0.2)
    after = json.loads((base / "manifest.json").read_text())["stages"]
    for stage in ("train", "quantize", "export"):
        assert after[stage]["started"] == before[stage]["started"]  # not re-run
    assert results and all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    assert json.loads(killed.read_text())["status"] == "complete"
    point = "vq:10:head"
    assert again["results"]["points"][point]["acc_mean"] == summary["results"]["points"][
        point]["acc_mean"]
    assert again["headline"] == summary["headline"]


def test_pipeline_toml_and_overrides(tmp_path):
    from tinysift.bench.adapt_demo import AdaptDemoConfig

    demo = AdaptDemoConfig.from_toml(ROOT / "pipelines" / "demo.toml")
    assert demo == AdaptDemoConfig()  # the file says what `tinysift demo` does
    cfg = PipelineConfig.from_toml(ROOT / "pipelines" / "select.toml")
    assert cfg.dataset == "fashion-mnist" and cfg.budgets == [50, 150, 500]
    cfg2 = cfg.override(dataset="digits", epochs=3)
    assert cfg2.dataset == "digits" and cfg2.epochs == 3 and cfg2.board == cfg.board
    bad = tmp_path / "bad.toml"
    bad.write_text('datasett = "digits"\n')
    with pytest.raises(TinysiftError, match="unknown pipeline settings"):
        PipelineConfig.from_toml(bad)
    with pytest.raises(TinysiftError, match="budgets"):
        cfg.override(budgets=[0])


def _pipeline_file(kind: str, folder: Path) -> Path:
    """A pipeline path read_toml cannot read: ``missing``, a ``folder``, bytes that are
    ``not utf-8`` (Latin-1), or a regular file whose ``read error`` is the kernel's (root
    reads any mode bits, so no chmod)."""
    if kind == "missing":
        return folder / "typo.toml"
    if kind == "folder":
        return folder
    if kind == "not utf-8":
        (folder / "latin1.toml").write_bytes(b'name = "caf\xe9"\n')
        return folder / "latin1.toml"
    if not Path("/proc/self/mem").is_file():
        pytest.skip("no /proc/self/mem here")
    return Path("/proc/self/mem")  # EIO at offset 0


@pytest.mark.parametrize("kind, said", [
    ("missing", "pipeline file {p} not found"),
    ("folder", "pipeline file {p} is a folder; pass a .toml file"),
    ("not utf-8", "{p} is not valid TOML"),
    ("read error", "pipeline file {p} cannot be read (Input/output error)"),
])
def test_a_pipeline_file_that_cannot_be_read_is_one_error(tmp_path, kind, said):
    """read_toml: a missing file, a folder, bytes that are not UTF-8 and a failing read are
    each one TinysiftError naming the file (not a FileNotFoundError, IsADirectoryError,
    UnicodeDecodeError or OSError from the reader)."""
    from tinysift.pipeline.config import read_toml

    path = _pipeline_file(kind, tmp_path)
    with pytest.raises(TinysiftError, match=re.escape(said.format(p=path))):
        read_toml(path)


def test_select_pipeline_device_settings_are_the_trainings():
    """The select pipeline's on-device training: its epochs, lr, momentum, batch and head
    init, and the device seed seed + 1 (as adapt's and the benches')."""
    from tinysift.device.session import TrainParams

    cfg = PipelineConfig(epochs=4, lr=0.2, momentum=0.5, batch=8, seed=6, head_init="export")
    assert cfg.device_params() == TrainParams(epochs=4, lr=0.2, momentum=0.5, batch=8, seed=7,
                                              init="export")


@pytest.mark.parametrize("summary, kind, theirs", [
    ({"rows": []}, "adapt", "a select"),          # a select summary from before `kind`
    ({"results": {}, "plans": {}}, "select", "an adapt"),
    ({"kind": "adapt", "rows": []}, "select", "an adapt"),  # the recorded kind decides
    ({"results": {}}, "select", None),            # neither kind's fields: nothing to keep
    ({}, "adapt", None),
    ([], "adapt", None),                          # not a summary at all
    ({"kind": "select"}, "select", None),
])
def test_report_folder_kind_is_recorded_or_told_by_its_fields(tmp_path, summary, kind, theirs):
    """check_report_folder refuses only a summary of the other kind: its ``kind``, else an
    adapt one's ``results`` and ``plans`` or a select one's ``rows``; a summary of neither
    (or not a table) is nothing to keep."""
    from tinysift.pipeline.config import check_report_folder

    (tmp_path / "summary.json").write_text(json.dumps(summary))
    if theirs is None:
        check_report_folder(tmp_path, kind)
    else:
        with pytest.raises(TinysiftError, match=f"holds the report of {theirs} pipeline"):
            check_report_folder(tmp_path, kind)


def test_pipeline_settings_out_of_range_are_refused_before_any_stage():
    """Each setting a stage would refuse late (after the base model trained) or crash on
    (no budgets: max() of nothing; no methods: a headline of no pruned row) is one clear
    refusal naming it; the edges of the ranges are accepted."""
    cfg = PipelineConfig(dataset="digits")
    for bad, words in (({"budgets": []}, "budgets must be positive"),
                       ({"epochs": 0}, "epochs must be >= 1"),
                       ({"methods": []}, "methods must name at least one"),
                       ({"methods": ["random", "random"]}, "names a method twice"),
                       ({"out": "  "}, "out must name the run folder"),
                       ({"base_keep": "0.0"}, r"base_keep must be a fraction in \(0, 1\]"),
                       ({"seed": 2**31}, r"seed must be a whole number in \[0, 2147483647\]"),
                       # `run` starts its board in QEMU: a real one failed after the base model
                       ({"board": "nucleo_f401re"}, "nucleo_f401re is a real board"),
                       ({"board": "bogus"}, "unknown board 'bogus'"),
                       # the file's own words, not the device's later "init 'random'"
                       ({"head_init": "random"}, "head_init must be 'zero' or 'export'"),
                       # a count of 0 is no subset; true is no text (not base_keep "True")
                       ({"base_keep": "0"}, r"base_keep must be a fraction in \(0, 1\]"),
                       ({"base_keep": True}, "pipeline setting base_keep must be a string"),
                       # the constructor's own range, and the seed that is the pipeline's
                       ({"method_params": {"vq": {"window": 5}}},
                        r"method_params\.vq: window must be a fraction in \(0, 1\]"),
                       ({"method_params": {"vq": {"seed": 3}}},
                        r"vq has no setting seed \(the pipeline's seed is every method's\)")):
        with pytest.raises(TinysiftError, match=words):
            cfg.override(**bad)
    edges = cfg.override(budgets=[1], epochs=1, base_keep="1.0", seed=2**31 - 1)
    # base_keep against the data: a class-balanced subset needs a sample of every class
    with pytest.raises(TinysiftError, match=r"base_keep = '9' keeps 9 of 1437 samples, fewer "
                                            r"than the 10 classes"):
        edges.override(base_keep="9").check_base_keep_holds(1437, 10)
    edges.override(base_keep="10").check_base_keep_holds(1437, 10)


def test_the_select_headline_names_the_best_and_the_smallest_close_set():
    """The report's headline: the best pruned set by accuracy (fewer samples on a tie), its
    energy saving against the full exported set, and the smallest set within one point of
    the full set (the more accurate one on a tie); no saving is "no less", and without a
    set within one point that sentence is left out."""
    from tinysift.pipeline.run import headline

    def row(method: str, samples: int, acc: float, mj: float) -> dict:
        return {"method": method, "samples": samples, "acc_after": acc,
                "energy_mj_per_epoch": mj}

    rows = [row("full", 500, 0.900, 10.0), row("flow", 20, 0.870, 0.5),
            row("random", 50, 0.892, 1.0), row("vq", 50, 0.895, 1.0),
            row("flow", 150, 0.910, 3.0), row("vq", 500, 0.910, 10.0)]
    assert headline({"rows": rows}) == (
        "Best pruned set (one seed): flow with 150 samples reaches 0.910 after fine-tuning "
        "(full exported set, 500 samples: 0.900) at 3.000 mJ per epoch instead of 10.000 mJ "
        "(3.3x less). Smallest set within 1 point of the full set: vq with 50 samples (0.895), "
        "10x less energy per epoch.")
    assert headline({"rows": [row("full", 500, 0.95, 1.0), row("random", 50, 0.5, 1.0)]}) == (
        "Best pruned set (one seed): random with 50 samples reaches 0.500 after fine-tuning "
        "(full exported set, 500 samples: 0.950) at 1.000 mJ per epoch instead of 1.000 mJ "
        "(no less).")

    # a set exactly one point below the full set is within it; a point and a half is not
    near = [row("full", 500, 0.900, 10.0), row("vq", 50, 0.900 - 0.01, 1.0),
            row("random", 20, 0.885, 0.5)]
    assert headline({"rows": near}).endswith(
        " Smallest set within 1 point of the full set: vq with 50 samples (0.890), 10x less "
        "energy per epoch.")
    # every row at chance (a base trained too briefly): no best set, no saving (it read
    # "random with 20 samples reaches 0.100 ... (14x less)"); just above chance, the usual
    chance = [row("full", 500, 0.100, 10.0), row("random", 20, 0.100, 0.7)]
    assert headline({"rows": chance, "num_classes": 10}) == (
        "Every set, the full one included, ends at chance (0.100 for 10 classes): the "
        "device's model did not learn (a base model trained too briefly? see the warnings "
        "above), so this run compares no sets.")
    chance[0]["acc_after"] = 0.125
    assert headline({"rows": chance, "num_classes": 10}).startswith("Best pruned set")


def test_a_select_row_is_the_device_s_own_numbers():
    """A row of the select report (summary.json, the table, the Pareto plot) is what its
    device run reported: accuracy before and after fine-tuning and the int8 head's, the
    means over the epochs of cycles, energy and seconds (not one epoch's, not their sum),
    the training bill with the trained samples' share of the features phase, the features
    phase's cycles and the counter; the samples are those the device trained on. A run that
    sent no epoch (stopped early) reads 0 per epoch and its energy as estimated."""
    from tinysift.device.results import DeviceResults, EpochResult, PhaseResult
    from tinysift.pipeline.run import _row

    epochs = [EpochResult(1, 0.9, 0.5, 1000, 0.5, 2.0, "measured"),
              EpochResult(2, 0.6, 0.7, 3000, 1.5, 6.0, "measured")]
    res = DeviceResults(board="qemu-mps2-an386", clock_hz=25_000_000,
                        params={"update": "head"}, energy_model={}, started="",
                        status="complete", counter="dwt", epochs=epochs,
                        phases={"features": PhaseResult(cycles=7000, energy_mj=12.0)},
                        test_acc_before=0.25, test_acc_after=0.75, test_int8_acc_after=0.7,
                        samples=40, test_samples=20)
    assert _row("vq", 50, res) == {
        "method": "vq", "samples": 40, "acc_before": 0.25, "acc_after": 0.75,
        "int8_acc_after": 0.7, "cycles_per_epoch": 2000, "energy_mj_per_epoch": 4.0,
        "energy_mj_total": 2.0 + 6.0 + 12.0 * 40 / 60, "seconds_per_epoch": 1.0,
        "feature_cycles": 7000, "counter": "dwt", "energy_kind": "measured"}
    stopped = DeviceResults(board="qemu-mps2-an386", clock_hz=25_000_000, params={},
                            energy_model={}, started="")
    row = _row("random", 30, stopped)
    assert (row["samples"], row["cycles_per_epoch"], row["energy_mj_per_epoch"],
            row["energy_kind"]) == (30, 0, 0.0, "estimated")


def test_a_pipeline_never_writes_over_another_kinds_report(tmp_path, monkeypatch):
    """A select file without `out` wrote its report into runs/demo, over the demo's (an
    adapt pipeline's); its default folder is its own now, and a folder holding the other
    kind's summary (recorded, or told by its fields for an older one) is refused before any
    work."""
    import tinysift.bench.device
    from tinysift.bench.adapt_demo import AdaptDemoConfig, run_adapt_demo
    from tinysift.pipeline.config import check_report_folder
    from tinysift.pipeline.run import run_pipeline

    assert PipelineConfig().out != AdaptDemoConfig().out
    assert PipelineConfig.quick().out != AdaptDemoConfig.quick().out
    (tmp_path / "summary.json").write_text(json.dumps({"results": {}, "plans": {}}))
    with pytest.raises(TinysiftError, match=r"holds the report of an adapt pipeline.*this "
                                            r"select pipeline would replace it"):
        run_pipeline(PipelineConfig(dataset="digits", out=str(tmp_path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # nothing else

    def no_bench(*a, **k):
        raise AssertionError("ran before refusing")

    monkeypatch.setattr(tinysift.bench.device, "bench_device", no_bench)
    (tmp_path / "summary.json").write_text(json.dumps({"kind": "select", "rows": []}))
    with pytest.raises(TinysiftError, match="holds the report of a select pipeline"):
        run_adapt_demo(AdaptDemoConfig(dataset="digits", out=str(tmp_path)))
    check_report_folder(tmp_path, "select")  # its own kind
    # base_keep against the data, before any work, in the file's words (train said "--keep")
    with pytest.raises(TinysiftError, match=r"base_keep = '1e-9' keeps 1 of 1437 samples, "
                                            r"fewer than the 10 classes"):
        run_pipeline(PipelineConfig(dataset="digits", base_keep="1e-9",
                                    out=str(tmp_path / "bk")))
    assert not (tmp_path / "bk").exists()
    (tmp_path / "summary.json").write_text("{torn")
    check_report_folder(tmp_path, "adapt")  # unreadable: nothing to keep


def test_pipeline_table_settings_read_from_the_file(tmp_path):
    """A table named after a setting is its value, at the top level too (it was flattened
    like a section: `[method_params.flow]` read as an unknown setting `flow`); sections still
    group settings."""
    path = tmp_path / "p.toml"
    path.write_text('dataset = "digits"\n[method_params.flow.flow]\nsteps = 50\n'
                    '[select]\nmethods = ["random", "flow"]\n')
    cfg = PipelineConfig.from_toml(path)
    assert cfg.method_params == {"flow": {"flow": {"steps": 50}}}
    assert cfg.methods == ["random", "flow"] and cfg.dataset == "digits"
    path.write_text('[select]\nmethod_params = {vq = {dim = 16}}\n')
    assert PipelineConfig.from_toml(path).method_params == {"vq": {"dim": 16}}


@pytest.mark.parametrize("setting, said", [
    ("steps = -1", "flow steps must be a whole number >= 0, got -1"),
    ("n_layers = 0", "flow n_layers must be a whole number >= 1, got 0"),
    ("n_layers = 2.5", "flow n_layers must be a whole number >= 1, got 2.5"),
    ("batch = true", "flow batch must be a whole number >= 1, got True"),
    ("learning_rate = 0.0", "flow learning_rate must be a finite number > 0, got 0.0"),
    ("weight_decay = -1e-4", "flow weight_decay must be a finite number >= 0, got -0.0001"),
    ("weight_decay = nan", "flow weight_decay must be a finite number >= 0, got nan"),
])
def test_a_flow_setting_out_of_range_is_refused_when_the_file_is_read(tmp_path, setting, said):
    """`steps = -1` under [method_params.flow.flow] was taken: no flow trained and every
    score came from the untrained one. Each flow setting out of its range is now one line
    naming it when the pipeline file is read; their edges (0 steps: the untrained flows,
    each class's Gaussian; 0 weight decay) are taken."""
    from tinysift.errors import TinysiftError
    from tinysift.scoring.flows import FlowConfig

    path = tmp_path / "p.toml"
    path.write_text(f'dataset = "digits"\n[method_params.flow.flow]\n{setting}\n'
                    '[select]\nmethods = ["flow"]\n')
    with pytest.raises(TinysiftError, match=re.escape(said)):
        PipelineConfig.from_toml(path)
    assert FlowConfig(steps=0, weight_decay=0.0).to_dict()["steps"] == 0


def test_select_pipeline_records_its_data_and_says_what_it_clamps(tmp_path, write_npz):
    """`tinysift run` of a select pipeline end to end on digits (one method, one epoch): the
    summary records the data's content hash beside the seed and config, and a budget above
    the full exported set is said, not silently made the set's size (and does not size the
    device's `db load` buffer: 100,000 was refused as a --db-capacity over 65,535)."""
    from tinysift.boards import load_board
    from tinysift.data import load_dataset
    from tinysift.pipeline.run import run_pipeline
    from tinysift.quantize import tflm
    from tinysift.stages.device import cached_results

    cfg = PipelineConfig(name="t", out=str(tmp_path / "run"), dataset="digits", base_keep="0.1",
                         base_epochs=3, methods=["random"], budgets=[20, 100_000], epochs=1,
                         test_samples=50, proxy_epochs=1)
    said: list[str] = []
    summary = run_pipeline(cfg, log=lambda *a: said.append(" ".join(map(str, a))))
    assert summary["dataset_hash"] == load_dataset("digits").content_hash
    assert summary["seed"] == 0 and summary["config"]["budgets"] == [20, 100_000]
    full = summary["rows"][0]["samples"]
    assert [(r["method"], r["samples"]) for r in summary["rows"]] == [
        ("full", full), ("random", 20), ("random", full)]
    assert any(f"budgets [100000] are larger than the full exported set: {full} samples" in s
               for s in said), said
    # base_epochs = 3 on 144 samples is 6 steps, a model near chance: said as train says it
    assert any(s.startswith("  warning: 144 samples for 3 epochs are 6 optimizer steps")
               for s in said), said
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert saved["dataset_hash"] == summary["dataset_hash"]
    # each stage is said when it starts (no bars here: minutes of silence on larger data)
    starts = [s for s in said if s.endswith(" ...")]
    assert starts[:2] == ["train base model ...", "quantize (TFLM check) ..."], said
    assert said.index("train base model ...") < next(
        i for i, s in enumerate(said) if s.startswith("train base model: "))
    # another dataset in the used folder is refused, and its settings are not recorded over
    # the folder's pipeline (summary and manifest disagreed)
    digits = load_dataset("digits")
    other = write_npz("other.npz", x=digits.x_train[:200], y=digits.y_train[:200],
                      x_test=digits.x_test[:50], y_test=digits.y_test[:50])
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    with pytest.raises(TinysiftError):
        run_pipeline(PipelineConfig(**{**cfg.to_dict(), "dataset": other}), log=lambda *a: None)
    assert (tmp_path / "run" / "manifest.json").read_text() == manifest
    # the report beside it, the pipeline recorded in the run folder, the board's clock and
    # the exported test set in the summary
    assert (tmp_path / "run" / "report.html").is_file()
    recorded = json.loads((tmp_path / "run" / "manifest.json").read_text())["pipeline"]
    assert recorded == cfg.to_dict()
    assert (summary["kind"], summary["clock_hz"], summary["test_samples"]) == (
        "select", load_board(cfg.board).clock_hz, 50)
    # each pruned row is the device's training on its selection: the result on record is
    # the one for those samples (as the model takes them) and their own labels
    base = tmp_path / "run" / "base"
    scale, zp = tflm.input_quant((base / "model.tflite").read_bytes())
    for count in (20, full):
        idx = np.load(tmp_path / "run" / "select" / f"random-{count}" / "selection.npz")[
            "indices"]
        chosen = (tflm.quantize_images(digits.x_train[idx], scale, zp), digits.y_train[idx])
        assert cached_results(base, f"random-{count}", cfg.device_params(), cfg.board,
                              train_set=chosen) is not None, count


class _Page(HTMLParser):
    """A report page's table headers and images (alt text, src), as a browser reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[str] = []
        self.images: list[tuple[str, str]] = []
        self._in_th = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            a = dict(attrs)
            self.images.append((a["alt"] or "", a["src"] or ""))
        self._in_th = tag == "th"

    def handle_data(self, data: str) -> None:
        if self._in_th:
            self.headers.append(data)
            self._in_th = False


def _png_size(src: str) -> tuple[int, int]:
    """Width and height of an inlined PNG (``data:image/png;base64,...``), from its IHDR."""
    prefix = "data:image/png;base64,"
    assert src.startswith(prefix), src[:40]
    png = base64.b64decode(src[len(prefix):])
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    return struct.unpack(">II", png[16:24])


def _marker(collection) -> str:
    """Which of the markers "o", "x" and "*" a scatter's collection draws."""
    from matplotlib.markers import MarkerStyle

    path = collection.get_paths()[0]
    for name in ("o", "x", "*"):
        style = MarkerStyle(name)
        want = style.get_path().transformed(style.get_transform())
        if path.vertices.shape == want.vertices.shape and \
                (path.vertices == want.vertices).all():
            return name
    return "?"


def test_an_image_and_a_page_escape_what_they_quote(tmp_path):
    """An image's alt text is escaped and its PNG inlined as base64; a page is UTF-8 with
    its title, content, sorted versions, the escaped machine, the footer and the headless
    image self-check, in that order."""
    from tinysift.report.html import img_tag, write_page

    parsed = _Page()
    parsed.feed(img_tag(b"\x89PNG 1", 'a "b" <c> & d'))
    assert parsed.images == [('a "b" <c> & d', "data:image/png;base64,iVBORyAx")]
    page = write_page(tmp_path / "p.html", "t<1>", "<p>body</p>",
                      {"versions": {"z": "2", "a": "1"}, "machine": "m & <n>"},
                      "the footer").read_text()
    assert page.startswith('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
                           "<title>tinysift report: t&lt;1&gt;</title>")
    body = page[page.index("<body>"):]
    assert body.index("<p>body</p>") < body.index("<h2>Versions and machine</h2>") \
        < body.index("<tr><td>a</td><td>1</td></tr><tr><td>z</td><td>2</td></tr>") \
        < body.index("<p>m &amp; &lt;n&gt;</p>") < body.index("<p>the footer</p>") \
        < body.index('setAttribute("data-images-rendered"')
    assert page.endswith("</script>\n</body></html>\n")


def _adapt_summary() -> dict:
    """A demo summary by hand: no replay, vq at 10 per class (head) and random at 10 (full);
    the RAM plan of the board for two of them, the fit board's verdict for two."""
    def point(method: str, size: int, update: str, acc: float, old: float, new: float,
              mj: float) -> dict:
        return {"method": method, "size": size, "update": update, "acc_mean": acc,
                "acc_std": 0.0, "acc_old": old, "acc_new": new, "energy_mj": mj}

    points = [point("vq", 10, "head", 0.8123, 0.7, 0.95, 40.04),
              point("none", 0, "head", 0.5, 0.0996, 0.9, 12.31),
              point("random", 10, "full", 0.75, 0.6, 0.85, 1234.5)]
    plan = {"flash": {"model": 150_000, "replay": 30_000}, "ram": {"arena": 50_000},
            "flash_capacity": 1_048_576, "ram_capacity": 262_144, "board": "nano33ble"}
    return {"name": "demo", "command": "tinysift demo --quick", "headline": "Best replay: vq.",
            "seed": 7, "wall_seconds": 61.4, "versions": {"tinysift": "1.0", "numpy": "2.0"},
            "machine": {"cpus": 2},
            "config": {"board": "qemu-m4", "fit_board": "nano33ble", "steps": 30,
                       "schedule": "cosine", "seed": 7},
            "results": {"points": {f"{p['method']}:{p['size']}:{p['update']}": p
                                   for p in points},
                        "sizes": [0, 10], "updates": ["head", "full"],
                        "methods": ["none", "vq", "random"], "seeds": 1,
                        "scenario": "new-classes", "dataset": "digits", "board": "qemu-m4",
                        "scenario_info": {"description": "Digits 0-7, then 8 & 9"},
                        "config": {"test_per_class": 20},
                        "joint": {"acc_mean": 0.97, "acc_old": 0.96, "acc_new": 0.99}},
            "plans": {"new_samples": 40, "detail": plan,
                      "boards": {"qemu-m4": {"10:head": {"ram_total": 123_456},
                                             "0:head": {"ram_total": 1_000}},
                                 "nano33ble": {"10:head": {"fits": True},
                                               "0:head": {"fits": False}}},
                      "largest_replay_per_class_fitting": {
                          "board": "nano33ble", "by_update": {"head": 50, "full": 5}}}}


def test_the_demo_reports_table_by_hand():
    """The demo report's table, cell by cell: sorted by update, size, method; accuracies to
    three places, the board's RAM plan in bytes and the fit board's verdict, "-" where a
    point has no plan."""
    from tinysift.report.adapt import headers, rows

    assert headers(_adapt_summary()) == [
        "replay", "per old class", "update", "all", "old", "new", "mJ (est.)",
        "RAM plan on the board", "fits nano33ble"]
    assert rows(_adapt_summary()) == [
        ["random", 10, "full", "0.750", "0.600", "0.850", "1234.5", "-", "-"],
        ["none", 0, "head", "0.500", "0.100", "0.900", "12.3", "1,000 B", "no"],
        ["vq", 10, "head", "0.812", "0.700", "0.950", "40.0", "123,456 B", "yes"]]


def test_the_demo_table_lists_the_replay_methods_of_one_size_by_name() -> None:
    """Rows of one update mode and replay size come in the order of their method's name
    (herding, random, vq), whatever order the results hold them in: the table reads the
    same from run to run."""
    from tinysift.report.adapt import rows

    summary = _adapt_summary()
    points = summary["results"]["points"]
    for method in ("random", "herding"):
        points[f"{method}:10:head"] = points["vq:10:head"] | {"method": method}
    assert [row[:3] for row in rows(summary)] == [
        ["random", 10, "full"], ["none", 0, "head"], ["herding", 10, "head"],
        ["random", 10, "head"], ["vq", 10, "head"]]


def test_the_demo_report_page_by_hand(tmp_path, kept_figures):
    """The demo's HTML page states the joint model's accuracies, the largest replay set
    that fits per update mode, the steps, the test samples per class and the seed, escapes
    what it quotes, and inlines its four plots: accuracy against energy per point, and old
    and new classes' accuracy without replay and at the largest replay set."""
    from tinysift.report.adapt import write_adapt_report

    summary = _adapt_summary()
    summary["command"] = "tinysift demo --out 'a<b'"
    summary["headline"] = "Best replay: vq <10>."
    # vq at 5 per class too: a second point of vq (head), one entry in the legend
    summary["results"]["points"]["vq:5:head"] = {
        "method": "vq", "size": 5, "update": "head", "acc_mean": 0.7, "acc_std": 0.0,
        "acc_old": 0.6, "acc_new": 0.9, "energy_mj": 30.0}
    page = write_adapt_report(summary, tmp_path / "report.html").read_text()
    _, energy, bars, memory = kept_figures
    (ax,) = energy.axes
    assert [tuple(float(v) for v in c.get_offsets()[0]) for c in ax.collections] == [
        (40.04, 0.8123), (12.31, 0.5), (1234.5, 0.75), (30.0, 0.7)]
    # marker area 20 + 3 x replay per class; no replay a cross
    assert [float(c.get_sizes()[0]) for c in ax.collections] == [50.0, 20.0, 50.0, 35.0]
    assert [_marker(c) for c in ax.collections] == ["o", "x", "o", "o"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "vq (head)", "none (head)", "random (full)", "host joint model"]
    assert [float(ln.get_ydata()[0]) for ln in ax.get_lines()] == [0.97]
    (ax,) = bars.axes
    # none at 0 and vq at 10 (the largest size), head (the first update): old, then new
    assert [round(p.get_height(), 6) for p in ax.patches] == [0.0996, 0.7, 0.9, 0.95]
    # old left of each tick, new right of it
    assert [round(p.get_x() + p.get_width() / 2, 6) for p in ax.patches] == [
        -0.2, 0.8, 0.2, 1.2]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["none\n0/class", "vq\n10/class"]
    assert [float(ln.get_ydata()[0]) for ln in ax.get_lines()] == [0.96, 0.99]
    assert ax.get_title().startswith("Old vs new classes at 10 replay samples per class")
    assert ("Host\njoint model (upper bound): all 0.970, old\n0.960, new 0.990.") in page
    assert "for 30 steps (cosine learning rate" in page and "up to\n20 test samples" in page
    assert ("On nano33ble (the memory plan, replay\nset in flash, 40 new samples streamed "
            "into RAM) the largest\nreplay set that fits: update=head: 50 per class, "
            "update=full: 5 per class.") in page
    assert "<th>fits nano33ble</th>" in page
    assert ("<tr><td>none</td><td>0</td><td>head</td><td>0.500</td><td>0.100</td>"
            "<td>0.900</td><td>12.3</td><td>1,000 B</td><td>no</td></tr>") in page
    assert "<pre>tinysift demo --out &#x27;a&lt;b&#x27;</pre>" in page
    assert "<p>Digits 0-7, then 8 &amp; 9. The base model" in page
    assert "<p>Best replay: vq &lt;10&gt;. On nano33ble" in page
    # the plan's scale: flash 180,000 B x 1.15 = 207,000 B, and the RAM's capacity (256 KB,
    # within twice that) x 1.05: 268.8 KB; the flash's 1 MB is named instead
    (mem,) = memory.axes
    assert [round(x, 6) for x in mem.get_xlim()] == [0.0, 268.8]
    red = [ln for ln in mem.get_lines() if ln.get_color() == "red"]
    assert len(red) == 1 and list(red[0].get_xdata()) == [256.0, 256.0]
    assert mem.get_title() == ("Memory plan on nano33ble (capacity off the scale: flash "
                               "1,024 KB)")
    assert "<tr><td>numpy</td><td>2.0</td></tr><tr><td>tinysift</td><td>1.0</td></tr>" in page
    assert "Seed 7. Wall time 61 s." in page
    assert page.count('<img alt="') == 4


def test_the_demo_plots_name_their_axes_and_draw_each_method_in_its_colour(
        tmp_path: Path, kept_figures: list) -> None:
    """The demo page's accuracy against energy: each point in its method's colour (the one
    colour a method has in every plot), labelled with its replay per class, the axes named
    with their units (the energy estimated, the marker size the replay). Its old and new
    classes' bars: no replay, then each method at the largest replay size by name, old and
    new named in the legend, the accuracy axis named."""
    from matplotlib.colors import to_hex

    from tinysift.report.adapt import write_adapt_report
    from tinysift.report.plots import COLORS

    summary = _adapt_summary()
    # herding at 10 per class too: after no replay (size 0), before vq (by name)
    summary["results"]["points"]["herding:10:head"] = {
        "method": "herding", "size": 10, "update": "head", "acc_mean": 0.78,
        "acc_std": 0.0, "acc_old": 0.65, "acc_new": 0.92, "energy_mj": 41.0}
    write_adapt_report(summary, tmp_path / "report.html")
    _, energy, bars, _ = kept_figures
    (ax,) = energy.axes
    assert [to_hex(c.get_edgecolor()[0]) for c in ax.collections] == [
        COLORS["vq"], COLORS["none"], COLORS["random"], COLORS["herding"]]
    assert [t.get_text() for t in ax.texts] == ["10", "0", "10", "10"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "on-device training energy, mJ (estimated; marker size: replay per class)",
        "test accuracy, all classes (int8)", "Accuracy against energy")
    (ax,) = bars.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "none\n0/class", "herding\n10/class", "vq\n10/class"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["old classes",
                                                                  "new classes"]
    assert ax.get_ylabel() == "test accuracy (int8, on the device)"


def test_the_demo_page_names_its_plots_and_escapes_the_boards_it_names(tmp_path: Path) -> None:
    """The demo page's title is the run's name; its heading and the sentence on what fits
    name the boards escaped (a user's board profile may be named anything); its four plots
    are inlined in order, each with alt text saying what it shows, the replay plot one
    6-inch panel per update mode."""
    from tinysift.report.adapt import write_adapt_report

    summary = _adapt_summary()
    summary["name"] = "demo <1>"
    summary["config"] |= {"board": "m&m", "fit_board": "b<2>"}
    summary["plans"]["largest_replay_per_class_fitting"]["board"] = "b<2>"
    page = write_adapt_report(summary, tmp_path / "report.html").read_text()
    assert "<title>tinysift report: demo &lt;1&gt;</title>" in page
    assert "<h1>tinysift: learning new classes on m&amp;m</h1>" in page
    assert "<th>fits b&lt;2&gt;</th>" in page and "<p>Best replay: vq. On b&lt;2&gt; (the" in page
    parsed = _Page()
    parsed.feed(page)
    # 110 dpi: two update modes' panels 12 x 4.5 in, the others 6.4 x 4.0 and 9.0 x 3.6 in
    assert [(alt, _png_size(src)) for alt, src in parsed.images] == [
        ("accuracy against replay size per method", (1320, 495)),
        ("accuracy against on-device energy", (704, 440)),
        ("old and new classes per method", (704, 440)),
        ("memory plan against the board", (990, 396))]


def _select_summary() -> dict:
    """A select pipeline's summary by hand: random at 150 and 50 samples (out of order),
    full at 1000; a plan whose flash capacity lies far beyond the use."""
    def row(method: str, samples: int, acc: float, cycles: int, mj: float, total: float,
            seconds: float) -> dict:
        return {"method": method, "samples": samples, "acc_before": 0.5, "acc_after": acc,
                "int8_acc_after": acc - 0.01, "cycles_per_epoch": cycles,
                "energy_mj_per_epoch": mj, "energy_mj_total": total,
                "seconds_per_epoch": seconds}

    plan = {"flash": {"model": 102_400, "data": 0}, "ram": {"arena": 51_200, "features": 20_480,
                                                                "stack": 10_240},
            "flash_capacity": 2_097_152, "ram_capacity": 102_400, "board": "qemu-m4"}
    return {"name": "sel<ect>", "dataset": "d<1>", "board": "b&2", "base_model": "cnn <8>",
            "epochs": 4, "counter": "DWT<c>", "clock_hz": 64_000_000, "test_samples": 300,
            "energy_model": {"supply_v": 3.3, "active_current_ma": 5.0,
                             "source": 'sheet "x"'},
            "rows": [row("random", 150, 0.8, 30_000, 0.3, 1.5, 0.0123),
                     row("random", 50, 0.7, 10_000, 0.1, 0.5, 0.004),
                     row("full", 1000, 0.9, 200_000, 2.0, 10.0, 0.05)],
            "memory_plan": plan, "commands": ["tinysift run --budgets '50,150' > log"],
            "headline": "random at 150 & up", "versions": {"tinysift": "1.0"},
            "machine": "vm & co",
            "seed": 3, "wall_seconds": 12.6}


def test_the_select_report_by_hand(tmp_path, kept_figures):
    """The select pipeline's HTML table row by row (milliseconds per epoch from seconds)
    and its plots' series: accuracy and cost per samples kept, each method sorted by
    samples; the Pareto front of energy against accuracy; the memory plan's items in KB
    stacked per memory, a capacity far beyond the use named in the title."""
    from tinysift.report.html import summary_rows, table_html, write_report
    from tinysift.report.plots import COLORS

    assert summary_rows(_select_summary())[0] == ["random", 150, "0.500", "0.800", "0.790",
                                                  "30,000", "0.300", "1.500", "12.3"]
    assert table_html(["a<b"], [["x&y", 3]]) == ("<table><thead><tr><th>a&lt;b</th></tr>"
                                                 "</thead><tbody><tr><td>x&amp;y</td><td>3"
                                                 "</td></tr></tbody></table>")
    page = write_report(_select_summary(), tmp_path / "report.html").read_text()
    assert "<td>random</td><td>50</td><td>0.500</td><td>0.700</td><td>0.690</td>" \
           "<td>10,000</td><td>0.100</td><td>0.500</td><td>4.0</td>" in page
    assert "<code>DWT&lt;c&gt;</code>" in page and "for\n4 epochs" in page and "at\n64 MHz" in page
    assert "V = 3.3 V, I = 5.0 mA" in page and "on 300 held-out samples" in page
    assert "random at 150 &amp; up" in page and "a base model (cnn &lt;8&gt;)" in page.lower()
    assert "<pre>tinysift run --budgets &#x27;50,150&#x27; &gt; log</pre>" in page
    assert "Seed 3. Wall time 13 s." in page
    # the user's names escaped where the page quotes them: title (the run's name), heading
    # (dataset on board), energy source, machine
    assert "<title>tinysift report: sel&lt;ect&gt;</title>" in page
    assert "<h1>tinysift: d&lt;1&gt; on b&amp;2</h1>" in page
    assert "mA at\n64 MHz (sheet &quot;x&quot;).</p>" in page and "<p>vm &amp; co</p>" in page
    parsed = _Page()
    parsed.feed(page)
    assert parsed.headers[:9] == [
        "method", "samples", "acc before", "acc after", "int8 acc after", "cycles/epoch",
        "mJ/epoch (est.)", "mJ fine-tune (est.)", "ms/epoch (cycles / clock)"]
    # four PNGs in order, 110 dpi: 6.4 x 4.0 in, the memory plan 9.0 x 3.6 in
    assert [(alt, _png_size(src)) for alt, src in parsed.images] == [
        ("accuracy against samples kept", (704, 440)),
        ("cycles and energy against samples kept", (704, 440)),
        ("Pareto front of accuracy against energy", (704, 440)),
        ("memory plan against the board", (990, 396))]
    accuracy, cost, pareto, memory = kept_figures

    def series(ax) -> dict[str, tuple[list[float], list[float]]]:
        return {ln.get_label(): ([float(x) for x in ln.get_xdata()],
                                 [float(y) for y in ln.get_ydata()])
                for ln in ax.get_lines() if not ln.get_label().startswith("_")}

    assert series(accuracy.axes[0]) == {"random": ([50.0, 150.0], [0.7, 0.8]),
                                        "full": ([1000.0], [0.9])}
    full = next(ln for ln in accuracy.axes[0].get_lines() if ln.get_label() == "full")
    assert (full.get_marker(), full.get_linestyle()) == ("*", "None")  # a star, no line
    cycles_ax, energy_ax = cost.axes
    assert series(cycles_ax)["random cycles"] == ([50.0, 150.0], [10_000.0, 30_000.0])
    assert series(energy_ax)["full energy"] == ([1000.0], [2.0])
    assert cycles_ax.get_ylabel() == "cycles per epoch (DWT<c>)"
    # samples, cycles and energy on log axes
    assert [accuracy.axes[0].get_xscale(), cycles_ax.get_xscale(), cycles_ax.get_yscale(),
            energy_ax.get_yscale(), pareto.axes[0].get_xscale()] == ["log"] * 5
    (front_ax,) = pareto.axes
    assert series(front_ax) == {"Pareto front": ([0.5, 1.5, 10.0], [0.7, 0.8, 0.9])}
    # a step down to the next point's energy only: level until the next point
    assert front_ax.get_lines()[0].get_drawstyle() == "steps-post"
    assert [t.get_text() for t in front_ax.texts] == ["random 150", "random 50", "full 1000"]
    assert [_marker(c) for c in front_ax.collections] == ["o", "o", "*"]
    (mem,) = memory.axes
    bars = [(round(p.get_y() + p.get_height() / 2), p.get_x(), p.get_width())
            for p in mem.patches]
    # flash row 0: model 100 KB (data 0: no bar); RAM row 1: arena 50 KB, then features
    # 20 KB, then stack 10 KB, each starting where the ones before it end
    assert bars == [(0, 0.0, 100.0), (1, 0.0, 50.0), (1, 50.0, 20.0), (1, 70.0, 10.0)]
    assert mem.get_title() == "Memory plan on qemu-m4 (capacity off the scale: flash 2,048 KB)"
    red = [ln for ln in mem.get_lines() if ln.get_color() == "red"]
    # the RAM's capacity (100 KB) on its row
    assert len(red) == 1 and list(red[0].get_xdata()) == [100.0, 100.0]
    assert [round(y, 6) for y in red[0].get_ydata()] == [0.6, 1.4]
    # the scale: 1.15 x the larger use (100 KB), the RAM's capacity x 1.05 (105 KB) within
    assert [round(x, 6) for x in mem.get_xlim()] == [0.0, 115.0]
    assert [t.get_text() for t in mem.get_yticklabels()] == ["flash", "RAM"]
    assert [t.get_text() for t in mem.get_legend().get_texts()] == [
        "flash: model", "ram: arena", "ram: features", "ram: stack"]
    assert len({p.get_facecolor() for p in mem.patches}) == 4
    # one colour per method, none repeated
    assert len(set(COLORS.values())) == len(COLORS)


def test_the_select_plots_name_their_axes_and_draw_each_method_in_its_colour(
        tmp_path: Path, kept_figures: list) -> None:
    """The select report's plots name their axes with their units and have a title, draw
    each method in its one colour (the same in every plot) and name its series in a legend:
    accuracy per samples kept, cycles (left axis) and energy (right) per samples kept, and
    accuracy against energy with the Pareto front."""
    from matplotlib.colors import to_hex

    from tinysift.report.html import write_report
    from tinysift.report.plots import COLORS

    write_report(_select_summary(), tmp_path / "report.html")
    accuracy, cost, pareto, _ = kept_figures
    (ax,) = accuracy.axes
    assert {ln.get_label(): to_hex(ln.get_color()) for ln in ax.get_lines()} == {
        "random": COLORS["random"], "full": COLORS["full"]}
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["random", "full"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "training samples on the device", "test accuracy after on-device fine-tuning",
        "Accuracy against samples kept")
    cycles_ax, energy_ax = cost.axes
    assert {ln.get_label(): to_hex(ln.get_color())
            for ln in cycles_ax.get_lines() + energy_ax.get_lines()} == {
        "random cycles": COLORS["random"], "full cycles": COLORS["full"],
        "random energy": COLORS["random"], "full energy": COLORS["full"]}
    assert [t.get_text() for t in cycles_ax.get_legend().get_texts()] == [
        "random cycles", "full cycles", "random energy", "full energy"]  # both axes' lines
    assert (cycles_ax.get_xlabel(), energy_ax.get_ylabel(), cycles_ax.get_title()) == (
        "training samples on the device", "estimated energy per epoch (mJ)",
        "On-device cost per training epoch")
    (ax,) = pareto.axes
    assert [to_hex(c.get_facecolor()[0]) for c in ax.collections] == [
        COLORS["random"], COLORS["random"], COLORS["full"]]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Pareto front"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == (
        "estimated energy of on-device fine-tuning (mJ)", "test accuracy after fine-tuning",
        "Accuracy against energy")


def test_a_memory_plan_holds_a_capacity_up_to_twice_its_scale_and_names_the_others(
        kept_figures: list) -> None:
    """The memory plan's scale (1.15 x the larger use, the RAM's here) takes in a capacity
    of up to twice it, at exactly twice too, with its red line; a capacity beyond is named
    in the title instead, both where both are; the axis names its unit and what red is."""
    from tinysift.report.plots import memory_plan

    plan = {"flash": {"model": 5_000}, "ram": {"arena": 10_000}, "flash_capacity": 23_000,
            "ram_capacity": 1_048_576, "board": "b"}
    memory_plan({"memory_plan": plan})
    memory_plan({"memory_plan": plan | {"flash_capacity": 2_097_152}})
    at_twice, beyond = (fig.axes[0] for fig in kept_figures)
    # flash's 23,000 B is twice 1.15 x the RAM's 10,000 B: the scale is its 1.05 x
    assert [round(x, 6) for x in at_twice.get_xlim()] == [0.0, round(24_150 / 1024, 6)]
    assert [list(ln.get_xdata()) for ln in at_twice.get_lines() if ln.get_color() == "red"] \
        == [[23_000 / 1024] * 2]
    assert at_twice.get_title() == "Memory plan on b (capacity off the scale: ram 1,024 KB)"
    assert at_twice.get_xlabel() == "KB (red: the board's capacity)"
    assert [round(x, 6) for x in beyond.get_xlim()] == [0.0, round(11_500 / 1024, 6)]
    assert [ln for ln in beyond.get_lines() if ln.get_color() == "red"] == []
    assert beyond.get_title() == ("Memory plan on b (capacity off the scale: flash 2,048 KB, "
                                  "ram 1,024 KB)")


def test_a_single_run_draws_its_pareto_front(kept_figures):
    """One row (a run of the full set only) is its own Pareto front: the front's line holds
    that one point."""
    from tinysift.report.plots import pareto

    row = _select_summary()["rows"][2]  # full at 1000 samples: 10.0 mJ, accuracy 0.9
    assert pareto({"rows": [row]})[:8] == b"\x89PNG\r\n\x1a\n"
    (ax,) = kept_figures[0].axes
    assert [(ln.get_label(), list(ln.get_xdata()), list(ln.get_ydata()))
            for ln in ax.get_lines()] == [("Pareto front", [10.0], [0.9])]


def test_every_selection_method_is_plotted_in_a_colour_of_its_own(kept_figures: list) -> None:
    """Each method a select pipeline can run, and the full set, is drawn in a colour of its
    own: a method without one in the report's colours took matplotlib's next colour, tab10's
    first, vq's (kcenter beside vq: two blue curves, and grand herding's orange)."""
    from matplotlib.colors import to_hex

    from tinysift.report.plots import accuracy_vs_samples
    from tinysift.selection import methods  # noqa: F401  (registers every method)
    from tinysift.selection.base import METHODS

    names = [*sorted(METHODS), "full"]
    accuracy_vs_samples({"rows": [{"method": name, "samples": 100, "acc_after": 0.5}
                                  for name in names]})
    (ax,) = kept_figures[0].axes
    colors = {ln.get_label(): to_hex(ln.get_color()) for ln in ax.get_lines()}
    assert list(colors) == names
    assert len(set(colors.values())) == len(names), colors


def test_the_demo_runs_the_bench_with_every_setting_it_is_given():
    """Each demo setting reaches the device bench it runs (a setting dropped there ran the
    bench's default, with the pipeline file saying otherwise)."""
    from tinysift.bench.adapt_demo import AdaptDemoConfig

    cfg = AdaptDemoConfig(out="elsewhere", dataset="digits", old_classes=[0, 1, 2],
                          new_per_class=7, board="qemu-mps2-an500", seed=4,
                          methods=["herding"], sizes=[3, 4], updates=["bias"], steps=11,
                          lr=0.02, batch=8, schedule="constant", base_epochs=2,
                          test_per_class=9)
    bench = cfg.bench_config()
    assert (bench.scenario, bench.dataset, bench.old_classes, bench.new_per_class,
            bench.board, bench.seed_values(), bench.methods, bench.sizes, bench.updates,
            bench.steps, bench.lr, bench.batch, bench.schedule, bench.base_epochs,
            bench.test_per_class) == (
        "new-classes", "digits", (0, 1, 2), 7, "qemu-mps2-an500", [4], ("herding",), (3, 4),
        ("bias",), 11, 0.02, 8, "constant", 2, 9)
    assert (bench.out_dir, bench.progress_dir, bench.work_dir) == (
        Path("elsewhere"), Path("elsewhere/progress"), Path("elsewhere/work"))
    # a replay size of 0 is the no-replay floor the demo runs anyway, not a size
    with pytest.raises(TinysiftError, match=r"sizes must be positive .* got \[0, 5\]"):
        AdaptDemoConfig.quick().override(sizes=[0, 5]).validate()
    # and no size at all is refused the same way (not min()'s ValueError)
    with pytest.raises(TinysiftError, match=r"sizes must be positive .* got \[\]"):
        AdaptDemoConfig.quick().override(sizes=[]).validate()


def test_the_headline_names_the_smallest_of_equally_good_replay_sets():
    """Of replay points as accurate as each other, the headline names the smallest set (the
    cheaper to keep on the device)."""
    from tinysift.bench.adapt_demo import headline

    def point(method: str, size: int, acc: float) -> dict:
        return {"method": method, "size": size, "update": "head", "acc_mean": acc,
                "acc_old": acc, "acc_new": acc}

    points = {"random:20:head": point("random", 20, 0.9), "herding:5:head":
              point("herding", 5, 0.9), "vq:10:head": point("vq", 10, 0.8),
              "none:0:head": point("none", 0, 0.5)}
    text = headline({"results": {"points": points, "joint": {"acc_mean": 0.95}}})
    assert text.startswith("Best replay: herding with 5 per old class (update=head): all "
                           "0.900"), text
    assert text.endswith("without replay (the forgetting floor) old 0.500, all 0.500.")


def test_the_demo_headline_quotes_each_accuracy_of_its_points():
    """The demo's headline (summary.json, the report, the terminal): the best replay point's
    mode and its accuracy on all, the old and the new classes, the host joint model's, and
    the no-replay floor's old and all accuracy, each from its own field; the floor is no
    replay set even when it scores as well as one (it would win the tie as the smallest)."""
    from tinysift.bench.adapt_demo import headline

    points = {"vq:5:bias": {"method": "vq", "size": 5, "update": "bias", "acc_mean": 0.7,
                            "acc_old": 0.8, "acc_new": 0.4},
              "none:0:head": {"method": "none", "size": 0, "update": "head", "acc_mean": 0.7,
                              "acc_old": 0.1, "acc_new": 0.9}}
    assert headline({"results": {"points": points, "joint": {"acc_mean": 0.95}}}) == (
        "Best replay: vq with 5 per old class (update=bias): all 0.700, old 0.800, new 0.400 "
        "on the device; host joint model 0.950; without replay (the forgetting floor) old "
        "0.100, all 0.700.")


def test_the_demo_writes_its_bench_s_results_plans_and_report(tmp_path, monkeypatch,
                                                               digits_run):
    """run_adapt_demo: the device bench runs with the demo's settings in its pipeline folder,
    and summary.json (recorded as an adapt pipeline's, so a select pipeline will not write
    over it) holds the bench's results, the memory plans for the scenario's new samples
    and old classes and the headline; report.html is written beside it. A class named twice
    in old_classes is one class of the scenario: the plans sized the replay set by the
    list's length (9 classes here for 8). The bench (a base model, QEMU runs:
    minutes) is a double that leaves the shared digits run as its base model and returns
    the hand-made results of the report tests."""
    import tinysift.bench.device
    from tinysift.bench.adapt_demo import AdaptDemoConfig, headline, run_adapt_demo
    from tinysift.pipeline.config import check_report_folder

    cfg = AdaptDemoConfig.quick().override(out=str(tmp_path / "demo"),
                                           old_classes=[0, 1, 2, 3, 4, 5, 6, 7, 3])
    results = _adapt_summary()["results"]
    results["scenario_info"].update(new_samples=60, num_classes=10,
                                    old_classes=list(range(8)), new_classes=[8, 9])
    benched = []

    def bench(bcfg, log, pipeline_folder):
        benched.append((bcfg, pipeline_folder))
        base = bcfg.work_dir / f"{bcfg.stem()}-s0" / "base"
        base.parent.mkdir(parents=True)
        base.symlink_to(digits_run)
        return results

    monkeypatch.setattr(tinysift.bench.device, "bench_device", bench)
    summary = run_adapt_demo(cfg, log=lambda *_: None)
    assert benched == [(cfg.bench_config(), True)]
    saved = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert (saved["kind"], saved["results"], saved["config"]) == (
        "adapt", results, cfg.to_dict())
    assert saved["plans"]["new_samples"] == 60
    assert saved["plans"]["detail"]["train_samples"] == max(cfg.sizes) * 8
    assert sorted(saved["plans"]["boards"]) == sorted([cfg.board, cfg.fit_board])
    assert saved["headline"] == headline(summary)
    assert (tmp_path / "demo" / "report.html").is_file()
    with pytest.raises(TinysiftError, match="holds the report of an adapt pipeline"):
        check_report_folder(tmp_path / "demo", "select")


def test_the_demo_plans_each_replay_size_and_the_largest_that_fits(digits_run):
    """The demo's memory plans (the shared digits run as the base model): each replay size
    and update mode planned on both boards as `tinysift adapt` exports it (size x old classes
    in flash, the new samples' buffer in RAM, the backbone buffers only beyond update=head),
    and the largest replay per class that fits the fit board: it fits there, one more does
    not."""
    from tinysift.bench.adapt_demo import AdaptDemoConfig, _plans
    from tinysift.boards import load_board
    from tinysift.export.memory import plan_memory
    from tinysift.stages.export import run_model_footprint

    cfg = AdaptDemoConfig(dataset="digits", fit_board="nucleo_f411re", sizes=[5, 20],
                          updates=["head", "last-block"], test_per_class=15)
    n_old, n_new, tests = 8, 60, 15 * 10
    plans = _plans(cfg, digits_run, n_old, n_new, 10)
    fp = run_model_footprint(digits_run)

    def plan(board: str, per_class: int, update: str):
        return plan_memory(fp, load_board(board), per_class * n_old, tests, db_capacity=n_new,
                           backbone_training=update != "head")

    for board in (cfg.board, cfg.fit_board):
        for size in cfg.sizes:
            for update in cfg.updates:
                row, want = plans["boards"][board][f"{size}:{update}"], plan(board, size, update)
                assert (row["ram_total"], row["flash_total"], row["fits"]) == (
                    want.ram_total, want.flash_total, want.fits), (board, size, update)
    fitting = plans["largest_replay_per_class_fitting"]
    assert fitting["board"] == "nucleo_f411re"
    for update in cfg.updates:
        most = fitting["by_update"][update]
        assert most > 0 and plan("nucleo_f411re", most, update).fits, update
        assert not plan("nucleo_f411re", most + 1, update).fits, update
    # the backbone's buffers leave less room
    assert fitting["by_update"]["last-block"] < fitting["by_update"]["head"]
    detail = plan(cfg.board, 20, "last-block")
    assert (plans["detail"]["ram_total"], plans["detail"]["train_samples"]) == (
        detail.ram_total, 20 * n_old)
    # a board where not even the new samples fit with the backbone's buffers: 0 a class
    # ("not even one fits"), and a head-only demo's detail plan is the head-only firmware's
    assert not plan_memory(fp, load_board("nucleo_f401re"), 0, tests, db_capacity=n_new,
                           backbone_training=True).fits
    small = AdaptDemoConfig(dataset="digits", fit_board="nucleo_f401re", sizes=[5],
                            updates=["last-block"], test_per_class=15)
    small_plans = _plans(small, digits_run, n_old, n_new, 10)
    assert small_plans["largest_replay_per_class_fitting"]["by_update"] == {"last-block": 0}
    assert small_plans["boards"]["nucleo_f401re"]["5:last-block"]["fits"] is False
    head_only = _plans(AdaptDemoConfig(dataset="digits", sizes=[5], updates=["head"],
                                       test_per_class=15), digits_run, n_old, n_new, 10)
    assert head_only["detail"]["ram_total"] == plan(cfg.board, 5, "head").ram_total
