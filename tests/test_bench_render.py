"""The committed benchmark tables and docs/benchmarks.md are exactly what the current code
renders from the committed JSON: a refactor of the report code cannot silently change a
published number or table, and a hand edit of a table is caught."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _collect():
    spec = importlib.util.spec_from_file_location("collect_benchmarks",
                                                  ROOT / "tools" / "collect_benchmarks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _renderer(stem: str):
    from tinysift.bench.condense import condense_markdown
    from tinysift.bench.device_report import device_markdown
    from tinysift.bench.guided_report import guided_markdown
    from tinysift.bench.report import prune_markdown

    for prefix, render in (("prune_", prune_markdown), ("condense_", condense_markdown),
                           ("guided_", guided_markdown), ("device_new-classes_", device_markdown),
                           ("device_shift_", device_markdown)):
        if stem.startswith(prefix):
            return render
    return None


@pytest.mark.parametrize("path", [p for p in sorted(RESULTS.glob("*.json"))
                                  if _renderer(p.stem) is not None], ids=lambda p: p.stem)
def test_table_rerenders_identical(path):
    render = _renderer(path.stem)
    assert render(json.loads(path.read_text())) == path.with_suffix(".md").read_text()


def test_benchmarks_doc_rerenders_identical():
    assert _collect().benchmarks_doc() == (ROOT / "docs" / "benchmarks.md").read_text()


def test_readme_results_block_is_generated():
    """The README's numbers are the tool's rendering of the committed results, not typed."""
    collect = _collect()
    text = (ROOT / "README.md").read_text()
    block = collect.README_START + text.split(collect.README_START, 1)[1].split(
        collect.README_END, 1)[0] + collect.README_END
    assert block == collect.readme_summary()


def test_stale_params_reads_the_bench_overrides(tmp_path, monkeypatch):
    """A method run with the bench's own ``--method-params`` is current, not stale; records
    of the plain defaults are stale against those overrides, and the notice names both."""
    from tinysift.selection import make_method

    collect = _collect()
    monkeypatch.setattr(collect, "RESULTS", tmp_path)
    (tmp_path / "progress").mkdir()
    stem = "prune_digits"
    (tmp_path / f"{stem}.json").write_text(json.dumps(
        {"config": {"method_params": {"vq": {"per_codeword": 2}}}}))
    log = tmp_path / "progress" / f"{stem}_0123456789ab.jsonl"

    def record(method: str, **params) -> str:
        return json.dumps({"method": method, "params": make_method(method, **params)
                           .plain_params()})

    log.write_text(record("vq", per_codeword=2) + "\n" + record("random") + "\n")
    assert collect.stale_params(stem) == {}
    log.write_text(record("vq") + "\n")
    assert collect.stale_params(stem) == {"vq": {"per_codeword": (4, 2)}}
    assert "per_codeword=4, now 2" in " ".join(collect.stale_notice(stem))
