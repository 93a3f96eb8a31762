"""Markdown table and plot of an on-device replay-upkeep results file
(``tinysift bench upkeep``)."""

from __future__ import annotations

from pathlib import Path

from tinysift.bench.device_report import recipe_footer
from tinysift.bench.report import seeds_phrase
from tinysift.bench.stats import diff_cell
from tinysift.pipeline.adapt import NEW_TASK_ONLY


def _mean_std(p: dict, seeds: int) -> str:
    return (f"{p['acc_mean']:.4f} ± {p['acc_std']:.4f}" if seeds > 1
            else f"{p['acc_mean']:.4f}")


# What `coverage` did, by the version tinysift.bench.upkeep.COVERAGE_RULES (results before
# rules 2 carry no version: 1).
RULES_TEXT = {1: "rules 1: a reservoir per codeword, the buffer split evenly over the "
                     "codewords seen",
                  2: "rules 2: a class-balanced, then codeword-balanced reservoir",
                  3: "rules 3: a class-balanced reservoir, stratified by codeword: each "
                     "codeword keeps a share of its class's slots proportional to its "
                     "samples"}


def upkeep_markdown(res: dict) -> str:
    seeds = res["seeds"]
    cfg = res["config"]
    # shift and user test the new task only (their results hold no old accuracy)
    two_tasks = res["scenario"] not in NEW_TASK_ONLY
    lines = [f"# On-device replay upkeep: {res['scenario']}, {res['dataset']} on "
             f"{res['board']}", "",
             f"The device streams every new sample (`db stream`) and keeps a buffer of "
             f"`per class x classes in the stream` samples: `reservoir` (plain reservoir "
             f"sampling) or `coverage` (over a per-class VQ codebook in the feature space, "
             f"{cfg['vq_per_class']} codewords per class exported, classes without host data "
             f"get codewords online; {RULES_TEXT[cfg.get('coverage_rules', 1)]}). Then "
             f"it trains on the "
             f"exported replay set ({cfg['replay']}, {cfg['replay_per_class']} per old class) "
             f"plus the buffer (`db use both`). `all` keeps the whole stream. Test accuracy of "
             f"the re-quantized int8 model (mean over {seeds_phrase(seeds)}"
             + ("; old = the base model's classes, new = the streamed ones)" if two_tasks
                else "; the new domain's test split)") + ".", ""]
    for update in res["updates"]:
        pts = [p for p in res["points"].values() if p["update"] == update]
        if not pts:
            continue
        head = "| buffer / class | policy | accuracy |"
        rule = "|---|---|---|"
        if two_tasks:
            head += " old | new |"
            rule += "---|---|"
        head += (" coverage - reservoir (pt) | kept | codewords seen / covered | "
                 "upkeep instructions / sample | training mJ |")
        rule += "---|---|---|---|---|"
        lines += [f"## update={update}", "", head, rule]
        order = {"reservoir": 0, "coverage": 1, "all": 2}
        for p in sorted(pts, key=lambda p: (p["per_class"] is None, p["per_class"] or 0,
                                            order.get(p["policy"], 3))):
            cells = ["whole stream" if p["per_class"] is None else str(p["per_class"]),
                     p["policy"], _mean_std(p, seeds)]
            if two_tasks:
                cells += [f"{p['acc_old']:.4f}", f"{p['acc_new']:.4f}"]
            cells += [diff_cell(p["vs_reservoir"]) if "vs_reservoir" in p else "-",
                      f"{p['kept']:.0f}",
                      f"{p['codewords']:.1f} / {p['covered']:.1f}" if p["codewords"] else "-",
                      f"{p['stream_cycles'] / max(1.0, p['seen']):,.0f}",
                      f"{p['energy_mj']:.1f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + recipe_footer(
        res, " Upkeep instructions: the device's counter over the stream (features and "
             "policy, not the serial link), per streamed sample. Training mJ: the training bill "
             "of every on-device table (docs/energy.md: the epochs plus, with update=head, the "
             "trained samples' share of the features pass), estimated from the board's "
             "profile; the stream itself is not in it."))


def upkeep_plot(res: dict, path: Path) -> None:
    """Accuracy against buffer size per policy (the whole stream as a line), one panel per
    update mode."""
    from tinysift.report.plots import pyplot

    plt = pyplot()

    ups = res["updates"]
    fig, axes = plt.subplots(1, len(ups), figsize=(6 * len(ups), 4.5), squeeze=False)
    colors = {"reservoir": "#1f77b4", "coverage": "black"}
    for ax, update in zip(axes[0], ups, strict=True):
        pts = [p for p in res["points"].values() if p["update"] == update]
        for policy, c in colors.items():
            pp = sorted((p for p in pts if p["policy"] == policy), key=lambda p: p["per_class"])
            if pp:
                ax.errorbar([p["per_class"] for p in pp], [p["acc_mean"] for p in pp],
                            yerr=[p["acc_std"] for p in pp], marker="o", color=c, capsize=2,
                            label=policy)
        whole = [p["acc_mean"] for p in pts if p["policy"] == "all"]
        for y in whole:
            ax.axhline(y, color="grey", linestyle="--", linewidth=1, label="whole stream kept")
        _decorate(ax, f"update={update} ({seeds_phrase(res['seeds'])})")
    fig.suptitle(f"replay upkeep, {res['scenario']}: {res['dataset']} on {res['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _decorate(ax, title: str) -> None:
    ax.set(title=title, xlabel="buffer samples per streamed class",
           ylabel="test accuracy (int8, on the device)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
