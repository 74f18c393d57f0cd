"""Draws the dashboard's panels from the data the Prometheus test recorded.

    python render-dashboard.py panel-data.json dashboard.png

panel-data.json is written by test/monitoring-prometheus.test.ts when
CCCP_DASHBOARD_DATA names it; make-picture.sh runs both. The layout follows
the dashboard's gridPos (24 columns), so the picture shows what Grafana
shows for the same data: rows, time series with legends, stat values.
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

BG, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2a2d33"
PALETTE = ["#73bf69", "#f2cc0c", "#8ab8ff", "#ff780a", "#f2495c", "#5794f2", "#b877d9", "#fade2a"]
ROW_UNITS = 0.45  # height of a grid unit in inches
COL_INCHES = 0.9


def human(value, unit):
    if value != value:  # NaN
        return "-"
    if unit == "percentunit":
        return f"{value * 100:.0f}%"
    suffix = {"Bps": "B/s", "ops": "/s", "cps": "/s", "reqps": " req/s", "s": " s"}.get(unit, "")
    scaled, prefix = value, ""
    for step, name in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= step:
            scaled, prefix = value / step, name
            break
    if unit == "s" and abs(value) < 1:
        return f"{value * 1000:.0f} ms"
    text = f"{scaled:.1f}" if scaled != int(scaled) else f"{int(scaled)}"
    return f"{text}{prefix}{suffix}"


def main(data_file, out_file):
    data = json.load(open(data_file))
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in data["panels"])
    fig = plt.figure(figsize=(24 * COL_INCHES, (bottom + 2) * ROW_UNITS), facecolor=BG)
    height = bottom + 2

    def box(grid):
        x, y, w, h = grid["x"], grid["y"] + 2, grid["w"], grid["h"]
        # Room on the left for tick labels and on top for the title, as in a Grafana panel.
        return [x / 24 + 0.03, 1 - (y + h) / height + 0.012, w / 24 - 0.036, h / height - 0.03]

    fig.text(0.01, 1 - 0.9 / height, f"{data['title']}  ·  namespace {data['namespace']}  ·  last {data['seconds']:.0f} s",
             color=TEXT, fontsize=16, va="center")
    for panel in data["panels"]:
        grid = panel["gridPos"]
        if panel["type"] == "row":
            fig.text(0.006, 1 - (grid["y"] + 2.5) / height, panel["title"], color=TEXT, fontsize=13, weight="bold", va="center")
            continue
        ax = fig.add_axes(box(grid), facecolor=PANEL if panel["type"] == "stat" else BG)
        for side in ax.spines.values():
            side.set_color(GRID)
        ax.set_title(panel["title"], color=TEXT, fontsize=10, loc="left")
        unit = panel["unit"]
        if panel["type"] == "stat":
            ax.set_xticks([])
            ax.set_yticks([])
            texts = []
            for s in panel["series"]:
                last = s["values"][-1][1] if s["values"] else float("nan")
                texts.append(s["legend"] if s["legend"] and panel["title"] == "Leader" else human(last, unit))
            ax.text(0.5, 0.45, "\n".join(texts) or "no data", color="#73bf69", fontsize=22, ha="center", va="center", transform=ax.transAxes)
            continue
        for i, s in enumerate(panel["series"]):
            xs, ys = [], []
            for t, v in s["values"]:
                if xs and t - xs[-1] > 1.5:  # no data (e.g. the proxy was down): a gap, as Grafana draws it
                    xs.append(xs[-1] + 1)
                    ys.append(float("nan"))
                xs.append(t)
                ys.append(v)
            ax.plot(xs, ys, color=PALETTE[i % len(PALETTE)], linewidth=1.2, label=s["legend"])
        ax.tick_params(colors=TEXT, labelsize=7)
        ax.grid(color=GRID, linewidth=0.5)
        ax.set_ylim(bottom=0)
        ax.set_xlim(0, data["seconds"])
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos, unit=unit: human(v, unit)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}s"))
        if panel["series"]:
            ax.legend(loc="upper left", fontsize=7, frameon=False, labelcolor=TEXT, ncol=min(3, len(panel["series"])))
    fig.savefig(out_file, dpi=60, facecolor=BG)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
