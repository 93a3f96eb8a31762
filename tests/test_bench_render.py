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
