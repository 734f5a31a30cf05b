"""Facts about customers: the natural key that makes an imported row and a live callback of the
same fact one row (data.md §2: "an import and a callback describing the same fact must end up as
one fact")."""

from __future__ import annotations

from datetime import datetime

OA_EVENT_TYPES = frozenset({"follow", "unfollow", "scan"})
CONTACT_EVENT_TYPES = frozenset({"add_contact", "del_contact"})
COUPON_EVENT_TYPES = frozenset({"coupon_get", "coupon_consume", "coupon_delete"})
EVENT_TYPES = frozenset(
    OA_EVENT_TYPES
    | CONTACT_EVENT_TYPES
    | COUPON_EVENT_TYPES
    | {"browse", "add_cart", "click", "message"}
)


def fact_key(
    type: str,
    occurred_at: datetime,
    *,
    appid: str | None = None,
    openid: str | None = None,
    external_userid: str | None = None,
    guide_id: str | None = None,
    card_id: str | None = None,
    coupon_code: str | None = None,
    event_id: str,
) -> str:
    """What makes two event records the same fact.

    Tencent's callbacks carry second-precision times, so an OA event is (type, appid, openid,
    second) and a WeCom contact event is (type, external_userid, guide, second). A coupon code is
    gotten, consumed and deleted at most once each. Anything else is only known by its event_id.
    """
    stamp = occurred_at.strftime("%Y-%m-%d %H:%M:%S")
    if type in COUPON_EVENT_TYPES and coupon_code:
        return f"{type}|{card_id or ''}|{coupon_code}"
    if type in CONTACT_EVENT_TYPES and external_userid:
        return f"{type}|{external_userid}|{guide_id or ''}|{stamp}"
    if type in OA_EVENT_TYPES | {"message"} and openid:
        return f"{type}|{appid or ''}|{openid}|{stamp}"
    if type == "message" and external_userid:
        return f"{type}|{external_userid}|{guide_id or ''}|{stamp}"
    return f"id|{event_id}"
