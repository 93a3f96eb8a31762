"""Markdown table and plot of an on-device adaptation results file."""

from __future__ import annotations

from tinysift.bench.report import origins_lines, seeds_phrase
from tinysift.bench.stats import diff_cell
from tinysift.pipeline.adapt import NEW_TASK_ONLY
from tinysift.report.adapt import replay_plot as device_plot

__all__ = ["device_markdown", "device_plot"]


def _acc(p: dict, key: str = "acc", seeds: int = 1) -> str:
    mean = p["acc_mean"] if key == "acc" else p[key]
    if key == "acc" and seeds > 1:
        return f"{mean:.4f} ± {p['acc_std']:.4f}"
    return f"{mean:.4f}"


def device_markdown(res: dict) -> str:
    seeds = res["seeds"]
    # shift and user: the device's exported test set is the new task's only (the old task's
    # accuracy is not measured there), so its "old" columns stay empty
    new_only = res["scenario"] in NEW_TASK_ONLY
    tasks = ("the new domain's test split only: the old domain is not tested on the device"
             if new_only else "old = the base model's task, new = what the device learns")
    lines = [f"# On-device adaptation: {res['scenario']}, {res['dataset']} on {res['board']}",
             "",
             f"Test accuracy of the device's re-quantized int8 model after training on the "
             f"replay set plus the new samples (mean over {seeds_phrase(seeds)}; {tasks}). "
             "`none` = no replay (the forgetting floor). Energy: estimated from the "
             "instruction count (board profile), the training bill: every epoch plus, with "
             "update=head, the training samples' share of the backbone's feature pass. RAM: "
             "the memory plan for the mode as the bench runs it, one plan for every row: the "
             "largest replay set plus the new samples streamed into RAM (the product keeps "
             "the replay set in flash, which needs less: `tinysift demo`'s plans).", ""]
    joint = res.get("joint")
    if joint:
        lines += ["Host joint model (the head trained on the frozen backbone's features of "
                  "all the old data plus the new samples; "
                  + ("a reference: with the backbone frozen it does not bound what the device "
                     "reaches on a shifted domain" if new_only else "the upper bound") + "): all "
                  f"{joint['acc_mean']:.4f}"
                  + ("" if new_only else f", old {joint['acc_old']:.4f}, new "
                                      f"{joint['acc_new']:.4f}") + ".", ""]
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
                     "-" if new_only else f"{p['acc_old']:.4f}", f"{p['acc_new']:.4f}"]
            for ref in ("vs_random", "vs_herding", "vs_joint", "old_vs_joint"):
                shown = ref in p and not (new_only and ref == "old_vs_joint")
                cells.append(diff_cell(p[ref]) if shown else "-")
            cells += [f"{p['energy_mj']:.1f}", f"{int(p['ram_plan']):,}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines + recipe_footer(res))


def recipe_footer(res: dict, note: str = "") -> list[str]:
    """The closing lines of an on-device results table: how differences are paired, the
    on-device recipe (``res["config"]``), ``note``, the machine and the wall time, and
    whether its rows came from several code versions or machines."""
    cfg = res["config"]
    return [f"Differences are paired over seeds with a 95% Student-t interval (bold: excludes "
            f"0). Recipe: {cfg['steps']} steps, batch {cfg['batch']}, lr {cfg['lr']} "
            f"{cfg['schedule']}, class-balanced loss.{note}", "",
            f"Machine: {res['machine'].get('processor')} × {res['machine'].get('cpus')} CPUs; "
            f"wall time of the last invocation {res['wall_seconds'] / 60:.1f} min.", ""
            ] + origins_lines(res)

