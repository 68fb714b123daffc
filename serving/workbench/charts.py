"""Small charts drawn on the server as inline SVG (no script, no style attribute: the page's CSP allows
neither inline styles nor scripts); colours come from presentation attributes and the CSS classes."""

from __future__ import annotations

from html import escape


def _fmt(v: float) -> str:
    return f"${v / 1e3:,.1f}k" if abs(v) >= 1e4 else f"${v:,.0f}"


def bars(
    labels: list[str], series: dict[str, list[float]], width: int = 640, height: int = 220, title: str = ""
) -> str:
    """Grouped bars: one group per label, one bar per series (at most 3), with a legend and a y-axis maximum."""
    names = list(series)[:3]
    n = len(labels)
    top = max([max(series[s], default=0.0) for s in names] + [1.0])
    left, bottom, pad = 56, 28, 8
    plot_w, plot_h = width - left - pad, height - bottom - 24
    group = plot_w / max(n, 1)
    bw = min(40.0, max(2.0, group * 0.8 / max(len(names), 1)))
    out = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{24 + plot_h}" x2="{width - pad}" y2="{24 + plot_h}" stroke="#888"/>',
        f'<text x="{left - 4}" y="30" text-anchor="end" font-size="11" fill="#444">{escape(_fmt(top))}</text>',
        f'<text x="{left - 4}" y="{24 + plot_h}" text-anchor="end" font-size="11" fill="#444">$0</text>',
    ]
    for j, s in enumerate(names):
        out.append(
            f'<rect x="{left + 8 + j * 150}" y="4" width="10" height="10" class="s{j}"/>'
            f'<text x="{left + 22 + j * 150}" y="13" font-size="11" fill="#222">{escape(s)}</text>'
        )
    for i, lab in enumerate(labels):
        x0 = left + i * group + group * 0.1
        for j, s in enumerate(names):
            v = series[s][i] if i < len(series[s]) else 0.0
            h = plot_h * (v / top)
            out.append(
                f'<rect class="s{j}" x="{x0 + j * bw:.1f}" y="{24 + plot_h - h:.1f}" width="{bw:.1f}" '
                f'height="{h:.1f}"><title>{escape(lab)} {escape(s)}: {escape(_fmt(v))}</title></rect>'
            )
        if n <= 16 or i % max(1, n // 8) == 0:
            out.append(
                f'<text x="{x0 + group * 0.4:.1f}" y="{height - 10}" text-anchor="middle" font-size="10" '
                f'fill="#444">{escape(lab)}</text>'
            )
    out.append("</svg>")
    return "".join(out)


def spark(values: list[float], width: int = 240, height: int = 40, label: str = "") -> str:
    """A line of ``values`` (e.g. a monthly trend)."""
    if not values:
        return ""
    top = max(max(values), 1e-9)
    step = width / max(len(values) - 1, 1)
    pts = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / top:.1f}" for i, v in enumerate(values))
    return (
        f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        f'<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{pts}"/></svg>'
    )
