"""A campaign's effect (campaigns.measure.Effect) as a short Chinese text and as a chart (PNG,
800×500, sent as a WeCom image; the same style as bot.report_chart, whose font and money / percent
helpers it reuses).

The chart has two panels: conversion of the treated (sent) and of the control group, in total and
per wave, each bar with its 95 % interval as an error bar and the uplift with its interval written
over the pair; and the revenue of the converting orders of each arm.
"""

from __future__ import annotations

from datetime import datetime
from io import BytesIO
from zoneinfo import ZoneInfo

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from bot import texts
from bot.report_chart import DPI, HEIGHT_PX, WIDTH_PX, cjk_font, percent, short_money, yuan
from campaigns.measure import Arm, Effect, Group, Uplift

matplotlib.use("Agg")

TEXT_GROUPS = 5  # stores / guides listed in the text
CHART_WAVES = 3  # waves drawn beside the total
TREATED_COLOR, CONTROL_COLOR = "#3b7dd8", "#b0b0b0"
# The outcomes the reach line names besides sent / delivered / control.
OTHER_OUTCOMES = ("planned", "capped", "opted_out", "unreachable", "failed", "expired")


# ---------------------------------------------------------------------------------- text


def points(value: float | None) -> str:
    """A difference of rates in percentage points: +6.67 / -6.67."""
    return texts.EFFECT_NA if value is None else f"{value * 100:+.2f}"


def p_text(p_value: float) -> str:
    return "<0.001" if p_value < 0.001 else f"{p_value:.3f}"


def uplift_line(uplift: Uplift) -> str:
    if uplift.uplift is None or uplift.low is None or uplift.high is None or uplift.p_value is None:
        return texts.EFFECT_NO_INTERVAL.format(side=texts.EFFECT_SIDES.get(uplift.missing, uplift.missing))
    return texts.EFFECT_UPLIFT.format(
        uplift=points(uplift.uplift),
        low=points(uplift.low),
        high=points(uplift.high),
        p=p_text(uplift.p_value),
        verdict=texts.EFFECT_SIGNIFICANT if uplift.significant else texts.EFFECT_NOT_SIGNIFICANT,
    )


def _arm(arm: Arm) -> str:
    if not arm.n:
        return texts.EFFECT_ARM_NONE
    return texts.EFFECT_ARM.format(converted=arm.converted, n=arm.n, rate=percent(arm.rate))


def _rate(arm: Arm) -> str:
    return texts.EFFECT_NA if arm.rate is None else percent(arm.rate)


def wave_label(key: str) -> str:
    """"第2波"; a journey's wave is its entry key × 10 + step (campaigns/journeys.py): "20261101 第1步"."""
    if not key.isdigit():
        return key
    wave = int(key)
    if wave >= 10:
        entry, step = divmod(wave, 10)
        return texts.EFFECT_JOURNEY_WAVE.format(entry=entry, step=step + 1)
    return texts.EFFECT_WAVE.format(n=wave + 1)


def _group_line(label: str, group: Group) -> str:
    uplift = group.uplift.uplift
    return texts.EFFECT_GROUP_LINE.format(
        label=label,
        treated_n=group.treated.n,
        treated_rate=_rate(group.treated),
        control_n=group.control.n,
        control_rate=_rate(group.control),
        uplift=texts.EFFECT_NA if uplift is None else texts.EFFECT_POINTS.format(value=points(uplift)),
        revenue=yuan(group.treated.revenue_fen),
    )


def render_effect_text(effect: Effect) -> str:
    """The effect as a short Chinese answer (the chat's and `qianmian report campaign`'s)."""
    lines = [texts.EFFECT_TITLE.format(campaign=effect.name, as_of=effect.as_of.isoformat(),
                                       days=effect.attribution_days)]
    if effect.empty:
        lines.append(texts.EFFECT_EMPTY)
        return "\n".join(lines)
    total = effect.total
    if effect.first_sent is not None and effect.last_sent is not None:
        lines.append(texts.EFFECT_SENT_SPAN.format(first=_local(effect, effect.first_sent),
                                                   last=_local(effect, effect.last_sent)))
    reach = texts.EFFECT_REACH.format(
        targeted=total.targeted, sent=total.sent, delivered=total.delivered, held_out=total.held_out
    )
    for outcome in OTHER_OUTCOMES:
        if total.outcomes.get(outcome):
            name = texts.EFFECT_OUTCOMES.get(outcome, outcome)
            reach += texts.EFFECT_REACH_OTHER.format(name=name, count=total.outcomes[outcome])
    lines.append(reach)
    if total.coupons:
        lines.append(texts.EFFECT_COUPONS.format(coupons=total.coupons, redeemed=total.redeemed,
                                                 rate=percent(total.redemption)))
    else:
        lines.append(texts.EFFECT_NO_COUPONS)
    lines.append(texts.EFFECT_CONVERSION.format(treated=_arm(total.treated), control=_arm(total.control)))
    lines.append(uplift_line(total.uplift))
    lines.append(texts.EFFECT_REVENUE.format(
        treated=yuan(total.treated.revenue_fen), treated_orders=total.treated.orders,
        control=yuan(total.control.revenue_fen), control_orders=total.control.orders,
    ))
    if len(effect.waves) > 1:
        lines.append(texts.EFFECT_WAVES)
        lines.extend(_group_line(wave_label(w.key), w) for w in effect.waves)
    for heading, groups, nameless in (
        (texts.EFFECT_STORES, effect.stores, texts.EFFECT_NO_STORE),
        (texts.EFFECT_GUIDES, effect.guides, texts.EFFECT_NO_GUIDE),
    ):
        if len(groups) > 1 or (groups and groups[0].key):
            shown = groups[:TEXT_GROUPS]
            lines.append(heading.format(count=len(shown)))
            lines.extend(_group_line(g.name or g.key or nameless, g) for g in shown)
    if effect.cross:
        cells = sorted(effect.cross, key=lambda c: (-c.orders, -c.revenue_fen, c.message_channel, c.purchase_channel))
        lines.append(texts.EFFECT_CROSS + "；".join(
            texts.EFFECT_CROSS_CELL.format(
                message=texts.EFFECT_MESSAGE_CHANNELS.get(c.message_channel, c.message_channel),
                purchase=texts.CHANNEL_NAMES.get(c.purchase_channel, c.purchase_channel),
                orders=c.orders,
                revenue=yuan(c.revenue_fen),
            )
            for c in cells
        ))
    else:
        lines.append(texts.EFFECT_CROSS_NONE)
    if effect.open:
        lines.append(texts.EFFECT_OPEN.format(count=effect.open))
    return "\n".join(lines)


def _local(effect: Effect, moment: datetime) -> str:
    return moment.astimezone(ZoneInfo(effect.tz)).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------- chart


def render_effect_chart(effect: Effect) -> bytes:
    """The effect as a PNG of exactly 800×500 pixels."""
    font = cjk_font()
    families = [font, "DejaVu Sans"] if font else ["DejaVu Sans"]
    with matplotlib.rc_context({"font.family": families, "axes.unicode_minus": False}):
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        fig.suptitle(
            texts.EFFECT_TITLE.format(campaign=effect.name, as_of=effect.as_of.isoformat(),
                                      days=effect.attribution_days),
            fontsize=13,
        )
        if effect.empty:
            ax = fig.add_subplot()
            ax.set_axis_off()
            ax.text(0.5, 0.5, texts.REPORT_CHART_NO_DATA, ha="center", va="center", fontsize=16, color="#666666")
        else:
            groups = [(texts.EFFECT_CHART_TOTAL, effect.total)]
            if len(effect.waves) > 1:
                groups += [(wave_label(w.key), w) for w in effect.waves[:CHART_WAVES]]
            conversion, revenue = fig.subplots(1, 2, width_ratios=[3, 2])
            _conversion(conversion, groups)
            _revenue(revenue, groups)
        out = BytesIO()
        fig.savefig(out, format="png", dpi=DPI, metadata={"Software": None})
    return out.getvalue()


def _conversion(ax: Axes, groups: list[tuple[str, Group]]) -> None:
    width = 0.36
    top = 0.0
    for index, (_label, group) in enumerate(groups):
        for offset, arm, color, name in (
            (-width / 2, group.treated, TREATED_COLOR, texts.EFFECT_CHART_TREATED),
            (width / 2, group.control, CONTROL_COLOR, texts.EFFECT_CHART_CONTROL),
        ):
            rate = (arm.rate or 0.0) * 100
            interval = arm.interval
            error = [[rate - interval[0] * 100], [interval[1] * 100 - rate]] if interval else None
            ax.bar(index + offset, rate, width, color=color, yerr=error, capsize=4, error_kw={"elinewidth": 1},
                   label=name if index == 0 else None)
            above = interval[1] * 100 if interval else rate
            ax.text(index + offset, above, percent(arm.rate) if arm.n else texts.EFFECT_NA, ha="center",
                    va="bottom", fontsize=8)
            top = max(top, above)
        u = group.uplift
        note = (
            texts.EFFECT_CHART_UPLIFT.format(uplift=points(u.uplift), low=points(u.low), high=points(u.high))
            if u.uplift is not None
            else texts.EFFECT_CHART_UPLIFT_NONE
        )
        ax.annotate(note, (index, 0), xytext=(0, -20), textcoords="offset points", ha="center", va="top",
                    fontsize=8, color="#444444", annotation_clip=False)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_ylim(0, max(top, 1.0) * 1.3)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.0f}%"))
    ax.set_title(texts.EFFECT_CHART_CONVERSION, fontsize=11)
    ax.legend(fontsize=9, loc="upper right", frameon=False, ncols=2)
    ax.tick_params(axis="x", pad=2)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _revenue(ax: Axes, groups: list[tuple[str, Group]]) -> None:
    width = 0.36
    top = 0.0
    for index, (_label, group) in enumerate(groups):
        for offset, arm, color in (
            (-width / 2, group.treated, TREATED_COLOR),
            (width / 2, group.control, CONTROL_COLOR),
        ):
            bars = ax.bar(index + offset, arm.revenue_fen / 100, width, color=color)
            ax.bar_label(bars, labels=[short_money(arm.revenue_fen)], padding=2, fontsize=8)
            top = max(top, arm.revenue_fen / 100)
    ax.set_xticks(range(len(groups)), [label for label, _ in groups])
    ax.set_ylim(0, max(top, 1.0) * 1.2)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_title(texts.EFFECT_CHART_REVENUE, fontsize=11)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


__all__ = ["render_effect_chart", "render_effect_text", "uplift_line"]
