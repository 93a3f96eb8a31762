"""Markdown table and plot of a guided-training results file."""

from __future__ import annotations

from pathlib import Path

from tinysift.bench.report import (
    acc_cell,
    full_data_cell,
    noise_phrase,
    origins_lines,
    seeds_phrase,
    wall_phrase,
)
from tinysift.bench.stats import diff_cell

OURS = ("vq", "flow")


def guided_markdown(res: dict) -> str:
    budgets = [f"{b:g}" for b in res["budgets"]]
    noise = noise_phrase(res["label_noise"])
    lines = [f"# Guided training: {res['dataset']}{noise}", "",
             f"Test accuracy (mean ± std over {seeds_phrase(res['seeds'])}) after training at a "
             "budget of the full-data recipe's sample-passes (every overhead charged: fits of "
             "codebooks and densities at the run's own speed, extra forward passes at 1/3). "
             f"Full-data recipe: {full_data_cell(res)} "
             f"({res['full_data_seconds']:.0f} s per training). Best mean per budget in bold.",
             "", "| method | " + " | ".join(f"budget {b}" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    methods = res["methods"]
    best = {b: max(m[b]["acc_mean"] for m in methods.values() if b in m) for b in budgets
            if any(b in m for m in methods.values())}
    for name, per in methods.items():
        cells = []
        for b in budgets:
            if b not in per:
                cells.append("-")
                continue
            cell = acc_cell(per[b], res["seeds"]) + f" ({per[b]['spent']:.2f})"
            cell = f"**{cell}**" if per[b]["acc_mean"] == best.get(b) else cell
            cells.append(cell + (" ⚠" if per[b].get("over_budget") else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "In parentheses: the fraction of the recipe actually spent (mean).", ""]
    lines += _over_budget_note(res, budgets)
    for ref, title in (("full_data", "the full-data recipe"), ("full-cut", "`full-cut`"),
                       ("rs2", "`rs2`"), ("infobatch", "`infobatch`")):
        key = f"vs_{ref}"
        rows = [(name, per) for name, per in methods.items()
                if any(key in per[b] for b in budgets if b in per)]
        if not rows or res["seeds"] < 2:  # one seed has no interval
            continue
        lines += [f"## Paired difference to {title} (points, 95% interval; bold: excludes 0)",
                  "", "| method | " + " | ".join(f"budget {b}" for b in budgets) + " |",
                  "|---|" + "---|" * len(budgets)]
        for name, per in rows:
            cells = [diff_cell(per[b][key]) if b in per and key in per[b] else "-"
                     for b in budgets]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Cost", "", "| method | " + " | ".join(
        f"seconds @ {b} (fits)" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name, per in methods.items():
        cells = [f"{per[b]['seconds']:.0f} ({per[b]['fit_seconds']:.1f})" if b in per else "-"
                 for b in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Recipe: {res['recipe']}", "",
              f"Machine: {res['machine'].get('processor')} × {res['machine'].get('cpus')} CPUs; "
              f"tensorflow {res['versions'].get('tensorflow')}, tinysift "
              f"{res['versions'].get('tinysift')}. " + wall_phrase(res), ""]
    return "\n".join(lines + origins_lines(res))


def _over_budget_note(res: dict, budgets: list[str]) -> list[str]:
    """The footnote of the ⚠ cells: runs that spent more than ``over_budget_factor`` x their
    budget (a fit charged once it ran, past what the budget had left); none, no note."""
    over = [(name, b, per[b]["over_budget"]) for name, per in res["methods"].items()
            for b in budgets if per.get(b, {}).get("over_budget")]
    if not over:
        return []
    factor = res.get("over_budget_factor", 1.02)
    which = "; ".join(f"{name} at {b}: {n} of {res['seeds']} run(s)" for name, b, n in over)
    return [f"⚠ Over budget: {which} spent more than {factor:g} x the budget (a fit inside a "
            "method's plan is charged once it has run, and one costing more than the budget "
            "had left ends the run over it; `spent_of_budget` in the JSON gives each run's).",
            ""]


def guided_plot(res: dict, path: Path) -> None:
    """Left: accuracy against budget (error bars over seeds). Right: test-subset accuracy
    against the fraction of the recipe spent, mean over seeds, at the middle budget."""
    from tinysift.report.plots import pyplot

    plt = pyplot()
    import numpy as np

    fig, (ax, cx) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = plt.get_cmap("tab10").colors
    highlight = {"vq": "black", "flow": "#c2185b"}
    budgets = [f"{b:g}" for b in res["budgets"]]
    mid = budgets[len(budgets) // 2]
    for i, (name, per) in enumerate(res["methods"].items()):
        color = highlight.get(name, colors[i % 10])
        width = 2.4 if name in OURS else 1.2
        xs = [float(b) for b in budgets if b in per]
        ax.errorbar(xs, [per[f"{b:g}"]["acc_mean"] for b in xs],
                    yerr=[per[f"{b:g}"]["acc_std"] for b in xs], capsize=2, marker="o",
                    color=color, linewidth=width, label=name)
        if mid in per:
            _mean_curve(cx, per[mid]["curves"], color, width, name, np)
    ax.axhline(res["full_data_acc"]["mean"], color="grey", linestyle="--", linewidth=1,
               label="full-data recipe")
    _mean_curve(cx, res.get("full_data_curves", []), "grey", 1.0, "full-data recipe", np,
                dashed=True)
    noise = noise_phrase(res["label_noise"])
    ax.set_title(f"{res['dataset']}{noise}: accuracy vs budget ({seeds_phrase(res['seeds'])})")
    ax.set_xlabel("budget (fraction of the full-data recipe's sample-passes)")
    ax.set_ylabel("test accuracy")
    cx.set_title(f"accuracy during training, budget {mid} (test subset, mean over seeds)")
    cx.set_xlabel("sample-passes spent (fraction of the full-data recipe)")
    cx.set_ylabel("test-subset accuracy")
    lows = [p[1] for c in res.get("full_data_curves", []) for p in c[len(c) // 3:]]
    if lows:
        cx.set_ylim(min(lows) - 0.05, None)
    for a in (ax, cx):
        a.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    cx.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _mean_curve(ax, curves, color, width, label, np, dashed=False) -> None:
    """Average the seeds' curves on a common grid of spent fractions."""
    curves = [c for c in curves if c]
    if not curves:
        return
    end = min(c[-1][0] for c in curves)
    grid = np.linspace(min(c[0][0] for c in curves), end, 40)
    ys = np.mean([np.interp(grid, [p[0] for p in c], [p[1] for p in c]) for c in curves], 0)
    ax.plot(grid, ys, color=color, linewidth=width, label=label,
            linestyle="--" if dashed else "-")
