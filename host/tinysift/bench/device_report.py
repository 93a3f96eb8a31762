"""Markdown table and plot of an on-device adaptation results file."""

from __future__ import annotations

from pathlib import Path

from tinysift.bench.report import seeds_phrase
from tinysift.bench.stats import diff_cell


def _acc(p: dict, key: str = "acc", seeds: int = 1) -> str:
    mean = p["acc_mean"] if key == "acc" else p[key]
    if key == "acc" and seeds > 1:
        return f"{mean:.4f} ± {p['acc_std']:.4f}"
    return f"{mean:.4f}"


def device_markdown(res: dict) -> str:
    seeds = res["seeds"]
    lines = [f"# On-device adaptation: {res['scenario']}, {res['dataset']} on {res['board']}",
             "",
             f"Test accuracy of the device's re-quantized int8 model after training on the "
             f"replay set plus the new samples (mean over {seeds_phrase(seeds)}; old = the base "
             "model's task, new = what the device learns). `none` = no replay (the "
             "forgetting floor). Energy: estimated from the instruction count (board profile), "
             "training epochs only. RAM: the memory plan for the mode.", ""]
    joint = res.get("joint")
    if joint:
        lines += [f"Host joint model (the head trained on the frozen backbone's features of "
                  f"all the old data plus the new samples; the upper bound): all "
                  f"{joint['acc_mean']:.4f}, old {joint['acc_old']:.4f}, new "
                  f"{joint['acc_new']:.4f}.", ""]
    for update in res["updates"]:
        pts = {k: v for k, v in res["points"].items() if v["update"] == update}
        if not pts:
            continue
        lines += [f"## update={update}", "",
                  "| replay | per class | all | old | new | vs random (pt) | vs herding (pt) "
                  "| vs joint (pt) | old vs joint (pt) | mJ | RAM (plan) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for p in sorted(pts.values(), key=lambda p: (p["size"], p["method"])):
            cells = [p["method"], str(p["size"]), _acc(p, "acc", seeds),
                     f"{p['acc_old']:.4f}", f"{p['acc_new']:.4f}"]
            for ref in ("vs_random", "vs_herding", "vs_joint", "old_vs_joint"):
                cells.append(diff_cell(p[ref]) if ref in p else "-")
            cells += [f"{p['energy_mj']:.1f}", f"{int(p['ram_plan']):,}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + recipe_footer(res))


def recipe_footer(res: dict, note: str = "") -> list[str]:
    """The closing lines of an on-device results table: how differences are paired, the
    on-device recipe (``res["config"]``), ``note``, the machine and the wall time."""
    cfg = res["config"]
    return [f"Differences are paired over seeds with a 95% Student-t interval (bold: excludes "
            f"0). Recipe: {cfg['steps']} steps, batch {cfg['batch']}, lr {cfg['lr']} "
            f"{cfg['schedule']}, class-balanced loss.{note}", "",
            f"Machine: {res['machine'].get('processor')} × {res['machine'].get('cpus')} CPUs; "
            f"wall time of the last invocation {res['wall_seconds'] / 60:.1f} min.", ""]


def device_plot(res: dict, path: Path) -> None:
    """Accuracy (all, and old) against replay size per method, one panel per update mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ups = res["updates"]
    fig, axes = plt.subplots(1, len(ups), figsize=(6 * len(ups), 4.5), squeeze=False)
    highlight = {"vq": "black", "flow": "#c2185b"}
    colors = plt.get_cmap("tab10").colors
    for ax, update in zip(axes[0], ups, strict=True):
        pts = [p for p in res["points"].values() if p["update"] == update]
        for i, m in enumerate(res["methods"]):
            mp = sorted((p for p in pts if p["method"] == m), key=lambda p: p["size"])
            if not mp:
                continue
            c = highlight.get(m, colors[i % 10])
            ax.errorbar([p["size"] for p in mp], [p["acc_mean"] for p in mp],
                        yerr=[p["acc_std"] for p in mp], marker="o", color=c, capsize=2,
                        linewidth=2.4 if m in highlight else 1.2, label=m)
            ax.plot([p["size"] for p in mp], [p["acc_old"] for p in mp], linestyle=":",
                    color=c, linewidth=1)
        floor = next((p for p in pts if p["method"] == "none"), None)
        if floor:
            ax.axhline(floor["acc_mean"], color="red", linestyle="--", linewidth=1,
                       label="no replay")
        if res.get("joint"):
            ax.axhline(res["joint"]["acc_mean"], color="grey", linestyle="--", linewidth=1,
                       label="host joint model")
        ax.set_title(f"update={update} ({seeds_phrase(res['seeds'])}); dotted: old task")
        ax.set_xlabel("replay samples per old class")
        ax.set_ylabel("test accuracy (int8, on the device)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{res['scenario']}: {res['dataset']} on {res['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
