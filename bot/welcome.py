"""Which welcome a new contact gets, and its words.

The kind follows the customer's tags as of the scan: a customer with no paid order is `new`
(新人礼); a loyal one (lifecycle 忠诚) is thanked and told about new arrivals; a price-oriented one
(价格导向) hears of the current promotion; anyone else gets the default. A marketer's template
(table `welcome_template`) replaces the built-in words of its kind.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

from bot import texts
from profile_store.welcome import KINDS, Template

PLACEHOLDERS = frozenset({"guide", "store"})
MAX_TEXT_BYTES = 4000  # send_welcome_msg text.content: at most 4000 bytes


class TemplateError(ValueError):
    def __init__(self, reason: str, **detail: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail

    def message(self) -> str:
        why = texts.WELCOME_REASONS[self.reason].format(limit=MAX_TEXT_BYTES, **self.detail)
        return texts.WELCOME_BAD_TEXT.format(reason=why)


def welcome_kind(tags: Mapping[str, Any], metrics: Mapping[str, Any]) -> str:
    if not metrics.get("orders_total"):
        return "new"
    if tags.get("lifecycle") == "忠诚":
        return "loyal"
    if tags.get("price_orientation") == "价格导向":
        return "price"
    return "default"


def check_text(text: str) -> None:
    """Refuse a template that could not be sent or filled in."""
    if not text.strip():
        raise TemplateError("empty")
    if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
        raise TemplateError("too long")
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(text) if name is not None]
    except ValueError as exc:
        raise TemplateError("format") from exc
    for name in fields:
        if name not in PLACEHOLDERS:
            raise TemplateError("placeholder", name=name)


def template_for(kind: str, stored: Mapping[str, Template]) -> Template:
    if kind not in KINDS:
        raise ValueError(kind)
    return stored.get(kind) or Template(kind, texts.WELCOME_DEFAULTS[kind])


def render(template: Template, *, guide: str | None, store: str | None) -> dict[str, Any]:
    """The `send_welcome_msg` body (without the code): text, and a link when the template has one."""
    content = template.text.format(
        guide=guide or texts.WELCOME_GUIDE_FALLBACK, store=store or texts.WELCOME_STORE_FALLBACK
    )
    body: dict[str, Any] = {"text": content}
    if template.link_url:
        body["attachments"] = [
            {"msgtype": "link", "link": {"title": template.link_title or content[:20], "url": template.link_url}}
        ]
    return body
