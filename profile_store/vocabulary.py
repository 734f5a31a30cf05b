"""The retailer's own words for the command parser (nlp.vocabulary.Vocabulary), read from the store:
stores and their cities, staff, categories, brands, SKUs, coupons, campaigns, labels, saved
segments, and the free-text tag values people type (cities, channel sources).

The full load scans the profile (DISTINCT city, source) and the events (DISTINCT campaign_id),
so a long-running reader (the chat assistant, every 60 s) first reads `vocabulary_stamp`, one
statement of index-backed maxima and row counts of where the words come from, and reloads only
when it changed (`refresh_vocabulary`). What each part of the stamp stands for:

- stores, staff, coupons, products, the campaign ids events carry: written by imports
  (`import_run`: a new run, or one finishing) — their row counts catch rows written otherwise;
- campaigns and saved segments (ours): row count, highest id / latest update;
- labels: every label put on or taken off is logged (`label_log`: highest id);
- profile cities and sources: a new person's profile row (row count), a changed tag of a known
  person (`tag_history`: highest id). A profile rewritten by a back-dated `--as-of` refresh
  records no history: its words come with the next change, or at once after our own changes
  (the assistant forgets its vocabulary then).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nlp.vocabulary import GuideWord, StoreWord, Vocabulary

Stamp = tuple[str, ...]

_STAMP_SQL = "SELECT " + ", ".join(
    f"({query})"
    for query in (
        "SELECT max(id) FROM import_run",
        "SELECT count(finished_at) FROM import_run",
        "SELECT count(*) FROM store",
        "SELECT count(*) FROM guide",
        "SELECT count(*) FROM coupon",
        "SELECT count(*) FROM product",
        "SELECT count(*) FROM campaign",
        "SELECT max(id) FROM campaign",
        "SELECT count(*) FROM saved_segment",
        "SELECT max(updated_at) FROM saved_segment",
        "SELECT max(id) FROM label_log",
        "SELECT count(*) FROM profile",
        "SELECT max(id) FROM tag_history",
    )
)


async def vocabulary_stamp(session: AsyncSession) -> Stamp:
    """A cheap fingerprint of the tables the words come from (see the module's notes): equal
    stamps, same words."""
    row = (await session.execute(text(_STAMP_SQL))).one()
    return tuple("" if v is None else str(v) for v in row)


async def refresh_vocabulary(
    session: AsyncSession, current: Vocabulary | None, stamp: Stamp | None
) -> tuple[Vocabulary, Stamp, bool]:
    """(the vocabulary, its stamp, whether it was loaded): `current` kept when the stamp it was
    loaded under (`stamp`) is still the database's, else a full load. The stamp is read before
    the load, so a change committed during the load makes the next refresh load again."""
    now = await vocabulary_stamp(session)
    if current is not None and stamp == now:
        return current, now, False
    return await load_vocabulary(session), now, True


async def _column(session: AsyncSession, query: str) -> tuple[str, ...]:
    rows = (await session.execute(text(query))).scalars()
    return tuple(sorted({str(v) for v in rows if v not in (None, "")}))


async def load_vocabulary(session: AsyncSession) -> Vocabulary:
    stores = tuple(
        StoreWord(r.store_id, r.name or "", r.city or "")
        for r in (await session.execute(text("SELECT store_id, name, city FROM store ORDER BY store_id"))).all()
    )
    guides = tuple(
        GuideWord(r.guide_id, r.name or "", r.store_id or "", r.role or "guide")
        for r in (
            await session.execute(text("SELECT guide_id, name, store_id, role FROM guide ORDER BY guide_id"))
        ).all()
    )
    coupons = tuple(
        (r.card_id, r.name or "")
        for r in (await session.execute(text("SELECT card_id, name FROM coupon ORDER BY card_id"))).all()
    )
    vocabulary = Vocabulary(
        stores=stores,
        guides=guides,
        categories=await _column(session, "SELECT DISTINCT category FROM product"),
        brands=await _column(session, "SELECT DISTINCT brand FROM product"),
        skus=await _column(session, "SELECT sku FROM product"),
        coupons=coupons,
        # Campaigns we ran (by name) and campaign ids the events carry.
        campaigns=tuple(
            sorted(
                set(await _column(session, "SELECT name FROM campaign"))
                | set(
                    await _column(
                        session,
                        "SELECT DISTINCT campaign_id FROM event WHERE campaign_id IS NOT NULL AND campaign_id <> ''",
                    )
                )
            )
        ),
        labels=await _column(session, "SELECT DISTINCT label FROM person_label"),
        segments=await _column(session, "SELECT name FROM saved_segment"),
        # Cities of the stores and of member records (a member may live where there is no store).
        cities=tuple(
            sorted(
                {s.city for s in stores if s.city}
                | set(await _column(session, "SELECT DISTINCT city FROM profile WHERE city IS NOT NULL"))
            )
        ),
        sources=await _column(session, "SELECT DISTINCT source FROM profile WHERE source IS NOT NULL"),
    )
    return Vocabulary(**{**vocabulary.__dict__, "version": vocabulary.fingerprint()})
