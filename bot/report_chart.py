"""A report (profile_store.reports.Report) as a chart (PNG, sent as a WeCom image) and as text.

Charts are bar charts — horizontal bars for breakdowns (long Chinese names stay readable, largest
first; a pie is harder to read), vertical bars for a campaign's funnel — drawn with matplotlib's
Agg backend (no display), always 800×500 pixels. Chinese needs a CJK font: the first installed
one of `CJK_FONTS` (or any `fc-list :lang=zh` gives); without one the chart is still drawn (the
labels may show boxes) and one warning is logged.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot import texts
from profile_store.reports import Report, ReportRow

# No display, ever (charts are drawn on Figure + FigureCanvasAgg; pyplot too would use Agg).
matplotlib.use("Agg")

log = logging.getLogger(__name__)

WIDTH_PX, HEIGHT_PX, DPI = 800, 500, 100
CJK_FONTS = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
MONEY = ("sales", "aov")
RATES = ("conversion", "redemption")
CHART_BARS = 15  # a breakdown's chart shows its largest rows
CHART_PANELS = 3  # one panel per measure, at most this many
TEXT_ROWS = 20  # the text lists at most this many rows
BAR_COLOR = "#3b7dd8"
BAR_COLORS = ("#3b7dd8", "#f0a030", "#4caf72")


# ---------------------------------------------------------------------------------- formatting


def yuan(fen: Any) -> str:
    """12345678 fen → "123,456.78元" (integer arithmetic: exact)."""
    amount = int(fen or 0)
    sign = "-" if amount < 0 else ""
    whole, cents = divmod(abs(amount), 100)
    return texts.REPORT_YUAN.format(amount=f"{sign}{whole:,}.{cents:02d}")


def percent(rate: Any) -> str:
    """0.25 → "25.00%"."""
    return texts.REPORT_PERCENT.format(rate=f"{float(rate or 0) * 100:.2f}")


def short_money(fen: Any) -> str:
    """A money amount short enough for a bar's end: 1,234.5 / 12.35万 / 1.20亿 (元)."""
    value = int(fen or 0) / 100
    if abs(value) >= 100_000_000:
        return texts.REPORT_YI.format(n=f"{value / 100_000_000:.2f}")
    if abs(value) >= 10_000:
        return texts.REPORT_WAN.format(n=f"{value / 10_000:.2f}")
    return f"{value:,.2f}"


def measure_name(report: Report, measure: str) -> str:
    if measure == "customers" and report.by in ("lifecycle", "rfm"):
        return texts.REPORT_MEASURE_PERSONS
    return texts.REPORT_MEASURES.get(measure, measure)


def value_text(measure: str, value: Any) -> str:
    if measure in MONEY:
        return yuan(value)
    if measure in RATES:
        return percent(value)
    return f"{int(value or 0):,}{texts.REPORT_UNITS.get(measure, '')}"


def row_label(report: Report, row: ReportRow) -> str:
    """What a row is called: a channel's Chinese name, a store's name, a campaign step …"""
    if report.kind == "campaign":
        return texts.REPORT_CAMPAIGN_STEPS.get(row.key, row.key)
    if report.by == "channel":
        return texts.CHANNEL_NAMES.get(row.key, row.key)
    if report.by == "store":
        return row.name or row.key or texts.REPORT_NO_STORE
    if report.by == "city":
        return row.key or texts.REPORT_NO_CITY
    if report.by == "category":
        return row.key or texts.REPORT_NO_CATEGORY
    return row.key


def _distribution(report: Report) -> bool:
    """Only the persons per tag value: a picture as of T, not of a window."""
    return report.by in ("lifecycle", "rfm") and report.columns == ("customers",)


def title(report: Report) -> str:
    """The report's heading without its dates: 各渠道销售额, 生命周期分布, 双11活动复盘 …"""
    if report.kind == "campaign":
        if report.campaign is None:
            return texts.REPORT_TITLE_ALL_CAMPAIGNS
        return texts.REPORT_TITLE_CAMPAIGN.format(campaign=report.campaign)
    by = texts.REPORT_DIMENSIONS.get(report.by, report.by) if report.by is not None else ""
    if _distribution(report):
        return texts.REPORT_TITLE_DISTRIBUTION.format(by=by)
    measures = texts.REPORT_MEASURE_SEPARATOR.join(measure_name(report, m) for m in report.columns)
    if report.by is None:
        return texts.REPORT_TITLE.format(measures=measures)
    return texts.REPORT_TITLE_BY.format(by=by, measures=measures)


def when(report: Report) -> str:
    if _distribution(report):
        return texts.REPORT_AS_OF.format(date=report.as_of.isoformat())
    return texts.REPORT_SPAN.format(first=report.first.isoformat(), last=report.last.isoformat())


# ---------------------------------------------------------------------------------- text


def render_text(report: Report) -> str:
    """The figures as a short Chinese answer: a heading, one line a row, the totals."""
    lines = [title(report) + when(report)]
    if report.members is not None:
        lines.append(texts.REPORT_AMONG.format(count=report.members))
    if report.kind == "campaign":
        if report.campaign is not None and not report.campaign_ids:
            lines.append(texts.REPORT_CAMPAIGN_UNKNOWN.format(campaign=report.campaign))
        for row in report.rows:
            count, rate = row.values
            values = [value_text(row.key, count)]
            if rate is not None:
                rate_name = texts.REPORT_CAMPAIGN_RATES.get(row.key, "")
                values.append(texts.REPORT_VALUE.format(measure=rate_name, value=percent(rate)))
            lines.append(
                texts.REPORT_ROW.format(label=row_label(report, row), values=texts.REPORT_VALUE_SEPARATOR.join(values))
            )
        return "\n".join(lines)
    if report.by is not None and not report.rows:
        lines.append(texts.REPORT_NO_DATA)
        return "\n".join(lines)
    for row in report.rows[:TEXT_ROWS]:
        lines.append(texts.REPORT_ROW.format(label=row_label(report, row), values=_values(report, row.values)))
    if len(report.rows) > TEXT_ROWS:
        lines.append(texts.REPORT_MORE.format(count=len(report.rows) - TEXT_ROWS))
    if report.by is None:
        lines.append(_values(report, report.totals))
    else:
        lines.append(texts.REPORT_TOTAL.format(values=_values(report, report.totals, share=False)))
    return "\n".join(lines)


def _values(report: Report, values: Sequence[Any], share: bool = True) -> str:
    """ "销售额 1,234.00元，订单数 3单"; a distribution's lone count says "120人（占12.00%）"."""
    if _distribution(report):
        (count,) = values
        text = value_text("customers", count)
        total = report.total("customers") or 0
        return text + (texts.REPORT_SHARE.format(rate=f"{count / total * 100:.2f}") if share and total else "")
    return texts.REPORT_VALUE_SEPARATOR.join(
        texts.REPORT_VALUE.format(measure=measure_name(report, m), value=value_text(m, v))
        for m, v in zip(report.columns, values, strict=True)
    )


# ---------------------------------------------------------------------------------- chart


@lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed CJK font (None, and one warning, when there is none)."""
    installed = {f.name for f in font_manager.fontManager.ttflist}
    for name in CJK_FONTS:
        if name in installed:
            return name
    path = _fc_list_zh()
    if path is not None:
        try:
            font_manager.fontManager.addfont(path)
            return str(font_manager.FontProperties(fname=path).get_name())
        except (OSError, RuntimeError, ValueError) as exc:
            log.debug("font %s unusable: %s", path, exc)
    log.warning(
        "no CJK font installed: report charts will show Chinese as boxes "
        "(install one, e.g. apt-get install fonts-wqy-microhei)"
    )
    return None


def _fc_list_zh() -> str | None:
    """The file of some font fontconfig knows for Chinese, if fontconfig is there."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return None
    try:
        found = subprocess.run(
            [fc_list, ":lang=zh", "file"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted(line.strip().rstrip(":") for line in found.splitlines() if line.strip())
    return files[0] if files else None


def render_chart(report: Report) -> bytes:
    """The report as a PNG of exactly 800×500 pixels."""
    font = cjk_font()
    families = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": families, "axes.unicode_minus": False}):
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(title(report) + when(report), fontsize=14)
        if report.kind == "campaign":
            _funnel(fig, report)
        elif not report.rows:
            _nothing(fig)
        else:
            _bars(fig, report)
        out = BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _nothing(fig: Figure) -> None:
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.text(0.5, 0.5, texts.REPORT_CHART_NO_DATA, ha="center", va="center", fontsize=16, color="#666666")


def _bars(fig: Figure, report: Report) -> None:
    """Horizontal bars, one panel per measure, the report's first rows top to bottom."""
    rows = report.rows[:CHART_BARS]
    labels = [row_label(report, row) for row in rows]
    columns = report.columns[:CHART_PANELS]
    axes = fig.subplots(1, len(columns), sharey=True, squeeze=False)[0]
    positions = list(range(len(rows)))
    for index, (ax, measure) in enumerate(zip(axes, columns, strict=True)):
        column_ = report.columns.index(measure)
        raw = [float(row.values[column_] or 0) for row in rows]
        heights = [v / 100 for v in raw] if measure in MONEY else raw
        bars = ax.barh(positions, heights, color=BAR_COLORS[index % len(BAR_COLORS)], height=0.6)
        ax.bar_label(bars, labels=[_bar_text(measure, v) for v in raw], padding=3, fontsize=9)
        heading = measure_name(report, measure)
        if measure in MONEY:
            heading = texts.REPORT_AXIS_YUAN.format(measure=heading)
        if len(report.rows) > len(rows):
            heading = texts.REPORT_CHART_TOP.format(measure=heading, count=len(rows))
        ax.set_title(heading, fontsize=11)
        ax.set_yticks(positions, labels)
        if index == 0:  # shared by every panel: the first row on top
            ax.invert_yaxis()
        ax.margins(x=0.25)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        ax.tick_params(axis="x", labelsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)


def _bar_text(measure: str, value: float) -> str:
    if measure in MONEY:
        return short_money(value)
    if measure in RATES:
        return percent(value)
    return f"{int(value):,}"


def _funnel(fig: Figure, report: Report) -> None:
    """A campaign's funnel: vertical bars of the counts, the rates written over their bars."""
    ax = fig.add_subplot()
    counts = [int(row.values[0] or 0) for row in report.rows]
    bars = ax.bar(range(len(counts)), counts, color=BAR_COLOR, width=0.55)
    notes = []
    for row, count in zip(report.rows, counts, strict=True):
        rate = row.values[1]
        note = f"{count:,}{texts.REPORT_UNITS.get(row.key, '')}"
        if rate is not None:
            note += "\n" + texts.REPORT_VALUE.format(
                measure=texts.REPORT_CAMPAIGN_RATES.get(row.key, ""), value=percent(rate)
            )
        notes.append(note)
    ax.bar_label(bars, labels=notes, padding=3, fontsize=10)
    ax.set_xticks(range(len(counts)), [row_label(report, row) for row in report.rows])
    ax.set_ylim(0, max(max(counts, default=0), 1) * 1.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# ---------------------------------------------------------------------------------- files


def save_chart(png: bytes, media_dir: Path, key: str) -> Path:
    """Write a chart as `media_dir/reports/<key>.png` (atomically: the outbox never reads half a
    file) and return its absolute path, which the outbox's `image` message sends."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in key) or "report"
    directory = Path(media_dir) / "reports"
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{safe}.png"
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{safe}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(png)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target.resolve()


__all__ = ["cjk_font", "percent", "render_chart", "render_text", "save_chart", "title", "yuan"]
