"""Run folders: atomic writes, manifest, stage caching."""

from __future__ import annotations

import json

import pytest

from tinysift.runs import Run, atomic_write_json


def test_manifest_records_versions_and_stages(tmp_path):
    run = Run(tmp_path / "r")
    with run.stage("demo", {"a": 1}, {"data": "abc"}, seed=7) as rec:
        (run / "out.txt").write_text("x")
        rec["outputs"].append("out.txt")
        rec["results"]["n"] = 3
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["versions"]["tensorflow"].startswith("2.21")
    assert m["stages"]["demo"]["status"] == "done"
    assert m["stages"]["demo"]["seed"] == 7
    key = m["stages"]["demo"]["key"]
    assert Run(tmp_path / "r").is_fresh("demo", key)
    (run / "out.txt").write_text("changed")
    assert not Run(tmp_path / "r").is_fresh("demo", key)


def test_failed_stage_is_not_fresh(tmp_path):
    run = Run(tmp_path)
    with pytest.raises(RuntimeError), run.stage("s", {}, {}):
        raise RuntimeError("boom")
    assert run.stage_info("s")["status"].startswith("failed")
    assert not run.is_fresh("s", run.stage_info("s")["key"])


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    """A write that dies after its bytes are on disk but before they are in place (here:
    fsync fails) leaves the old file whole and no temporary file; while it is in flight, the
    target still holds the old content."""
    import os

    from tinysift import runs

    target = tmp_path / "f.json"
    atomic_write_json(target, {"ok": 1})
    seen = []

    def failing_fsync(fd):
        seen.append((json.loads(target.read_text()), os.fstat(fd).st_size,
                     sorted(p.name for p in tmp_path.iterdir())))
        raise OSError("disk gone")

    monkeypatch.setattr(runs.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk gone"):
        atomic_write_json(target, {"new": "x" * 10_000})
    (old, written, names), = seen
    assert old == {"ok": 1} and written > 10_000  # the new bytes were in another file
    assert len(names) == 2 and "f.json" in names
    assert json.loads(target.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]

