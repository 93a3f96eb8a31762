"""The self-contained HTML report (plots inlined as base64 PNG, no external resources)."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from tinysift.report import plots


def img_tag(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def table_html(headers: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_rows(summary: dict) -> list[list]:
    return [[r["method"], r["samples"], f"{r['acc_before']:.3f}", f"{r['acc_after']:.3f}",
             f"{r['int8_acc_after']:.3f}", f"{r['cycles_per_epoch']:,}",
             f"{r['energy_mj_per_epoch']:.3f}", f"{r['energy_mj_total']:.3f}",
             f"{r['seconds_per_epoch'] * 1e3:.1f}"]
            for r in summary["rows"]]


STYLE = """body { font-family: sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } figure { margin: 1em 0; } img { max-width: 100%; }
pre { background: #f6f6f6; padding: 6px; overflow-x: auto; }"""

# Self-check for headless tests: how many plots decoded and rendered.
IMAGE_CHECK = """<script>
window.addEventListener("load", () => {
  const ok = [...document.images].filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.setAttribute("data-images-rendered", String(ok));
});
</script>"""


def write_page(path: Path, title: str, content: str, summary: dict, footer: str) -> Path:
    """A self-contained page: ``content``, then versions, machine and ``footer``."""
    from tinysift.runs import atomic_write_text

    versions = table_html(["package", "version"], sorted(summary["versions"].items()))
    body = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f"<title>tinysift report: {html.escape(title)}</title>\n<style>\n{STYLE}\n"
            f"</style></head><body>\n{content}\n<h2>Versions and machine</h2>{versions}\n"
            f"<p>{html.escape(str(summary['machine']))}</p>\n<p>{footer}</p>\n"
            f"{IMAGE_CHECK}\n</body></html>\n")
    return atomic_write_text(path, body)


SUMMARY_HEADERS = ["method", "samples", "acc before", "acc after", "int8 acc after",
                   "cycles/epoch", "mJ/epoch (est.)", "mJ fine-tune (est.)",
                   "ms/epoch (cycles / clock)"]


def write_report(summary: dict, path: Path) -> Path:
    figures = [
        img_tag(plots.accuracy_vs_samples(summary), "accuracy against samples kept"),
        img_tag(plots.cost_vs_samples(summary), "cycles and energy against samples kept"),
        img_tag(plots.pareto(summary), "Pareto front of accuracy against energy"),
        img_tag(plots.memory_plan(summary), "memory plan against the board"),
    ]
    commands = "".join(f"<pre>{html.escape(c)}</pre>" for c in summary["commands"])
    energy = summary["energy_model"]
    where = f"{html.escape(summary['dataset'])} on {html.escape(summary['board'])}"
    content = f"""<h1>tinysift: {where}</h1>
<p>A base model ({html.escape(summary['base_model'])}) runs on the emulated board; its
classifier head is re-learned <b>on the device</b> from each training set below (streamed
over serial with <code>db load</code>, or the full exported set compiled into flash), for
{summary['epochs']} epochs. Cycles come from the <code>{html.escape(summary['counter'])}</code>
counter; energy is <b>estimated</b> as V &times; I<sub>active</sub> &times; cycles / f with
V = {energy['supply_v']} V, I = {energy['active_current_ma']} mA at
{summary['clock_hz'] / 1e6:g} MHz ({html.escape(energy['source'])}).</p>
{table_html(SUMMARY_HEADERS, summary_rows(summary))}
<p>Test accuracy is measured on the device on {summary['test_samples']} held-out samples.
"mJ fine-tune" is the whole on-device training bill: the backbone run once over the kept
samples (features cached in RAM) plus every epoch of the head.
{html.escape(summary.get('headline', ''))}</p>
{''.join(figures)}
<h2>Commands</h2>{commands}"""
    return write_page(path, summary["name"], content, summary,
                      f"Seed {summary['seed']}. Wall time "
                      f"{summary['wall_seconds']:.0f} s.")
