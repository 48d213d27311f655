"""Checking the audit log: is every entry where it was written, as it was written?

:func:`verify_entries` walks the chain from its start (genesis, or the anchor a retention purge
recorded) and, at the first entry that does not hold, says what happened there:

- ``edited``: an entry's content no longer matches its hash (or an entry was rewritten and
  re-hashed, which breaks the link from the next one);
- ``deleted``: entries are missing (a gap in the sequence, or later entries renumbered to hide
  it), including at the start of the log when no purge anchor accounts for it;
- ``inserted``: an entry that was never part of the chain sits in it;
- ``reordered``: an intact entry sits at another position than the one it was written at;
- ``truncated``: entries are missing at the end: detectable only against a head recorded
  elsewhere (a signed export's head), given as ``known_head``.

A hash chain is tamper-*evident* to anyone who cannot recompute it: someone with write access to
the database could rewrite every hash from the point of an edit onwards. That is what signed
exports are for: an outside party who holds an earlier export's signed head can prove a later log
or export still contains it (``fieldid audit verify --head``, ``fieldid audit verify-export``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from fieldid.store import Store
from fieldid.store.audit import GENESIS, entry_hash
from fieldid.store.schema import AuditEntry


@dataclass(frozen=True)
class Row:
    """One stored entry, as read (no assumption that it is sound)."""

    seq: int
    at: datetime
    event: str
    operator: str
    purpose: str | None
    case_ref: str | None
    payload: str
    prev_hash: str
    hash: str

    def hash_at(self, seq: int, prev_hash: str | None = None) -> str:
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return entry_hash(
            self.prev_hash if prev_hash is None else prev_hash,
            seq,
            at,
            self.event,
            self.operator,
            self.purpose,
            self.case_ref,
            self.payload,
        )

    def to_dict(self) -> dict[str, Any]:
        at = self.at if self.at.tzinfo else self.at.replace(tzinfo=UTC)
        return {
            "seq": self.seq,
            "at": at.isoformat(),
            "event": self.event,
            "operator": self.operator,
            "purpose": self.purpose,
            "case_ref": self.case_ref,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Row:
        return cls(
            int(d["seq"]),
            datetime.fromisoformat(d["at"]),
            d["event"],
            d["operator"],
            d.get("purpose"),
            d.get("case_ref"),
            d["payload"],
            d["prev_hash"],
            d["hash"],
        )


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    checked: int
    #: The first seq of the log as kept, and the hash it links to (genesis or a purge anchor).
    start_seq: int | None
    start_prev_hash: str | None
    head_seq: int | None
    head_hash: str | None
    kind: str | None = None
    #: Position (stored seq) of the first bad entry.
    bad_seq: int | None = None
    message: str = "the audit log is intact"
    details: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "start": {"seq": self.start_seq, "prev_hash": self.start_prev_hash},
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "problem": None
            if self.ok
            else {
                "kind": self.kind,
                "first_bad_seq": self.bad_seq,
                "message": self.message,
                **(self.details or {}),
            },
        }


def read_rows(store: Store) -> list[Row]:
    with store.read() as s:
        return [
            Row(
                e.seq,
                e.at,
                e.event,
                e.operator,
                e.purpose,
                e.case_ref,
                e.payload,
                e.prev_hash,
                e.hash,
            )
            for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))
        ]


def anchors(rows: Sequence[Row]) -> dict[int, str]:
    """Start points the log may legitimately begin at: genesis, and each purge's anchor."""
    out = {1: GENESIS}
    for r in rows:
        if r.event != "purge":
            continue
        try:
            a = json.loads(r.payload).get("audit_anchor")
        except (ValueError, AttributeError):
            continue
        if isinstance(a, dict) and "first_seq" in a and "prev_hash" in a:
            out[int(a["first_seq"])] = str(a["prev_hash"])
    return out


def _hashed_seq(row: Row, lo: int, hi: int) -> int | None:
    """The seq an entry was written at, found by its own hash (None: its content changed)."""
    if row.hash_at(row.seq) == row.hash:
        return row.seq
    for seq in range(lo, hi + 1):
        if row.hash_at(seq) == row.hash:
            return seq
    return None


def verify_entries(
    rows: Sequence[Row],
    *,
    start: tuple[int, str] | None = None,
    known_head: tuple[int, str] | None = None,
) -> VerifyResult:
    """Verify ``rows`` (in stored order). ``start`` overrides the start point (an export's
    declared first entry); otherwise genesis or a purge anchor matching the first row is used."""
    if not rows:
        if known_head is not None:
            return VerifyResult(
                False,
                0,
                None,
                None,
                None,
                None,
                "truncated",
                known_head[0],
                f"the log is empty but entry {known_head[0]} was recorded in an earlier head",
            )
        return VerifyResult(True, 0, None, None, None, None)
    first = rows[0]
    starts = anchors(rows) if start is None else {start[0]: start[1]}
    if first.seq in starts:
        s0, prev0 = first.seq, starts[first.seq]
    else:
        below = [s for s in starts if s < first.seq]
        s0 = max(below) if below else min(starts)
        prev0 = starts[s0]
    n = len(rows)
    hi = max(s0 + n + 1, max(r.seq for r in rows) + 1)
    present = {r.hash for r in rows}
    prev = prev0

    def bad(kind: str, seq: int, message: str, **details: Any) -> VerifyResult:
        return VerifyResult(
            False, i, s0, prev0, rows[-1].seq, rows[-1].hash, kind, seq, message, details
        )

    i = 0
    for i, row in enumerate(rows):
        s = s0 + i
        if row.seq == s and row.prev_hash == prev and row.hash_at(s) == row.hash:
            prev = row.hash
            continue
        orig = _hashed_seq(row, s0, hi)
        nxt = rows[i + 1] if i + 1 < n else None
        if i > 0 and row.prev_hash == rows[i - 1].prev_hash and orig == s - 1:
            # Two entries claim the same place after the same predecessor: the earlier one in
            # the table was forged in with a valid hash, pushing the real one down.
            return bad(
                "inserted",
                rows[i - 1].seq,
                f"entry {rows[i - 1].seq} was inserted: it was never part of the chain (the "
                f"entry now at {row.seq} was written at {s - 1})",
            )
        if orig is None:
            if nxt is not None and nxt.prev_hash == prev and _hashed_seq(nxt, s0, hi) == s:
                return bad(
                    "inserted",
                    row.seq,
                    f"entry {row.seq} was inserted: the next entry links to the one before it",
                )
            return bad(
                "edited",
                row.seq,
                f"entry {row.seq} was edited: its content no longer matches its hash",
            )
        if orig > s:
            if row.prev_hash in present or row.prev_hash == prev0:
                return bad(
                    "reordered",
                    row.seq,
                    f"entry {row.seq} is out of order: it was written as entry {orig}",
                    written_at_seq=orig,
                )
            missing = list(range(s, orig))
            where = (
                "at the start of the log, with no purge anchor recording their removal"
                if i == 0
                else f"after entry {rows[i - 1].seq}"
            )
            return bad(
                "deleted",
                row.seq,
                f"{len(missing)} entr{'y' if len(missing) == 1 else 'ies'} deleted {where} "
                f"(seq {missing[0]}" + (f"-{missing[-1]}" if len(missing) > 1 else "") + ")",
                missing_seqs=[missing[0], missing[-1]],
            )
        if orig < s:
            return bad(
                "reordered",
                row.seq,
                f"entry {row.seq} is out of order: it was written as entry {orig}",
                written_at_seq=orig,
            )
        # Its own hash holds at its place, but it does not link to the entry before it.
        if i == 0:
            return bad(
                "deleted",
                row.seq,
                f"entry {row.seq} does not link to the start of the log ({s0}): entries before "
                "it were removed or replaced",
            )
        return bad(
            "edited",
            rows[i - 1].seq,
            f"entry {rows[i - 1].seq} was rewritten (and re-hashed): entry {row.seq} no longer "
            "links to it",
        )
    result = VerifyResult(True, n, s0, prev0, rows[-1].seq, rows[-1].hash)
    if known_head is not None:
        hseq, hhash = known_head
        held = {r.seq: r.hash for r in rows}
        if hseq > rows[-1].seq:
            return VerifyResult(
                False,
                n,
                s0,
                prev0,
                rows[-1].seq,
                rows[-1].hash,
                "truncated",
                rows[-1].seq + 1,
                f"entries {rows[-1].seq + 1}-{hseq} are missing: an earlier head recorded "
                f"entry {hseq}, the log ends at {rows[-1].seq}",
            )
        if hseq in held and held[hseq] != hhash:
            return VerifyResult(
                False,
                n,
                s0,
                prev0,
                rows[-1].seq,
                rows[-1].hash,
                "edited",
                hseq,
                f"entry {hseq} differs from the one an earlier head recorded: the log was "
                "rewritten from there or before",
            )
        if hseq < s0:
            return VerifyResult(
                True,
                n,
                s0,
                prev0,
                rows[-1].seq,
                rows[-1].hash,
                message=f"the audit log is intact; the known head {hseq} precedes its start "
                f"{s0} (purged), so it could not be compared",
            )
    return result


def verify_log(store: Store, *, known_head: tuple[int, str] | None = None) -> VerifyResult:
    """Verify the workspace's audit log (see the module docstring). Truncation at the end is
    also checked against the database's own head row (``audit_head``), which every append moves
    in the same transaction as its entry."""
    rows = read_rows(store)
    if known_head is None:
        known_head = stored_head(store)
    return verify_entries(rows, known_head=known_head)


def stored_head(store: Store) -> tuple[int, str] | None:
    """The seq and hash the ``audit_head`` row says the log ends at (None: empty log)."""
    from fieldid.store.schema import AuditHead

    with store.read() as s:
        head = s.get(AuditHead, 1)
        if head is None or head.seq == 0:
            return None
        return head.seq, head.hash
