"""Charts for the report page, drawn with matplotlib as SVG text to inline in the page.

Only the object-oriented API is used (a :class:`~matplotlib.figure.Figure` with its own SVG
canvas), never pyplot's global state, so charts can be drawn from any thread. Text stays text
in the SVG (``svg.fonttype = none``): the reader's browser draws Chinese names with its own
fonts. Names from the database are never read as mathtext (``text.parse_math = False``).
matplotlib is imported when a chart is drawn, not when warnpub starts.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from warnpub.reports.model import Row, Series

TIER_COLOURS = ("#6f42c1", "#d63384", "#fd7e14", "#198754", "#0d6efd", "#6c757d")
OUTCOME_COLOURS = {"delivered": "#198754", "pending": "#adb5bd", "unreached": "#dc3545"}
# The charts' words: "en" (the default) and "zh-CN".
WORDS: dict[str, dict[str, str]] = {
    "en": {
        "minutes_since": "minutes since {origin}",
        "approval": "approval",
        "receipt": "receipt",
        "share_delivered": "% of targets delivered",
        "over_time": "Delivery over time, by tier",
        "legend_tier": "tier (targets)",
        "nothing_yet": "nothing delivered yet",
        "delivered": "delivered",
        "pending": "pending",
        "unreached": "unreached",
        "share": "% of targets",
        "by_town": "Coverage by town",
        "no_targets": "no targets",
    },
    "zh-CN": {
        "minutes_since": "自{origin}起的分钟数",
        "approval": "批准",
        "receipt": "收到",
        "share_delivered": "目标送达比例（%）",
        "over_time": "各优先级送达进度",
        "legend_tier": "优先级（目标数）",
        "nothing_yet": "尚无送达",
        "delivered": "已送达",
        "pending": "发送中",
        "unreached": "未送达",
        "share": "占目标比例（%）",
        "by_town": "各镇（街道）覆盖情况",
        "no_targets": "没有目标",
    },
}


def chart_words(lang: str) -> dict[str, str]:
    return WORDS["zh-CN" if lang.lower().startswith("zh") else "en"]
FONTS = ["Noto Sans CJK SC", "Source Han Sans SC", "Microsoft YaHei", "PingFang SC", "DejaVu Sans"]
RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "warnpub-report",
    "text.parse_math": False,
    "font.family": "sans-serif",
    "font.sans-serif": FONTS,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _svg(fig: Any) -> str:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    # Inline in HTML: drop the XML declaration and DOCTYPE, keep the <svg> element.
    return text[text.index("<svg") :]


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=96, layout="constrained")


def delivery_over_time(
    series: Sequence[Series],
    origin_label: str,
    lang: str = "en",
    name: Callable[[str], str] | None = None,
) -> str:
    """Share of each tier's targets delivered against minutes since ``origin_label``
    (``approval`` or ``receipt``), labelled in ``lang``; ``name`` puts a tier's name in words."""
    import matplotlib

    t = chart_words(lang)
    name = name or str
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a font without some glyph
        fig = _figure(8.0, 3.6)
        ax = fig.add_subplot()
        # Every curve runs on to the last delivery of any tier, level after its own last.
        last = max((p[0] / 60 for s in series for p in s.points), default=0.0)
        end = last * 1.05 + 0.1
        drawn = 0
        for i, s in enumerate(series):
            if not s.targeted:
                continue
            xs = [0.0] + [p[0] / 60 for p in s.points] + [end]
            ys = [0.0] + [100.0 * p[1] / s.targeted for p in s.points]
            ys.append(ys[-1])
            everyone = s.tier is None
            ax.step(
                xs,
                ys,
                where="post",
                label=f"{name(s.name)} ({s.targeted})",
                color="#212529" if everyone else TIER_COLOURS[i % len(TIER_COLOURS)],
                linewidth=2.2 if everyone else 1.5,
                linestyle="--" if everyone else "-",
            )
            drawn += 1
        ax.set_xlabel(t["minutes_since"].format(origin=t.get(origin_label, origin_label)))
        ax.set_ylabel(t["share_delivered"])
        ax.set_ylim(0, 102)
        ax.set_xlim(left=0)
        ax.grid(True, alpha=0.3)
        ax.set_title(t["over_time"])
        if drawn:
            fig.legend(loc="outside right upper", fontsize=8, title=t["legend_tier"])
        else:
            ax.text(0.5, 0.5, t["nothing_yet"], ha="center", transform=ax.transAxes)
        return _svg(fig)


def coverage_by_town(rows: Sequence[Row], lang: str = "en") -> str:
    """One bar per town: delivered, pending and unreached as shares of its targets."""
    import matplotlib

    t = chart_words(lang)
    with matplotlib.rc_context(RC), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        shown = [r for r in rows if r.counts.targeted]
        fig = _figure(8.0, max(1.8, 0.34 * len(shown) + 1.3))
        ax = fig.add_subplot()
        labels = [r.label or r.key for r in shown]
        left = [0.0] * len(shown)
        for outcome, colour in OUTCOME_COLOURS.items():
            values = [100.0 * getattr(r.counts, outcome) / r.counts.targeted for r in shown]
            ax.barh(labels, values, left=left, color=colour, label=t[outcome], height=0.7)
            left = [a + b for a, b in zip(left, values, strict=True)]
        for y, r in enumerate(shown):
            ax.text(101, y, f"{r.counts.delivered}/{r.counts.targeted}", va="center", fontsize=8)
        ax.set_xlim(0, 115)
        ax.set_xlabel(t["share"])
        ax.invert_yaxis()
        ax.set_title(t["by_town"])
        if shown:
            fig.legend(loc="outside lower center", fontsize=8, ncols=3)
        else:
            ax.text(0.5, 0.5, t["no_targets"], ha="center", transform=ax.transAxes)
        return _svg(fig)
