"""The words of one retailer the parser must know (stores, guides, categories, brands, SKUs,
coupons, campaigns, labels): loaded from the profile store (profile_store/vocabulary.py) and
passed in, so `nlp` stays pure. `version` changes whenever the words do, so the jieba user
dictionary built from it is rebuilt only then."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StoreWord:
    store_id: str
    name: str
    city: str


@dataclass(frozen=True)
class GuideWord:
    guide_id: str
    name: str
    store_id: str
    role: str


@dataclass(frozen=True)
class Vocabulary:
    stores: tuple[StoreWord, ...] = ()
    guides: tuple[GuideWord, ...] = ()
    categories: tuple[str, ...] = ()
    brands: tuple[str, ...] = ()
    skus: tuple[str, ...] = ()
    # card_id → name
    coupons: tuple[tuple[str, str], ...] = ()
    # campaign ids and names seen in events (and, later, campaigns)
    campaigns: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    # saved segment names
    segments: tuple[str, ...] = ()
    # values of free-text tags (city, source) found in profiles
    cities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    version: str = field(default="", compare=False)

    def fingerprint(self) -> str:
        """A digest of every word: equal fingerprints, same dictionary."""
        digest = hashlib.sha256()
        for part in (
            self.stores,
            self.guides,
            self.categories,
            self.brands,
            self.skus,
            self.coupons,
            self.campaigns,
            self.labels,
            self.segments,
            self.cities,
            self.sources,
        ):
            digest.update(repr(part).encode())
            digest.update(b"\x00")
        return digest.hexdigest()[:16]


EMPTY = Vocabulary()
