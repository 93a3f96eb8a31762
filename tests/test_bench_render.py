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


@pytest.mark.parametrize("path", sorted(RESULTS.glob("prune_*.json"))
                         + sorted(RESULTS.glob("condense_*.json")), ids=lambda p: p.stem)
def test_table_rerenders_identical(path):
    from tinysift.bench.condense import condense_markdown
    from tinysift.bench.report import prune_markdown

    render = prune_markdown if path.stem.startswith("prune_") else condense_markdown
    assert render(json.loads(path.read_text())) == path.with_suffix(".md").read_text()


def test_benchmarks_doc_rerenders_identical():
    assert _collect().benchmarks_doc() == (ROOT / "docs" / "benchmarks.md").read_text()
