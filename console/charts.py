"""Small server-drawn SVG charts for the console: no script, no external service, readable without colour (each
chart has a text summary for screen readers and its numbers in a table beside it)."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

# Colour-blind-safe (Okabe–Ito), each with at least 3:1 contrast against white.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#8a6d00", "#56606b")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 220, 44, 28, 12


def stacked_bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]], *, unit: str = "") -> SafeString:
    """One bar per label, each series stacked in its colour; a legend names the series."""
    totals = [sum(values[i] for values in series.values()) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    plot_width, plot_height = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_width / max(len(labels), 1)
    bar = max(step * 0.7, 1)
    shapes = []
    for i, label in enumerate(labels):
        base = 0.0
        for colour, (name, values) in zip(PALETTE * 4, series.items(), strict=False):
            value = values[i]
            if not value:
                continue
            height = value / peak * plot_height
            y = TOP + plot_height - (base + height)
            shapes.append(format_html('<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                                      "<title>{}: {} {}{}</title></rect>",
                                      _at(LEFT + i * step), _at(y), _at(bar), _at(height), colour, label,
                                      _number(value), name, unit))
            base += height
    every = max(1, len(labels) // 8)
    ticks = format_html_join("", '<text x="{}" y="{}" font-size="11" fill="#1f2328">{}</text>',
                             ((_at(LEFT + i * step), HEIGHT - 10, label[-5:]) for i, label in enumerate(labels)
                              if i % every == 0))
    axis = format_html('<text x="4" y="{}" font-size="11" fill="#1f2328">{}</text>'
                       '<text x="4" y="{}" font-size="11" fill="#1f2328">0</text>'
                       '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#57606a"/>',
                       TOP + 10, _number(peak), TOP + plot_height, LEFT - 2, TOP + plot_height, WIDTH - 8,
                       TOP + plot_height)
    legend = format_html_join(" ", '<span class="legend"><span class="swatch" style="background:{}"></span>{}</span>',
                              ((colour, name) for colour, name in zip(PALETTE * 4, series, strict=False)))
    summary = f"{title}: " + "; ".join(f"{name} {_number(sum(values))}{unit} in all" for name, values in series.items())
    return format_html('<figure class="chart"><svg viewBox="0 0 {} {}" role="img" aria-label="{}">{}{}{}</svg>'
                       "<figcaption>{}</figcaption></figure>",
                       WIDTH, HEIGHT, summary, axis, SafeString("".join(shapes)), ticks, legend)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or value >= 100 else f"{value:,.2f}"


def _at(coordinate: float) -> str:
    return f"{coordinate:.1f}"
