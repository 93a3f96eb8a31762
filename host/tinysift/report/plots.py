"""Plots of a demo summary: each returns PNG bytes (inlined into the HTML report)."""

from __future__ import annotations

import io
import re

import numpy as np

# One colour per method wherever it is plotted (tab10's, then tab20's light shades; none
# repeated), every selection method's: a method without one took matplotlib's next colour.
COLORS = {"random": "#7f7f7f", "vq": "#1f77b4", "flow": "#d62728", "full": "#000000",
          "herding": "#ff7f0e", "ccs": "#2ca02c", "none": "#8c564b", "d2": "#9467bd",
          "moderate": "#e377c2", "aum": "#bcbd22", "el2n": "#17becf",
          "forgetting": "#aec7e8", "grand": "#ffbb78", "kcenter": "#98df8a",
          "prototypes": "#c5b0d5"}


def pyplot():
    """matplotlib's pyplot for files (the Agg backend), with math text off: a ``$`` in a
    user's dataset path or board name, which the titles and labels name, was read as a TeX
    formula (mangled text, or a ValueError once a bench had trained everything)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    return plt


_SUPERSCRIPT = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075"
                             "\u2076\u2077\u2078\u2079")


def _log_tick_text(label: str) -> str:
    """matplotlib's log tick label (TeX: ``$\\mathdefault{2\\times10^{-1}}$``) as plain
    text (``2\u00d710\u207b\u00b9``): with math text off the TeX was printed as it is."""
    m = re.fullmatch(r"\$\\mathdefault\{(.*)\}\$", label)
    if m is None:
        return label
    body = m.group(1).replace("\\times", "\u00d7")
    return re.sub(r"\^\{([^}]*)\}", lambda e: e.group(1).translate(_SUPERSCRIPT), body)


def log_scale(ax, axis: str = "x") -> None:
    """``ax.set_xscale("log")`` (or ``y``) with tick labels as text, which :func:`pyplot`'s
    math text off needs (matplotlib writes log ticks as TeX)."""
    from matplotlib.ticker import LogFormatterSciNotation

    class TextLogFormatter(LogFormatterSciNotation):
        def __call__(self, x, pos=None):
            return _log_tick_text(super().__call__(x, pos))

    getattr(ax, f"set_{axis}scale")("log")
    which = getattr(ax, f"{axis}axis")
    which.set_major_formatter(TextLogFormatter(10))
    which.set_minor_formatter(TextLogFormatter(10, labelOnlyBase=False))


def _fig():
    plt = pyplot()
    return plt, *plt.subplots(figsize=(6.4, 4.0))


def _png(plt, fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _by_method(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["method"], []).append(r)
    for v in out.values():
        v.sort(key=lambda r: r["samples"])
    return out


def accuracy_vs_samples(summary: dict) -> bytes:
    plt, fig, ax = _fig()
    for method, rows in _by_method(summary["rows"]).items():
        xs = [r["samples"] for r in rows]
        style = dict(marker="*", markersize=12, linestyle="none") if method == "full" else \
            dict(marker="o")
        ax.plot(xs, [r["acc_after"] for r in rows], color=COLORS.get(method), label=method,
                **style)
    log_scale(ax, "x")
    ax.set_xlabel("training samples on the device")
    ax.set_ylabel("test accuracy after on-device fine-tuning")
    ax.set_title("Accuracy against samples kept")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _png(plt, fig)


def cost_vs_samples(summary: dict) -> bytes:
    plt, fig, ax = _fig()
    ax2 = ax.twinx()
    for method, rows in _by_method(summary["rows"]).items():
        xs = [r["samples"] for r in rows]
        ax.plot(xs, [r["cycles_per_epoch"] for r in rows], marker="o", color=COLORS.get(method),
                label=f"{method} cycles")
        ax2.plot(xs, [r["energy_mj_per_epoch"] for r in rows], marker="x", linestyle=":",
                 color=COLORS.get(method), label=f"{method} energy")
    log_scale(ax, "x")
    log_scale(ax, "y")
    log_scale(ax2, "y")
    ax.set_xlabel("training samples on the device")
    ax.set_ylabel(f"cycles per epoch ({summary['counter']})")
    ax2.set_ylabel("estimated energy per epoch (mJ)")
    ax.set_title("On-device cost per training epoch")
    ax.grid(True, which="both", alpha=0.3)
    # one legend for both axes: the dotted energy lines were in none
    cycles, names = ax.get_legend_handles_labels()
    energy, more = ax2.get_legend_handles_labels()
    ax.legend(cycles + energy, names + more, loc="upper left", fontsize=7)
    return _png(plt, fig)


def pareto(summary: dict) -> bytes:
    plt, fig, ax = _fig()
    pts = [(r["energy_mj_total"], r["acc_after"], r) for r in summary["rows"]]
    for e, a, r in pts:
        ax.scatter(e, a, color=COLORS.get(r["method"]), s=40,
                   marker="*" if r["method"] == "full" else "o")
        ax.annotate(f"{r['method']} {r['samples']}", (e, a), fontsize=6,
                    xytext=(3, 3), textcoords="offset points")
    front = pareto_front([(e, a) for e, a, _ in pts])
    if front:
        fx, fy = zip(*front, strict=True)
        ax.step(fx, fy, where="post", color="black", linewidth=1, label="Pareto front")
    log_scale(ax, "x")
    ax.set_xlabel("estimated energy of on-device fine-tuning (mJ)")
    ax.set_ylabel("test accuracy after fine-tuning")
    ax.set_title("Accuracy against energy")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _png(plt, fig)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated (lower energy and higher accuracy), sorted by energy: of points
    at the same energy only the most accurate (the others are dominated by it)."""
    front, best = [], -np.inf
    for e, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if a > best:
            front.append((e, a))
            best = a
    return front


def memory_plan(summary: dict) -> bytes:
    """Flash and RAM as stacked bars of their items (a linear axis: a log axis distorts
    stacked parts), each item its own colour; the board's capacity a red line, or named in
    the title where it lies far beyond the use."""
    plt, fig, ax = _fig()
    fig.set_size_inches(9.0, 3.6)
    plan = summary["memory_plan"]
    items = [(mem, item, n) for mem in ("flash", "ram") for item, n in plan[mem].items()
             if n > 0]
    colors = plt.get_cmap("tab20").colors
    used = {mem: sum(n for m, _i, n in items if m == mem) for mem in ("flash", "ram")}
    # the use, and a capacity up to twice it (a real board's), on one scale
    right = 1.15 * max(used.values())
    right = max([right, *(1.05 * plan[f"{m}_capacity"] for m in ("flash", "ram")
                          if plan[f"{m}_capacity"] <= 2 * right)])
    left = {"flash": 0, "ram": 0}
    for i, (mem, item, n) in enumerate(items):
        ax.barh(0 if mem == "flash" else 1, n / 1024, left=left[mem] / 1024,
                color=colors[i % len(colors)], label=f"{mem}: {item}")
        left[mem] += n
    beyond = []
    for row, mem in enumerate(("flash", "ram")):
        cap = plan[f"{mem}_capacity"]
        if cap <= right:
            ax.plot([cap / 1024] * 2, [row - 0.4, row + 0.4], color="red")
        else:
            beyond.append(f"{mem} {cap / 1024:,.0f} KB")
    ax.set_xlim(0, right / 1024)
    ax.set_yticks([0, 1], ["flash", "RAM"])
    ax.set_xlabel("KB (red: the board's capacity)")
    title = f"Memory plan on {plan['board']}"
    if beyond:
        title += f" (capacity off the scale: {', '.join(beyond)})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _png(plt, fig)
