"""Tables of the profile store.

Conventions (why): money is integer fen, exact on SQLite and PostgreSQL alike; business times
(paid_at, occurred_at, register_time) are naive local times in the business time zone
(QIANMIAN_TZ), as the CSV exports carry them, while system timestamps are aware UTC; every
per-person table has `person_id`, so the tables can later be distributed by person. Phones are
never stored in clear: rows keep a keyed hash, the identity node keeps the ciphertext.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Index, String, Text, UniqueConstraint, false, text
from sqlmodel import Field, SQLModel


def _utcnow() -> datetime:
    """System timestamps (when we received or changed something) are aware UTC."""
    return datetime.now(UTC)


# ---------------------------------------------------------------- reference data (not per person)


class Store(SQLModel, table=True):
    store_id: str = Field(primary_key=True)
    name: str = ""
    city: str = ""
    region: str = ""


class Product(SQLModel, table=True):
    sku: str = Field(primary_key=True)
    name: str = ""
    category: str = Field(default="", index=True)
    brand: str = ""
    list_price_fen: int | None = Field(default=None, sa_column=Column(BigInteger))


class Guide(SQLModel, table=True):
    guide_id: str = Field(primary_key=True)  # the WeCom userid
    name: str = ""
    store_id: str = Field(default="", index=True)
    role: str = "guide"  # guide | manager | marketer | admin


class Coupon(SQLModel, table=True):
    card_id: str = Field(primary_key=True)
    name: str = ""
    kind: str = "cash"  # cash | discount | gift
    value: float = 0.0  # yuan for cash, percent off for discount
    threshold_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    valid_days: int = 0


# ---------------------------------------------------------------- facts about persons


class Member(SQLModel, table=True):
    member_id: str = Field(primary_key=True)
    person_id: str | None = Field(default=None, index=True)
    link_key: str | None = Field(default=None, index=True)
    phone_hash: str | None = Field(default=None, index=True)
    unionid: str | None = None
    name: str = ""
    gender: str | None = None  # M | F | None
    birthday: date | None = None
    city: str = ""
    level: str | None = None  # V0..V5
    register_time: datetime | None = Field(default=None, sa_column=Column(DateTime))
    register_channel: str = ""
    register_store_id: str = ""
    # Position of the row in its import (tags.md: ties between member records → the later row).
    row_seq: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        # Segment conditions (profile_store/segments/sql.py): a person's paid orders in a window,
        # counted and summed from the index alone (PostgreSQL; SQLite ignores the INCLUDE).
        Index("ix_orders_person_paid", "person_id", "paid_at", postgresql_include=["status", "amount_fen"]),
    )
    order_id: str = Field(primary_key=True)
    person_id: str | None = Field(default=None)  # looked up through ix_orders_person_paid
    link_key: str | None = Field(default=None, index=True)
    channel: str  # pos | miniapp | ecom | oa_mall
    store_id: str = ""
    paid_at: datetime = Field(sa_column=Column(DateTime, nullable=False, index=True))
    amount_fen: int = Field(sa_column=Column(BigInteger, nullable=False))
    list_amount_fen: int | None = Field(default=None, sa_column=Column(BigInteger))
    coupon_code: str = ""
    status: str  # paid | refunded
    member_id: str | None = None
    phone_hash: str | None = None
    unionid: str | None = None
    miniapp_openid: str | None = None


class OrderItem(SQLModel, table=True):
    __tablename__ = "order_item"
    order_id: str = Field(primary_key=True)
    line_no: int = Field(primary_key=True)  # n-th row of this order in its file
    person_id: str | None = Field(default=None, index=True)
    sku: str
    qty: int
    unit_price_fen: int = Field(sa_column=Column(BigInteger, nullable=False))


_HAS_COUPON = text("coupon_code IS NOT NULL")


class Event(SQLModel, table=True):
    """One customer event, imported or live. `fact_key` makes an imported row and a live
    callback describing the same fact one row."""

    __table_args__ = (
        Index("ix_event_person_type", "person_id", "type"),
        # A coupon's fate (consumed, deleted) is found by its code (tags.md coupon tags); most
        # events have none, and a lookup by code implies one (migration 0009).
        Index(
            "ix_event_coupon_code",
            "coupon_code",
            "type",
            postgresql_where=_HAS_COUPON,
            sqlite_where=_HAS_COUPON,
        ),
    )
    event_id: str = Field(primary_key=True)
    fact_key: str = Field(unique=True)
    person_id: str | None = Field(default=None)
    link_key: str | None = Field(default=None, index=True)
    type: str
    occurred_at: datetime = Field(sa_column=Column(DateTime, nullable=False, index=True))
    channel: str = ""
    appid: str | None = None
    openid: str | None = None
    unionid: str | None = None
    miniapp_openid: str | None = None
    external_userid: str | None = None
    member_id: str | None = None
    phone_hash: str | None = None
    guide_id: str | None = None
    store_id: str | None = None
    qr_state: str | None = None
    sku: str | None = None
    category: str | None = None
    card_id: str | None = None
    coupon_code: str | None = None
    campaign_id: str | None = None
    origin: str = "import"  # import | callback


# ---------------------------------------------------------------- the identity graph (One ID)


class IdentityNode(SQLModel, table=True):
    """One identifier value. `value` is the normalised value, or for a phone its keyed hash."""

    __tablename__ = "identity_node"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_identity_node_kind_value"),)
    id: int | None = Field(default=None, primary_key=True)
    kind: str
    value: str
    person_id: str | None = Field(default=None, index=True)  # None while shared or unresolved
    shared: bool = False
    sealed: str | None = Field(default=None, sa_column=Column(Text))  # phone ciphertext


class Link(SQLModel, table=True):
    """A set of identifiers seen together on some row (a member, order, event or callback).

    Rows carrying the same identifiers share one link (`link_key` = hash of the stored set), so
    the graph grows with distinct identifier sets, not with rows; each source row keeps the
    `link_key` it was seen with, and takes its person through it."""

    # Only pending links are indexed: the index stays small however large the graph grows.
    __table_args__ = (
        Index(
            "ix_link_pending", "id",
            postgresql_where=text("resolved = false"), sqlite_where=text("resolved = 0"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    link_key: str = Field(unique=True)
    person_id: str | None = Field(default=None, index=True)
    resolved: bool = False
    first_seen_at: datetime = Field(default_factory=_utcnow)


class LinkNode(SQLModel, table=True):
    __tablename__ = "link_node"
    link_id: int = Field(primary_key=True)
    node_id: int = Field(primary_key=True, index=True)


class Person(SQLModel, table=True):
    """A person_id ever minted. A merged id keeps resolving to its survivor (`merged_into`)."""

    person_id: str = Field(primary_key=True)
    anchor_node_id: int = Field(index=True)
    status: str = "active"  # active | merged | dissolved
    merged_into: str | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=_utcnow)
    updated_at: datetime = Field(default_factory=_utcnow)


class IdentityLog(SQLModel, table=True):
    """Why identifiers are (or stopped being) one person: merges, splits, shared identifiers."""

    __tablename__ = "identity_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_utcnow, index=True)
    action: str  # new | merge | split | shared | dissolve
    person_id: str | None = Field(default=None, index=True)
    other_person_id: str | None = None
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


# ---------------------------------------------------------------- callbacks and their afterlife


class RawEvent(SQLModel, table=True):
    """A callback as received (decrypted XML), recorded before it is answered."""

    __tablename__ = "raw_event"
    __table_args__ = (Index("ix_raw_event_status", "status", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(unique=True)
    channel: str  # wecom | wechat
    account: str = ""  # corp id or appid
    received_at: datetime = Field(default_factory=_utcnow)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = "pending"  # pending | done | dead
    attempts: int = 0
    processed_at: datetime | None = None


class DeadLetter(SQLModel, table=True):
    """A callback that could not be used, with its reason; an operator can list and replay it."""

    __tablename__ = "dead_letter"
    id: int | None = Field(default=None, primary_key=True)
    raw_event_id: int = Field(index=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = Field(default_factory=_utcnow)
    replayed_at: datetime | None = None


class AccessToken(SQLModel, table=True):
    """Tencent access tokens, shared by every request of every `serve` process."""

    __tablename__ = "access_token"
    key: str = Field(primary_key=True)  # "wecom:<corpid>:<agent>" or "wechat:<appid>"
    token: str
    expires_at: datetime


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_run"
    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = Field(default_factory=_utcnow)
    finished_at: datetime | None = None
    source_dir: str = ""
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))


# ---------------------------------------------------------------- tags (tags.md) and labels


class PersonProfile(SQLModel, table=True):
    """A person's metrics and tags as of `as_of` (tags.md), one row per active person.

    Money is fen, as everywhere; tag values are stored as exported (Chinese values, 是 or
    NULL), lists as JSON text, so that history compares them as text and segment queries
    (commands.md) filter them in SQL."""

    __tablename__ = "profile"
    person_id: str = Field(primary_key=True)
    as_of: date
    computed_at: datetime = Field(default_factory=_utcnow)
    orders_365d: int = 0
    amount_365d_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    aov_365d_fen: int | None = Field(default=None, sa_column=Column(BigInteger))
    max_order_365d_fen: int | None = Field(default=None, sa_column=Column(BigInteger))
    recency_days: int | None = None
    last_active_date: date | None = None
    orders_total: int = 0
    amount_total_fen: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    lifecycle: str = Field(default="流失", index=True)
    rfm: str | None = Field(default=None, index=True)
    purchase_power: str | None = None
    wallet_depth: str | None = None
    price_orientation: str | None = None
    preferred_category: str | None = None
    browse_preference: str | None = None
    preferred_channel: str | None = None
    preferred_store: str | None = None
    core_sku: str | None = None  # JSON list
    coupon_outstanding: str | None = None
    coupon_redemption_rate: float | None = None
    is_member: str | None = None
    oa_follower: str | None = None
    wecom_contact: str | None = None
    guides: str | None = None  # JSON list
    source: str | None = None
    level: str | None = None
    city: str | None = None
    gender: str | None = None
    birthday_month: int | None = None


class TagHistory(SQLModel, table=True):
    """One change of one tag of one person: "2026-10-03 由 忠诚 变为 沉睡"."""

    __tablename__ = "tag_history"
    __table_args__ = (Index("ix_tag_history_person", "person_id", "tag", "changed_on"),)
    id: int | None = Field(default=None, primary_key=True)
    person_id: str
    tag: str
    old_value: str | None = None
    new_value: str | None = None
    changed_on: date  # the as-of date of the computation that saw the change
    recorded_at: datetime = Field(default_factory=_utcnow)


class TagSetting(SQLModel, table=True):
    """A retailer's threshold for a tag rule (profile_store.tagging.rules.TagRules)."""

    __tablename__ = "tag_setting"
    key: str = Field(primary_key=True)
    value: str
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=_utcnow)


class PersonLabel(SQLModel, table=True):
    """A manual label (自定义标签) a marketer or guide put on a person."""

    __tablename__ = "person_label"
    person_id: str = Field(primary_key=True)
    label: str = Field(primary_key=True, index=True)
    added_by: str = ""
    added_at: datetime = Field(default_factory=_utcnow)


class LabelLog(SQLModel, table=True):
    """Audit of manual labels: who put or removed which label on whom, when."""

    __tablename__ = "label_log"
    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(index=True)
    label: str
    action: str  # add | remove
    by: str = ""
    at: datetime = Field(default_factory=_utcnow)


class CorpTagSync(SQLModel, table=True):
    """The WeCom corp tags a guide's customer should carry (outbox of `mark_tag`): `desired` is
    what our tags say, `mirrored` what WeCom was last told; `dirty` rows wait for the sender."""

    __tablename__ = "corp_tag_sync"
    __table_args__ = (Index("ix_corp_tag_sync_dirty", "dirty", "next_attempt_at"),)
    external_userid: str = Field(primary_key=True)
    userid: str = Field(primary_key=True)  # the guide (WeCom userid)
    person_id: str = Field(index=True)
    desired: str = "[]"  # JSON list of tag names
    mirrored: str = "[]"
    dirty: bool = True
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=_utcnow)
    last_error: str = ""
    updated_at: datetime = Field(default_factory=_utcnow)


class CorpTag(SQLModel, table=True):
    """WeCom's id for one of our corp tags (group 千面), learnt or created once."""

    __tablename__ = "corp_tag"
    name: str = Field(primary_key=True)
    tag_id: str
    group_id: str = ""


class JobRun(SQLModel, table=True):
    """One run of a scheduled job (e.g. the nightly tag refresh of one date): the row makes a run
    happen once however many `serve` processes schedule it."""

    __tablename__ = "job_run"
    job: str = Field(primary_key=True)
    run_key: str = Field(primary_key=True)
    started_at: datetime = Field(default_factory=_utcnow)
    finished_at: datetime | None = None
    owner: str = ""
    outcome: str = ""


# ---------------------------------------------------------------- the scan-to-portrait flow (issue 4)


class Outbox(SQLModel, table=True):
    """A message that must go out exactly once: a portrait card to a guide, a welcome to a new
    contact, a picture to whoever asked. Written in the transaction that processed its callback,
    so a Tencent retry finds the row already there (unique `key`) and a restart resumes it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)
    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)  # e.g. "portrait:<callback dedupe key>:<guide>"
    kind: str  # portrait | welcome | image | text
    person_id: str = Field(default="", index=True)  # may be empty: resolved when sending
    payload: str = "{}"  # JSON: what the sender needs (guide, external_userid, welcome_code, …)
    status: str = "pending"  # pending | sent | failed | expired
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=_utcnow)
    expires_at: datetime | None = None  # a welcome code is good for 20 s
    created_at: datetime = Field(default_factory=_utcnow)
    sent_at: datetime | None = None
    last_error: str = ""


class ContactWay(SQLModel, table=True):
    """A QR code we created: a WeCom "联系我" contact way or an OA parametric QR code. `state` is
    what comes back in the callback (`store_<id>` / `guide_<id>`, at most 30 characters)."""

    __tablename__ = "contact_way"
    channel: str = Field(primary_key=True)  # "wecom" or the OA's appid
    state: str = Field(primary_key=True)
    store_id: str = Field(default="", index=True)
    guide_id: str = ""
    config_id: str = ""  # WeCom config_id, or the OA ticket
    qr_url: str = ""
    image_path: str = ""  # where the PNG was saved
    users: str = "[]"  # JSON list of the guides a store QR rotates among
    created_by: str = ""
    created_at: datetime = Field(default_factory=_utcnow)


class PortraitView(SQLModel, table=True):
    """Audit of every opening of a portrait page, shown or refused."""

    __tablename__ = "portrait_view"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_utcnow)
    link_id: str = ""  # the link's own id (one per card sent)
    guide_id: str = ""  # whom the link was sent to
    viewer: str = ""  # who opened it (WeCom OAuth userid), when known
    person_id: str = Field(default="", index=True)
    outcome: str  # shown | expired | forged | foreign | denied
    ip: str = ""


class WelcomeTemplate(SQLModel, table=True):
    """A welcome message a marketer can edit, chosen by the new contact's tags (kind)."""

    __tablename__ = "welcome_template"
    kind: str = Field(primary_key=True)  # new | price | loyal | default
    text: str
    link_title: str = ""
    link_url: str = ""
    card_id: str = ""  # a coupon offered with it (新人礼)
    updated_by: str = ""
    updated_at: datetime = Field(default_factory=_utcnow)


class CommandLog(SQLModel, table=True):
    """Audit of every command a staff member gave (chat or CLI on their behalf)."""

    __tablename__ = "command_log"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=_utcnow)
    userid: str = Field(index=True)
    text: str
    family: str = ""  # qr | segment | campaign | report | portrait | tag | help | unknown
    outcome: str = ""  # done | refused | failed | not_understood | preview
    detail: str = ""
    # How the bot read the command ("上海的会员，且生命周期为忠诚") and how many people it concerned.
    reading: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    result_size: int | None = None


# ---------------------------------------------------------------- chat commands (issue 5)


class SavedSegment(SQLModel, table=True):
    """A segment kept under a name ("上海忠诚会员"), reusable in later commands; the tree is
    `nlp.segment.to_json`, relative windows included (re-evaluated at each use)."""

    __tablename__ = "saved_segment"
    name: str = Field(primary_key=True)
    tree: str = Field(sa_column=Column(Text, nullable=False))
    text: str = ""  # the words it was made from
    reading: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    owner: str = Field(default="", index=True)  # who saved it last
    size: int = 0  # people in it when saved
    created_at: datetime = Field(default_factory=_utcnow)
    updated_at: datetime = Field(default_factory=_utcnow)


class ChatState(SQLModel, table=True):
    """One staff member's conversation with the bot: the last segment ("刚才那批人") and the
    action waiting for their confirmation, which lapses at `pending_expires_at`. In the database,
    not in a process, so any `serve` process can take the next message."""

    __tablename__ = "chat_state"
    userid: str = Field(primary_key=True)
    last_segment: str | None = None  # name of a saved segment
    pending: str | None = Field(default=None, sa_column=Column(Text))  # JSON of the action
    pending_expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    updated_at: datetime = Field(default_factory=_utcnow)


# ---------------------------------------------------------------- campaigns and journeys (issue 6)


class Campaign(SQLModel, table=True):
    """A campaign (or a journey: `kind`), from a command or the CLI. What it says to whom is
    decided per person by `variants` (千人千面); `waves` resend to those who have not bought."""

    __tablename__ = "campaign"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    kind: str = "campaign"  # campaign | journey
    segment: str = Field(sa_column=Column(Text, nullable=False))  # nlp.segment.to_json
    reading: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    # JSON list of variants, first match wins: {"name", "when": segment JSON or null (everyone
    # left), "content", "coupon": {"card_id", "kind", "value", "threshold_fen"} or null}
    variants: str = Field(default="[]", sa_column=Column(Text, nullable=False, default="[]"))
    channel: str = "any"  # any | wecom | oa | sms: the channels a person may be reached by
    # JSON list of waves: {"wave": 0, "after_days": 0, "only_not_bought": false}
    waves: str = Field(default='[{"wave": 0, "after_days": 0, "only_not_bought": false}]', sa_column=Column(Text))
    send_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    control_pct: float = 10.0  # share of the targeted held out (stable hash of person and campaign)
    attribution_days: int = 7
    status: str = Field(default="draft", index=True)  # draft | scheduled | running | paused | cancelled | done
    created_by: str = ""
    created_at: datetime = Field(default_factory=_utcnow)
    confirmed_by: str = ""
    confirmed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class CampaignTarget(SQLModel, table=True):
    """One planned marketing message: (campaign, wave, person) — the durable outbox of marketing.
    Rows held back keep their reason (`outcome` control / capped / opted_out / unreachable), so
    targeted = sent + capped + opted-out + control + unreachable can be shown and checked."""

    __tablename__ = "campaign_target"
    __table_args__ = (
        Index("ix_campaign_target_due", "outcome", "due_at"),
        Index("ix_campaign_target_person_sent", "person_id", "sent_at"),
        # Claims take due rows in (due_at, campaign, wave, guide) order straight from this index,
        # so a guide's rows arrive together and become one add_msg_template call.
        Index("ix_campaign_target_claim", "outcome", "due_at", "campaign_id", "wave", "guide_id"),
    )
    campaign_id: int = Field(primary_key=True)
    wave: int = Field(default=0, primary_key=True)
    person_id: str = Field(primary_key=True)
    variant: str = ""
    channel: str = ""  # wecom | oa_template | oa_custom | sms | "" (none)
    guide_id: str = ""  # the guide a WeCom message goes through
    store_id: str = ""  # the person's preferred store when planned (effect by store)
    # planned | control | capped | opted_out | unreachable | sent | delivered | failed | expired
    outcome: str = "planned"
    # A service message (it answers the customer's own action: the welcome after a follow): sent
    # and held like any row (opt-outs, quiet hours, WeCom's quota), but no frequency cap holds it
    # back and it counts for none.
    service: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=false()))
    due_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    claimed_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    attempts: int = 0
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str = ""



class CampaignSend(SQLModel, table=True):
    """One WeCom mass-send batch (add_msg_template) of a guide's rows of a campaign wave; its
    msgid is checked later for who received it (profile_store/campaign_outbox.py)."""

    __tablename__ = "campaign_send"
    __table_args__ = (
        Index("ix_campaign_send_status", "status", "next_check_at"),
        Index("ix_campaign_send_guide", "guide_id", "created_at"),
    )
    batch_id: str = Field(primary_key=True)
    campaign_id: int
    wave: int
    guide_id: str
    variant: str
    persons: int
    status: str  # pending | sent | done | failed | abandoned
    msgid: str | None = None
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    lease_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    next_check_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    last_error: str = Field(default="", sa_column=Column(String, nullable=False, server_default=""))

class OptOut(SQLModel, table=True):
    """A customer who said 退订 / TD, or unfollowed: nothing more through that channel, for good."""

    __tablename__ = "opt_out"
    person_id: str = Field(primary_key=True)
    channel: str = Field(primary_key=True)  # wecom | oa | sms | all
    at: datetime = Field(default_factory=_utcnow)
    reason: str = ""  # 退订 | TD | unsubscribe | …
