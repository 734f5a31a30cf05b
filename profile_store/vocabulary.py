"""The retailer's own words for the command parser (nlp.vocabulary.Vocabulary), read from the store:
stores and their cities, staff, categories, brands, SKUs, coupons, campaigns, labels, saved
segments, and the free-text tag values people type (cities, channel sources)."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from nlp.vocabulary import GuideWord, StoreWord, Vocabulary


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
