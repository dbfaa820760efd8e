"""Draws a ``Timeline`` as one self-contained SVG: a Gantt chart people can read.

Bars are coloured by outcome; waiting is hatched (amber for a concurrency slot, violet for a rate
limit, grey when queued behind other tasks) and labelled when wide enough; backoff before a
retry is a dashed line; the critical path has an orange mark and outline. Collapsed groups show
how many tasks ran (solid) and waited (hatched) at each moment. Every bar has a tooltip.
No scripts, no fonts or images from elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from html import escape

from multi_task_orchestrator.engine.reports.spans import Span
from multi_task_orchestrator.engine.reports.text import format_duration
from multi_task_orchestrator.engine.reports.timeline import Row, Timeline, format_tick

Scale = Callable[[float], float]

WIDTH = 1100
LABEL_WIDTH = 250
RIGHT_MARGIN = 24
ROW_HEIGHT = 22
GROUP_ROW_HEIGHT = 40
BAR_HEIGHT = 14
HEADER_HEIGHT = 92
FOOTER_HEIGHT = 34
LABEL_CHARS = 34
MIN_LABEL_WIDTH = 34  # a span gets a text label from this many pixels wide

OUTCOME_COLOURS = {
    "succeeded": "#35a063",
    "failed": "#d64545",
    "cancelled": "#9aa0a6",
    "skipped": "#c4c7cc",
    "interrupted": "#e39b32",
    None: "#4a86e8",  # still running
}
CRITICAL = "#f08c00"
WAIT_STYLES = {  # fill pattern, stroke colour, label
    "slot": ("url(#wait-slot)", "#d9a21b", "slot"),
    "rate": ("url(#wait-rate)", "#8a5cc7", "rate"),
    "queued": ("url(#wait-queued)", "#9aa0a6", "queued"),
}
STATE_MARKS = {
    "succeeded": "✓",
    "failed": "✗",
    "cancelled": "⊘",
    "skipped": "⊘",
    "running": "⏵",
    "retrying": "↻",
    "queued": "…",
    "pending": "…",
}

_DEFS = """<defs>
<pattern id="wait-slot" width="6" height="6" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="#fbeac0"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="#d9a21b" stroke-width="2.4"/></pattern>
<pattern id="wait-rate" width="6" height="6" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="#ebe0f7"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="#8a5cc7" stroke-width="2.4"/></pattern>
<pattern id="wait-queued" width="6" height="6" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="6" height="6" fill="#f1f2f4"/>
<line x1="0" y1="0" x2="0" y2="6" stroke="#b5b9bf" stroke-width="2"/></pattern>
<pattern id="band-wait" width="5" height="5" patternUnits="userSpaceOnUse"
 patternTransform="rotate(45)"><rect width="5" height="5" fill="#eef0f2"/>
<line x1="0" y1="0" x2="0" y2="5" stroke="#8c959f" stroke-width="1.8"/></pattern>
</defs>"""

_STYLE = """<style>
text { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; fill: #1f2328; }
.title { font-size: 15px; font-weight: 600; }
.meta { font-size: 12px; fill: #57606a; }
.label { font-size: 12px; }
.label.critical { font-weight: 600; }
.mark { font-size: 12px; }
.small { font-size: 10.5px; fill: #57606a; }
.tick { font-size: 11px; fill: #57606a; }
.inbar { font-size: 10px; fill: #1f2328; }
.legend { font-size: 11.5px; }
</style>"""


def render_svg(timeline: Timeline, *, width: int = WIDTH) -> str:
    """The whole picture as SVG text (UTF-8, ``<svg>`` root with width and height set)."""
    heights = [_row_height(row) for row in timeline.rows]
    plot_top = HEADER_HEIGHT
    plot_bottom = plot_top + sum(heights)
    height = plot_bottom + FOOTER_HEIGHT
    x0, x1 = LABEL_WIDTH + 10, width - RIGHT_MARGIN
    scale = (x1 - x0) / timeline.duration if timeline.duration > 0 else 0.0

    def x(seconds: float) -> float:
        return x0 + max(0.0, seconds) * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="Timeline of {_attr(timeline.name)}">',
        _DEFS,
        _STYLE,
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    parts.extend(_header(timeline, width))
    parts.extend(_axis(timeline, x, plot_top, plot_bottom))

    y = plot_top
    for index, (row, row_height) in enumerate(zip(timeline.rows, heights, strict=True)):
        if index % 2:
            parts.append(
                f'<rect x="0" y="{y}" width="{width}" height="{row_height}" fill="#f6f8fa"/>'
            )
        parts.extend(_row(row, y, row_height, x, x0, x1))
        y += row_height
    parts.append(
        f'<line x1="{x0}" y1="{plot_bottom}" x2="{x1}" y2="{plot_bottom}" stroke="#8c959f"/>'
    )
    if timeline.note:
        parts.append(
            f'<text class="small" x="10" y="{plot_bottom + 22}">{_text(timeline.note)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _row_height(row: Row) -> int:
    return ROW_HEIGHT if row.kind == "task" else GROUP_ROW_HEIGHT


def _header(timeline: Timeline, width: int) -> Iterator[str]:
    critical = len([key for key in timeline.critical_path if "[" not in key])
    meta = (
        f"{timeline.status} · {timeline.task_count} tasks · "
        f"{format_duration(timeline.duration)} · critical path: "
        f"{critical} task{'s' if critical != 1 else ''}"
    )
    yield f'<text class="title" x="10" y="22">{_text(_cut(timeline.name, 80))}</text>'
    yield f'<text class="meta" x="10" y="40">{_text(meta)}</text>'
    legend = [
        ("rect", OUTCOME_COLOURS["succeeded"], "succeeded"),
        ("rect", OUTCOME_COLOURS["failed"], "failed"),
        ("rect", OUTCOME_COLOURS[None], "running"),
        ("rect", OUTCOME_COLOURS["cancelled"], "cancelled"),
        ("rect", WAIT_STYLES["slot"][0], "waiting: slot"),
        ("rect", WAIT_STYLES["rate"][0], "waiting: rate limit"),
        ("rect", WAIT_STYLES["queued"][0], "queued"),
        ("dash", OUTCOME_COLOURS["failed"], "backoff before retry"),
        ("critical", CRITICAL, "critical path"),
    ]
    cursor = 10.0
    for shape, fill, name in legend:
        if shape == "rect":
            yield f'<rect x="{cursor}" y="52" width="16" height="11" fill="{fill}" rx="2"/>'
        elif shape == "dash":
            yield (
                f'<line x1="{cursor}" y1="57.5" x2="{cursor + 16}" y2="57.5" stroke="{fill}" '
                'stroke-width="1.6" stroke-dasharray="3 2"/>'
            )
        else:
            yield (
                f'<rect x="{cursor}" y="52" width="16" height="11" fill="#ffffff" rx="2" '
                f'stroke="{fill}" stroke-width="2.2"/>'
            )
        yield f'<text class="legend" x="{cursor + 21}" y="62">{_text(name)}</text>'
        cursor += 21 + 6.4 * len(name) + 16
        if cursor > width - 120:
            break


def _axis(timeline: Timeline, x: Scale, top: float, bottom: float) -> Iterator[str]:
    ticks = timeline.ticks
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    for tick in ticks:
        position = round(x(tick), 1)
        yield (
            f'<line x1="{position}" y1="{top - 6}" x2="{position}" y2="{bottom}" '
            'stroke="#d0d7de" stroke-width="1"/>'
        )
        label = _text(format_tick(tick, step))
        yield (
            f'<text class="tick" x="{position}" y="{top - 10}" text-anchor="middle">{label}</text>'
        )
        yield (
            f'<text class="tick" x="{position}" y="{bottom + 14}" text-anchor="middle">'
            f"{label}</text>"
        )


def _row(row: Row, y: float, height: int, x: Scale, x0: float, x1: float) -> Iterator[str]:
    middle = y + height / 2
    if row.critical:
        yield f'<rect x="0" y="{y + 2}" width="4" height="{height - 4}" fill="{CRITICAL}"/>'
    indent = 12 + 14 * row.depth
    css = "label critical" if row.critical else "label"
    title = f"<title>{_text(_row_tooltip(row))}</title>"
    if row.kind == "task":
        mark = STATE_MARKS.get(row.state, "")
        colour = OUTCOME_COLOURS.get(row.state, "#57606a")
        retries = f" ↻{row.attempts - 1}" if row.attempts > 1 else ""
        yield (
            f'<text class="mark" x="{indent}" y="{middle + 4}" fill="{colour}" '
            f'style="fill:{colour}">{mark}</text>'
        )
        label = _cut(row.label, LABEL_CHARS - row.depth * 2 - len(retries))
        yield (
            f'<text class="{css}" x="{indent + 14}" y="{middle + 4}">{title}{_text(label)}'
            f'<tspan class="small">{_text(retries)}</tspan></text>'
        )
        yield from _task_bars(row, middle, x)
        if not row.spans and row.state in ("skipped", "cancelled", "pending"):
            yield f'<text class="small" x="{x0 + 4}" y="{middle + 4}">{_text(row.state)}</text>'
        return
    label = _cut(row.label, LABEL_CHARS - row.depth * 2)
    yield f'<text class="{css}" x="{indent}" y="{middle - 2}">{title}{_text(label)}</text>'
    yield f'<text class="small" x="{indent}" y="{middle + 11}">{_text(_group_counts(row))}</text>'
    yield from _band(row, y + 4, height - 8, x)


def _task_bars(row: Row, middle: float, x: Scale) -> Iterator[str]:
    top = middle - BAR_HEIGHT / 2
    for span in row.spans:
        left, right = x(span.start), x(span.end)
        span_width = max(right - left, 1.5)
        tip = f"<title>{_text(_span_tooltip(row, span))}</title>"
        if span.kind == "backoff":
            yield (
                f'<line x1="{left:.1f}" y1="{middle}" x2="{right:.1f}" y2="{middle}" '
                f'stroke="{OUTCOME_COLOURS["failed"]}" stroke-width="1.6" '
                f'stroke-dasharray="3 2">{tip}</line>'
            )
            continue
        if span.kind == "wait":
            fill, stroke, word = WAIT_STYLES[span.wait_kind or "queued"]
            yield (
                f'<rect x="{left:.1f}" y="{top + 1}" width="{span_width:.1f}" '
                f'height="{BAR_HEIGHT - 2}" fill="{fill}" stroke="{stroke}" stroke-width="0.6" '
                f'rx="2">{tip}</rect>'
            )
            if span_width >= MIN_LABEL_WIDTH:
                yield (
                    f'<text class="inbar" x="{left + span_width / 2:.1f}" y="{middle + 3.5}" '
                    f'text-anchor="middle">{word}</text>'
                )
            continue
        colour = OUTCOME_COLOURS.get(span.outcome, OUTCOME_COLOURS[None])
        opacity = ' fill-opacity="0.35"' if span.kind == "envelope" else ""
        stroke = (
            f' stroke="{CRITICAL}" stroke-width="2.2"'
            if row.critical and span.kind != "envelope"
            else ""
        )
        yield (
            f'<rect x="{left:.1f}" y="{top}" width="{span_width:.1f}" height="{BAR_HEIGHT}" '
            f'fill="{colour}"{opacity}{stroke} rx="2">{tip}</rect>'
        )


def _band(row: Row, top: float, height: float, x: Scale) -> Iterator[str]:
    """Two lanes: how many ran (solid, top) and waited (hatched, below), each to its own peak."""
    band = row.band
    if band is None or not band.points:
        return
    lane = (height - 2) / 2
    lanes = (
        (0, band.peak_running, top + lane, f'fill="{OUTCOME_COLOURS["succeeded"]}"', "running"),
        (1, band.peak_waiting, top + 2 * lane + 2, 'fill="url(#band-wait)"', "waiting"),
    )
    drawn: list[tuple[str, int, int]] | None = None  # the points drawn, the same in both lanes
    for column, peak, bottom, fill, word in lanes:
        yield (
            f'<line x1="{x(0):.1f}" y1="{bottom:.1f}" x2="{x(band.points[-1][0]):.1f}" '
            f'y2="{bottom:.1f}" stroke="#d0d7de" stroke-width="0.8"/>'
        )
        if peak == 0:
            continue
        if drawn is None:
            drawn = _drawn(band.points, x)
        positions = [point[0] for point in drawn]
        values = [point[2] if column else point[1] for point in drawn]
        path = _step_path(positions, values, bottom, lane / peak)
        tip = f"<title>{word}: at most {peak} at once</title>"
        yield f'<path d="{path}" {fill} stroke="none">{tip}</path>'


def _drawn(points: Sequence[tuple[float, int, int]], x: Scale) -> list[tuple[str, int, int]]:
    """A band's points at the positions they are drawn at (x as text, to a tenth of a pixel),
    the last of those at one position only: the others would enclose no area. A 100,000-task
    run has 200,000 changes in 1,100 pixels, and its picture was 17 MB of them."""
    drawn: list[tuple[str, int, int]] = []
    for moment, running, waiting in points:
        position = f"{x(moment):.1f}"
        if drawn and drawn[-1][0] == position:
            drawn[-1] = (position, running, waiting)
        else:
            drawn.append((position, running, waiting))
    return drawn


def _step_path(positions: list[str], values: list[int], bottom: float, unit: float) -> str:
    """An outline that steps to ``values[i]`` at ``positions[i]`` (x as text), from ``bottom``
    up by ``unit`` per count, closed back to its start."""
    heights: dict[float, str] = {}  # the few counts there are, each as its y text
    for value in {0, *values}:
        heights[value] = f"{bottom - value * unit:.1f}"
    level = heights[0]
    commands = [f"M{positions[0]},{bottom:.1f}"]
    last = len(positions) - 1
    for index, (position, value) in enumerate(zip(positions, values, strict=True)):
        height = heights[value]
        if height == level and index < last:
            continue  # no step here: the line goes on at its level
        commands.append(f"L{position},{level} L{position},{height}")
        level = height
    commands.append("Z")
    return " ".join(commands)


def _group_counts(row: Row) -> str:
    order = ("succeeded", "failed", "skipped", "cancelled", "running", "retrying", "queued")
    parts = [f"{row.counts[state]} {state}" for state in order if row.counts.get(state)]
    if row.band is not None:
        parts.append(f"≤{row.band.peak_running} running")
        if row.band.peak_waiting:
            parts.append(f"≤{row.band.peak_waiting} waiting")
    return " · ".join(parts)


def _row_tooltip(row: Row) -> str:
    if row.kind == "task":
        tip = f"{row.key}: {row.state}"
        if row.attempts > 1:
            tip += f", {row.attempts} attempts"
        return tip + (" (critical path)" if row.critical else "")
    return f"{row.label}: {_group_counts(row)}"


def _span_tooltip(row: Row, span: Span) -> str:
    when = f"{span.start:.2f}s → {span.end:.2f}s ({format_duration(span.duration)})"
    if span.kind == "wait":
        return f"{row.key} attempt {span.attempt}: waiting for {span.reason or 'a turn'}, {when}"
    if span.kind == "backoff":
        return f"{row.key}: backoff before attempt {span.attempt}, {when}"
    if span.kind == "envelope":
        return f"{row.key}: fan-out, {span.outcome or 'running'}, {when}"
    outcome = span.outcome or "running"
    tip = f"{row.key} attempt {span.attempt}: {outcome}, {when}"
    return tip + (f" — {span.reason}" if span.reason else "")


def _cut(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    limit = max(limit, 8)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _text(text: str) -> str:
    return escape(text, quote=False)


def _attr(text: str) -> str:
    return escape(text, quote=True)
