"""
The charts of docs/benchmarks.md, written as SVG by hand (no plotting dependency).

* ``<name>-throughput.svg``: scenario a, requests per second per client, one panel per
  concurrency, on a log scale; the bar is the median, the whisker the min and max.
* ``<name>-ratio.svg``: scenario a, ours / bare httpx (median, min-max), per concurrency, on
  asyncio and trio, with the 0.95 target.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

import report

COLORS = {
    "ours": "#1f6feb",
    "ours-batch": "#58a6ff",
    "httpx": "#6e7781",
    "httpx-task": "#afb8c1",
    "tenacity": "#bf8700",
    "stamina": "#8250df",
    "httpx-retries": "#cf222e",
    "aiohttp-retry": "#1a7f37",
    "raw": "#24292f",
}
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"


def _text(
    x: float,
    y: float,
    text: str,
    size: int = 11,
    anchor: str = "start",
    weight: str = "normal",
    fill: str = "#24292f",
) -> str:
    return (
        f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
        f"font-weight='{weight}' fill='{fill}' {FONT}>{escape(text)}</text>"
    )


def throughput(summary: dict[str, Any]) -> str | None:
    groups = [g for g in summary["groups"] if g["scenario"] == "a" and g["rps"]["median"]]
    if not groups:
        return None
    concurrencies = sorted({g["concurrency"] for g in groups})
    low = min(g["rps"]["min"] for g in groups)
    high = max(g["rps"]["max"] for g in groups)
    lo_exp = math.floor(math.log10(max(low, 1)))
    hi_exp = math.ceil(math.log10(max(high, 10)))
    label_w, bar_w, row_h, top = 300, 420, 16, 40
    width = label_w + bar_w + 90
    panels = []
    y = top
    for concurrency in concurrencies:
        rows = report._sorted([g for g in groups if g["concurrency"] == concurrency])
        panels.append((concurrency, y, rows))
        y += 28 + row_h * len(rows) + 14
    height = y + 30

    def sx(value: float) -> float:
        value = max(value, 10**lo_exp)
        return label_w + bar_w * (math.log10(value) - lo_exp) / (hi_exp - lo_exp)

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        _text(
            10,
            22,
            "Scenario a: keep-alive GETs, requests per second (log scale; "
            "bar = median, whisker = min-max)",
            13,
            weight="bold",
        ),
    ]
    for concurrency, y0, rows in panels:
        out.append(_text(10, y0 + 16, f"concurrency {concurrency:,}", 12, weight="bold"))
        gy = y0 + 24
        gh = row_h * len(rows)
        for exp in range(lo_exp, hi_exp + 1):
            x = sx(10**exp)
            out.append(
                f"<line x1='{x:.1f}' y1='{gy}' x2='{x:.1f}' y2='{gy + gh}' "
                "stroke='#d0d7de' stroke-width='1'/>"
            )
            out.append(_text(x, gy + gh + 11, f"{10**exp:,}", 9, "middle", fill="#57606a"))
        for i, g in enumerate(rows):
            ry = gy + i * row_h
            color = COLORS.get(g["client"], "#999")
            if g["backend"] == "trio":
                color_attr = f"fill='{color}' fill-opacity='0.55'"
            else:
                color_attr = f"fill='{color}'"
            out.append(_text(label_w - 6, ry + 11, g["label"], 10, "end"))
            x_end = sx(g["rps"]["median"])
            out.append(
                f"<rect x='{label_w}' y='{ry + 2}' width='{max(1.0, x_end - label_w):.1f}'"
                f" height='{row_h - 4}' {color_attr}/>"
            )
            x_min, x_max = sx(g["rps"]["min"]), sx(g["rps"]["max"])
            mid = ry + row_h / 2
            out.append(
                f"<line x1='{x_min:.1f}' y1='{mid:.1f}' x2='{x_max:.1f}' y2='{mid:.1f}' "
                "stroke='#24292f' stroke-width='1'/>"
            )
            out.append(_text(max(x_end, x_max) + 4, ry + 11, f"{g['rps']['median']:,.0f}", 9))
    out.append("</svg>")
    return "\n".join(out)


def ratio(summary: dict[str, Any]) -> str | None:
    groups = [
        g
        for g in summary["groups"]
        if g["scenario"] == "a"
        and g["client"] in ("ours", "ours-batch")
        and g["ratio"]["median"] is not None
    ]
    if not groups:
        return None
    concurrencies = sorted({g["concurrency"] for g in groups})
    series = [
        (c, b)
        for b in ("asyncio", "trio")
        for c in ("ours", "ours-batch")
        if any(g["client"] == c and g["backend"] == b for g in groups)
    ]
    width, height = 640, 300
    left, right, top, bottom = 60, 180, 40, 50
    plot_w, plot_h = width - left - right, height - top - bottom
    y_max = max(1.2, max(g["ratio"]["max"] for g in groups) * 1.05)
    y_min = min(0.0, min(g["ratio"]["min"] for g in groups))

    def sy(value: float) -> float:
        return top + plot_h * (1 - (value - y_min) / (y_max - y_min))

    slot = plot_w / len(concurrencies)
    bar = slot / (len(series) + 1)
    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}'>",
        f"<rect width='{width}' height='{height}' fill='white'/>",
        _text(
            10,
            22,
            "Scenario a: typed-async-client / bare httpx, pair by pair (median, min-max)",
            13,
            weight="bold",
        ),
    ]
    tick = 0.0
    while tick <= y_max + 1e-9:
        y = sy(tick)
        out.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{left + plot_w}' y2='{y:.1f}' stroke='#d0d7de'/>"
        )
        out.append(_text(left - 6, y + 4, f"{tick:.1f}", 10, "end"))
        tick += 0.2
    target = sy(report.TARGET_RATIO)
    out.append(
        f"<line x1='{left}' y1='{target:.1f}' x2='{left + plot_w}' y2='{target:.1f}' "
        "stroke='#cf222e' stroke-dasharray='5,3'/>"
    )
    out.append(_text(left + plot_w + 4, target + 4, "target 0.95", 10, fill="#cf222e"))
    for i, concurrency in enumerate(concurrencies):
        x0 = left + i * slot + bar / 2
        out.append(
            _text(
                left + i * slot + slot / 2, top + plot_h + 16, f"c = {concurrency:,}", 10, "middle"
            )
        )
        for j, (client, backend) in enumerate(series):
            match = [
                g
                for g in groups
                if g["concurrency"] == concurrency
                and g["client"] == client
                and g["backend"] == backend
            ]
            if not match:
                continue
            g = match[0]
            x = x0 + j * bar
            color = COLORS[client]
            opacity = "0.55" if backend == "trio" else "1"
            y = sy(g["ratio"]["median"])
            out.append(
                f"<rect x='{x:.1f}' y='{y:.1f}' width='{bar * 0.9:.1f}' "
                f"height='{sy(y_min) - y:.1f}' fill='{color}' fill-opacity='{opacity}'/>"
            )
            cx = x + bar * 0.45
            out.append(
                f"<line x1='{cx:.1f}' y1='{sy(g['ratio']['min']):.1f}' x2='{cx:.1f}' "
                f"y2='{sy(g['ratio']['max']):.1f}' stroke='#24292f'/>"
            )
    for j, (client, backend) in enumerate(series):
        y = sy(0.6) + j * 18
        opacity = "0.55" if backend == "trio" else "1"
        out.append(
            f"<rect x='{left + plot_w + 10}' y='{y + 20}' width='12' height='12' "
            f"fill='{COLORS[client]}' fill-opacity='{opacity}'/>"
        )
        name = "ours" if client == "ours" else "ours, batch()"
        out.append(_text(left + plot_w + 26, y + 30, f"{name} ({backend})", 10))
    out.append("</svg>")
    return "\n".join(out)


def write_all(summary: dict[str, Any], directory: Path, name: str) -> list[Path]:
    written = []
    for suffix, make in (("throughput", throughput), ("ratio", ratio)):
        svg = make(summary)
        if svg is None:
            continue
        path = directory / f"{name}-{suffix}.svg"
        path.write_text(svg + "\n", encoding="utf-8")
        written.append(path)
    return written
