"""The committed benchmark tables and docs/benchmarks.md are exactly what the current code
renders from the committed JSON: a refactor of the report code cannot silently change a
published number or table, and a hand edit of a table is caught."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools_needed import load_tool

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _collect():
    return load_tool("collect_benchmarks")


def _renderer(stem: str):
    from tinysift.bench.condense import condense_markdown
    from tinysift.bench.device_report import device_markdown
    from tinysift.bench.guided_report import guided_markdown
    from tinysift.bench.report import prune_markdown
    from tinysift.bench.upkeep_report import upkeep_markdown

    for prefix, render in (("prune_", prune_markdown), ("condense_", condense_markdown),
                           ("guided_", guided_markdown), ("device_new-classes_", device_markdown),
                           ("device_shift_", device_markdown), ("upkeep_", upkeep_markdown)):
        if stem.startswith(prefix):
            return render
    return None


@pytest.mark.parametrize("path", [p for p in sorted(RESULTS.rglob("*.json"))
                                  if _renderer(p.stem) is not None],
                         ids=lambda p: str(p.relative_to(RESULTS).with_suffix("")))
def test_table_rerenders_identical(path):
    """Every table, those of the subfolders' reruns and variants included (the docs point to
    them; tools/collect_benchmarks.py rerendered only the top folder's)."""
    render = _renderer(path.stem)
    assert render(json.loads(path.read_text())) == path.with_suffix(".md").read_text()


def test_benchmarks_doc_rerenders_identical():
    assert _collect().benchmarks_doc() == (ROOT / "docs" / "benchmarks.md").read_text()


def test_readme_results_block_is_generated():
    """The README's numbers are the tool's rendering of the committed results, not typed."""
    collect = _collect()
    block = collect.readme_parts((ROOT / "README.md").read_text())[1]
    assert block == collect.readme_summary()
    start, end = collect.README_START, collect.README_END
    for broken in (end + "\n" + start, start + start + end, "no markers", start):
        with pytest.raises(SystemExit, match="needs one <!-- results:start --> and then"):
            collect.readme_parts(broken)
    # an end marker quoted before the block does not end it
    assert collect.readme_parts(f"a {end} b {start}x{end} c") == (f"a {end} b ",
                                                                   f"{start}x{end}", " c")


#: README numbers that are not results: what checks each instead
README_FACTS = {
    "1536.4": "an illustration of the memory plan's refusal, unchecked (its wording is "
              "checked in test_device_stage)",
    "512.4": "the same illustration's overshoot, unchecked",
    "1,152": "BatchNorm's values in the default model (test_models: test_readme_model_cost)",
    "8,746": "its weights and biases with BatchNorm folded (the same test)",
}


def _readme_prose() -> str:
    """The README without its generated block, code blocks and inline code."""
    import re

    head, _, tail = _collect().readme_parts((ROOT / "README.md").read_text())
    prose = head + tail
    prose = re.sub(r"```.*?```", "", prose, flags=re.S)
    return re.sub(r"`[^`]*`", "", prose)


def test_readme_prose_numbers_are_in_generated_results():
    """A number the README's prose quotes (a decimal, a signed difference, a count with
    thousands separators) appears in a generated file: the README's results block,
    docs/benchmarks.md, a results table or results JSON. The prose is typed; this keeps it
    to what the results say, and a rerun that moves a quoted result fails here until the
    prose follows it. A difference with its interval must appear whole; a lone number only
    somewhere (a slip to another printed value, +0.35 to +0.36, is not caught)."""
    import re

    collect = _collect()
    corpus = collect.readme_summary() + (ROOT / "docs" / "benchmarks.md").read_text()
    corpus += "".join(p.read_text() for p in sorted(RESULTS.rglob("*.md")))
    # the demo's summaries (`make demo` on two machines): their headlines, as printed
    corpus += "".join(json.loads(p.read_text())["headline"]
                      for p in sorted((ROOT / "docs").glob("demo-summary*.json")))
    # numbers of the JSON files as the prose writes them: 9610 -> 9,610
    raw = "".join(p.read_text() for p in sorted(RESULTS.rglob("*.json")))
    corpus += " ".join(f"{int(n):,}" for n in set(re.findall(r"(?<![\d.])\d{4,}(?![\d.])", raw)))
    corpus = corpus.replace("\u2212", "-")  # a minus sign is a hyphen, both sides
    # a difference with its interval is one quote (sign, mean and half-width as printed);
    # a signed number keeps its sign
    found = re.findall(r"(?<![\w.])[+-]?\d+\.\d+ ± \d+\.\d+"
                       r"|(?<![\w.])[+-]?\d+(?:[.,]\d+)+|(?<![\w.])[+-]\d+(?![\w.])",
                       _readme_prose().replace("\u2212", "-"))
    assert len(found) > 40  # the prose still quotes results (the pattern still finds them)
    # the whole number: "+3" is not the front of "+3.15"
    missing = sorted({n for n in found
                      if n.lstrip("+-") not in README_FACTS
                      and not re.search(r"(?<![\d.])" + re.escape(n) + r"(?!\.?\d)", corpus)})
    assert not missing, f"README prose numbers found in no generated file: {missing}"


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


def test_stale_params_of_a_guided_bench_in_a_subfolder(tmp_path, monkeypatch):
    """A guided bench's log beside its results (a subfolder's progress/): records of an
    earlier default are named, a --rerun marker, a wall time and a torn line are skipped,
    and a record of the current parameters makes the method current again."""
    from tinysift.guided import sampler_params

    collect = _collect()
    monkeypatch.setattr(collect, "RESULTS", tmp_path)
    (tmp_path / "sub" / "progress").mkdir(parents=True)
    stem = "sub/guided_digits"
    (tmp_path / f"{stem}.json").write_text(json.dumps({"config": {"method_params": {}}}))
    old = {k: v for k, v in sampler_params("flow").items() if k != "priority_rule"}
    lines = [json.dumps({"seed": 0, "method": "full", "budget": "1", "params": {}}),
             json.dumps({"seed": 0, "method": "flow", "budget": "0.5", "params": old}),
             json.dumps({"forget": ["flow"]}),
             json.dumps({"seed": 0, "method": "_wall", "budget": "seed", "seconds": 1.0}),
             '{"seed": 0, "meth']
    log = tmp_path / "sub" / "progress" / "guided_digits_0123456789ab.jsonl"
    log.write_text("\n".join(lines) + "\n")
    assert collect.stale_params(stem) == {"flow": {"priority_rule": (None, "passes")}}
    assert "priority_rule=unset" in " ".join(collect.stale_notice(stem))
    log.write_text(log.read_text() + json.dumps(
        {"seed": 0, "method": "flow", "budget": "0.5",
         "params": json.loads(json.dumps(sampler_params("flow")))}) + "\n")
    assert collect.stale_params(stem) == {}


def _equal_steps(runs: dict[str, list[float]]) -> dict:
    """Equal-steps results at keep 0.03: ``runs`` per method, and every other method the
    target compares against 5 points below random (never the best)."""
    low = [a - 0.05 for a in runs["random"]]
    runs = runs | {m: low for m in _collect().EQUAL_STEPS_METHODS if m not in runs}
    return {"keep": [0.03], "methods": {m: {"0.03": {"acc_mean": sum(r) / len(r), "runs": r}}
                                        for m, r in runs.items()}}


def test_equal_steps_targets_count_either_of_vq_and_flow():
    """flow has the higher mean but a wide interval; vq is above random on every seed: the
    target is met through vq (it was once tested on the higher mean alone)."""
    random = [0.900, 0.910, 0.920, 0.905, 0.915]
    flow = [a + d for a, d in zip(random, (.02, -.01, .015, -.005, .01), strict=True)]
    res = _equal_steps({"random": random, "vq": [a + 0.004 for a in random], "flow": flow})
    lines = _collect().equal_steps_targets(res)
    above = next(x for x in lines if "vs random" in x)
    assert "vq +0.40" in above and "flow +0.60" in above and above.endswith(": met)")
    assert "flow is best" in " ".join(lines)
    res = _equal_steps({"random": random, "vq": random, "flow": random})
    assert next(x for x in _collect().equal_steps_targets(res) if "vs random" in x).endswith(
        "NOT met)")


def test_equal_steps_rule_counts_a_target_only_if_the_later_seeds_do_not_contradict_it():
    """The rule written before the reruns' seeds 5-9 ran: met on every seed, and the later
    seeds alone not pointing the other way; nothing before every planned seed has run."""
    collect = _collect()
    random = [0.900, 0.910, 0.920, 0.905, 0.915, 0.908, 0.912]

    def res(vq_late: list[float], flow: list[float], planned: int = 7) -> dict:
        """vq and flow as offsets from random (vq +0.01 on seeds 0-4)."""
        vq = [a + d for a, d in zip(random, [0.01] * 5 + vq_late, strict=True)]
        flow = [a + d for a, d in zip(random, flow, strict=True)]
        out = _equal_steps({"random": random, "vq": vq, "flow": flow})
        return out | {"seeds": 7, "seeds_planned": planned,
                      "full_data_acc": {"mean": 0.95, "runs": [0.95] * 7}}

    def rule_line(r: dict, kind: str) -> str:
        return next(x for x in collect.equal_steps_rule(r, first=5) if kind in x)

    # vq above random on the seven seeds (+0.63 +- 0.57 points), below on seeds 5-6 alone
    contradicted = res([-0.002, -0.004], [0.0] * 7)
    assert next(x for x in collect.equal_steps_targets(contradicted)
                if "vs random" in x).endswith(": met)")
    above = rule_line(contradicted, "above random")
    assert "seeds 5-6 alone: vq -0.30 ± 1.27" in above
    assert above.endswith("**NOT met (contradicted by the later seeds)**")
    assert rule_line(res([0.003, 0.005], [0.0] * 7), "above random").endswith("**met**")
    # flow best on every seed; on seeds 5-6 vq is best and flow within its interval: the
    # check holds on them (vq or flow best or within), not "contradicted" for want of flow
    flow = [0.02] * 5 + [0.010, 0.015]
    best = rule_line(res([0.012, 0.016], flow), "best or within")
    assert "met by flow" in best and "vq is best; flow -0.15 ± 0.64" in best, best
    assert best.endswith("**met**")
    # both below random's best on the later seeds, beyond the interval: contradicted
    late_low = [0.05] * 5 + [-0.03, -0.031]
    best = rule_line(res([-0.02, -0.021], late_low), "best or within")
    assert "random is best" in best and best.endswith("contradicted by the later seeds)**")
    assert collect.equal_steps_rule(contradicted, first=6) == []  # one later seed: no interval
    assert collect.equal_steps_rule(res([0.0, 0.0], [0.0] * 7, planned=10), first=5) == []
    late = collect.seed_slice(contradicted, 5, 7)
    assert late["methods"]["vq"]["0.03"]["runs"] == pytest.approx([0.906, 0.908])
    assert late["methods"]["vq"]["0.03"]["acc_mean"] == pytest.approx(0.907)
    assert contradicted["methods"]["vq"]["0.03"]["runs"][5] == pytest.approx(0.906)  # a copy


def test_guided_rule_counts_a_dataset_only_if_the_later_seeds_do_not_contradict_it():
    """The rule written before the ten-seed MNIST guided run: vq within 0.2 points of the
    recipe at 0.3 or 0.5 and beyond the interval over the three controls at both budgets, on
    every seed, with the later seeds alone not pointing the other way; nothing before every
    planned seed has run, nor where a control or a budget is missing."""
    collect = _collect()
    full = [0.990, 0.991, 0.989, 0.990, 0.992, 0.990, 0.991]
    early = [-0.0010, -0.0012, -0.0008, -0.0010, -0.0011]
    good = early + [-0.0009, -0.0010]

    def res(vq_03: list[float], vq_05: list[float] = good, planned: int = 7) -> dict:
        """Controls 0.60-0.65 points below the recipe (full-cut lowest); vq as offsets from
        the recipe, per seed."""
        def point(offsets: list[float]) -> dict:
            runs = [a + d for a, d in zip(full, offsets, strict=True)]
            return {"acc_mean": sum(runs) / len(runs), "runs": runs}

        controls = {c: {b: point([-0.0065 + 0.00025 * i] * 7) for b in ("0.3", "0.5")}
                    for i, c in enumerate(("full-cut", "rs2", "infobatch"))}
        return {"seeds": 7, "seeds_planned": planned, "label_noise": 0.0,
                "full_data_acc": {"mean": sum(full) / 7, "runs": full},
                "methods": controls | {"vq": {"0.3": point(vq_03), "0.5": point(vq_05)}}}

    def line(lines: list[str], what: str) -> str:
        return next(x for x in lines if what in x)

    met = collect.guided_rule(res(good), first=5)
    assert met[-1].endswith("target: **met**"), met
    assert line(met, "within 0.2 pt").endswith("at 0.3, 0.5; on seeds 5-6 alone at 0.3, 0.5 "
                                               "→ **met**")
    # vq below the controls on seeds 5-6 at 0.3, still beyond every control on all seven
    late_low = collect.guided_rule(res(early + [-0.0070, -0.0068]), first=5)
    beats = line(late_low, "beyond the paired interval")
    assert "0.3: met; 0.5: met" in beats and "both budgets: no" in beats, beats
    assert beats.endswith("**NOT met**") and late_low[-1].endswith("**NOT met**")
    assert "seeds 5-6 alone: the recipe -0.69" in line(late_low, "budget 0.3")
    assert "at 0.5; on seeds 5-6 alone at 0.5" in line(late_low, "within 0.2 pt")
    # above full-cut on seeds 5-6 at 0.5 but below InfoBatch there: contradicted too
    late_mixed = collect.guided_rule(res(good, early + [-0.0062, -0.0063]), first=5)
    assert "0.5: met" in line(late_mixed, "beyond the") and late_mixed[-1].endswith("NOT met**")
    # above every control on average at 0.3, inside the interval: not beyond it
    wide = collect.guided_rule(res([0.002, -0.013, 0.002, -0.012, 0.002, 0.002, 0.002]),
                               first=5)
    beats = line(wide, "beyond the paired interval")
    assert "0.3: NOT met; 0.5: met" in beats and "both budgets: yes" in beats, beats
    assert wide[-1].endswith("**NOT met**")
    # within 0.2 at 0.5 on all seven seeds (-0.15), 0.29 below on seeds 5-6 alone; within
    # at 0.3 on seeds 5-6 only: the later seeds are asked where the seven seeds held
    drifted = collect.guided_rule(res([-0.003] * 5 + [-0.001, -0.001],
                                      early + [-0.003, -0.0028]), first=5)
    assert line(drifted, "within 0.2 pt").endswith(
        "at 0.5; on seeds 5-6 alone at neither → **NOT met**")
    # an exact 0.20 below counts; so does more than 0.2 above
    for offset in (-0.002, 0.003):
        edge = collect.guided_rule(res([-0.003] * 7, [offset] * 7), first=5)
        assert line(edge, "within 0.2 pt").endswith("→ **met**"), (offset, edge)
    assert collect.guided_rule(res(good, planned=10), first=5) == []
    assert collect.guided_rule(res(good), first=6) == []  # one later seed: no interval
    for missing in ("rs2", "vq"):
        r = res(good)
        del r["methods"][missing]["0.5"]
        assert collect.guided_rule(r, first=5) == []


def test_noise_rule_needs_flow_above_the_noisy_recipe_on_the_later_seeds_too():
    """Target 3 by the rule written before the ten-seed noise run: flow's mean at 0.5 above
    the full noisy recipe's on all the seeds and on the later seeds alone."""
    collect = _collect()
    full = [0.880, 0.882, 0.879, 0.881, 0.878, 0.880, 0.883]

    def res(offsets: list[float], planned: int = 7) -> dict:
        runs = [a + d for a, d in zip(full, offsets, strict=True)]
        return {"seeds": 7, "seeds_planned": planned, "label_noise": 0.2,
                "full_data_acc": {"mean": sum(full) / 7, "runs": full},
                "methods": {"flow": {"0.5": {"acc_mean": sum(runs) / 7, "runs": runs}}}}

    met = collect.noise_rule(res([0.002] * 5 + [0.001, 0.0005]), first=5)
    assert "seeds 5-6 alone +0.07 ± " in met[0] and met[-1].endswith("**met**"), met
    late_below = collect.noise_rule(res([0.004] * 5 + [-0.001, -0.0005]), first=5)
    assert "seeds 0-6 +0.26 ± " in late_below[0] and late_below[-1].endswith("**NOT met**")
    below = collect.noise_rule(res([-0.001] * 5 + [0.002, 0.001]), first=5)
    assert below[-1].endswith("**NOT met**")  # above on the later seeds, below on all seven
    assert collect.noise_rule(res([0.002] * 7, planned=10), first=5) == []
    assert collect.noise_rule(res([0.002] * 7), first=6) == []
    assert collect.noise_rule(res([0.002] * 7), first=5, budget="0.3") == []


def test_the_rules_above_zero_mean_strictly_above():
    """"Above" in the rules written before the ten-seed runs is a mean strictly above zero:
    flow's mean over all seven seeds exactly equal to the noisy recipe's is NOT met though
    the later seeds are above it, nor above on all seven and exactly level on the later
    seeds; vq exactly level with a control on the later seeds is not
    "above every control" there (numbers exact in binary, so the means are exactly 0)."""
    collect = _collect()
    full = [0.5] * 7
    flow = [0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75]  # -0.25 twice, +0.25 on seeds 5-6
    noise = {"seeds": 7, "seeds_planned": 7, "label_noise": 0.2,
             "full_data_acc": {"mean": 0.5, "runs": full},
             "methods": {"flow": {"0.5": {"acc_mean": 0.5, "runs": flow}}}}
    rule = collect.noise_rule(noise, first=5)
    assert rule.facts["every"]["mean"] == 0.0 and rule.facts["late"]["mean"] > 0
    assert rule.met is False and rule[-1].endswith("**NOT met**")
    # and the other way: above on all seven, exactly level on the later seeds alone
    noise["methods"]["flow"]["0.5"]["runs"] = [0.75] * 5 + [0.5, 0.5]
    rule = collect.noise_rule(noise, first=5)
    assert rule.facts["every"]["mean"] > 0 and rule.facts["late"]["mean"] == 0.0
    assert rule.met is False and rule[-1].endswith("**NOT met**")

    def point(runs: list[float]) -> dict:
        return {"acc_mean": sum(runs) / len(runs), "runs": runs}

    vq = [0.5] * 7
    low = [0.25] * 5 + [0.5, 0.5]  # a quarter below vq on seeds 0-4, level on 5-6
    guided = {"seeds": 7, "seeds_planned": 7, "label_noise": 0.0,
              "full_data_acc": {"mean": 0.5, "runs": full},
              "methods": {m: {b: point(vq if m == "vq" else
                                       low if m == "rs2" else [0.25] * 7)
                              for b in ("0.3", "0.5")} for m in (*collect.CONTROLS, "vq")}}
    rule = collect.guided_rule(guided, first=5)
    assert rule.facts["late"]["0.3"]["rs2"]["mean"] == 0.0
    beats = next(x for x in rule if "beyond the paired interval" in x)
    assert "0.3: met; 0.5: met" in beats and "both budgets: no" in beats, beats
    assert rule.parts == {"reach": True, "beats": False} and rule.met is False  # needs both
    # equal steps: vq a point above random on seeds 0-4, exactly level with it on 5-6
    random = [0.900, 0.910, 0.920, 0.905, 0.915, 0.908, 0.912]
    vq = [a + 0.01 for a in random[:5]] + random[5:]
    steps = _equal_steps({"random": random, "vq": vq, "flow": random}) | {
        "seeds": 7, "full_data_acc": {"mean": 0.95, "runs": [0.95] * 7}}
    rule = collect.equal_steps_rule(steps, first=5)
    above = next(x for x in rule if "above random" in x)
    assert "met by vq" in above and "seeds 5-6 alone: vq +0.00 ± 0.00" in above, above
    assert above.endswith("**NOT met (contradicted by the later seeds)**")


def _glance_rows(collect) -> list[list[str]]:
    """The glance table's rows (header left out) as lists of cells."""
    return [[c.strip() for c in r.strip("|").split("|")] for r in collect.issue14_glance()
            if r.startswith("| ") and "---" not in r][1:]


def test_the_glance_agrees_with_the_rules_it_summarizes():
    """The summary table of the guided-training issue reads the rules' verdicts as data; the
    sections print them as text. On the committed results each rule's data is what its lines
    print, and each row's verdict is its rule's."""
    collect = _collect()
    ok = collect._ok
    mnist = collect.guided_rule(collect.load(f"{collect.GUIDED_TEN_SEEDS}.json"),
                                collect.FIRST_GUIDED_TEN_SEEDS)
    noise = collect.noise_rule(collect.load(f"{collect.NOISE_TEN_SEEDS}.json"),
                               collect.FIRST_GUIDED_TEN_SEEDS)
    assert mnist[-3].endswith(ok(mnist.parts["reach"]))  # the within-0.2 clause's line
    assert mnist[-2].endswith(ok(mnist.parts["beats"]))
    for rule in (mnist, noise):
        assert rule[-1].endswith(ok(rule.met))
    equal = {}
    for stem, title in collect.EQUAL_STEPS_RERUNS:
        rule = collect.equal_steps_rule(collect.load(f"prune_rerun/{stem}.json"),
                                        collect.FIRST_RERUN_SEEDS)
        assert len(rule.parts) == len(rule) == 5
        for line, met in zip(rule, rule.parts.values(), strict=True):
            assert line.endswith("→ **met**") == met, line
        equal[title] = rule
    rows = _glance_rows(collect)
    fm = collect.guided_facts(collect.load("guided_fashion-mnist.json"))
    assert rows[0][4] == ok(fm["reach"][4]) and rows[2][4] == ok(all(fm["beaten"].values()))
    assert rows[1][4] == ok(mnist.parts["reach"]) and rows[3][4] == ok(mnist.parts["beats"])
    assert "vq at 0.5: -0.17 ± 0.08; seeds 5-9 alone: -0.23 ± 0.10" in rows[1][3]
    # the control vq leads least (its lead's lower end)
    assert rows[3][3] == "0.3: least over rs2 +0.22 ± 0.07; 0.5: least over infobatch +0.05 ± 0.08"
    assert rows[5][4] == ok(noise.met)
    for i, kind in ((6, "random"), (8, "best")):
        for j, title in enumerate(("Fashion-MNIST", "MNIST")):
            parts = equal[title].parts
            assert rows[i + j][1] == title
            assert rows[i + j][4] == ok(all(v for (_, k), v in parts.items() if k == kind))
    assert rows[8][3] == "0.03: ccs best, vq -0.32 ± 0.23"  # the failing keep only
    assert rows[10][4] == ok(all(r.met for r in equal.values()))
    walls = collect.load("prune_rerun/prune_fashion-mnist_equal-steps.json")["seed_wall_seconds"]
    assert f"Fashion-MNIST: {sum(walls[5:]) / 60:.1f} min (seeds 5-9 measured)" in rows[11][3]
    assert "guided, Fashion-MNIST (its default dataset; MNIST not timed): 51.9 min" in rows[11][3]


def test_the_glance_reads_each_clause_apart(monkeypatch):
    """A dataset that meets the within-0.2 clause and not the other: its two rows differ and
    the guided target is not met; a bench-time row without the timed guided default, or over
    the limit, is not met."""
    collect = _collect()
    full = [0.990, 0.991, 0.989, 0.990, 0.992, 0.990, 0.991]

    def point(offsets: list[float]) -> dict:
        runs = [a + d for a, d in zip(full, offsets, strict=True)]
        return {"acc_mean": sum(runs) / 7, "runs": runs}

    # vq 0.1 below the recipe on every seed; the controls 0.15 below on average, but spread
    # so widely that vq's lead is inside the interval
    spread = [-0.004, 0.001, -0.004, 0.001, -0.004, 0.001, -0.0015]
    controls = {c: {b: point(spread) for b in ("0.3", "0.5")} for c in collect.CONTROLS}
    mnist = {"seeds": 7, "seeds_planned": 7, "label_noise": 0.0,
             "full_data_acc": {"mean": sum(full) / 7, "runs": full},
             "methods": controls | {"vq": {b: point([-0.001] * 7) for b in ("0.3", "0.5")}}}
    slow = {"seeds": 5, "seeds_planned": 5, "seed_wall_seconds": [1500.0] * 5}
    files = {f"{collect.GUIDED_TEN_SEEDS}.json": mnist, f"{collect.GUIDED_DEFAULT}.json": slow}
    monkeypatch.setattr(collect, "load", files.get)
    monkeypatch.setattr(collect, "FIRST_GUIDED_TEN_SEEDS", 5)
    rows = _glance_rows(collect)
    assert [r[4] for r in rows] == ["**met**", "**NOT met**", "**NOT met**", "**NOT met**"]
    assert rows[2][3] == "MNIST: within 0.2 met, beats NOT met"
    assert "125.0 min (seeds 0-4 measured)" in rows[3][3]
    files[f"{collect.GUIDED_DEFAULT}.json"] = slow | {"seed_wall_seconds": [1320.0] * 5}
    assert _glance_rows(collect)[3][4] == "**met**"  # 110 min
    files[f"{collect.GUIDED_DEFAULT}.json"] = slow | {"seeds": 3}  # partial: no verdict
    assert _glance_rows(collect)[-1][0] != "each full bench (one dataset) at most 2 h on a " \
                                           "2-core machine"


def test_the_glance_needs_both_clauses_on_one_dataset_not_on_both(monkeypatch):
    """The issue's guided target holds when both clauses hold on one of the two datasets:
    a made-up MNIST that meets both beside a Fashion-MNIST that meets neither is met (an
    `all` over the datasets in place of the `any` read it as NOT met), and with MNIST
    missing the beat clause it is not."""
    collect = _collect()
    full = [0.990, 0.991, 0.989, 0.990, 0.992, 0.990, 0.991]

    def point(offset: float) -> dict:
        runs = [a + offset + 0.0002 * (i % 2) for i, a in enumerate(full)]
        return {"acc_mean": sum(runs) / 7, "runs": runs}

    def mnist(controls_offset: float) -> dict:
        return {"seeds": 7, "seeds_planned": 7, "label_noise": 0.0,
                "full_data_acc": {"mean": sum(full) / 7, "runs": full},
                "methods": {c: {b: point(controls_offset) for b in ("0.3", "0.5")}
                            for c in collect.CONTROLS}
                | {"vq": {b: point(-0.001) for b in ("0.3", "0.5")}}}

    even = {f"vs_{c}": {"mean": 0.0, "half_width": 0.01, "n": 3} for c in collect.CONTROLS}
    fashion = {"seeds": 3, "label_noise": 0.0, "full_data_acc": {"mean": 0.90},
               "methods": {m: {b: {"acc_mean": 0.89} | (even if m == "vq" else {})
                               for b in ("0.3", "0.5")} for m in (*collect.CONTROLS, "vq")}}
    files = {f"{collect.GUIDED_TEN_SEEDS}.json": mnist(-0.004),
             "guided_fashion-mnist.json": fashion}
    monkeypatch.setattr(collect, "load", files.get)
    monkeypatch.setattr(collect, "FIRST_GUIDED_TEN_SEEDS", 5)

    def target() -> list[str]:
        return next(r for r in _glance_rows(collect) if r[0].startswith("the guided target"))

    row = target()
    assert row[3] == ("Fashion-MNIST: within 0.2 NOT met, beats NOT met; "
                      "MNIST: within 0.2 met, beats met") and row[4] == "**met**"
    files[f"{collect.GUIDED_TEN_SEEDS}.json"] = mnist(-0.001)  # the controls tie vq
    row = target()
    assert row[3].endswith("MNIST: within 0.2 met, beats NOT met") and row[4] == "**NOT met**"


def test_the_glance_needs_the_controls_beaten_at_both_budgets(monkeypatch):
    """Fashion-MNIST's beat clause is vq or flow beyond the interval over the three controls
    at 0.3 *and* 0.5: beaten at 0.3 alone is NOT met, at both it is met."""
    collect = _collect()
    ahead = {"mean": 0.01, "half_width": 0.002, "n": 3}
    level = {"mean": 0.0, "half_width": 0.002, "n": 3}

    def fashion(at_05: dict) -> dict:
        return {"seeds": 3, "label_noise": 0.0, "full_data_acc": {"mean": 0.90},
                "methods": {m: {b: {"acc_mean": 0.89} | (
                    {f"vs_{c}": dict(ahead if b == "0.3" else at_05) for c in collect.CONTROLS}
                    if m == "vq" else {}) for b in ("0.3", "0.5")}
                    for m in (*collect.CONTROLS, "vq")}}

    files = {"guided_fashion-mnist.json": fashion(level)}
    monkeypatch.setattr(collect, "load", files.get)
    beats = next(r for r in _glance_rows(collect) if r[0].startswith("guided: vq or flow beyond"))
    assert beats[3] == "0.3: vq; 0.5: neither" and beats[4] == "**NOT met**", beats
    files["guided_fashion-mnist.json"] = fashion(ahead)
    beats = next(r for r in _glance_rows(collect) if r[0].startswith("guided: vq or flow beyond"))
    assert beats[3] == "0.3: vq; 0.5: vq" and beats[4] == "**met**", beats


def test_bench_time_is_at_most_two_hours_and_judged_only_on_the_whole_guided_default(
        monkeypatch):
    """The bench-time target is each full bench *at most* 2 h (exactly 120 minutes is met);
    a seed without its wall time is estimated from the timed ones (their mean times the
    seeds, not their sum said "measured"); one bench over it fails the target whatever
    the others took; and until the guided default has run every seed
    the row is not judged, though the equal-steps reruns are timed."""
    collect = _collect()
    assert collect._bench_minutes({"seed_wall_seconds": [1500.0, None, 1500.0, 1500.0,
                                                         1500.0]}, 5) == (
        125.0, "seeds 0-4: 4 timed, mean x 5")
    assert collect._bench_minutes({"seed_wall_seconds": [9.0, 1500.0, 1500.0]}, 2) == (
        50.0, "seeds 1-2 measured")
    default = {"seeds": 5, "seeds_planned": 5, "seed_wall_seconds": [1440.0] * 5}
    files = {f"{collect.GUIDED_DEFAULT}.json": default}
    monkeypatch.setattr(collect, "load", files.get)
    row = _glance_rows(collect)[-1]
    assert "120.0 min (seeds 0-4 measured)" in row[3] and row[4] == "**met**", row
    files[f"{collect.GUIDED_DEFAULT}.json"] = default | {"seed_wall_seconds": [1441.0] * 5}
    assert _glance_rows(collect)[-1][4] == "**NOT met**"
    # each bench: one over 2 h fails the target though another is under
    stem = collect.EQUAL_STEPS_RERUNS[0][0]
    files[f"prune_rerun/{stem}.json"] = json.loads(
        (ROOT / "benchmarks" / "results" / "prune_rerun" / f"{stem}.json").read_text())
    timed = files[f"prune_rerun/{stem}.json"]["seed_wall_seconds"]
    files[f"prune_rerun/{stem}.json"]["seed_wall_seconds"] = [600.0] * 5
    row = _glance_rows(collect)[-1]
    assert "50.0 min" in row[3] and "120.1 min" in row[3] and row[4] == "**NOT met**", row
    files[f"prune_rerun/{stem}.json"]["seed_wall_seconds"] = timed
    files[f"{collect.GUIDED_DEFAULT}.json"] = default | {"seeds": 3}  # partial
    row = _glance_rows(collect)[-1]
    assert row[0].startswith("each full bench") and row[4] == "not judged", row
    assert "guided, Fashion-MNIST" not in row[3]


def test_guided_target_within_0_2_points_counts_an_exact_0_2():
    full = [0.9881, 0.9881, 0.9899]
    vq = [a - 0.002 for a in full]
    res = {"label_noise": 0.0, "seeds": 3, "full_data_acc": {"mean": sum(full) / 3},
           "methods": {"vq": {"0.5": {"acc_mean": sum(vq) / 3}}}}
    line = _collect().guided_targets(res)[0]
    assert "-0.20 pt" in line and line.endswith(": met)")
    res["methods"]["vq"]["0.5"]["acc_mean"] = sum(full) / 3 - 0.00203
    line = _collect().guided_targets(res)[0]
    assert "-0.203 pt" in line and line.endswith("NOT met)")  # the miss shows


def test_close_calls_print_the_digits_that_decide_the_verdict():
    """A value just past a threshold is printed with the decimals that put it past it: a cost
    ratio of 0.3004 printed as 0.30, a bench of 89.7 min as 90, a -2.0004 point difference as
    -2.00 read as meeting the target beside its verdict (or missing it), as did a mean 1.004
    points above random printed with its 1.001-point interval as "+1.00 ± 1.00 ... met"."""
    collect = _collect()
    res = {"keep": [0.1], "seeds": 3, "dataset": "fashion-mnist", "label_noise": 0.0,
           "methods": {"vq": {"0.1": {"acc_mean": 0.8, "acc_std": 0.01,
                                      "cost_ratio": 0.3004}}},
           "seed_wall_seconds": [89.7 * 20] * 3}  # a third each
    text = " ".join(collect.prune_targets(res))
    assert "**0.3004** (target <= 0.3: NOT met)" in text
    assert "**89.7 min** (measured; target < 90 min: met)" in text
    # far from the thresholds: the usual decimals
    res["methods"]["vq"]["0.1"]["cost_ratio"] = 0.2
    res["seed_wall_seconds"] = [80 * 20] * 3
    text = " ".join(collect.prune_targets(res))
    assert "**0.20** (target <= 0.3: met)" in text and "**80 min**" in text

    def point(size: int, **fields) -> dict:
        return {"method": "vq", "size": size, "update": "head", "acc_mean": 0.8, **fields}

    res = {"scenario": "new-classes", "updates": ["head"], "seeds": 5, "points": {
        "vq:20:head": point(20, vs_joint={"mean": -0.020004, "half_width": 0.01, "n": 5},
                            old_vs_joint={"mean": -0.0300049, "half_width": 0.01, "n": 5}),
        "vq:5:head": point(5, vs_random={"mean": 0.01004, "half_width": 0.01001, "n": 5},
                           vs_herding={"mean": -0.00001, "half_width": 0.01, "n": 5})}}
    best, vs_random = collect.device_targets(res)
    assert ("-2.0004 pt vs the joint model, old classes -3.0005 pt (targets >= -2 and >= -3: "
            "NOT met)") in best
    assert vs_random == ("- vq 5/class (head): vs random +1.004 ± 1.001 pt, vs herding -0.001 pt"
                         " (target above random beyond the interval and >= herding: NOT met)")
    res["points"]["vq:20:head"]["vs_joint"]["mean"] = -0.019996  # within: -2.00 reads right
    assert "-2.00 pt vs the joint model" in collect.device_targets(res)[0]


def test_pareto_front_keeps_only_the_best_of_equal_energies():
    """Points at one energy: the most accurate is on the front, the others (dominated by it)
    are not; they were kept when the lower accuracy sorted first."""
    from tinysift.report.plots import pareto_front

    pts = [(2.0, 0.9), (1.0, 0.5), (1.0, 0.8), (3.0, 0.85), (3.0, 0.95), (2.0, 0.7)]
    assert pareto_front(pts) == [(1.0, 0.8), (2.0, 0.9), (3.0, 0.95)]
    assert pareto_front([(1.0, 0.5), (1.0, 0.5)]) == [(1.0, 0.5)]
    assert pareto_front([]) == []
    # an accuracy of 0 (a point that learnt nothing) is on the front where it costs least
    assert pareto_front([(2.0, 0.5), (1.0, 0.0)]) == [(1.0, 0.0), (2.0, 0.5)]


def _prune_results(keeps: list[float], **extra) -> dict:
    point = {"acc_mean": 0.8, "acc_std": 0.01, "runs": [0.79, 0.81], "count": 100,
             "score_seconds": 2.0, "train_seconds": 10.0, "cost_ratio": 0.5}
    return {"dataset": "digits", "label_noise": 0.0, "protocol": "proportional",
            "keep": keeps, "seeds": 2, "full_data_acc": {"mean": 0.9, "std": 0.0},
            "full_data_seconds": 20.0, "recipe": "r", "machine": {}, "versions": {},
            "wall_seconds": 60.0, "seed_wall_seconds": [30.0, 30.0],
            "methods": {m: {f"{k:g}": point for k in keeps} for m in ("random", "vq")},
            **extra}


def test_a_keep_of_1_renders():
    """Results are keyed f"{keep:g}" ("1"); the table's columns were str(keep) ("1.0"), so
    `--keep 1` found no point in its column and the markdown crashed (max() of nothing)."""
    from tinysift.bench.report import prune_markdown

    md = prune_markdown(_prune_results([1.0, 0.5]))
    assert "| method | keep 1 | keep 0.5 |" in md and "| vq | **0.8000 ± 0.0100** |" in md
    assert "code versions or machines" not in md


def test_a_pruning_table_states_the_step_rule_its_results_ran_with():
    """The protocol line said max(250 steps, 3 epochs) whatever the bench ran (`--quick`:
    max(60, 2)); it reads the results' config, the defaults where a file has none."""
    from tinysift.bench.report import prune_markdown

    quick = prune_markdown(_prune_results([0.1], config={"min_steps": 60, "subset_epochs": 2}))
    assert "training steps shrink with the kept set (max(60 steps, 2 epochs of it))" in quick
    assert "(max(250 steps, 3 epochs of it))" in prune_markdown(_prune_results([0.1]))


def test_a_table_of_rows_from_several_versions_or_machines_says_so():
    from tinysift.bench.condense import condense_markdown
    from tinysift.bench.guided_report import guided_markdown
    from tinysift.bench.report import prune_markdown

    here = {"tinysift_source": "abc", "git": "0123456789abcdef", "machine": "vm (EPYC, 2 CPUs)"}
    sets = [{**here, "rows": 5}, {"tinysift_source": "unrecorded", "git": "unrecorded",
                                  "machine": "unrecorded", "rows": 3}]
    md = prune_markdown(_prune_results([0.5], origins=sets))
    assert md.endswith("Rows from 2 code versions or machines (a resumed bench): 5 from source "
                       "abc, git 0123456789 on vm (EPYC, 2 CPUs); 3 from unrecorded (logged "
                       "before records named them).\n")
    assert "Rows from 1" not in prune_markdown(_prune_results([0.5], origins=sets[:1]))
    condensed = json.loads((RESULTS / "condense_fashion-mnist.json").read_text())
    assert "Rows from 2" in condense_markdown({**condensed, "origins": sets})
    guided = json.loads((RESULTS / "guided_digits.json").read_text())
    assert "Rows from 2" in guided_markdown({**guided, "origins": sets})


def test_guided_runs_over_budget_are_flagged():
    """A fit inside a sampler's plan is charged once it has run: one costing more than the
    budget had left ends the run over it (flow spent 45,620 of 18,000 sample-passes on a
    12k FMNIST subset at 0.3). The samplers stay as they are; the results give each run's
    spent / budget, and the table flags the points with a run over 1.02 x its budget."""
    from tinysift.bench.guided import OVER_BUDGET, GuidedBenchConfig, _progress_log, _results
    from tinysift.bench.guided_report import guided_markdown

    cfg = GuidedBenchConfig(dataset="digits", budgets=(0.3, 0.5), methods=("rs2", "flow"),
                            seeds=2, progress_dir=None)
    log = _progress_log(cfg, "data", "g")  # in memory
    run = {"acc": 0.9, "seconds": 5.0, "fit_passes": 0.0, "fit_seconds": 0.0,
           "train_passes": 100}
    for seed in range(2):
        log.add(seed, "full", "1", **run, spent=1.0)
        for b in (0.3, 0.5):
            log.add(seed, "rs2", f"{b:g}", **run, spent=b * 1.01)  # within the tolerance
            log.add(seed, "flow", f"{b:g}", **run,
                    spent=0.76 if (seed, b) == (1, 0.3) else b)
    res = _results(cfg, log, {}, 2, 60.0)
    flow = res["methods"]["flow"]
    assert flow["0.3"]["spent_of_budget"] == [1.0, round(0.76 / 0.3, 4)]
    assert flow["0.3"]["over_budget"] == 1 and flow["0.5"]["over_budget"] == 0
    assert res["methods"]["rs2"]["0.3"]["over_budget"] == 0
    assert res["over_budget_factor"] == OVER_BUDGET == 1.02
    assert res["method_params"]["flow"]["per_code"] == 50  # the defaults, as prune records
    md = guided_markdown(res)
    flagged = [ln for ln in md.splitlines() if "⚠" in ln]
    assert len(flagged) == 2 and flagged[0].startswith("| flow |")
    assert flagged[0].count("⚠") == 1 and flagged[0].split(" | ")[1].endswith(" ⚠")
    assert flagged[1].startswith("⚠ Over budget: flow at 0.3: 1 of 2 run(s) spent more than "
                                 "1.02 x the budget")


def test_device_determinism_record_shows_the_exact_counts_the_docs_claim():
    """docs/protocol.md says the same command gives exactly the same counts under -icount,
    citing this record; the record committed with that claim still showed differences of up
    to 21 instructions (measured before ts_cycles_align took effect) and named the run by
    this machine's absolute path, without the export's hash."""
    res = json.loads((RESULTS / "device_determinism_qemu-m4.json").read_text())
    assert "**exactly** the same counts" in (ROOT / "docs" / "protocol.md").read_text()
    assert res["losses_and_accuracies_identical"] and res["max_relative_difference"] == 0
    assert [r["diff"] for r in res["rows"]] == [0] * len(res["rows"])
    assert not Path(res["run"]).is_absolute() and len(res["export_hash"]) >= 16
    assert res["versions"].get("git") and res["versions"].get("tinysift_source")


def test_a_corrupt_results_file_stops_the_collection_with_its_name(tmp_path, monkeypatch):
    collect = _collect()
    monkeypatch.setattr(collect, "RESULTS", tmp_path)
    (tmp_path / "prune_digits.json").write_text('{"seeds": 3, "keep": [0.1')  # cut short
    for call in (lambda: collect.load("prune_digits.json"), collect.rerender):
        with pytest.raises(SystemExit) as exc:
            call()
        assert str(exc.value.code).startswith(f"{tmp_path / 'prune_digits.json'}: not valid "
                                              "JSON (")


def test_rerender_rewrites_the_subfolders_tables_too(tmp_path, monkeypatch):
    """benchmarks/results/prune_rerun/'s tables (the docs point to them) kept an old format
    with a wrong "scoring" column (vq 3.7 s: one keep's, where 0.03 and 0.01 took 36 s):
    only the top folder was rendered again."""
    from tinysift.bench.report import prune_markdown

    collect = _collect()
    monkeypatch.setattr(collect, "RESULTS", tmp_path)
    src = RESULTS / "prune_rerun" / "prune_mnist_equal-steps.json"
    (tmp_path / "prune_rerun").mkdir()
    (tmp_path / "prune_rerun" / src.name).write_text(src.read_text())
    collect.rerender()
    md = (tmp_path / "prune_rerun" / "prune_mnist_equal-steps.md").read_text()
    assert md == prune_markdown(json.loads(src.read_text()))
    assert not list(tmp_path.glob("*.md"))  # written beside its JSON


def test_readme_shift_energy_is_the_largest_replay_sets_whatever_the_sizes_order(tmp_path,
                                                                                  monkeypatch):
    """The README's shift table's mJ column is "the training with the largest replay set": it
    took the last size of --sizes, the smallest for --sizes 20,5."""
    collect = _collect()
    res = json.loads((RESULTS / "device_shift_mnist.json").read_text())
    point = res["points"]["random:10:head"]
    res["sizes"] = [20, 5]
    res["points"] = {k: v for k, v in res["points"].items() if k.startswith("none:")}
    for size, mj in ((20, 4321.0), (5, 12.0)):
        for update in res["updates"]:
            res["points"][f"random:{size}:{update}"] = {**point, "energy_mj": mj}
    (tmp_path / "shift.json").write_text(json.dumps(res))
    monkeypatch.setattr(collect, "RESULTS", tmp_path)
    rows = [line for line in collect._readme_shift("shift") if line.startswith("| head |")]
    assert len(rows) == 1 and "| 4,321 |" in rows[0] and "| 12 |" not in rows[0]


def test_condense_plot_draws_each_method_with_its_spread_against_the_full_data(
        tmp_path: Path, kept_figures: list) -> None:
    """The condense plot: a line per method (legend: its name) of mean accuracy per K with
    the std as error bars, K on a log axis, the full data's accuracy as a dashed line, the
    seeds in the title. Results without a full-data training (written before the bench had
    one) plot and render without it."""
    from tinysift.bench.condense import condense_markdown, condense_plot

    res = json.loads((RESULTS / "condense_fashion-mnist.json").read_text())
    condense_plot(res, tmp_path / "plot.png")
    (ax,) = kept_figures[0].axes
    assert sorted(ax.get_legend_handles_labels()[1]) == sorted([*res["methods"], "full data"])
    assert ax.get_xscale() == "log" and ax.get_title().endswith("(3 seeds)")
    (full,) = [line for line in ax.get_lines() if line.get_label() == "full data"]
    assert list(full.get_ydata()) == [res["full_data_acc"]["mean"]] * 2
    assert full.get_linestyle() == "--"
    vq = res["methods"]["vq"]
    (bars,) = [c for c in ax.containers if c.get_label() == "vq"]
    line, _, (yerr,) = bars
    assert list(line.get_xdata()) == res["per_class"]
    assert list(line.get_ydata()) == [vq[str(k)]["acc_mean"] for k in res["per_class"]]
    spans = [seg[1, 1] - seg[0, 1] for seg in yerr.get_segments()]
    assert spans == pytest.approx([2 * vq[str(k)]["acc_std"] for k in res["per_class"]])
    old = {k: v for k, v in res.items() if k not in ("full_data_acc", "full_data_seconds")}
    condense_plot(old, tmp_path / "old.png")
    assert "full data" not in kept_figures[1].axes[0].get_legend_handles_labels()[1]
    assert "Full data" not in condense_markdown(old)


def test_a_dollar_in_a_dataset_name_is_plotted_as_text(tmp_path):
    """A `$` pair in a user's dataset path (`npz:/data/$\\x$.npz`), which the plot titles
    name, was read by matplotlib as a TeX formula: mangled text, or a ValueError when the
    results were written, after every training of the bench. Math text is off."""
    from tinysift.bench.condense import condense_plot

    res = json.loads((RESULTS / "condense_fashion-mnist.json").read_text())
    res["dataset"] = "npz:/data/$\\x$.npz"
    condense_plot(res, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000


@pytest.mark.parametrize("stem", ["condense_fashion-mnist", "prune_digits"])
def test_log_axis_ticks_are_plain_text_with_math_text_off(tmp_path, kept_figures, stem):
    """Math text off (above) printed matplotlib's log tick labels as their TeX source,
    `$\\mathdefault{10^{-1}}$`, on every log axis of the bench plots and the demo report:
    the ticks are text too (10⁻¹, 2×10⁻¹)."""
    from tinysift.bench.condense import condense_plot
    from tinysift.bench.report import prune_plot

    res = json.loads((RESULTS / f"{stem}.json").read_text())
    (condense_plot if stem.startswith("condense") else prune_plot)(res, tmp_path / "p.png")
    fig = kept_figures[0]
    fig.canvas.draw()
    labels = [t.get_text() for ax in fig.axes
              for t in ax.get_xticklabels(which="both") if t.get_text()]
    assert labels and not [t for t in labels if "$" in t or "\\" in t], labels
    assert any("10" in t for t in labels), labels


def test_report_log_axes_have_plain_tick_labels():
    from tinysift.report.plots import _log_tick_text, log_scale, pyplot

    assert _log_tick_text(r"$\mathdefault{10^{-2}}$") == "10\u207b\u00b2"
    assert _log_tick_text(r"$\mathdefault{2\times10^{-1}}$") == "2\u00d710\u207b\u00b9"
    # each digit's superscript (Unicode's), and a label that is no TeX as it is
    assert [_log_tick_text(f"$\\mathdefault{{10^{{{d}}}}}$") for d in range(10)] == [
        "10\u2070", "10\u00b9", "10\u00b2", "10\u00b3", "10\u2074", "10\u2075", "10\u2076",
        "10\u2077", "10\u2078", "10\u2079"]
    assert _log_tick_text("0.5") == "0.5"
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([10, 300, 5000], [1e3, 1e5, 1e7])
    log_scale(ax, "x")
    log_scale(ax, "y")
    fig.canvas.draw()
    texts = [t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()]
    plt.close(fig)
    assert [t for t in texts if t] and not [t for t in texts if "$" in t]
    # within a decade matplotlib labels minor ticks too (2x10^1 ...): as text as well
    fig, ax = plt.subplots()
    ax.plot([20, 90], [0.2, 0.5])
    log_scale(ax, "x")
    log_scale(ax, "y")
    fig.canvas.draw()
    minor = [t.get_text() for t in ax.get_xticklabels(which="minor")
             + ax.get_yticklabels(which="minor") if t.get_text()]
    plt.close(fig)
    assert "2\u00d710\u00b9" in minor and "2\u00d710\u207b\u00b9" in minor, minor
    assert not [t for t in minor if "$" in t], minor


def _firmware_results():
    return load_tool("_firmware_stamp").FIRMWARE_RESULTS


@pytest.mark.parametrize("stem", sorted(_firmware_results()))
def test_firmware_results_are_from_the_trees_firmware(stem):
    """The results that measure the firmware (instruction counts, sizes) were made from the
    firmware sources in this tree: five of them had gone stale for days (a firmware change
    moved sizes by up to 768 B and counts by 31,104 instructions; nothing said so). A change
    to the firmware or a bench's C program reruns the tool named in the message."""
    extra, command = _firmware_results()[stem]
    from tinysift.device.build import firmware_source_hash

    recorded = json.loads((RESULTS / f"{stem}.json").read_text()).get("firmware_source")
    # what the tool itself records (its firmware_stamp) is that same hash
    assert load_tool("_firmware_stamp").firmware_stamp(stem) == firmware_source_hash(extra)
    script = command.split()[1]
    assert script.startswith("tools/") and (ROOT / script).is_file(), command
    assert recorded == firmware_source_hash(extra), (
        f"benchmarks/results/{stem}.json was made from firmware sources {recorded}, the tree's "
        f"are {firmware_source_hash(extra)}: rerun `{command}`, then "
        "`.venv/bin/python tools/collect_benchmarks.py`")


def test_every_results_file_stamped_with_firmware_is_checked():
    """Every committed results file that records a ``firmware_source`` is one of
    FIRMWARE_RESULTS (whose stamps the test above checks): one left out of the table would
    go stale unnoticed."""
    stamped = {str(p.relative_to(RESULTS).with_suffix("")) for p in RESULTS.rglob("*.json")
               if "firmware_source" in json.loads(p.read_text())}
    assert stamped == set(_firmware_results())


def _guided_results(seeds: int) -> dict:
    """Guided results of ``seeds`` seeds: rs2 and vq at budget 0.5, vq 2 points above the
    recipe on every seed."""
    def point(acc: float) -> dict:
        return {"acc_mean": acc, "acc_std": 0.01, "spent": 0.5, "seconds": 10.0,
                "fit_seconds": 1.0, "over_budget": 0, "curves": []}

    diff = {"mean": 0.02, "half_width": 0.0 if seeds > 1 else None, "n": seeds}
    return {"dataset": "digits", "label_noise": 0.0, "budgets": [0.5], "seeds": seeds,
            "full_data_acc": {"mean": 0.8, "std": 0.01}, "full_data_seconds": 20.0,
            "recipe": "r", "machine": {}, "versions": {}, "wall_seconds": 60.0,
            "methods": {"rs2": {"0.5": point(0.79)},
                        "vq": {"0.5": point(0.82) | {"vs_full_data": diff}}}}


def test_one_seed_tables_show_no_spread_and_no_paired_differences():
    """One seed has no spread and no interval: a pruning table's cells are the mean alone
    (not "± 0.0000") and neither it nor a guided table prints a paired-difference section;
    two seeds print both."""
    from tinysift.bench.guided_report import guided_markdown
    from tinysift.bench.report import prune_markdown

    one = _prune_results([0.5]) | {"seeds": 1, "seed_wall_seconds": [30.0]}
    for per in one["methods"].values():
        per["0.5"] = per["0.5"] | {"runs": [0.8]}
    md = prune_markdown(one)
    assert "| vq | **0.8000** |" in md and "± 0.0100" not in md
    assert "(mean ± std over 1 seed) of the tiny CNN" in md
    assert "Paired difference" not in md
    two = prune_markdown(_prune_results([0.5]))
    assert "| vq | **0.8000 ± 0.0100** |" in two
    assert "## Paired difference to random" in two and "| vq | +0.00 ± 0.00 |" in two
    assert "Paired difference" not in guided_markdown(_guided_results(1))
    md = guided_markdown(_guided_results(3))
    assert "## Paired difference to the full-data recipe" in md
    assert "| vq | **+2.00 ± 0.00** |" in md


def _device_point(**extra) -> dict:
    return {"method": "vq", "size": 5, "update": "head", "acc_mean": 0.8, "acc_std": 0.01,
            "acc_old": 0.7, "acc_new": 0.9, "energy_mj": 12.0, "ram_plan": 4096,
            "vs_random": {"mean": 0.03, "half_width": 0.01, "n": 3},
            "vs_herding": {"mean": -0.01, "half_width": 0.02, "n": 3},
            "vs_joint": {"mean": -0.05, "half_width": 0.01, "n": 3},
            "old_vs_joint": {"mean": -0.02, "half_width": 0.03, "n": 3}} | extra


def _device_results(scenario: str, point: dict) -> dict:
    return {"scenario": scenario, "dataset": "fashion-mnist", "board": "qemu-m4", "seeds": 3,
            "updates": ["head"], "points": {"vq:5:head": point},
            "config": {"steps": 10, "batch": 8, "lr": 0.01, "schedule": "const"},
            "machine": {}, "wall_seconds": 60.0}


def test_device_table_columns_are_each_points_own_differences():
    """An on-device table row, column by column: the accuracy, old and new, then the
    differences to random, herding, the joint model and the joint model on the old classes,
    each in its own column (bold where beyond its interval). In a shift scenario the old
    domain is not tested on the device: its columns are "-", even for a results file that
    holds a difference on the logs' placeholder old accuracies."""
    from tinysift.bench.device_report import device_markdown

    row = "| vq | 5 | 0.8000 ± 0.0100 | 0.7000 | 0.9000 | **+3.00 ± 1.00** | -1.00 ± 2.00 | " \
          "**-5.00 ± 1.00** | -2.00 ± 3.00 | 12.0 | 4,096 |"
    assert row in device_markdown(_device_results("new-classes", _device_point()))
    shift = device_markdown(_device_results("shift", _device_point(acc_old=0.0)))
    assert "| vq | 5 | 0.8000 ± 0.0100 | - | 0.9000 | **+3.00 ± 1.00** | -1.00 ± 2.00 | " \
           "**-5.00 ± 1.00** | - | 12.0 | 4,096 |" in shift


def test_upkeep_table_shows_coverage_minus_reservoir_on_all_classes():
    """An upkeep table with two tasks: old and new accuracy in their columns, and the
    difference column coverage minus reservoir on the whole test set (``vs_reservoir``), not
    its old-classes part; the training bill in mJ last."""
    from tinysift.bench.upkeep_report import upkeep_markdown

    base = {"per_class": 5, "update": "head", "acc_std": 0.01, "kept": 50.0,
            "codewords": 0, "covered": 0, "stream_cycles": 100000.0, "seen": 100.0,
            "energy_mj": 12.34}
    cov = base | {"policy": "coverage", "acc_mean": 0.8, "acc_old": 0.6, "acc_new": 0.9,
                  "codewords": 3.0, "covered": 2.0,
                  "vs_reservoir": {"mean": 0.02, "half_width": 0.01, "n": 3},
                  "old_vs_reservoir": {"mean": -0.05, "half_width": 0.01, "n": 3}}
    rsv = base | {"policy": "reservoir", "acc_mean": 0.78, "acc_old": 0.65, "acc_new": 0.85}
    res = {"scenario": "new-classes", "dataset": "fashion-mnist", "board": "qemu-m4",
           "seeds": 3, "updates": ["head"],
           "points": {"reservoir:5:head": rsv, "coverage:5:head": cov},
           "config": {"vq_per_class": 4, "replay": "vq", "replay_per_class": 10,
                      "coverage_rules": 3, "steps": 10, "batch": 8, "lr": 0.01,
                      "schedule": "const"},
           "machine": {}, "wall_seconds": 60.0}
    md = upkeep_markdown(res)
    assert ("| 5 | reservoir | 0.7800 ± 0.0100 | 0.6500 | 0.8500 | - | 50 | - | 1,000 | "
            "12.3 |\n| 5 | coverage | 0.8000 ± 0.0100 | 0.6000 | 0.9000 | **+2.00 ± 1.00** | 50 "
            "| 3.0 / 2.0 | 1,000 | 12.3 |") in md, md


def test_a_pruning_table_by_hand():
    """A three-seed pruning table, each cell by hand: vq best at keep 0.1 and random at keep
    0.5, each bold in its own column; vq minus random paired by seed at 0.1 (+3, +4, +3
    points: mean 3.33, half-width t(0.975, 2) 4.3027 x sd 0.577 / sqrt(3) = 1.43, bold),
    a point below on every seed at 0.5 (no spread: bold); the cost table's total is scoring
    plus training, and a ratio is flagged from 1.005."""
    from tinysift.bench.report import prune_markdown

    def point(runs: list[float], ratio: float) -> dict:
        return {"acc_mean": sum(runs) / 3, "acc_std": 0.01, "runs": runs, "count": 100,
                "score_seconds": 2.0, "train_seconds": 10.0, "cost_ratio": ratio}

    res = _prune_results([0.1, 0.5]) | {"seeds": 3, "seed_wall_seconds": [30.0] * 3}
    res["methods"] = {"random": {"0.1": point([0.70, 0.72, 0.74], 0.2),
                                 "0.5": point([0.80, 0.82, 0.84], 1.004)},
                      "vq": {"0.1": point([0.73, 0.76, 0.77], 0.3),
                             "0.5": point([0.79, 0.81, 0.83], 1.006)}}
    md = prune_markdown(res)
    assert "| random | 0.7200 ± 0.0100 | **0.8200 ± 0.0100** |" in md
    assert "| vq | **0.7533 ± 0.0100** | 0.8100 ± 0.0100 |" in md
    assert "| vq | **+3.33 ± 1.43** | **-1.00 ± 0.00** |" in md
    assert "| random | 2.0 | 12 (0.20) | 12 (1.00) |" in md
    assert "| vq | 2.0 | 12 (0.30) | 12 (1.01) ⚠ |" in md


def test_a_pruning_table_marks_a_method_without_a_keep_with_a_dash():
    """A method that did not run at a keep (a results file merged from benches of other
    keeps) shows "-" in its accuracy, paired-difference and cost cells, not a number; the
    bold of that keep is the best of the methods that ran it."""
    from tinysift.bench.report import prune_markdown

    res = _prune_results([0.1, 0.5])
    del res["methods"]["vq"]["0.5"]
    md = prune_markdown(res)
    assert "| random | **0.8000 ± 0.0100** | **0.8000 ± 0.0100** |" in md
    assert "| vq | **0.8000 ± 0.0100** | - |" in md
    assert "| vq | +0.00 ± 0.00 | - |" in md
    # cost: scoring 2.0 s, total 2 + 10 s at ratio 0.5 where it ran
    assert "| vq | 2.0 | 12 (0.50) | - |" in md


def _plotted(plot, res: dict, tmp_path: Path, kept_figures: list):
    """The figure ``plot`` draws for ``res``, kept open (the plot closes it once saved)."""
    plot(res, tmp_path / "plot.png")
    assert (tmp_path / "plot.png").stat().st_size > 1000
    return kept_figures[-1]


def _errorbars(ax) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Each errorbar series of ``ax`` by label: x, y and the half-height of each bar."""
    out = {}
    for container in ax.containers:
        line, _, (bars,) = container
        halves = [round(float(seg[1][1] - seg[0][1]) / 2, 6) for seg in bars.get_segments()]
        out[container.get_label()] = ([float(x) for x in line.get_xdata()],
                                      [float(y) for y in line.get_ydata()], halves)
    return out


def test_a_pruning_plot_by_hand(tmp_path, kept_figures):
    """Left panel: each method's mean accuracy per keep with its std as the error bar, and
    the full-data mean as a line. Right panel: each method but random minus random at the
    same keep, in points (vq: 0.75 - 0.70 = +5, 0.85 - 0.86 = -1), clipped at -6."""
    from tinysift.bench.report import prune_plot

    res = _prune_results([0.1, 0.5])
    res["methods"] = {"random": {"0.1": {"acc_mean": 0.70, "acc_std": 0.01},
                                 "0.5": {"acc_mean": 0.86, "acc_std": 0.03}},
                      "vq": {"0.1": {"acc_mean": 0.75, "acc_std": 0.02},
                             "0.5": {"acc_mean": 0.85, "acc_std": 0.04}}}
    fig = _plotted(prune_plot, res, tmp_path, kept_figures)
    acc, diff = fig.axes
    assert _errorbars(acc) == {"random": ([0.1, 0.5], [0.70, 0.86], [0.01, 0.03]),
                               "vq": ([0.1, 0.5], [0.75, 0.85], [0.02, 0.04])}
    full = [ln for ln in acc.get_lines() if ln.get_label() == "full data"]
    assert len(full) == 1 and list(full[0].get_ydata()) == [0.9, 0.9]
    named = {ln.get_label(): [round(float(y), 6) for y in ln.get_ydata()]
             for ln in diff.get_lines() if not ln.get_label().startswith("_")}
    assert named == {"vq": [5.0, -1.0]}
    assert "digits: accuracy vs data kept (2 seeds)" == acc.get_title()
    # the difference axis starts half a point below the lowest difference, at most 6 below
    assert diff.get_ylim()[0] == pytest.approx(-1.5)
    res["methods"]["vq"]["0.1"]["acc_mean"] = 0.60  # 10 points below random
    _, diff = _plotted(prune_plot, res, tmp_path, kept_figures).axes
    assert diff.get_ylim()[0] == -6.0


def test_an_older_pruning_file_without_protocol_or_seed_times_renders_as_it_ran():
    """A results file written before the protocol and per-seed wall times were recorded ran
    the proportional protocol and timed no seed: its table says the proportional step rule
    with no protocol in the title, and the last invocation's wall time without claiming
    seeds were resumed half-way (that note is for a file whose seeds all lack a time)."""
    from tinysift.bench.report import prune_markdown

    old = _prune_results([0.5])
    del old["protocol"], old["seed_wall_seconds"]
    md = prune_markdown(old)
    assert md.startswith("# Pruning benchmark: digits\n")
    assert "Protocol **proportional**: training steps shrink with the kept set" in md
    assert "Wall time of the last invocation 1.0 min." in md
    assert "not timed" not in md
    resumed = prune_markdown(_prune_results([0.5], seed_wall_seconds=[None, None]))
    assert ("Wall time of the last invocation 1.0 min (seeds resumed half-way, not timed)."
            in resumed)


def test_rows_from_a_checkout_without_git_are_named_by_their_source_alone():
    """tinysift run from outside a git checkout records its git commit as "": the table
    names such rows by their source hash and machine, with no empty ", git" part."""
    from tinysift.bench.report import origins_lines

    sets = [{"tinysift_source": "abc", "git": "", "machine": "vm (EPYC, 2 CPUs)", "rows": 4},
            {"tinysift_source": "def", "git": "0123456789abcdef", "machine": "pc", "rows": 2}]
    assert origins_lines({"origins": sets}) == [
        "Rows from 2 code versions or machines (a resumed bench): 4 from source abc on vm "
        "(EPYC, 2 CPUs); 2 from source def, git 0123456789 on pc.", ""]


def test_a_keep_that_random_did_not_run_has_no_paired_difference():
    """A method run at a keep random was not run at (results merged from benches of other
    keeps) has nothing to be paired with there: its paired cell is "-" (not a KeyError on
    random's missing keep), the other keeps' differences as usual."""
    from tinysift.bench.report import prune_markdown

    res = _prune_results([0.1, 0.5])
    del res["methods"]["random"]["0.5"]
    md = prune_markdown(res)
    assert "| random | **0.8000 ± 0.0100** | - |" in md
    assert "| vq | +0.00 ± 0.00 | - |" in md


def test_a_pruning_plot_of_13_methods_gives_each_its_own_colour(tmp_path: Path,
                                                                kept_figures: list):
    """Past ten methods the plot takes tab20's light shades: 13 methods (as many as the
    committed pruning benches plot) each get a colour of their own, no two the same; vq and
    flow, tinysift's own, stand out in their highlight colours and thicker lines."""
    from matplotlib.colors import to_hex

    from tinysift.bench.report import prune_plot

    names = ["random", "vq", "flow"] + [f"m{i}" for i in range(10)]
    res = _prune_results([0.1])
    point = res["methods"]["random"]
    res["methods"] = {name: point for name in names}
    fig = _plotted(prune_plot, res, tmp_path, kept_figures)
    lines = {c.get_label(): c[0] for c in fig.axes[0].containers}
    colors = {name: to_hex(line.get_color()) for name, line in lines.items()}
    assert list(colors) == names
    assert colors["vq"] == "#000000" and colors["flow"] == "#c2185b"
    assert len(set(colors.values())) == len(names), colors
    widths = {name: line.get_linewidth() for name, line in lines.items()}
    assert widths["vq"] == widths["flow"] == 2.6
    assert {widths[name] for name in names if name not in ("vq", "flow")} == {1.0}


def test_a_pruning_plot_draws_a_method_at_the_keeps_it_ran(tmp_path: Path,
                                                          kept_figures: list):
    """A method not run at every keep (a results file merged from benches of other keeps)
    is plotted at the keeps it ran, and its difference to random only where both ran: vq
    at 0.1 and 0.5 of 0.1, 0.3 and 0.5, random at 0.1 and 0.3, so one difference."""
    from tinysift.bench.report import prune_plot

    res = _prune_results([0.1, 0.3, 0.5])
    res["methods"] = {"random": {"0.1": {"acc_mean": 0.70, "acc_std": 0.01},
                                 "0.3": {"acc_mean": 0.80, "acc_std": 0.01}},
                      "vq": {"0.1": {"acc_mean": 0.75, "acc_std": 0.02},
                             "0.5": {"acc_mean": 0.85, "acc_std": 0.02}}}
    acc, diff = _plotted(prune_plot, res, tmp_path, kept_figures).axes
    assert _errorbars(acc) == {"random": ([0.1, 0.3], [0.70, 0.80], [0.01, 0.01]),
                               "vq": ([0.1, 0.5], [0.75, 0.85], [0.02, 0.02])}
    (vq,) = [ln for ln in diff.get_lines() if ln.get_label() == "vq"]
    assert list(vq.get_xdata()) == [0.1] and round(float(vq.get_ydata()[0]), 6) == 5.0


def test_a_guided_table_marks_a_method_without_a_budget_with_a_dash():
    """A method not run at a budget shows "-" in its accuracy, paired-difference and cost
    cells; the over-budget note gives the factor the results were judged with."""
    from tinysift.bench.guided_report import guided_markdown

    res = _guided_results(3) | {"budgets": [0.3, 0.5], "over_budget_factor": 1.05}
    res["methods"]["rs2"]["0.3"] = res["methods"]["rs2"]["0.5"] | {"acc_mean": 0.7,
                                                                  "over_budget": 1}
    md = guided_markdown(res)
    assert "| rs2 | **0.7000 ± 0.0100 (0.50)** ⚠ | 0.7900 ± 0.0100 (0.50) |" in md
    assert "| vq | - | **0.8200 ± 0.0100 (0.50)** |" in md
    assert "| vq | - | **+2.00 ± 0.00** |" in md
    assert "| vq | - | 10 (1.0) |" in md
    assert "⚠ Over budget: rs2 at 0.3: 1 of 3 run(s) spent more than 1.05 x the budget" in md


def test_a_guided_plot_by_hand(tmp_path, kept_figures):
    """Left panel: accuracy per budget with the std as the error bar and the full-data mean
    as a line. Right panel: at the middle budget (0.5 of 0.3, 0.5, 0.7) the mean over seeds
    of the training curves (seeds 0.5 -> 0.7 and 0.7 -> 0.9: 0.6 -> 0.8), and the full-data
    recipe's curve dashed, the axis starting 0.05 below its lowest point past the first
    third."""
    from tinysift.bench.guided_report import guided_plot

    def point(acc: float, std: float, lo: float) -> dict:
        curves = [[[0.0, lo], [1.0, lo + 0.2]], [[0.0, lo + 0.2], [1.0, lo + 0.4]]]
        return {"acc_mean": acc, "acc_std": std, "curves": curves}

    res = _guided_results(2) | {"budgets": [0.3, 0.5, 0.7],
                                "full_data_curves": [[[0.0, 0.4], [1.0, 0.6]]]}
    res["methods"] = {"rs2": {"0.3": point(0.70, 0.01, 0.1), "0.5": point(0.75, 0.02, 0.5),
                              "0.7": point(0.78, 0.03, 0.2)}}
    fig = _plotted(guided_plot, res, tmp_path, kept_figures)
    acc, during = fig.axes
    assert _errorbars(acc) == {"rs2": ([0.3, 0.5, 0.7], [0.70, 0.75, 0.78],
                                       [0.01, 0.02, 0.03])}
    full = [ln for ln in acc.get_lines() if ln.get_label() == "full-data recipe"]
    assert len(full) == 1 and list(full[0].get_ydata()) == [0.8, 0.8]
    curves = {ln.get_label(): ln for ln in during.get_lines()}
    assert set(curves) == {"rs2", "full-data recipe"}
    rs2 = [round(float(y), 6) for y in curves["rs2"].get_ydata()]
    assert (rs2[0], rs2[-1]) == (0.6, 0.8) and curves["rs2"].get_linestyle() == "-"
    full_curve = [round(float(y), 6) for y in curves["full-data recipe"].get_ydata()]
    assert (full_curve[0], full_curve[-1]) == (0.4, 0.6)
    assert curves["full-data recipe"].get_linestyle() == "--"
    assert round(during.get_ylim()[0], 6) == 0.35
    assert during.get_title() == ("accuracy during training, budget 0.5 (test subset, mean "
                                  "over seeds)")


def test_a_guided_budget_no_method_holds_is_a_column_of_dashes():
    """A results file whose budgets list one that none of its methods holds (cut to some
    methods, or merged from benches of other budgets) renders that column as "-" in every
    table, the other budgets as usual, instead of failing on the max of nothing."""
    from tinysift.bench.guided_report import guided_markdown

    res = _guided_results(3) | {"budgets": [0.3, 0.5]}
    md = guided_markdown(res)
    assert "| rs2 | - | 0.7900 ± 0.0100 (0.50) |" in md
    assert "| vq | - | **0.8200 ± 0.0100 (0.50)** |" in md
    assert "| vq | - | **+2.00 ± 0.00** |" in md and "| vq | - | 10 (1.0) |" in md


def test_a_guided_plot_ends_each_mean_curve_where_its_shortest_seed_ends(tmp_path: Path,
                                                                         kept_figures: list):
    """The curves panel (the middle budget, 0.5) averages the seeds on a common grid that
    ends at the shortest seed's last epoch (vq's seeds end at 0.9 and 1.0 of the recipe:
    its mean ends at 0.9, no seed held flat past its end); a seed without a curve (none
    logged: ``[]``) is left out of the mean, and a method not run at the middle budget has
    no curve there but its accuracy line; the axis starts 0.05 below the full-data curve's
    lowest point past its first third (its first epoch's 0.1 would squash the rest); vq and
    flow, tinysift's own, are drawn thicker than rs2."""
    from tinysift.bench.guided_report import guided_plot

    def point(curves: list) -> dict:
        return {"acc_mean": 0.8, "acc_std": 0.01, "curves": curves}

    res = _guided_results(2) | {"budgets": [0.3, 0.5, 0.7],
                                "full_data_curves": [[[0.3, 0.1], [0.6, 0.6], [1.0, 0.7]]]}
    res["methods"] = {"rs2": {"0.5": point([[[0.0, 0.5], [1.0, 0.7]], []])},
                      "vq": {"0.5": point([[[0.0, 0.4], [0.9, 0.8]],
                                           [[0.0, 0.6], [1.0, 1.0]]])},
                      "flow": {"0.3": point([[[0.0, 0.5], [1.0, 0.9]]])}}
    acc, during = _plotted(guided_plot, res, tmp_path, kept_figures).axes
    curves = {ln.get_label(): ln for ln in during.get_lines()}
    assert set(curves) == {"rs2", "vq", "full-data recipe"}
    assert [round(float(y), 6) for y in curves["rs2"].get_ydata()[::39]] == [0.5, 0.7]
    vq = curves["vq"]
    assert round(float(vq.get_xdata()[-1]), 6) == 0.9
    assert round(float(vq.get_ydata()[-1]), 6) == round((0.8 + 0.6 + 0.4 * 0.9) / 2, 6)
    assert round(float(curves["rs2"].get_xdata()[-1]), 6) == 1.0
    assert round(during.get_ylim()[0], 6) == 0.55
    widths = {c.get_label(): c[0].get_linewidth() for c in acc.containers}
    assert widths == {"rs2": 1.2, "vq": 2.4, "flow": 2.4}
    assert vq.get_linewidth() == 2.4 and curves["rs2"].get_linewidth() == 1.2


def test_device_table_spread_from_two_seeds_and_no_section_for_an_update_without_points():
    """Two seeds have a spread to show (± std); an update mode the results list but hold no
    point of (a partial results file) gets no empty section."""
    from tinysift.bench.device_report import device_markdown

    res = _device_results("new-classes", _device_point()) | {"seeds": 2,
                                                              "updates": ["head", "full"]}
    md = device_markdown(res)
    assert "| vq | 5 | 0.8000 ± 0.0100 | 0.7000 | 0.9000 |" in md
    assert "## update=head" in md and "## update=full" not in md
    assert "| vq | 5 | 0.8000 | 0.7000 |" in device_markdown(res | {"seeds": 1})


def _dotted(ax) -> list[list[float]]:
    return [[round(float(y), 6) for y in ln.get_ydata()] for ln in ax.get_lines()
            if ln.get_linestyle() == ":"]


def _hlines(ax) -> dict[str, float]:
    """The horizontal reference lines of ``ax`` by label: their height."""
    return {ln.get_label(): float(ln.get_ydata()[0]) for ln in ax.get_lines()
            if ln.get_linestyle() == "--"}


def test_a_device_plot_by_hand(tmp_path, kept_figures):
    """Per update mode: each replay method's mean accuracy per replay size with its std bar,
    its old-task accuracy dotted, no replay and the host joint model as dashed lines; vq
    drawn bold and black, a method without points skipped. On a shifted domain (no old
    accuracy measured) nothing is dotted and the title says none; a method measured at some
    sizes only is not dotted either, and results without a joint model draw no line for it."""
    from matplotlib.colors import to_hex

    from tinysift.bench.device_report import device_plot

    def point(method: str, size: int, acc: float, old: float | None) -> dict:
        return {"method": method, "size": size, "update": "head", "acc_mean": acc,
                "acc_std": size / 1000, "acc_old": old}

    # no replay's old accuracy unmeasured: it is no replay method's curve
    points = [point("none", 0, 0.3, None), point("random", 5, 0.6, 0.5),
              point("random", 10, 0.7, 0.6), point("vq", 10, 0.8, 0.75),
              point("vq", 5, 0.65, 0.55)]
    res = {"scenario": "new-classes", "dataset": "digits", "board": "qemu-m4", "seeds": 3,
           "updates": ["head"], "methods": ["herding", "random", "vq"],
           "joint": {"acc_mean": 0.95},
           "points": {f"{p['method']}:{p['size']}:head": p for p in points}}
    fig = _plotted(device_plot, res, tmp_path, kept_figures)
    (ax,) = fig.axes
    assert fig.get_suptitle() == "new-classes: digits on qemu-m4"
    assert _errorbars(ax) == {"random": ([5.0, 10.0], [0.6, 0.7], [0.005, 0.01]),
                              "vq": ([5.0, 10.0], [0.65, 0.8], [0.005, 0.01])}
    # random: tab10's second colour (the second method listed), vq highlighted
    assert [(to_hex(c[0].get_color()), c[0].get_linewidth()) for c in ax.containers] == [
        ("#ff7f0e", 1.2), ("#000000", 2.4)]
    assert _dotted(ax) == [[0.5, 0.6], [0.55, 0.75]]
    assert _hlines(ax) == {"no replay": 0.3, "host joint model": 0.95}
    assert ax.get_title() == "update=head (3 seeds); dotted: old task"
    for p in points:
        p["acc_old"] = None
    points[3]["acc_old"] = 0.75  # vq at 10 only
    shift = {k: v for k, v in res.items() if k != "joint"} | {"scenario": "shift"}
    (ax,) = _plotted(device_plot, shift, tmp_path, kept_figures).axes
    assert _dotted(ax) == [] and ax.get_title() == "update=head (3 seeds)"
    assert _hlines(ax) == {"no replay": 0.3}
    # a partial results file of the floor alone: no dotted line, none promised
    floor = shift | {"points": {k: v for k, v in shift["points"].items()
                                if v["method"] == "none"}}
    (ax,) = _plotted(device_plot, floor, tmp_path, kept_figures).axes
    assert _dotted(ax) == [] and ax.get_title() == "update=head (3 seeds)"


def test_a_device_plot_draws_each_update_mode_in_its_own_panel(tmp_path: Path,
                                                               kept_figures: list) -> None:
    """One panel per update mode, each with that mode's points and its own no-replay floor
    (head's and full's differ), its axes named; one seed is "1 seed"; flow is drawn bold in
    its own colour like vq, each method's old-task accuracy dotted in its curve's colour,
    every curve in the legend beside the reference lines."""
    from matplotlib.colors import to_hex

    from tinysift.bench.device_report import device_plot

    def point(method: str, size: int, update: str, acc: float) -> dict:
        return {"method": method, "size": size, "update": update, "acc_mean": acc,
                "acc_std": 0.01, "acc_old": acc - 0.1}

    points = [point("none", 0, "head", 0.3), point("flow", 5, "head", 0.6),
              point("random", 5, "head", 0.55), point("none", 0, "full", 0.2),
              point("flow", 5, "full", 0.7), point("random", 5, "full", 0.65)]
    res = {"scenario": "new-classes", "dataset": "digits", "board": "qemu-m4", "seeds": 1,
           "updates": ["head", "full"], "methods": ["random", "flow"],
           "points": {f"{p['method']}:{p['size']}:{p['update']}": p for p in points}}
    head, full = _plotted(device_plot, res, tmp_path, kept_figures).axes
    assert _errorbars(head) == {"random": ([5.0], [0.55], [0.01]),
                                "flow": ([5.0], [0.6], [0.01])}
    assert _errorbars(full) == {"random": ([5.0], [0.65], [0.01]),
                                "flow": ([5.0], [0.7], [0.01])}
    assert (_hlines(head), _hlines(full)) == ({"no replay": 0.3}, {"no replay": 0.2})
    assert (head.get_title(), full.get_title()) == (
        "update=head (1 seed); dotted: old task", "update=full (1 seed); dotted: old task")
    assert [(to_hex(c[0].get_color()), c[0].get_linewidth()) for c in full.containers] == [
        ("#1f77b4", 1.2), ("#c2185b", 2.4)]
    # each method's old-task accuracy dotted in its curve's colour
    assert [(to_hex(ln.get_color()), round(float(ln.get_ydata()[0]), 6))
            for ln in full.get_lines() if ln.get_linestyle() == ":"] == [("#1f77b4", 0.55),
                                                                         ("#c2185b", 0.6)]
    for ax in (head, full):
        assert (ax.get_xlabel(), ax.get_ylabel()) == ("replay samples per old class",
                                                      "test accuracy (int8, on the device)")
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == [
            "flow", "no replay", "random"]


def test_an_upkeep_plot_by_hand(tmp_path, kept_figures):
    """Per update mode: reservoir and coverage accuracy per buffer size with the std bar,
    and the whole stream kept as a dashed line."""
    from tinysift.bench.upkeep_report import upkeep_plot

    def point(policy: str, per_class: int | None, acc: float) -> dict:
        return {"policy": policy, "per_class": per_class, "update": "head", "acc_mean": acc,
                "acc_std": acc / 100}

    points = [point("coverage", 10, 0.8), point("reservoir", 10, 0.75),
              point("reservoir", 5, 0.7), point("coverage", 5, 0.72), point("all", None, 0.9)]
    res = {"scenario": "shift", "dataset": "mnist", "board": "qemu-m4", "seeds": 2,
           "updates": ["head"], "points": {str(i): p for i, p in enumerate(points)}}
    (ax,) = _plotted(upkeep_plot, res, tmp_path, kept_figures).axes
    assert _errorbars(ax) == {"reservoir": ([5.0, 10.0], [0.7, 0.75], [0.007, 0.0075]),
                              "coverage": ([5.0, 10.0], [0.72, 0.8], [0.0072, 0.008])}
    assert _hlines(ax) == {"whole stream kept": 0.9}
    assert ax.get_title() == "update=head (2 seeds)"


def _upkeep_results(scenario: str, **config) -> dict:
    """Upkeep results of 3 seeds: reservoir and coverage at 5 per class, update=head."""
    base = {"per_class": 5, "update": "head", "acc_std": 0.01, "acc_old": 0.6,
            "acc_new": 0.9, "kept": 50.0, "codewords": 0, "covered": 0,
            "stream_cycles": 100000.0, "seen": 100.0, "energy_mj": 12.34}
    return {"scenario": scenario, "dataset": "fashion-mnist", "board": "qemu-m4", "seeds": 3,
            "updates": ["head"],
            "points": {"reservoir:5:head": base | {"policy": "reservoir", "acc_mean": 0.78},
                       "coverage:5:head": base | {"policy": "coverage", "acc_mean": 0.8}},
            "config": {"vq_per_class": 4, "replay": "vq", "replay_per_class": 10,
                       "steps": 10, "batch": 8, "lr": 0.01, "schedule": "const"} | config,
            "machine": {}, "wall_seconds": 60.0}


def test_an_upkeep_table_header_has_a_column_for_each_cell_of_its_rows():
    """With two tasks (new-classes) the header names the old and new columns its rows fill,
    with as many columns as each row has cells; a file from before the coverage rules were
    versioned says rules 1 (what coverage did then); an update mode the results list but
    hold no point of gets no empty section."""
    from tinysift.bench.upkeep_report import upkeep_markdown

    res = _upkeep_results("new-classes") | {"updates": ["head", "full"]}
    lines = upkeep_markdown(res).splitlines()
    head = lines.index("## update=head") + 2
    assert lines[head] == ("| buffer / class | policy | accuracy | old | new | coverage - "
                           "reservoir (pt) | kept | codewords seen / covered | upkeep "
                           "instructions / sample | training mJ |")
    columns = lines[head].count("|")
    assert [line.count("|") for line in lines[head + 1:head + 4]] == [columns] * 3
    assert lines[head + 3].startswith("| 5 | coverage | 0.8000 ± 0.0100 | 0.6000 | 0.9000 |")
    assert "## update=full" not in lines
    assert "rules 1: a reservoir per codeword, the buffer split evenly over the codewords " \
           "seen" in lines[2]
    ruled = upkeep_markdown(_upkeep_results("new-classes", coverage_rules=3)).splitlines()
    assert "rules 3: a class-balanced reservoir, stratified by codeword" in ruled[2]


def test_an_upkeep_plot_draws_each_update_modes_points_in_its_own_panel(tmp_path: Path,
                                                                        kept_figures: list):
    """One panel per update mode, each with that mode's points only (head's buffers at
    0.7/0.75, full's at 0.8/0.85), not every mode's."""
    from tinysift.bench.upkeep_report import upkeep_plot

    res = _upkeep_results("new-classes") | {"updates": ["head", "full"]}
    for update, acc in (("head", 0.7), ("full", 0.8)):
        for policy, extra in (("reservoir", 0.0), ("coverage", 0.05)):
            res["points"][f"{policy}:5:{update}"] = {
                "policy": policy, "per_class": 5, "update": update,
                "acc_mean": acc + extra, "acc_std": 0.01}
    head, full = _plotted(upkeep_plot, res, tmp_path, kept_figures).axes
    assert [[round(y, 6) for y in bars[1]] for bars in _errorbars(head).values()] == [[0.7],
                                                                                     [0.75]]
    assert [[round(y, 6) for y in bars[1]] for bars in _errorbars(full).values()] == [[0.8],
                                                                                     [0.85]]
    assert (head.get_title(), full.get_title()) == ("update=head (3 seeds)",
                                                    "update=full (3 seeds)")


def test_firmware_size_table_rerenders_identical_and_names_a_platformio_disagreement():
    """benchmarks/results/firmware_size.md is what tools/firmware_size_table.py renders from
    its JSON; where PlatformIO's own RAM line says another figure than the ELF's, the table
    names the board and the build instead of "the same figures"."""
    import copy

    fst = load_tool("firmware_size_table")
    res = json.loads((RESULTS / "firmware_size.json").read_text())
    md = fst.markdown(res)
    assert md == (RESULTS / "firmware_size.md").read_text()
    assert "PlatformIO's own RAM and flash lines give the same figures." in md
    other = copy.deepcopy(res)
    board = next(iter(other["boards"]))
    other["boards"][board]["with_export"]["platformio"]["ram"]["used"] += 4
    said = fst.markdown(other)
    assert f"give the same figures except: {board} with the export: PlatformIO says " in said
    assert f"{board} without a model" not in said


def test_trainer_table_rerenders_identical_and_writes_millions_as_the_docs_do():
    """benchmarks/results/trainer_qemu.md (docs/trainer.md's cost tables) is what
    tools/trainer_table.py renders from its JSON; instruction counts are thousands below a
    million, millions to two decimals, whole millions with separators from a billion."""
    tt = load_tool("trainer_table")
    res = json.loads((RESULTS / "trainer_qemu.json").read_text())
    assert tt.markdown(res) == (RESULTS / "trainer_qemu.md").read_text()
    assert [tt.fmt_m(v) for v in (12_345, 999_000, 1e6, 2_345_678, 1e9, 1_234_567_890)] == [
        "12.3 k", "999.0 k", "1.00 M", "2.35 M", "1,000 M", "1,235 M"]
