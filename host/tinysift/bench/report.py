"""Markdown tables and plots for benchmark results files."""

from __future__ import annotations

from pathlib import Path


def noise_phrase(label_noise: float) -> str:
    """``, 20% label noise`` (nothing without noise) for a table's title."""
    return f", {100 * label_noise:g}% label noise" if label_noise else ""


def seeds_phrase(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def acc_cell(v: dict, seeds: int) -> str:
    """Mean ± std; a single seed has no spread to show."""
    return f"{v['acc_mean']:.4f}" + (f" ± {v['acc_std']:.4f}" if seeds > 1 else "")


def full_data_cell(res: dict) -> str:
    """The full-data reference accuracy of a results file, as a table cell."""
    full = res["full_data_acc"]
    return acc_cell({"acc_mean": full["mean"], "acc_std": full["std"]}, res["seeds"])


PROTOCOL_TEXT = {
    "proportional": "training steps shrink with the kept set (max({min_steps} steps, "
                    "{subset_epochs} epochs of it)): what a kept set buys at proportional "
                    "compute",
    "equal-steps": "every kept set trains for the full data's sample-passes: selection "
                   "quality alone, the regime of a device looping over a tiny set",
}


def protocol_text(res: dict) -> str:
    """The protocol's line of a pruning table, with the step rule the results ran with
    (their config's; the defaults 250 and 3 for a file without one)."""
    cfg = res.get("config", {})
    return PROTOCOL_TEXT[res.get("protocol", "proportional")].format(
        min_steps=cfg.get("min_steps", 250), subset_epochs=cfg.get("subset_epochs", 3))


def prune_markdown(res: dict) -> str:
    keeps = [f"{k:g}" for k in res["keep"]]  # the results' keys (a keep of 1 is "1")
    protocol = res.get("protocol", "proportional")
    lines = [f"# Pruning benchmark: {res['dataset']}"
             + noise_phrase(res["label_noise"])
             + ("" if protocol == "proportional" else f", protocol {protocol}"),
             "", f"Protocol **{protocol}**: {protocol_text(res)}.", "",
             f"Test accuracy (mean ± std over {seeds_phrase(res['seeds'])}) of the tiny CNN "
             "trained on "
             "the kept samples; best mean per budget in bold. Full data: "
             f"{full_data_cell(res)} "
             f"({res['full_data_seconds']:.0f} s per training).", "",
             "| method | " + " | ".join(f"keep {k}" for k in keeps) + " |",
             "|---|" + "---|" * len(keeps)]
    best = {k: max(m[k]["acc_mean"] for m in res["methods"].values() if k in m) for k in keeps}
    for name, per in res["methods"].items():
        cells = []
        for k in keeps:
            if k not in per:
                cells.append("-")
                continue
            v = per[k]
            cell = acc_cell(v, res["seeds"])
            cells.append(f"**{cell}**" if v["acc_mean"] == best[k] else cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += paired_to_random(res, keeps)
    lines += ["", "## Cost (seconds, mean over seeds)", "",
              "Scoring includes any training the score needs (the proxy CNN for dynamics-based "
              "methods, embeddings). Total = scoring + training on the kept samples; ratio = "
              "total / full-data training, the full data's training timed at the speed of the "
              "point's own training (its share of the full data's steps), so points measured "
              "on machines of different speeds compare. Ratios above 1 mean the method costs "
              "more than training on everything (⚠ from 1.005: an equal-steps random set's "
              "ratio is 1 plus its selection's milliseconds). Scoring: the most a keep's "
              "scoring took (small keeps of some methods score longer).", "",
              "| method | scoring (max) | "
              + " | ".join(f"total @ {k} (ratio)" for k in keeps) + " |",
              "|---|---|" + "---|" * len(keeps)]
    for name, per in res["methods"].items():
        scoring = max(v["score_seconds"] for v in per.values())
        cells = []
        for k in keeps:
            if k in per:
                total = per[k]["score_seconds"] + per[k]["train_seconds"]
                ratio = per[k]["cost_ratio"]
                flag = " ⚠" if ratio > 1.005 else ""
                cells.append(f"{total:.0f} ({ratio:.2f}){flag}")
            else:
                cells.append("-")
        lines.append(f"| {name} | {scoring:.1f} | " + " | ".join(cells) + " |")
    lines += ["", f"Recipe: {res['recipe']}", "",
              f"Machine: {res['machine'].get('processor')} × {res['machine'].get('cpus')} CPUs; "
              f"tensorflow {res['versions'].get('tensorflow')}, tinysift "
              f"{res['versions'].get('tinysift')}. " + wall_phrase(res), ""]
    return "\n".join(lines + origins_lines(res))


def origins_lines(res: dict) -> list[str]:
    """One line, when a results file's rows came from more than one code version or machine
    (a resumed bench, ``origins`` in the JSON), saying so; nothing otherwise."""
    sets = res.get("origins", [])
    if len(sets) < 2:
        return []

    def name(o: dict) -> str:
        if o["tinysift_source"] == "unrecorded":
            return "unrecorded (logged before records named them)"
        git = f", git {o['git'][:10]}" if o.get("git") else ""
        return f"source {o['tinysift_source']}{git} on {o['machine']}"

    return [f"Rows from {len(sets)} code versions or machines (a resumed bench): "
            + "; ".join(f"{o['rows']} from {name(o)}" for o in sets) + ".", ""]


def paired_to_random(res: dict, keeps: list[str]) -> list[str]:
    """Each method minus random on the same seed, in points with a 95% t interval."""
    from tinysift.bench.stats import diff_cell, paired_difference

    rand = res["methods"].get("random")
    if rand is None or res["seeds"] < 2:
        return []
    lines = ["", "## Paired difference to random (points, 95% interval; bold: excludes 0)",
             "", "Same seed = same initialization and random stream for both methods.", "",
             "| method | " + " | ".join(f"keep {k}" for k in keeps) + " |",
             "|---|" + "---|" * len(keeps)]
    for name, per in res["methods"].items():
        if name == "random":
            continue
        cells = [diff_cell(paired_difference(per[k]["runs"], rand[k]["runs"]))
                 if k in per and k in rand else "-" for k in keeps]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def wall_phrase(res: dict) -> str:
    """Wall time per seed where a seed ran in one go; else the last invocation's time."""
    per_seed = [s for s in res.get("seed_wall_seconds", []) if s is not None]
    if not per_seed:
        untimed = " (seeds resumed half-way, not timed)" if "seed_wall_seconds" in res else ""
        return f"Wall time of the last invocation {res['wall_seconds'] / 60:.1f} min{untimed}."
    mins = ", ".join(f"{s / 60:.1f}" for s in per_seed)
    text = f"Wall time per seed: {mins} min"
    if len(per_seed) < res["seeds"]:
        text += f" ({res['seeds'] - len(per_seed)} seed(s) resumed half-way, not timed)"
    return text + "."


def prune_plot(res: dict, path: Path) -> None:
    """Left: accuracy vs fraction kept (log x, error bars over seeds). Right: the same minus
    random's accuracy at each budget, in points, where the close methods can be told apart."""
    from tinysift.report.plots import log_scale, pyplot

    plt = pyplot()

    fig, (ax, dx) = plt.subplots(1, 2, figsize=(12, 4.8))
    keeps = [float(k) for k in res["keep"]]
    colors = plt.get_cmap("tab20").colors
    markers = "os^vD<>phX*P"
    highlight = {"vq": "black", "flow": "#c2185b"}  # tinysift's methods stand out
    rand = res["methods"].get("random", {})
    for i, (name, per) in enumerate(res["methods"].items()):
        xs = [k for k in keeps if f"{k:g}" in per]
        pts = [per[f"{k:g}"] for k in xs]
        ours = name in highlight
        # tab20's dark shades for the first ten methods, its light shades after
        color = highlight.get(name, colors[(2 * i) % 20 + (i >= 10)])
        style = {"linewidth": 2.6 if ours else 1.0, "alpha": 1.0 if ours else 0.8,
                 "color": color, "marker": markers[i % len(markers)],
                 "markersize": 5 if ours else 3.5, "label": name}
        ax.errorbar(xs, [p["acc_mean"] for p in pts], yerr=[p["acc_std"] for p in pts],
                    capsize=2, **style)
        both = [(k, p) for k, p in zip(xs, pts, strict=True) if f"{k:g}" in rand]
        if both and name != "random":
            diff = [100 * (p["acc_mean"] - rand[f"{k:g}"]["acc_mean"]) for k, p in both]
            dx.plot([k for k, _ in both], diff, **style)
    ax.axhline(res["full_data_acc"]["mean"], color="black", linestyle="--", linewidth=1,
               label="full data")
    dx.axhline(0.0, color="black", linewidth=1)
    noise = noise_phrase(res["label_noise"])
    ax.set_title(f"{res['dataset']}{noise}: accuracy vs data kept ({seeds_phrase(res['seeds'])})")
    dx.set_title("difference to random (points); below -6 clipped")
    lows = [min(line.get_ydata()) for line in dx.get_lines() if len(line.get_ydata())]
    dx.set_ylim(max(-6.0, min(lows, default=-1.0) - 0.5), None)
    for a in (ax, dx):
        log_scale(a, "x")
        a.set_xlabel("fraction of training data kept")
        a.grid(True, which="both", alpha=0.3)
    ax.set_ylabel("test accuracy")
    dx.set_ylabel("accuracy - random (points)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
