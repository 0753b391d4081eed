"""The look every figure of a report shares: one colour per technique, one marker per speedup baseline,
numbered labels placed where they overlap no other text, a key table under the plot, and axes that neither
hide the decision band nor turn noise into a trend."""
from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers or in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

DPI = 110
WIDTH_IN = 9.0  # 990 px: fits a laptop screen next to nothing else
BASELINE_COLOR = "black"
_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22",
            "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#9edae5", "#dbdb8d"]
MARKERS = {"best": "o", "eager": "s", "onnxruntime": "^", "compiled": "D"}
# Against the fastest fp32 route, one marker per route: "best fp32 (openvino)" and "best fp32 (onnxruntime)" are
# two baselines, and must not look alike in a legend. ('*' is the baseline B's, 'v' a point below the axis.)
BEST_MARKERS = {"onnxruntime": "o", "openvino": "P", "compiled": "X", "eager": "h"}
_NICE = [0.01, 0.02, 0.05, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 2.5,
         3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 40, 50, 80, 100, 200, 500, 1000]


@dataclass
class Look:
    """What stays the same across the figures of one report."""

    colors: dict[str, str] = field(default_factory=dict)
    subtitle: str = ""

    def color(self, technique: object) -> str:
        return self.colors.get(str(technique), "0.4")


def technique_colors(techniques: Iterable[object], baseline: str = "train") -> dict[str, str]:
    names = sorted({str(t) for t in techniques} - {baseline})
    colors = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}
    colors[baseline] = BASELINE_COLOR
    return colors


def marker_for(baseline: str) -> str:
    """The marker of a speedup baseline label (``labels.speedup_columns``): one per label."""
    if baseline.startswith("best"):
        route = baseline[baseline.find("(") + 1:].rstrip(")") if "(" in baseline else ""
        return BEST_MARKERS.get(route, "p" if route else MARKERS["best"])
    return MARKERS.get(baseline.split()[0] if baseline else "", "s")


def layout(n_key_lines: int, plot_h: float = 3.6, width: float = WIDTH_IN, ncols: int = 1,
           left: float = 0.85, gap: float = 0.55) -> tuple[Figure, list[Axes], Axes | None]:
    """A figure with ``ncols`` plot panels on top and a key (monospaced table) below, placed by hand in inches
    so nothing moves after labels are placed."""
    top, title, bottom = 0.15, 0.62, 0.62
    key_h = 0.125 * (n_key_lines + 1) if n_key_lines else 0.0
    height = top + title + plot_h + bottom + key_h + (0.1 if key_h else 0.0)
    fig = plt.figure(figsize=(width, height), dpi=DPI)
    panel_w = (width - left - 0.3 - gap * (ncols - 1)) / ncols
    axes = [fig.add_axes(((left + i * (panel_w + gap)) / width, (key_h + bottom + 0.1) / height,
                          panel_w / width, plot_h / height)) for i in range(ncols)]
    key = None
    if key_h:
        key = fig.add_axes((0.25 / width, 0.05 / height, (width - 0.4) / width, key_h / height))
        key.axis("off")
    return fig, axes, key


def title(fig: Figure, what: str, look: Look) -> None:
    fig.suptitle(f"{what}\n{look.subtitle}", fontsize=9, y=1 - 0.1 / fig.get_figheight(), va="top")


def key_table(key: Axes | None, header: Sequence[str], rows: Sequence[Sequence[str]], max_chars: int = 150) -> None:
    """A monospaced table under the plot: what each number on the plot is."""
    if key is None:
        return
    table = [list(header)] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()[:max_chars] for r in table]
    key.text(0, 1, "\n".join(lines), family="monospace", fontsize=7, va="top", ha="left",
             transform=key.transAxes, linespacing=1.25)


def log_axis(ax: Axes, axis: str, values: Sequence[float], include: Sequence[float] = (1.0,),
             min_factor: float = 1.25, unit: str = "×") -> None:
    """A log axis over ``values`` and ``include`` spanning at least ×/÷ ``min_factor`` (noise stays small),
    with readable ticks and no minor labels."""
    vals = [v for v in [*values, *include] if v is not None and not math.isnan(v) and v > 0]
    lo, hi = (min(vals), max(vals)) if vals else (1.0, 1.0)
    centre = math.sqrt(lo * hi)
    lo, hi = min(lo / 1.12, centre / min_factor), max(hi * 1.12, centre * min_factor)
    ticks = [t for t in _NICE if lo <= t <= hi]
    while len(ticks) > 8:  # thin out, keeping 1× (the baseline) when it is shown
        ticks = ticks[1::2] if 1 in ticks and 1 not in ticks[::2] else ticks[::2]
    getattr(ax, f"set_{axis}scale")("log")
    getattr(ax, f"set_{axis}lim")(lo, hi)
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(FixedLocator(ticks))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}{unit}"))
    target.set_minor_locator(NullLocator())


def bytes_axis(ax: Axes, values: Sequence[float]) -> None:
    vals = [v for v in values if v is not None and not math.isnan(v) and v > 0]
    lo, hi = min(vals) / 1.3, max(vals) * 1.3
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    for mantissas in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7)):  # the finer set when a narrow range needs it
        ticks = [m * 10 ** e for e in range(0, 13) for m in mantissas if lo <= m * 10 ** e <= hi]
        if len(ticks) >= 3:
            break
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _bytes(v)))
    ax.xaxis.set_minor_locator(NullLocator())


def _bytes(v: float) -> str:
    for scale, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if v >= scale:
            return f"{v / scale:g} {unit}"
    return f"{v:g} B"


def zoom(values_lo: Sequence[float], values_hi: Sequence[float], anchor: float, floor: float,
         min_span: float = 2.0, ceiling: float = math.inf) -> tuple[float, float]:
    """Limits over the intervals and the ``anchor`` (the baseline), never below ``floor`` (points under it are
    drawn at the edge), at least ``min_span`` wide."""
    los = [v for v in [*values_lo, anchor] if not math.isnan(v)]
    his = [v for v in [*values_hi, anchor] if not math.isnan(v)]
    lo, hi = max(min(los), floor), min(max(his), ceiling)
    if hi - lo < min_span:
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = 0.08 * (hi - lo)
    return lo - pad, min(hi + pad, ceiling + pad)


def _visible_texts(fig: Figure) -> list[Text]:
    """Texts that are drawn: tick labels of ticks outside the view are skipped (matplotlib does not draw them)."""
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            eps = 1e-9 * max(1.0, abs(hi - lo))
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not lo - eps <= tick.get_loc() <= hi + eps:
                    hidden.update({id(tick.label1), id(tick.label2)})
    return [t for t in fig.findobj(Text)
            if t.get_visible() and t.get_text().strip() and t.figure is fig and id(t) not in hidden]


def text_boxes(fig: Figure) -> list[tuple[str, Bbox]]:
    """Every visible piece of text and its box on the rendered figure (for layout checks)."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    return [(t.get_text(), t.get_window_extent(renderer)) for t in _visible_texts(fig)]


def overlaps(a: Bbox, b: Bbox, pad: float = 1.0) -> bool:
    return a.x0 < b.x1 - pad and b.x0 < a.x1 - pad and a.y0 < b.y1 - pad and b.y0 < a.y1 - pad


def place_labels(ax: Axes, items: Sequence[tuple[float, float, str, str]], fontsize: float = 8) -> None:
    """Label each (x, y, text, colour) next to its point, trying positions around it until the label overlaps
    no other text, no other point and stays inside the axes; far labels get a leader line."""
    if not items:
        return
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    taken = [t.get_window_extent(renderer) for t in _visible_texts(fig)]
    for x, y, _, _ in items:
        px, py = ax.transData.transform((x, y))
        taken.append(Bbox.from_extents(px - 6, py - 6, px + 6, py + 6))
    frame = ax.get_window_extent(renderer)
    for x, y, text, color in items:
        chosen = None
        for radius in (6, 10, 16, 24, 34, 48, 64):
            for angle in (45, -45, 135, -135, 0, 180, 90, -90, 22, -22, 158, -158):
                dx, dy = radius * math.cos(math.radians(angle)), radius * math.sin(math.radians(angle))
                ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                  color=color, ha="left" if dx > 1 else "right" if dx < -1 else "center",
                                  va="bottom" if dy > 1 else "top" if dy < -1 else "center",
                                  annotation_clip=False)
                box = ann.get_window_extent(renderer)
                inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
                if inside and not any(overlaps(box, t, pad=-3.0) for t in taken):  # 3 px clear of all
                    chosen = (ann, box, radius, dx, dy)
                    break
                ann.remove()
            if chosen:
                break
        if chosen is None:  # nowhere free: on the point itself (the key table still says what it is)
            ann = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=fontsize,
                              color=color)
            chosen = (ann, ann.get_window_extent(renderer), 0, 0.0, 0.0)
        _, box, radius, dx, dy = chosen
        if radius >= 16:  # a leader line from the point to the label's nearest corner
            ax.annotate("", (x, y), xytext=(dx, dy), textcoords="offset points",
                        arrowprops={"arrowstyle": "-", "color": color, "lw": 0.6, "shrinkA": 0, "shrinkB": 3})
        taken.append(box)


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    plt.close(fig)
    return buf.getvalue()


def close(fig: Figure) -> None:
    plt.close(fig)
