"""What a row of each import file must look like (data.md §2), checked a chunk at a time.

Reading: the csv module rather than `pandas.read_csv`, because a rejects report needs the exact
line of every row (a quoted field may span lines) and a row with the wrong number of fields must
be rejected, not crash the import or silently shift every later line number. Each chunk then
becomes a DataFrame and every rule is a vectorised pandas expression over the whole chunk.

Nothing here touches the database or a secret: the importer hashes phones and stages the rows.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from profile_store.facts import EVENT_TYPES, fact_key
from profile_store.normalize import normalize_phone

ORDER_CHANNELS = ("pos", "miniapp", "ecom", "oa_mall")
ORDER_STATUSES = ("paid", "refunded")
GUIDE_ROLES = ("guide", "manager", "marketer", "admin")
COUPON_KINDS = ("cash", "discount", "gift")
MEMBER_LEVELS = tuple(f"V{i}" for i in range(6))

# Columns of every file, in the order of data.md §2, and its key column.
FILE_COLUMNS: dict[str, tuple[str, ...]] = {
    "stores": ("store_id", "name", "city", "region"),
    "products": ("sku", "name", "category", "brand", "list_price"),
    "guides": ("guide_id", "name", "store_id", "role"),
    "coupons": ("card_id", "name", "kind", "value", "threshold", "valid_days"),
    "members": (
        "member_id", "phone", "unionid", "name", "gender", "birthday", "city", "level",
        "register_time", "register_channel", "register_store_id",
    ),
    "orders": (
        "order_id", "channel", "store_id", "paid_at", "amount", "list_amount", "coupon_code", "status",
        "member_id", "phone", "unionid", "miniapp_openid",
    ),
    "order_items": ("order_id", "sku", "qty", "unit_price"),
    "events": (
        "event_id", "type", "occurred_at", "channel", "appid", "openid", "unionid", "miniapp_openid",
        "external_userid", "member_id", "phone", "guide_id", "store_id", "qr_state", "sku", "category",
        "card_id", "coupon_code", "campaign_id",
    ),
}
FILE_KEYS = {
    "stores": "store_id", "products": "sku", "guides": "guide_id", "coupons": "card_id",
    "members": "member_id", "orders": "order_id", "order_items": "order_id", "events": "event_id",
}
# Reference data first, then who people are, then what they did (items need their orders).
IMPORT_ORDER = ("stores", "products", "guides", "coupons", "members", "orders", "order_items", "events")

# SQLite keeps SQLAlchemy's text formats, so staged values must be written exactly like this.
_CANONICAL_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")
_MONEY = r"\d{1,12}(?:\.\d*)?"
_INT = r"^\d{1,9}$"
_OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"
# White space next to a separator, a quote or the line's ends: only such lines need stripping
# (checking the line once is far cheaper than stripping every value of every row).
_SPACED = re.compile(r'(?:^|[,"])[^\S\r\n]|[^\S\r\n](?:[,"]|\r?\n?\Z)')


# ---------------------------------------------------------------------------------- reading


@dataclass
class RawChunk:
    """Up to `chunk_rows` records of one file, as read (strings), indexed by line number."""

    frame: pd.DataFrame  # the file's columns of FILE_COLUMNS ("" where the header lacks one)
    unreadable: list[tuple[int, str, list[str]]] = field(default_factory=list)  # line, reason, fields
    bytes_read: int = 0
    missing_columns: tuple[str, ...] = ()


class _Lines:
    """Binary lines → text lines, counting bytes for the progress bar.

    Invalid UTF-8 becomes U+FFFD so the row can be rejected with a reason instead of aborting
    the whole file; a UTF-8 byte-order mark (Excel's "CSV UTF-8") is dropped.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self.bytes_read = 0
        self.broken = False  # set when a line was not UTF-8; the reader resets it per record
        self.spaced = False  # set when a value may carry surrounding white space
        self._first = True

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        raw = next(self._handle)
        self.bytes_read += len(raw)
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.broken = True
            line = raw.decode("utf-8", errors="replace")
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")
        if _SPACED.search(line):
            self.spaced = True
        return line


def read_chunks(path: Path, file: str, chunk_rows: int = 50_000) -> Iterator[RawChunk]:
    """Stream a CSV file in chunks; memory holds one chunk at a time."""
    expected = FILE_COLUMNS[file]
    csv.field_size_limit(1 << 24)
    with path.open("rb") as handle:
        lines = _Lines(handle)
        reader = csv.reader(lines)
        try:
            header = next(reader)
        except (StopIteration, csv.Error):
            return
        names = [h.strip().lower() for h in header]
        position: dict[str, int] = {}
        for i, name in enumerate(names):
            position.setdefault(name, i)
        missing = tuple(c for c in expected if c not in position)
        width = len(header)
        done = False
        while not done:
            records: list[list[str]] = []
            starts: list[int] = []
            unreadable: list[tuple[int, str, list[str]]] = []
            while len(records) + len(unreadable) < chunk_rows:
                start = reader.line_num + 1
                lines.broken = lines.spaced = False
                try:
                    record = next(reader)
                except StopIteration:
                    done = True
                    break
                except csv.Error as exc:
                    unreadable.append((start, f"unreadable CSV: {exc}", []))
                    continue
                if not record or (len(record) == 1 and not record[0].strip() and width > 1):
                    continue  # a blank line is no row
                if lines.broken:
                    unreadable.append((start, "not valid UTF-8", record))
                    continue
                if len(record) != width:
                    unreadable.append((start, f"has {len(record)} fields, the header has {width}", record))
                    continue
                if lines.spaced:  # values are compared without surrounding white space
                    record = [value.strip() for value in record]
                records.append(record)
                starts.append(start)
            if not records and not unreadable:
                break
            raw = pd.DataFrame(records, index=pd.Index(starts, name="line"), dtype=object)
            columns = {
                c: (raw[position[c]] if c in position and len(raw.columns) else pd.Series("", index=raw.index))
                for c in expected
            }
            frame = pd.DataFrame(columns, index=raw.index).astype(object)
            yield RawChunk(frame, unreadable, lines.bytes_read, missing)


def raw_line(values: Sequence[str]) -> str:
    """A row as one CSV line again, for the rejects report."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(values)
    return out.getvalue()


# ---------------------------------------------------------------------------------- checking


@dataclass
class Checked:
    """One chunk after the rules: accepted rows (as staged), rejected and warned lines."""

    rows: pd.DataFrame  # index: line number; values: str or None, ready to stage
    rejected: pd.Series  # line → reason
    warnings: pd.Series  # line → reason (the row is kept)


class _Reasons:
    """Collects every reason a row breaks a rule ("; "-joined), vectorised over the chunk."""

    def __init__(self, index: pd.Index) -> None:
        self.text = pd.Series("", index=index, dtype=object)

    def add(self, mask: pd.Series, message: str | pd.Series) -> None:
        if not bool(mask.any()):
            return
        msg = message[mask] if isinstance(message, pd.Series) else message
        current = self.text[mask]
        self.text[mask] = np.where(current == "", msg, current + "; " + msg)

    def bad(self) -> pd.Series:
        return self.text != ""


def _quoted(values: pd.Series) -> pd.Series:
    return "'" + values.str.slice(0, 40) + "'"


def _require(frame: pd.DataFrame, column: str, reasons: _Reasons) -> None:
    reasons.add(frame[column] == "", f"empty {column}")


def _enum(
    frame: pd.DataFrame,
    column: str,
    allowed: Sequence[str],
    reasons: _Reasons,
    *,
    required: bool = True,
    aliases: dict[str, str] | None = None,
    upper: bool = False,
) -> pd.Series:
    """The column's values mapped onto `allowed` (case-insensitive); None where empty."""
    values = frame[column]
    folded = values.str.upper() if upper else values.str.lower()
    if aliases:
        folded = folded.replace(aliases)
    ok = folded.isin(allowed)
    empty = values == ""
    message = f"{column} must be one of {'|'.join(allowed)}, not " + _quoted(values)
    reasons.add(~ok & ~empty, message)
    if required:
        reasons.add(empty, f"empty {column}")
    return folded.where(ok, None)


def _money(
    frame: pd.DataFrame, column: str, reasons: _Reasons, *, required: bool
) -> pd.Series:
    """Yuan with at most two decimals → integer fen as text (None where empty)."""
    values = frame[column]
    shaped = values.str.fullmatch(_MONEY).astype(bool)
    # Below 10^12 yuan a double holds every fen exactly, so x * 100 rounds to the exact fen;
    # a third decimal that is not zero shows up as a remainder.
    cents = pd.to_numeric(values.where(shaped, None), errors="coerce") * 100
    whole = cents.round()
    ok = shaped & ((cents - whole).abs() < 1e-6)
    empty = values == ""
    reasons.add(~ok & ~empty, f"{column} is not an amount in yuan: " + _quoted(values))
    if required:
        reasons.add(empty, f"empty {column}")
    fen = pd.Series(None, index=values.index, dtype=object)
    if bool(ok.any()):
        fen[ok] = whole[ok].astype("int64").astype(str)
    return fen


def _integer(frame: pd.DataFrame, column: str, reasons: _Reasons, *, required: bool) -> pd.Series:
    values = frame[column]
    ok = values.str.match(_INT)
    empty = values == ""
    reasons.add(~ok & ~empty, f"{column} is not a whole number: " + _quoted(values))
    if required:
        reasons.add(empty, f"empty {column}")
    return values.str.lstrip("0").replace("", "0").where(ok, None)


def _number(frame: pd.DataFrame, column: str, reasons: _Reasons) -> pd.Series:
    values = frame[column]
    parsed = pd.to_numeric(values.where(values != "", None), errors="coerce")
    ok = parsed.notna() & np.isfinite(parsed.astype(float)) & (parsed.astype(float) >= 0)
    reasons.add(~ok & (values != ""), f"{column} is not a number: " + _quoted(values))
    return parsed.astype(float).astype(str).where(ok, None)


def parse_times(values: pd.Series, tz: str) -> pd.Series:
    """Local business times (naive, in `tz`); NaT where a value does not parse.

    The export format is "YYYY-MM-DD HH:MM:SS"; ISO forms, slashes, a missing seconds field and
    explicit offsets (converted to local time) are accepted too.
    """
    parsed = pd.to_datetime(values, format="%Y-%m-%d %H:%M:%S", errors="coerce")
    todo = parsed.isna() & (values != "")
    if bool(todo.any()):
        rest = values[todo]
        offset = rest.str.contains(_OFFSET, regex=True)
        if bool(offset.any()):
            aware = pd.to_datetime(rest[offset], format="ISO8601", errors="coerce", utc=True)
            parsed[offset[offset].index] = aware.dt.tz_convert(tz).dt.tz_localize(None)
        naive = rest[~offset]
        for fmt in ("ISO8601", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y/%m/%d"):
            if naive.empty:
                break
            got = pd.to_datetime(naive, format=fmt, errors="coerce")
            found = got.notna()
            parsed[got[found].index] = got[found]
            naive = naive[~found]
    return parsed


def _time(
    frame: pd.DataFrame, column: str, reasons: _Reasons, tz: str, *, required: bool
) -> tuple[pd.Series, pd.Series]:
    """(text as staged "YYYY-MM-DD HH:MM:SS.ffffff" or None, parsed datetimes)."""
    values = frame[column]
    parsed = parse_times(values, tz)
    empty = values == ""
    bad = parsed.isna() & ~empty
    reasons.add(bad, f"{column} is not a time: " + _quoted(values))
    if required:
        reasons.add(empty, f"empty {column}")
    staged = pd.Series(None, index=values.index, dtype=object)
    canonical = values.str.match(_CANONICAL_TIME) & parsed.notna()
    staged[canonical] = values[canonical] + ".000000"
    other = parsed.notna() & ~canonical
    if bool(other.any()):
        staged[other] = parsed[other].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
    return staged, parsed


def _date(frame: pd.DataFrame, column: str, reasons: _Reasons) -> pd.Series:
    values = frame[column]
    parsed = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
    todo = parsed.isna() & (values != "")
    for fmt in ("ISO8601", "%Y/%m/%d"):
        if not bool(todo.any()):
            break
        got = pd.to_datetime(values[todo], format=fmt, errors="coerce")
        # A date, not a time of day: "1990-01-01 10:00" is not a birthday.
        got = got.where(got.dt.normalize() == got)
        parsed[got[got.notna()].index] = got[got.notna()]
        todo = parsed.isna() & (values != "")
    reasons.add(todo, f"{column} is not a date: " + _quoted(values))
    return parsed.dt.strftime("%Y-%m-%d").where(parsed.notna(), None)


def _phone(frame: pd.DataFrame, warnings: _Reasons) -> pd.Series:
    """Normalised phone or None; an invalid phone is dropped with a warning, the row stays."""
    values = frame["phone"]
    mapping = {v: normalize_phone(v) for v in values.unique()}
    phone = pd.Series([mapping[v] for v in values], index=values.index, dtype=object)
    warnings.add(phone.isna() & (values != ""), "invalid phone dropped (row kept)")
    return phone


def _text(frame: pd.DataFrame, column: str) -> pd.Series:
    """Optional text: None when empty."""
    values = frame[column]
    return values.where(values != "", None)


# One checker per file: (stripped frame, reasons, warnings, tz) → staged columns.


def _stores(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "store_id", r)
    return {c: f[c] for c in ("store_id", "name", "city", "region")}


def _products(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "sku", r)
    out = {c: f[c] for c in ("sku", "name", "category", "brand")}
    out["list_price_fen"] = _money(f, "list_price", r, required=False)
    return out


def _guides(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "guide_id", r)
    role = _enum(f, "role", GUIDE_ROLES, r, required=False)
    return {
        "guide_id": f["guide_id"], "name": f["name"], "store_id": f["store_id"],
        "role": role.fillna("guide"),  # a guide without a role is a guide
    }


def _coupons(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "card_id", r)
    return {
        "card_id": f["card_id"], "name": f["name"],
        "kind": _enum(f, "kind", COUPON_KINDS, r),
        "value": _number(f, "value", r).fillna("0.0"),
        "threshold_fen": _money(f, "threshold", r, required=False).fillna("0"),
        "valid_days": _integer(f, "valid_days", r, required=False).fillna("0"),
    }


def _members(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "member_id", r)
    register_time, _ = _time(f, "register_time", r, tz, required=False)
    return {
        "member_id": f["member_id"],
        "phone": _phone(f, w),
        "unionid": _text(f, "unionid"),
        "name": f["name"],
        "gender": _enum(
            f, "gender", ("M", "F"), r, required=False, upper=True,
            aliases={"男": "M", "女": "F", "MALE": "M", "FEMALE": "F"},
        ),
        "birthday": _date(f, "birthday", r),
        "city": f["city"],
        "level": _enum(f, "level", MEMBER_LEVELS, r, required=False, upper=True),
        "register_time": register_time,
        "register_channel": f["register_channel"],
        "register_store_id": f["register_store_id"],
    }


def _orders(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "order_id", r)
    paid_at, _ = _time(f, "paid_at", r, tz, required=True)
    return {
        "order_id": f["order_id"],
        "channel": _enum(f, "channel", ORDER_CHANNELS, r),
        "store_id": f["store_id"],
        "paid_at": paid_at,
        "amount_fen": _money(f, "amount", r, required=True),
        "list_amount_fen": _money(f, "list_amount", r, required=False),
        "coupon_code": f["coupon_code"],
        "status": _enum(f, "status", ORDER_STATUSES, r),
        "member_id": _text(f, "member_id"),
        "phone": _phone(f, w),
        "unionid": _text(f, "unionid"),
        "miniapp_openid": _text(f, "miniapp_openid"),
    }


def _order_items(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "order_id", r)
    return {
        "order_id": f["order_id"],
        "sku": f["sku"],
        "qty": _integer(f, "qty", r, required=True),
        "unit_price_fen": _money(f, "unit_price", r, required=True),
    }


_EVENT_TEXT = (
    "channel", "appid", "openid", "unionid", "miniapp_openid", "external_userid", "member_id",
    "guide_id", "store_id", "qr_state", "sku", "category", "card_id", "coupon_code", "campaign_id",
)


def _events(f: pd.DataFrame, r: _Reasons, w: _Reasons, tz: str) -> dict[str, pd.Series]:
    _require(f, "event_id", r)
    kind = _enum(f, "type", sorted(EVENT_TYPES), r)
    occurred_at, parsed = _time(f, "occurred_at", r, tz, required=True)
    out: dict[str, pd.Series] = {"event_id": f["event_id"], "type": kind, "occurred_at": occurred_at}
    for column in _EVENT_TEXT:
        out[column] = f[column] if column == "channel" else _text(f, column)
    out["phone"] = _phone(f, w)
    # The natural key shared with live callbacks (facts.fact_key), for the rows that will be kept.
    ok = ~r.bad()
    keys = pd.Series(None, index=f.index, dtype=object)
    if bool(ok.any()):
        sub = f[ok]
        stamps = parsed[ok].dt.to_pydatetime()
        keys[ok] = [
            fact_key(
                t, stamp, appid=a or None, openid=o or None, external_userid=x or None,
                guide_id=g or None, card_id=c or None, coupon_code=k or None, event_id=e,
            )
            for t, stamp, a, o, x, g, c, k, e in zip(
                kind[ok], stamps, sub["appid"], sub["openid"], sub["external_userid"], sub["guide_id"],
                sub["card_id"], sub["coupon_code"], sub["event_id"], strict=True,
            )
        ]
    out["fact_key"] = keys
    return out


_CHECKERS = {
    "stores": _stores, "products": _products, "guides": _guides, "coupons": _coupons,
    "members": _members, "orders": _orders, "order_items": _order_items, "events": _events,
}


def check(file: str, frame: pd.DataFrame, tz: str) -> Checked:
    """Apply the rules of data.md §2 to one chunk of `file`."""
    stripped = frame  # read_chunks already stripped surrounding white space
    reasons = _Reasons(frame.index)
    warnings = _Reasons(frame.index)
    columns = _CHECKERS[file](stripped, reasons, warnings, tz)
    # Object columns with None for "no value" (pandas would otherwise infer str with NaN).
    rows = pd.DataFrame(columns, index=frame.index).astype(object)
    rows = rows.where(rows.notna(), None)
    bad = reasons.bad()
    return Checked(
        rows=rows[~bad],
        rejected=reasons.text[bad],
        warnings=warnings.text[~bad & warnings.bad()],
    )
