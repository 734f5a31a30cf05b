"""`qianmian import`: the sample and hand-made bad rows, on SQLite and PostgreSQL.

Expected rejects come from a plain reading of the CSV files in this test (csv + datetime +
Decimal), never from the import rules themselves.
"""

from __future__ import annotations

import csv
import hashlib
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from profile_store import importer
from profile_store.db import Database
from profile_store.importer import import_dir
from profile_store.pii import PiiVault
from tests.conftest import TEST_SECRET

VAULT = PiiVault(TEST_SECRET)
EVENT_TYPES = {
    "follow", "unfollow", "scan", "add_contact", "del_contact", "browse", "add_cart", "click", "message",
    "coupon_get", "coupon_consume", "coupon_delete",
}
KEYS = {
    "stores.csv": "store_id", "products.csv": "sku", "guides.csv": "guide_id", "coupons.csv": "card_id",
    "members.csv": "member_id", "orders.csv": "order_id", "order_items.csv": "order_id", "events.csv": "event_id",
}


# ---------------------------------------------------------------------------------- plain reading


def _is_time(value: str) -> bool:
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M:%S")
        return True
    except ValueError:
        return False


def _is_yuan(value: str) -> bool:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return False
    return amount.is_finite() and amount >= 0 and (amount * 100) == (amount * 100).to_integral_value()


def plain_phone(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if len(digits) == 15 and digits.startswith("0086"):
        digits = digits[4:]
    return digits if len(digits) == 11 and digits[0] == "1" else None


def expected_problems(directory: Path) -> tuple[set[tuple[str, int]], set[tuple[str, int]]]:
    """(rejected lines, warned lines) by data.md §2, reading the files plainly."""
    rejected: set[tuple[str, int]] = set()
    warned: set[tuple[str, int]] = set()
    for name, key in KEYS.items():
        path = directory / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                line = reader.line_num
                bad = not row[key].strip()
                if name == "orders.csv":
                    bad |= row["channel"] not in ("pos", "miniapp", "ecom", "oa_mall")
                    bad |= row["status"] not in ("paid", "refunded")
                    bad |= not _is_time(row["paid_at"]) or not _is_yuan(row["amount"])
                    bad |= row["list_amount"] != "" and not _is_yuan(row["list_amount"])
                elif name == "order_items.csv":
                    bad |= not row["qty"].isdigit() or not _is_yuan(row["unit_price"])
                elif name == "events.csv":
                    bad |= row["type"] not in EVENT_TYPES or not _is_time(row["occurred_at"])
                elif name == "members.csv":
                    bad |= row["register_time"] != "" and not _is_time(row["register_time"])
                    bad |= row["gender"] not in ("M", "F", "")
                    bad |= row["level"] not in ("", "V0", "V1", "V2", "V3", "V4", "V5")
                if bad:
                    rejected.add((name, line))
                elif "phone" in row and row["phone"] and plain_phone(row["phone"]) is None:
                    warned.add((name, line))
    return rejected, warned


def read_report(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


async def snapshot(db: Database) -> dict[str, tuple[int, str]]:
    """Row count and a content hash of every table (system timestamps left out)."""
    skip_columns = {"created_at", "updated_at", "first_seen_at", "observed_at", "at", "sealed"}
    result: dict[str, tuple[int, str]] = {}
    async with db.transaction() as session:
        for name, table in SQLModel.metadata.tables.items():
            if name == "import_run":
                continue
            columns = [c.name for c in table.columns if c.name not in skip_columns]
            rows = (await session.execute(text(f"SELECT {', '.join(columns)} FROM {name}"))).all()
            lines = sorted(repr(tuple(row)) for row in rows)
            result[name] = (len(rows), hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return result


async def count(db: Database, sql: str, **params: object) -> int:
    async with db.transaction() as session:
        return int((await session.execute(text(sql), params)).scalar_one())


# ---------------------------------------------------------------------------------- the sample


async def test_sample_rejects_exactly_the_bad_rows(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    rejects = sample_dir / "out" / "rejects.csv"
    report = await import_dir(db, sample_dir, VAULT, rejects_path=rejects)

    expected_rejected, expected_warned = expected_problems(sample_dir)
    assert len(expected_rejected) == 8  # the sample's own bad rows (a guard on this plain reading)
    rows = read_report(rejects)
    got_rejected = {(r["file"], int(r["line"])) for r in rows if r["level"] == "rejected"}
    got_warned = {(r["file"], int(r["line"])) for r in rows if r["level"] == "warning"}
    assert got_rejected == expected_rejected
    assert got_warned == expected_warned
    assert report.rejected == len(expected_rejected)
    by_file = {f.file: f for f in report.files}
    # Each reason names what is wrong, and the raw row is the row of that line.
    for row in rows:
        with (sample_dir / row["file"]).open(encoding="utf-8") as handle:
            raw = handle.read().splitlines()[int(row["line"]) - 1]
        assert row["row"] == raw
    reasons = {(r["file"], r["row"].split(",")[0]): r["reason"] for r in rows}
    assert "member_id" in reasons[("members.csv", "")]
    assert "paid_at" in reasons[("orders.csv", "OBAD1")]
    assert "amount" in reasons[("orders.csv", "OBAD0")]
    assert "status" in reasons[("orders.csv", "OBAD5")]
    assert "type" in reasons[("events.csv", "EBAD1")]

    # Everything else is in the store.
    for name, table in (("members.csv", "member"), ("orders.csv", "orders"), ("events.csv", "event"),
                        ("order_items.csv", "order_item"), ("stores.csv", "store")):
        with (sample_dir / name).open(encoding="utf-8") as handle:
            total = sum(1 for _ in handle) - 1
        accepted = total - sum(1 for f, _ in expected_rejected if f == name)
        assert await count(db, f"SELECT COUNT(*) FROM {table}") == accepted
        assert by_file[name].read == total
        assert by_file[name].imported == accepted
    assert report.persons == await count(db, "SELECT COUNT(*) FROM person WHERE status = 'active'") > 0
    runs = await count(db, "SELECT COUNT(*) FROM import_run WHERE finished_at IS NOT NULL")
    assert runs == 1


async def test_reimport_changes_nothing(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    first = await import_dir(db, sample_dir, VAULT)
    before = await snapshot(db)
    again = await import_dir(db, sample_dir, VAULT, chunk_rows=97)  # other chunk borders, same result
    after = await snapshot(db)
    assert after == before
    for report in again.files:
        assert report.imported == 0 and report.updated == 0
        assert report.unchanged == report.read - report.rejected
    assert again.persons == first.persons
    assert (sample_dir / "rejects.csv").exists()


async def test_files_prepared_in_a_worker_process_import_the_same(
    db: Database, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big files are read and checked in a worker process; the result must not depend on it."""
    await db.migrate()
    monkeypatch.setattr(importer, "WORKER_PROCESS_BYTES", 0)  # every file through a worker process
    first = await import_dir(db, sample_dir, VAULT)
    rejects_from_worker = (sample_dir / "rejects.csv").read_text(encoding="utf-8")
    before = await snapshot(db)
    monkeypatch.setattr(importer, "WORKER_PROCESS_BYTES", 1 << 40)  # the same files, in a thread
    again = await import_dir(db, sample_dir, VAULT)
    assert await snapshot(db) == before
    assert (sample_dir / "rejects.csv").read_text(encoding="utf-8") == rejects_from_worker
    assert all(r.imported == 0 and r.updated == 0 for r in again.files)
    assert sum(r.rejected for r in first.files) == 8  # the sample's bad rows


async def test_a_failing_import_leaves_no_worker_behind(
    db: Database, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker process prepares the big files ahead of their import; when the import fails
    in the middle of one (its worker busy with the next), it is stopped with the rest."""
    import multiprocessing

    await db.migrate()
    monkeypatch.setattr(importer, "WORKER_PROCESS_BYTES", 0)
    resolve = importer.IdentityGraph.resolve
    calls = 0

    async def failing_resolve(self: importer.IdentityGraph, session: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 2:  # orders.csv's resolve, with order_items.csv being prepared
            raise RuntimeError("database went away")
        return await resolve(self, session)  # type: ignore[arg-type]

    monkeypatch.setattr(importer.IdentityGraph, "resolve", failing_resolve)
    with pytest.raises(RuntimeError, match="went away"):
        await import_dir(db, sample_dir, VAULT)
    assert calls == 2
    assert not [p for p in multiprocessing.active_children() if p.name.startswith("qianmian-import")]


async def test_money_is_exact_fen(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    rejected, _ = expected_problems(sample_dir)
    expected: dict[str, tuple[int, int | None]] = {}
    with (sample_dir / "orders.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            if ("orders.csv", reader.line_num) not in rejected:
                list_amount = int(Decimal(row["list_amount"]) * 100) if row["list_amount"] else None
                expected[row["order_id"]] = (int(Decimal(row["amount"]) * 100), list_amount)
    async with db.transaction() as session:
        got = {
            r[0]: (r[1], r[2])
            for r in (await session.execute(text("SELECT order_id, amount_fen, list_amount_fen FROM orders"))).all()
        }
        item_total = (await session.execute(text("SELECT SUM(qty * unit_price_fen) FROM order_item"))).scalar_one()
    assert got == expected
    with (sample_dir / "order_items.csv").open(encoding="utf-8", newline="") as handle:
        plain_total = sum(int(r["qty"]) * Decimal(r["unit_price"]) * 100 for r in csv.DictReader(handle))
    assert item_total == plain_total


async def test_no_phone_in_clear_anywhere(db: Database, sample_dir: Path) -> None:
    await db.migrate()
    await import_dir(db, sample_dir, VAULT)
    phones: set[str] = set()
    for name in ("members.csv", "orders.csv"):
        with (sample_dir / name).open(encoding="utf-8", newline="") as handle:
            phones |= {p for r in csv.DictReader(handle) if (p := plain_phone(r["phone"]))}
    assert len(phones) > 100
    async with db.transaction() as session:
        for name in SQLModel.metadata.tables:
            for row in (await session.execute(text(f"SELECT * FROM {name}"))).all():
                blob = " ".join(str(v) for v in row)
                leaked = set(re.findall(r"1\d{10}", blob)) & phones
                assert not leaked, f"a phone in clear in {name}"
        hashed = (await session.execute(text("SELECT COUNT(*) FROM member WHERE phone_hash IS NOT NULL"))).scalar_one()
    assert hashed > 200


# ---------------------------------------------------------------------------------- bad rows


def write(directory: Path, name: str, header: str, *rows: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text("\n".join((header, *rows)) + "\n", encoding="utf-8")


ORDER_HEADER = (
    "order_id,channel,store_id,paid_at,amount,list_amount,coupon_code,status,member_id,phone,unionid,miniapp_openid"
)
EVENT_HEADER = (
    "event_id,type,occurred_at,channel,appid,openid,unionid,miniapp_openid,external_userid,member_id,phone,"
    "guide_id,store_id,qr_state,sku,category,card_id,coupon_code,campaign_id"
)


async def test_a_bad_row_of_each_kind(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    data = tmp_path / "data"
    write(data, "stores.csv", "store_id,name,city,region", "S1,一店,上海,华东", ",无号店,上海,华东")
    write(data, "products.csv", "sku,name,category,brand,list_price", "K1,裙,连衣裙,云裳,299", "K2,裙,连衣裙,云裳,abc")
    write(data, "guides.csv", "guide_id,name,store_id,role", "G1,王芳,S1,guide", "G2,李四,S1,boss")
    write(data, "coupons.csv", "card_id,name,kind,value,threshold,valid_days", "C1,券,cash,30,0,30",
          "C2,券,voucher,30,0,30", "C3,券,cash,30,0,thirty")
    write(data, "members.csv",
          "member_id,phone,unionid,name,gender,birthday,city,level,register_time,register_channel,register_store_id",
          "M1,13800000001,,张三,M,1990-01-02,上海,V1,2025-01-01 10:00:00,pos,S1",          # 2 good
          ",13800000002,,无卡号,,,,,,,",                                                   # 3 empty key
          "M3,13800000003,,李四,X,1990-01-02,上海,V1,2025-01-01 10:00:00,pos,S1",          # 4 bad gender
          "M4,13800000004,,王五,F,1990-01-02,上海,V9,2025-01-01 10:00:00,pos,S1",          # 5 bad level
          "M5,13800000005,,赵六,F,1990-01-02,上海,V1,2025-02-30 10:00:00,pos,S1",          # 6 bad time
          "M6,12345,,孙七,F,1990-01-02,上海,V1,2025-01-01 10:00:00,pos,S1")                # 7 bad phone
    write(data, "orders.csv", ORDER_HEADER,
          "O1,pos,S1,2025-03-01 10:00:00,99.90,120.00,,paid,M1,,,",                        # 2 good
          ",pos,S1,2025-03-01 10:00:00,99.90,120.00,,paid,M1,,,",                          # 3 empty key
          "O3,pos,S1,2025-03-01 25:00:00,99.90,120.00,,paid,M1,,,",                        # 4 bad time
          "O4,pos,S1,2025-03-01 10:00:00,9,9.90,120.00,,paid,M1,,,",                       # 5 wrong field count
          "O5,pos,S1,2025-03-01 10:00:00,N/A,120.00,,paid,M1,,,",                          # 6 bad number
          "O6,pos,S1,2025-03-01 10:00:00,99.90,120.00,,lost,M1,,,",                        # 7 bad status
          "O7,wechat,S1,2025-03-01 10:00:00,99.90,120.00,,paid,M1,,,",                     # 8 bad channel
          "O8,ecom,,2025-03-01 10:00:00,0.07,0.10,,refunded,,0571-8888888,,",              # 9 landline: kept
          "O9,pos,S1,2025-03-01 10:00:00,12.345,13.00,,paid,M1,,,")                        # 10 three decimals
    write(data, "order_items.csv", "order_id,sku,qty,unit_price",
          "O1,K1,1,99.90", "O1,K1,two,99.90", ",K1,1,1.00", "O1,K2,2,10.00")
    write(data, "events.csv", EVENT_HEADER,
          "E1,follow,2025-03-01 10:00:00,oa,wx1,oA1,,,,,,,,store_S1,,,,,",                 # 2 good
          "E2,teleport,2025-03-01 10:00:00,oa,wx1,oA1,,,,,,,,,,,,,",                       # 3 bad type
          "E3,browse,yesterday,miniapp,,,,oM1,,,,,,,K1,连衣裙,,,",                          # 4 bad time
          ",browse,2025-03-01 11:00:00,miniapp,,,,oM1,,,,,,,K1,连衣裙,,,")                 # 5 empty key
    report = await import_dir(db, data, VAULT, rejects_path=tmp_path / "rejects.csv")

    rows = read_report(tmp_path / "rejects.csv")
    rejected = {(r["file"], int(r["line"])): r["reason"] for r in rows if r["level"] == "rejected"}
    assert set(rejected) == {
        ("stores.csv", 3), ("products.csv", 3), ("guides.csv", 3), ("coupons.csv", 3), ("coupons.csv", 4),
        ("members.csv", 3), ("members.csv", 4), ("members.csv", 5), ("members.csv", 6),
        ("orders.csv", 3), ("orders.csv", 4), ("orders.csv", 5), ("orders.csv", 6), ("orders.csv", 7),
        ("orders.csv", 8), ("orders.csv", 10),
        ("order_items.csv", 3), ("order_items.csv", 4),
        ("events.csv", 3), ("events.csv", 4), ("events.csv", 5),
    }
    assert "empty order_id" in rejected[("orders.csv", 3)]
    assert "paid_at" in rejected[("orders.csv", 4)]
    assert "fields" in rejected[("orders.csv", 5)]
    assert "amount" in rejected[("orders.csv", 6)]
    assert "status" in rejected[("orders.csv", 7)]
    assert "channel" in rejected[("orders.csv", 8)]
    assert "qty" in rejected[("order_items.csv", 3)]
    assert "type" in rejected[("events.csv", 3)]
    assert "occurred_at" in rejected[("events.csv", 4)]
    assert "gender" in rejected[("members.csv", 4)] and "level" in rejected[("members.csv", 5)]
    warned = {(r["file"], int(r["line"])) for r in rows if r["level"] == "warning"}
    assert warned == {("members.csv", 7), ("orders.csv", 9)}

    assert await count(db, "SELECT COUNT(*) FROM member") == 2
    assert await count(db, "SELECT COUNT(*) FROM orders") == 2
    assert await count(db, "SELECT COUNT(*) FROM order_item") == 2
    assert await count(db, "SELECT COUNT(*) FROM event") == 1
    assert await count(db, "SELECT COUNT(*) FROM store") == 1
    # A rejected row links nothing: its identifiers are nowhere in the graph.
    assert await count(db, "SELECT COUNT(*) FROM identity_node WHERE kind = 'member_id' AND value = 'M3'") == 0
    assert await count(db, "SELECT COUNT(*) FROM identity_node WHERE kind = 'openid' AND value = 'wx1/oA1'") == 1
    # The line numbers of items are per order (O1's 1st and 4th row of the file → line_no 1 and 3).
    assert await count(db, "SELECT SUM(line_no) FROM order_item WHERE order_id = 'O1'") == 4
    assert await count(db, "SELECT amount_fen FROM orders WHERE order_id = 'O8'") == 7
    by_file = {f.file: f for f in report.files}
    assert by_file["orders.csv"].rejected == 7 and by_file["orders.csv"].warnings == 1


async def test_invalid_phone_keeps_the_row_without_the_identifier(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    data = tmp_path / "data"
    write(data, "members.csv",
          "member_id,phone,unionid,name,gender,birthday,city,level,register_time,register_channel,register_store_id",
          "M1,021-5555-6666,oU1,张三,M,,,,,,", "M2,+86 138 0000 0002,,李四,F,,,,,,")
    await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv")
    async with db.transaction() as session:
        rows: dict[str, str | None] = {
            r[0]: r[1] for r in (await session.execute(text("SELECT member_id, phone_hash FROM member"))).all()
        }
        kinds = (await session.execute(text("SELECT kind, value FROM identity_node ORDER BY kind, value"))).all()
    assert rows == {"M1": None, "M2": VAULT.lookup_hash("13800000002")}
    assert sorted(k for k, _ in kinds) == ["member_id", "member_id", "phone", "unionid"]
    assert ("phone", VAULT.lookup_hash("13800000002")) in [tuple(k) for k in kinds]
    # M1 is still a person, through its member_id and unionid.
    assert await count(db, "SELECT COUNT(*) FROM member WHERE member_id = 'M1' AND person_id IS NOT NULL") == 1


async def test_an_event_seen_twice_is_one_fact(db: Database, tmp_path: Path) -> None:
    """Two exports of the same follow (other event_id, same openid and second) are one row."""
    await db.migrate()
    data = tmp_path / "data"
    write(data, "events.csv", EVENT_HEADER,
          "E1,follow,2025-03-01 10:00:00,oa,wx1,oA1,,,,,,,,store_S1,,,,,",
          "X9,follow,2025-03-01 10:00:00,oa,wx1,oA1,oU1,,,,,,,store_S1,,,,,",
          "E3,coupon_get,2025-03-02 10:00:00,oa,wx1,oA1,,,,,,,,,,,C1,C1-001,",
          "E4,coupon_get,2025-03-02 10:00:05,oa,,,oU1,,,,,,,,,,C1,C1-001,")
    report = await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv")
    assert await count(db, "SELECT COUNT(*) FROM event") == 2
    assert report.files[0].imported == 2 and report.files[0].unchanged == 2
    # The duplicate's extra identifier (the unionid) still links: one person holds both.
    persons = await count(
        db, "SELECT COUNT(DISTINCT person_id) FROM identity_node WHERE value IN ('wx1/oA1', 'oU1')"
    )
    assert persons == 1


async def test_changed_rows_are_updated(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    data = tmp_path / "data"
    write(data, "orders.csv", ORDER_HEADER,
          "O1,pos,S1,2025-03-01 10:00:00,99.90,120.00,,paid,M1,,,",
          "O2,pos,S1,2025-03-02 10:00:00,10.00,10.00,,paid,M1,,,")
    await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv")
    write(data, "orders.csv", ORDER_HEADER,
          "O1,pos,S1,2025-03-01 10:00:00,99.90,120.00,,refunded,M1,,,",
          "O2,pos,S1,2025-03-02 10:00:00,10.00,10.00,,paid,M1,,,",
          "O3,pos,S1,2025-03-03 10:00:00,5.00,5.00,,paid,M2,,,")
    report = await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv")
    orders = report.files[0]
    assert (orders.imported, orders.updated, orders.unchanged) == (1, 1, 1)
    assert await count(db, "SELECT COUNT(*) FROM orders WHERE status = 'refunded'") == 1
    assert await count(db, "SELECT COUNT(*) FROM orders WHERE person_id IS NULL") == 0


@pytest.mark.parametrize("resolve", ["chunk", "file"])
async def test_rows_without_their_link_take_it_on_the_next_import(
    db: Database, tmp_path: Path, resolve: importer.ResolveMode
) -> None:
    """Rows are written with their link_key; a row that has none (written before links existed,
    or by hand) gets it, and its person, when the same file comes again, unchanged."""
    await db.migrate()
    data = tmp_path / "data"
    write(data, "events.csv", EVENT_HEADER, "E1,follow,2025-03-01 10:00:00,oa,wx1,oA1,oU1,,,,,,,store_S1,,,,,")
    write(data, "orders.csv", ORDER_HEADER, "O1,pos,S1,2025-03-01 10:00:00,99.90,120.00,,paid,M1,,oU1,")
    await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)
    person = await count(db, "SELECT COUNT(DISTINCT person_id) FROM event")
    assert person == 1 and await count(db, "SELECT COUNT(*) FROM event WHERE link_key IS NULL") == 0
    async with db.transaction() as session:
        for table in ("event", "orders"):
            await session.execute(text(f"UPDATE {table} SET link_key = NULL, person_id = NULL"))
    report = await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)
    assert [(f.imported, f.updated) for f in report.files] == [(0, 0), (0, 0)]
    for table in ("event", "orders"):
        assert await count(db, f"SELECT COUNT(*) FROM {table} WHERE link_key IS NULL OR person_id IS NULL") == 0
    both = "SELECT person_id FROM event UNION ALL SELECT person_id FROM orders"
    assert await count(db, f"SELECT COUNT(DISTINCT person_id) FROM ({both}) x") == 1


_COUNT_UPDATES = {
    "sqlite": [
        "CREATE TABLE updates_seen (tbl TEXT)",
        *(f"CREATE TRIGGER {t}_updated AFTER UPDATE ON {t} BEGIN INSERT INTO updates_seen VALUES ('{t}'); END"
          for t in ("event", "orders")),
    ],
    "postgresql": [
        "CREATE TABLE updates_seen (tbl TEXT)",
        "CREATE FUNCTION note_update() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN INSERT INTO updates_seen VALUES (TG_TABLE_NAME); RETURN NEW; END $$",
        *(f"CREATE TRIGGER {t}_updated AFTER UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION note_update()"
          for t in ("event", "orders")),
    ],
}


@pytest.mark.parametrize("resolve", ["chunk", "file"])
async def test_rows_are_written_once_with_their_person(
    db: Database, sample_dir: Path, tmp_path: Path, resolve: importer.ResolveMode
) -> None:
    """Resolving per chunk, links are resolved before the chunk's rows are written: a new event
    is inserted with its person and never updated (per file, it is inserted without one and
    updated at the file's end). Either way every row ends with its link's person."""
    await db.migrate()
    async with db.transaction() as session:
        for statement in _COUNT_UPDATES["postgresql" if db.is_postgres else "sqlite"]:
            await session.execute(text(statement))
    await import_dir(db, sample_dir, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)
    event_updates = await count(db, "SELECT COUNT(*) FROM updates_seen WHERE tbl = 'event'")
    if resolve == "chunk":
        assert event_updates == 0
    else:
        assert event_updates > 0
    for table in ("event", "orders"):
        wrong = (
            f"SELECT COUNT(*) FROM {table} t LEFT JOIN link l ON l.link_key = t.link_key"
            # (a link of shared identifiers only has no person, nor have its rows)
            " WHERE t.link_key IS NOT NULL AND (l.link_key IS NULL"
            " OR COALESCE(t.person_id, '') <> COALESCE(l.person_id, ''))"
        )
        assert await count(db, wrong) == 0, table
    assert await count(db, "SELECT COUNT(*) FROM event WHERE person_id IS NOT NULL") > 0


@pytest.mark.parametrize("resolve", ["chunk", "file"])
async def test_items_follow_their_order_to_its_person(
    db: Database, tmp_path: Path, resolve: importer.ResolveMode
) -> None:
    """An order's items carry its person: items imported before their order take it when the
    order comes; an order whose member changes takes its items to the new person."""
    await db.migrate()
    items, orders = tmp_path / "items", tmp_path / "orders"
    write(items, "order_items.csv", "order_id,sku,qty,unit_price", "O1,K1,1,1.00", "O1,K2,2,3.00", "O2,K1,1,1.00")
    await import_dir(db, items, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)
    assert await count(db, "SELECT COUNT(*) FROM order_item WHERE person_id IS NULL") == 3
    write(orders, "orders.csv", ORDER_HEADER,
          "O1,pos,S1,2025-03-01 10:00:00,7.00,7.00,,paid,M1,,,", "O2,pos,S1,2025-03-02 10:00:00,1.00,1.00,,paid,M2,,,")
    await import_dir(db, orders, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)

    async def owners() -> dict[str, set[str | None]]:
        async with db.read() as session:
            rows = (
                await session.execute(
                    text("SELECT o.order_id, o.person_id, i.person_id FROM order_item i JOIN orders o"
                         " ON o.order_id = i.order_id")
                )
            ).all()
        found: dict[str, set[str | None]] = {}
        for order_id, order_person, item_person in rows:
            assert item_person == order_person, order_id
            found.setdefault(order_id, set()).add(order_person)
        return found

    before = await owners()
    assert None not in before["O1"] and before["O1"] != before["O2"]
    # O1 was M1's; the POS corrects it to M2's: its items move with it.
    write(orders, "orders.csv", ORDER_HEADER,
          "O1,pos,S1,2025-03-01 10:00:00,7.00,7.00,,paid,M2,,,", "O2,pos,S1,2025-03-02 10:00:00,1.00,1.00,,paid,M2,,,")
    await import_dir(db, orders, VAULT, rejects_path=tmp_path / "r.csv", resolve=resolve)
    after = await owners()
    assert after["O1"] == after["O2"] == before["O2"]


async def test_items_keep_their_line_numbers_across_chunks(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    data = tmp_path / "data"
    write(data, "order_items.csv", "order_id,sku,qty,unit_price",
          "O1,K1,1,1.00", "O2,K1,1,2.00", "O1,K2,1,3.00", "O1,K3,1,4.00", "O2,K2,1,5.00")
    await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv", chunk_rows=2)
    async with db.transaction() as session:
        rows = (await session.execute(text("SELECT order_id, line_no, sku FROM order_item"))).all()
    assert sorted(tuple(r) for r in rows) == [
        ("O1", 1, "K1"), ("O1", 2, "K2"), ("O1", 3, "K3"), ("O2", 1, "K1"), ("O2", 2, "K2")
    ]


async def test_files_that_are_not_there_or_not_utf8(db: Database, tmp_path: Path) -> None:
    await db.migrate()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="none of the import files"):
        await import_dir(db, empty, VAULT)
    data = tmp_path / "gbk"
    data.mkdir()
    (data / "stores.csv").write_bytes(
        "store_id,name,city,region\nS1,上海一店,上海,华东\n".encode() + "S2,北京店,北京,其他\n".encode("gbk")
    )
    report = await import_dir(db, data, VAULT, rejects_path=tmp_path / "r.csv")
    rows = read_report(tmp_path / "r.csv")
    assert [(r["line"], r["reason"]) for r in rows] == [("3", "not valid UTF-8")]
    assert report.files[0].imported == 1
