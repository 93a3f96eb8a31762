"""The demo's self-contained HTML report: on-device adaptation with a replay set."""

from __future__ import annotations

import html
import io
from pathlib import Path

from tinysift.report import plots
from tinysift.report.html import img_tag, table_html, write_page

HEADERS = ["replay", "per old class", "update", "all", "old", "new", "mJ (est.)",
           "RAM plan on the board", "fits " + "{fit}"]


def rows(summary: dict) -> list[list]:
    res = summary["results"]
    fit_board = summary["config"]["fit_board"]
    plans = summary["plans"]["boards"]
    out = []
    for p in sorted(res["points"].values(), key=lambda p: (p["update"], p["size"], p["method"])):
        key = f"{p['size']}:{p['update']}"
        fit = plans.get(fit_board, {}).get(key)
        ram = plans.get(summary["config"]["board"], {}).get(key)
        out.append([p["method"], p["size"], p["update"], f"{p['acc_mean']:.3f}",
                    f"{p['acc_old']:.3f}", f"{p['acc_new']:.3f}", f"{p['energy_mj']:.1f}",
                    f"{ram['ram_total']:,} B" if ram else "-",
                    ("yes" if fit["fits"] else "no") if fit else "-"])
    return out


def headers(summary: dict) -> list[str]:
    return [h.format(fit=summary["config"]["fit_board"]) for h in HEADERS]


def _replay_plot_png(res: dict) -> bytes:
    buf = io.BytesIO()
    replay_plot(res, buf)
    return buf.getvalue()


def accuracy_vs_energy(summary: dict) -> bytes:
    plt, fig, ax = plots._fig()
    res = summary["results"]
    for p in res["points"].values():
        color = plots.COLORS.get(p["method"], "#000000")
        ax.scatter(p["energy_mj"], p["acc_mean"], color=color, s=20 + 3 * p["size"],
                   marker="x" if p["method"] == "none" else "o",
                   label=f"{p['method']} ({p['update']})")
        ax.annotate(str(p["size"]), (p["energy_mj"], p["acc_mean"]), fontsize=7,
                    textcoords="offset points", xytext=(4, 2))
    ax.axhline(res["joint"]["acc_mean"], color="grey", linestyle="--", linewidth=1,
               label="host joint model")
    handles, labels = ax.get_legend_handles_labels()
    uniq = dict(zip(labels, handles, strict=True))
    ax.legend(uniq.values(), uniq.keys(), fontsize=7)
    ax.set_xlabel("on-device training energy, mJ (estimated; marker size: replay per class)")
    ax.set_ylabel("test accuracy, all classes (int8)")
    ax.set_title("Accuracy against energy")
    ax.grid(True, alpha=0.3)
    return plots._png(plt, fig)


def old_new_bars(summary: dict) -> bytes:
    plt, fig, ax = plots._fig()
    res = summary["results"]
    size = max(res["sizes"])
    pts = [p for p in res["points"].values()
           if p["update"] == res["updates"][0] and p["size"] in (0, size)]
    pts.sort(key=lambda p: (p["size"], p["method"]))
    xs = range(len(pts))
    ax.bar([x - 0.2 for x in xs], [p["acc_old"] for p in pts], width=0.4, label="old classes")
    ax.bar([x + 0.2 for x in xs], [p["acc_new"] for p in pts], width=0.4, label="new classes")
    ax.set_xticks(list(xs), [f"{p['method']}\n{p['size']}/class" for p in pts], fontsize=8)
    ax.axhline(res["joint"]["acc_old"], color="C0", linestyle="--", linewidth=1)
    ax.axhline(res["joint"]["acc_new"], color="C1", linestyle="--", linewidth=1)
    ax.set_ylabel("test accuracy (int8, on the device)")
    ax.set_title(f"Old vs new classes at {size} replay samples per class (dashed: joint model)")
    ax.legend(fontsize=8)
    return plots._png(plt, fig)


def write_adapt_report(summary: dict, path: Path) -> Path:
    res = summary["results"]
    cfg = summary["config"]
    fits = summary["plans"]["largest_replay_per_class_fitting"]
    figures = [
        img_tag(_replay_plot_png(res), "accuracy against replay size per method"),
        img_tag(accuracy_vs_energy(summary), "accuracy against on-device energy"),
        img_tag(old_new_bars(summary), "old and new classes per method"),
        img_tag(plots.memory_plan({"memory_plan": summary["plans"]["detail"]}),
                "memory plan against the board"),
    ]
    fit_text = ", ".join(f"update={u}: {n} per class" for u, n in fits["by_update"].items())
    content = f"""<h1>tinysift: learning new classes on {html.escape(cfg['board'])}</h1>
<p>{html.escape(res['scenario_info']['description'])}. The base model (int8, checked with the
TFLM runtime) runs on the emulated board; the device trains on a <b>replay set</b> of the old
classes, chosen by each replay method on the host, plus the new samples streamed over serial,
for {cfg['steps']} steps ({cfg['schedule']} learning rate, class-balanced loss), and reports
per-class accuracy of its re-quantized int8 model on up to
{res['config']['test_per_class']} test samples per class (all a class has where it has
fewer). Energy is <b>estimated</b> from the instruction count and the board profile. Host
joint model (upper bound): all {res['joint']['acc_mean']:.3f}, old
{res['joint']['acc_old']:.3f}, new {res['joint']['acc_new']:.3f}. One seed: see
<code>tinysift bench device</code> for the multi-seed comparison.</p>
{table_html(headers(summary), rows(summary))}
<p>{html.escape(summary['headline'])} On {html.escape(fits['board'])} (the memory plan, replay
set in flash, {summary['plans']['new_samples']} new samples streamed into RAM) the largest
replay set that fits: {html.escape(fit_text)}.</p>
{''.join(figures)}
<h2>Command</h2><pre>{html.escape(summary['command'])}</pre>"""
    return write_page(path, summary["name"], content, summary,
                      f"Seed {cfg['seed']}. Wall time {summary['wall_seconds']:.0f} s.")


def replay_plot(res: dict, path) -> None:
    """Accuracy (all, and old) against replay size per method, one panel per update mode
    (``path``: a file name or a binary file object)."""
    from tinysift.report.plots import pyplot

    plt = pyplot()

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
            if all(p.get("acc_old") is not None for p in mp):
                ax.plot([p["size"] for p in mp], [p["acc_old"] for p in mp], linestyle=":",
                        color=c, linewidth=1)
        floor = next((p for p in pts if p["method"] == "none"), None)
        if floor:
            ax.axhline(floor["acc_mean"], color="red", linestyle="--", linewidth=1,
                       label="no replay")
        if res.get("joint"):
            ax.axhline(res["joint"]["acc_mean"], color="grey", linestyle="--", linewidth=1,
                       label="host joint model")
        seeds = f"{res['seeds']} seed" + ("" if res["seeds"] == 1 else "s")
        replays = [p for p in pts if p["method"] != "none"]  # none: a panel of no lines
        old_shown = bool(replays) and all(p.get("acc_old") is not None for p in replays)
        ax.set_title(f"update={update} ({seeds})" + ("; dotted: old task" if old_shown else ""))
        ax.set_xlabel("replay samples per old class")
        ax.set_ylabel("test accuracy (int8, on the device)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{res['scenario']}: {res['dataset']} on {res['board']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
