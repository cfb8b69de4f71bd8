"""Geometry of the report charts: the templates draw inline SVG from these plain dicts.

Server-rendered SVG needs no script and no third-party code, prints, and passes the desk's
CSP (presentation attributes only, no inline style). Every mark keeps its figure in a
data-* attribute so tests and the page's small script read numbers, not pixels.
"""
from __future__ import annotations

import math
from datetime import date

from tickets.reports import WEEKDAYS, Backlog, CsatSummary, Heatmap, ResponseTime, SlaAttainment, VolumeRow


def duration(seconds: float | None) -> str:
    """1d 4h, 3h 12m, 14m, 45s: two units at most, as people read response times."""
    if seconds is None:
        return "–"
    s = round(seconds)
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def nice_ceiling(value: float) -> float:
    """The next 1, 2, 2.5 or 5 times a power of ten at or above value (at least 1)."""
    if value <= 1:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def ticks(top: float) -> list[float]:
    """Gridlines at whole steps: 10 -> 0 2 4 6 8 10, 25 -> 0 5 ... 25, 4 -> 0 1 2 3 4."""
    count = next((c for c in (4, 5, 2) if (top / c) == int(top / c)), 4) if top >= 2 else 1
    return [top * i / count for i in range(count + 1)]


def _num(value: float) -> str:
    return f"{value:g}" if value < 1000 else f"{value / 1000:g}k"


# --- Response times: a track per variant, median bar, p90 bar, mean tick --------------------

def response_chart(item: ResponseTime) -> dict:
    width, label_w, row_h = 360, 62, 34
    top = max(item.calendar.p90 or 0, item.business.p90 or 0, item.calendar.mean or 0, item.business.mean or 0)
    top = top or 1
    track = width - label_w - 10
    rows = []
    for i, (variant, dist) in enumerate((("calendar", item.calendar), ("business", item.business))):
        scale = lambda v: 0 if v is None else track * v / top
        rows.append({
            "variant": variant, "label": "Calendar" if variant == "calendar" else "Business",
            "y": 8 + i * row_h, "x": label_w, "track": track,
            "p90_w": round(scale(dist.p90), 1), "median_w": round(scale(dist.median), 1),
            "mean_x": round(label_w + scale(dist.mean), 1) if dist.mean is not None else None,
            "count": dist.count, "median": dist.median, "p90": dist.p90, "mean": dist.mean,
            "median_text": duration(dist.median), "p90_text": duration(dist.p90), "mean_text": duration(dist.mean),
        })
    return {"metric": item.metric, "label": item.label, "width": width, "height": 8 + 2 * row_h, "rows": rows,
            "calendar": rows[0], "business": rows[1]}


# --- SLA: a half-circle gauge per metric ---------------------------------------------------

GAUGE_R = 52


def sla_gauge(item: SlaAttainment) -> dict:
    length = math.pi * GAUGE_R
    share = (item.percent or 0) / 100
    tone = "none" if item.percent is None else ("good" if share >= 0.9 else "fair" if share >= 0.75 else "poor")
    return {
        "metric": item.metric, "label": item.label, "achieved": item.achieved, "breached": item.breached,
        "total": item.total, "percent": item.percent, "tone": tone,
        "path": f"M {70 - GAUGE_R} 70 A {GAUGE_R} {GAUGE_R} 0 0 1 {70 + GAUGE_R} 70",
        "dash": f"{length * share:.1f} {length:.1f}",
    }


# --- Bars ----------------------------------------------------------------------------------

def paired_bars(rows: list[VolumeRow], *, limit: int = 8) -> dict:
    """Created and solved side by side per row, horizontal, for one dimension."""
    rows = rows[:limit]
    label_w, width, bar_h, gap = 130, 520, 11, 10
    top = nice_ceiling(max([r.created for r in rows] + [r.solved for r in rows] + [1]))
    track = width - label_w - 50
    items = []
    for i, r in enumerate(rows):
        y = 6 + i * (2 * bar_h + gap)
        items.append({
            "key": r.key, "label": r.label, "y": y, "y2": y + bar_h, "text_y": y + bar_h + 3,
            "created": r.created, "solved": r.solved,
            "created_w": round(track * r.created / top, 1), "solved_w": round(track * r.solved / top, 1),
            "created_end": round(label_w + track * r.created / top + 4, 1),
            "solved_end": round(label_w + track * r.solved / top + 4, 1),
        })
    return {"rows": items, "width": width, "label_w": label_w, "bar_h": bar_h,
            "height": max(6 + len(items) * (2 * bar_h + gap), 30), "empty": not items}


def daily_bars(days: list, *, width: int = 900, height: int = 180) -> dict:
    """Created (and solved) per day as vertical bar pairs with a y axis."""
    left, bottom, top_pad = 40, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top_pad
    top = nice_ceiling(max([d.created for d in days] + [d.solved for d in days] + [1]))
    slot = plot_w / max(len(days), 1)
    bar = max(min(slot * 0.4, 14), 0.8)
    bars = []
    every = max(1, math.ceil(len(days) / 10))
    for i, d in enumerate(days):
        x = left + i * slot + (slot - 2 * bar) / 2
        ch, sh = plot_h * d.created / top, plot_h * d.solved / top
        bars.append({
            "day": d.day.isoformat(), "created": d.created, "solved": d.solved,
            "cx": round(x, 1), "sx": round(x + bar, 1), "w": round(bar, 1),
            "cy": round(top_pad + plot_h - ch, 1), "ch": round(ch, 1), "sy": round(top_pad + plot_h - sh, 1), "sh": round(sh, 1),
            "label": _day_label(d.day) if i % every == 0 else "", "label_x": round(left + i * slot + slot / 2, 1),
        })
    grid = [{"y": round(top_pad + plot_h - plot_h * t / top, 1), "text": _num(t)} for t in ticks(top)]
    return {"bars": bars, "grid": grid, "width": width, "height": height, "left": left, "right": width - 8,
            "base_y": top_pad + plot_h, "label_y": height - 6}


def _day_label(day: date) -> str:
    return day.strftime("%b %d").replace(" 0", " ")


# --- Backlog: area and line over days -------------------------------------------------------

def backlog_chart(data: Backlog, *, width: int = 900, height: int = 220) -> dict:
    left, bottom, top_pad, right_pad = 40, 22, 10, 10
    plot_w, plot_h = width - left - right_pad, height - bottom - top_pad
    levels = [d.backlog for d in data.days]
    low = min(levels + [data.opening, 0])
    top = nice_ceiling(max(levels + [data.opening, 1]) - low) + low
    span = (top - low) or 1
    step = plot_w / max(len(levels) - 1, 1)
    y_of = lambda v: round(top_pad + plot_h - plot_h * (v - low) / span, 1)
    points = [(round(left + i * step, 1), y_of(v)) for i, v in enumerate(levels)]
    if len(points) == 1:
        points = [(left, points[0][1]), (left + plot_w, points[0][1])]
    line = " ".join(f"{'M' if i == 0 else 'L'} {x} {y}" for i, (x, y) in enumerate(points))
    base = y_of(max(low, 0))
    area = f"{line} L {points[-1][0]} {base} L {points[0][0]} {base} Z"
    every = max(1, math.ceil(len(levels) / 10))
    dots = [{"x": round(left + i * step, 1) if len(levels) > 1 else left, "y": y_of(d.backlog), "day": d.day.isoformat(),
             "backlog": d.backlog, "label": _day_label(d.day) if i % every == 0 else ""} for i, d in enumerate(data.days)]
    grid = [{"y": y_of(low + t), "text": _num(low + t)} for t in ticks(top - low)]
    return {"line": line, "area": area, "dots": dots, "grid": grid, "width": width, "height": height, "left": left,
            "right": width - right_pad, "label_y": height - 6, "opening": data.opening,
            "closing": levels[-1] if levels else data.opening, "peak": max(levels) if levels else data.opening}


# --- Heatmap -------------------------------------------------------------------------------

def heatmap_chart(data: Heatmap) -> dict:
    cell, gap, left, top_pad = 26, 3, 40, 18
    rows = []
    for wd, counts in enumerate(data.cells):
        cells = []
        for hour, n in enumerate(counts):
            level = 0 if n == 0 else 1 + min(4, int(4 * n / data.max)) if data.max else 0
            cells.append({"hour": hour, "n": n, "x": left + hour * (cell + gap), "level": level})
        rows.append({"weekday": wd, "label": WEEKDAYS[wd], "y": top_pad + wd * (cell + gap), "cells": cells,
                     "text_y": top_pad + wd * (cell + gap) + cell / 2 + 4})
    hours = [{"hour": h, "x": left + h * (cell + gap) + cell / 2, "text": f"{h:02d}"} for h in range(0, 24, 3)]
    return {"rows": rows, "hours": hours, "cell": cell, "width": left + 24 * (cell + gap), "height": top_pad + 7 * (cell + gap),
            "max": data.max, "total": data.total}


# --- CSAT ----------------------------------------------------------------------------------

def csat_chart(data: CsatSummary) -> dict:
    width, height, left, bottom = 360, 170, 10, 24
    plot_h = height - bottom - 16
    top = max(list(data.distribution.values()) + [1])
    slot = (width - left * 2) / 5
    bars = []
    for rating in range(1, 6):
        n = data.distribution.get(rating, 0)
        h = plot_h * n / top
        bars.append({"rating": rating, "n": n, "x": round(left + (rating - 1) * slot + slot * 0.15, 1), "w": round(slot * 0.7, 1),
                     "y": round(16 + plot_h - h, 1), "h": round(h, 1), "text_x": round(left + (rating - 1) * slot + slot / 2, 1),
                     "value_y": round(16 + plot_h - h - 4, 1),
                     "share": round(100 * n / data.count) if data.count else 0})
    return {"bars": bars, "width": width, "height": height, "label_y": height - 6, "base_y": 16 + plot_h}
