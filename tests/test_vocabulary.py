"""The chat assistant's vocabulary refresh (profile_store.vocabulary, bot.chat.engine) on SQLite and
PostgreSQL: an unchanged database is looked at with one cheap statement and not loaded again; a
new store's city, a label put on by someone else, a campaign, a new person's city and a changed
source are words after the next refresh. Rows are written directly, as an import or another
process would."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from bot.chat import engine as chat_engine
from bot.chat.engine import Assistant
from bot.settings import Settings
from profile_store.db import Database
from profile_store.identity import IdentityGraph
from profile_store.labels import add_label
from profile_store.models import Campaign, Guide, Person, PersonProfile, Store
from profile_store.pii import PiiVault
from tests.conftest import TEST_SECRET

NOON = datetime(2026, 11, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture
async def bot(db: Database, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Assistant:
    # every question looks at the database again (the interval itself is time, not under test)
    monkeypatch.setattr(chat_engine, "VOCABULARY_SECONDS", -1.0)
    async with db.transaction() as session:
        session.add(Store(store_id="S001", name="上海一店", city="上海"))
        session.add(Guide(guide_id="mk", name="市场", role="marketer"))
        session.add(Person(person_id="p1", anchor_node_id=0))
        session.add(PersonProfile(person_id="p1", as_of=date(2026, 11, 1), is_member="是", city="上海",
                                  source="store_S001"))
    settings = Settings(DATABASE_URL=db_url, QIANMIAN_SECRET_KEY=TEST_SECRET,
                        QIANMIAN_MEDIA_DIR=str(tmp_path / "media"))  # type: ignore[call-arg]
    return Assistant(db, IdentityGraph(PiiVault(TEST_SECRET)), settings, None)


class Statements:
    """The statements run against the database while `counting`."""

    def __init__(self, db: Database) -> None:
        self.seen: list[str] = []
        self.counting = False
        self.engines = [e.sync_engine for e in (db.engine, db.read_engine) if e is not None]
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if self.counting:
            self.seen.append(statement)

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._record)


@pytest.fixture
def statements(db: Database) -> Iterator[Statements]:
    counted = Statements(db)
    yield counted
    counted.close()


async def refreshed(bot: Assistant) -> Any:
    return await bot.vocabulary()


async def test_an_unchanged_database_is_not_loaded_again(bot: Assistant, statements: Statements) -> None:
    first = await refreshed(bot)
    assert bot.vocabulary_loads == 1 and "上海" in first.cities
    statements.counting = True
    for _ in range(3):
        assert await refreshed(bot) is first
    statements.counting = False
    assert bot.vocabulary_loads == 1
    # one query a refresh: the stamp, never a scan of the profile or the events for their words
    queries = [s for s in statements.seen if s.lstrip().upper().startswith("SELECT")]
    assert len(queries) == 3, statements.seen
    assert not any("DISTINCT" in s.upper() for s in queries)


async def test_a_new_store_city_is_a_word_after_the_refresh(bot: Assistant, db: Database) -> None:
    before = await bot.answer("mk", "看看厦门有多少会员", now=NOON)
    assert before.outcome == "not_understood", before.text
    loads = bot.vocabulary_loads
    async with db.transaction() as session:
        session.add(Store(store_id="S009", name="厦门一店", city="厦门"))
    after = await bot.answer("mk", "看看厦门有多少会员", now=NOON)
    assert (after.family, after.outcome) == ("segment", "done"), after.text
    assert "厦门" in after.reading
    assert bot.vocabulary_loads == loads + 1
    assert "厦门" in (await refreshed(bot)).cities
    # the segment was saved under a name (our own change: a word at once); since then nothing
    loads = bot.vocabulary_loads
    await refreshed(bot)
    await refreshed(bot)
    assert bot.vocabulary_loads == loads


async def test_other_writers_words_are_seen(bot: Assistant, db: Database) -> None:
    """Each source of words, changed by someone else than this assistant, makes the next refresh
    load: a label, a campaign, a new person's city, a known person's new source."""
    await refreshed(bot)

    async def loaded_after(change: str, write: Any) -> Any:
        loads = bot.vocabulary_loads
        async with db.transaction() as session:
            await write(session)
        words = await refreshed(bot)
        assert bot.vocabulary_loads == loads + 1, change
        return words

    async def label(session: Any) -> None:
        await add_label(session, "p1", "老客户", by="someone")

    async def campaign(session: Any) -> None:
        session.add(Campaign(name="冬季上新", segment="{}"))

    async def new_person(session: Any) -> None:
        session.add(Person(person_id="p2", anchor_node_id=0))
        session.add(PersonProfile(person_id="p2", as_of=date(2026, 11, 1), city="成都"))

    async def new_source(session: Any) -> None:
        # what a tag refresh writes for a known person: the change in tag_history, then the profile
        await session.execute(text(
            "INSERT INTO tag_history (person_id, tag, old_value, new_value, changed_on, recorded_at)"
            " VALUES ('p1', 'source', 'store_S001', 'guide_G7', :day, :at)"), {"day": date(2026, 11, 2), "at": NOON})
        await session.execute(text("UPDATE profile SET source = 'guide_G7' WHERE person_id = 'p1'"))

    assert "老客户" in (await loaded_after("label", label)).labels
    assert "冬季上新" in (await loaded_after("campaign", campaign)).campaigns
    assert "成都" in (await loaded_after("new person", new_person)).cities
    words = await loaded_after("new source", new_source)
    assert "guide_G7" in words.sources and "store_S001" not in words.sources
    loads = bot.vocabulary_loads
    await refreshed(bot)
    assert bot.vocabulary_loads == loads


async def test_our_own_changes_are_words_at_once(bot: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    """A segment saved through the assistant is a word at the next question, whatever the interval."""
    monkeypatch.setattr(chat_engine, "VOCABULARY_SECONDS", 3600.0)
    await refreshed(bot)
    saved = await bot.answer("mk", "圈选上海的会员，保存为上海会员", now=NOON)
    assert saved.outcome == "done", saved.text
    assert "上海会员" in (await refreshed(bot)).segments
