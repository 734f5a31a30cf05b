"""A sending round's bookkeeping in the store: outcomes marked together, lookups read for many."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from profile_store import outbox
from profile_store.db import Database
from profile_store.staff import Staff, staff_by_id, staff_of, store_name, store_names
from profile_store.times import read_utc


async def _rows(db: Database) -> dict[str, tuple[str, int, str, str, datetime | None, bool]]:
    async with db.read() as session:
        rows = (
            await session.execute(
                text("SELECT key, status, attempts, last_error, person_id, next_attempt_at, sent_at FROM outbox")
            )
        ).all()
    return {r[0]: (r[1], r[2], r[3], r[4], read_utc(r[5]), r[6] is not None) for r in rows}


async def test_a_rounds_outcomes_are_marked_together(db: Database) -> None:
    async with db.transaction() as session:
        for key in ("sent", "sent_no_person", "retry", "failed", "expired", "untouched"):
            await outbox.enqueue(session, key=key, kind="portrait", payload={"guide": "G1"}, person_id="P0")
    async with db.transaction() as session:
        claimed = {item.key: item.id for item in await outbox.claim_due(session, 10)}
    before = datetime.now(UTC)
    outcomes = [
        outbox.Outcome(claimed["sent"], outbox.SENT, person_id="P9"),
        outbox.Outcome(claimed["sent_no_person"], outbox.SENT, note="41051"),
        outbox.Outcome(claimed["retry"], outbox.RETRY, note="busy " * 200, retry_in=timedelta(seconds=30)),
        outbox.Outcome(claimed["failed"], outbox.FAILED, note="no such guide"),
        outbox.Outcome(claimed["expired"], outbox.EXPIRED, note="too late"),
    ]
    async with db.transaction() as session:
        await outbox.mark_outcomes(session, outcomes)
    rows = await _rows(db)
    assert rows["sent"][:4] == ("sent", 1, "", "P9") and rows["sent"][5]
    assert rows["sent_no_person"][:4] == ("sent", 1, "41051", "P0")  # the person is kept
    status, attempts, error, _person, due, sent = rows["retry"]
    assert (status, attempts, len(error), sent) == ("pending", 1, 500, False)  # the note is cut at 500
    assert due is not None and due >= before + timedelta(seconds=29)
    assert rows["failed"][:3] == ("failed", 1, "no such guide") and not rows["failed"][5]
    assert rows["expired"][:3] == ("expired", 1, "too late")
    assert rows["untouched"][:3] == ("pending", 0, "")  # claimed, never sent: its lease brings it back


async def test_an_unknown_outcome_writes_nothing(db: Database) -> None:
    async with db.transaction() as session:
        await outbox.enqueue(session, key="a", kind="portrait", payload={})
    async with db.transaction() as session:
        (item,) = await outbox.claim_due(session, 10)
    with pytest.raises(ValueError, match="unknown outcome"):
        async with db.transaction() as session:
            await outbox.mark_outcomes(session, [outbox.Outcome(item.id, outbox.SENT), outbox.Outcome(item.id, "lost")])
    assert (await _rows(db))["a"][:2] == ("pending", 0)


async def test_guides_and_stores_are_read_for_many_at_once(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(
            text(
                "INSERT INTO store (store_id, name, city, region)"
                " VALUES ('S1', '静安店', '上海', ''), ('S2', '', '上海', '')"
            )
        )
        await session.execute(
            text(
                "INSERT INTO guide (guide_id, name, store_id, role) VALUES"
                " ('G1', '小王', 'S1', 'guide'), ('G2', '', '', 'manager')"
            )
        )
    async with db.read() as session:
        assert await staff_by_id(session, ["G1", "G2", "G1", "nobody"]) == {
            "G1": Staff("G1", "小王", "S1", "guide"),
            "G2": Staff("G2", "", "", "manager"),
        }
        assert await staff_by_id(session, []) == {}
        assert await staff_of(session, "G2") == Staff("G2", "", "", "manager")
        assert await staff_of(session, "nobody") is None
        # a blank name reads as the store's id; an unknown store is absent
        assert await store_names(session, {"S1", "S2", "S404"}) == {"S1": "静安店", "S2": "S2"}
        assert await store_names(session, set()) == {}
        assert await store_name(session, "S2") == "S2" and await store_name(session, "S404") is None


async def test_a_failed_round_read_retries_every_row_and_is_reported_once(
    db: Database, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The round's guides and stores cannot be read (here: the guide table is away): every row
    of the round is retried later, and the operator reads one error, not one per row."""
    from bot.app import OUTBOX
    from tests.test_stopping import app_without_tencent

    app = app_without_tencent(db_url, db)
    async with db.transaction() as session:
        for n in range(5):
            payload = {"guide": f"G{n}", "welcome_code": f"W{n}", "identity": f"external_userid:wm{n}"}
            await outbox.enqueue(session, key=f"w{n}", kind="welcome", payload=payload)
        await session.execute(text("ALTER TABLE guide RENAME TO guide_away"))
    before = datetime.now(UTC)
    caplog.clear()
    try:
        assert await app[OUTBOX].run_once() == 5
    finally:
        async with db.transaction() as session:
            await session.execute(text("ALTER TABLE guide_away RENAME TO guide"))
    rows = await _rows(db)
    assert sorted(rows) == [f"w{n}" for n in range(5)]
    for status, attempts, error, _person, due, sent in rows.values():
        assert (status, attempts, sent) == ("pending", 1, False) and "guide" in error
        assert due is not None and due >= before + timedelta(seconds=1)
    reported = [r for r in caplog.records if r.levelname == "ERROR" and "outbox failed" in r.getMessage()]
    assert len(reported) == 1 and "reads for a round of 5" in reported[0].getMessage()


async def test_a_senders_look_sees_a_row_due_exactly_when_the_claim_would(db: Database) -> None:
    """`OutboxWatch.any_due` (a sender process's look, every poll, on a kept connection with the
    driver's own binding of times) at the boundaries of `next_attempt_at <= now`."""
    due = datetime(2026, 11, 25, 2, 0, 0, 123456, tzinfo=UTC)
    shanghai = timezone(timedelta(hours=8))
    watch = outbox.OutboxWatch(db)
    try:
        assert await watch.any_due(now=due) is False  # an empty outbox
        async with db.transaction() as session:
            await outbox.enqueue(session, key="later", kind="portrait", payload={}, due_at=due)
        tick = timedelta(microseconds=1)
        assert await watch.any_due(now=due - tick) is False
        assert await watch.any_due(now=due) is True  # due at its very time
        assert await watch.any_due(now=(due - tick).astimezone(shanghai)) is False  # an offset changes nothing
        assert await watch.any_due(now=due.astimezone(shanghai)) is True
        async with db.transaction() as session:  # the claim agrees, at both instants
            assert await outbox.claim_due(session, 10, now=due - tick) == []
            assert [item.key for item in await outbox.claim_due(session, 10, now=due)] == ["later"]
        async with db.transaction() as session:
            await session.execute(text("UPDATE outbox SET status = 'sent'"))
        assert await watch.any_due(now=due + timedelta(days=1)) is False  # sent: never due again
    finally:
        await watch.close()
