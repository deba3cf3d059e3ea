"""Proposals: the part of each essay that says how to carry the resolution out, collected for the
competent bodies. The organiser groups them by field and by district, searches them, merges
duplicates into the one kept (which counts them) and marks the ones forwarded."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from server.db.models import Essay, Member, Proposal, utcnow
from server.domain.grading_scope import PointTree
from server.domain.rows import conference_row

FIELDS = {
    "economy": "Kinh tế",
    "party_building": "Xây dựng Đảng",
    "society": "Văn hóa - xã hội",
    "defence": "Quốc phòng - an ninh",
    "environment": "Tài nguyên - môi trường",
    "administration": "Cải cách hành chính",
    "other": "Khác",
}
MAX_PROPOSALS = 20
MAX_TITLE = 300
MAX_DETAIL = 5_000
NO_DISTRICT = "(không thuộc huyện)"


class ProposalError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ProposalNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ProposalIn:
    title: str
    field: str
    detail: str = ""


def check_proposals(items: Sequence[ProposalIn]) -> list[ProposalIn]:
    if len(items) > MAX_PROPOSALS:
        raise ProposalError(422, f"at most {MAX_PROPOSALS} proposals per essay")
    checked = []
    for n, item in enumerate(items, 1):
        title = item.title.strip()
        if not title or len(title) > MAX_TITLE:
            raise ProposalError(422, f"proposal {n}: the title must have 1-{MAX_TITLE} characters")
        if item.field not in FIELDS:
            raise ProposalError(422, f"proposal {n}: field must be one of {', '.join(FIELDS)}")
        if len(item.detail) > MAX_DETAIL:
            raise ProposalError(422, f"proposal {n}: the detail is longer than {MAX_DETAIL} characters")
        checked.append(ProposalIn(title, item.field, item.detail.strip()))
    return checked


async def replace_proposals(db: AsyncSession, essay: Essay, items: Sequence[ProposalIn]) -> None:
    await db.execute(delete(Proposal).where(Proposal.essay_id == essay.id))
    db.add_all(
        Proposal(conference_id=essay.conference_id, essay_id=essay.id, position=n, title=i.title,
                 field=i.field, detail=i.detail, created_at=utcnow())
        for n, i in enumerate(items)
    )
    await db.flush()


async def of_essay(db: AsyncSession, essay_id: str) -> list[Proposal]:
    rows = await db.execute(select(Proposal).where(Proposal.essay_id == essay_id).order_by(Proposal.position))
    return list(rows.scalars())


def folded(text: str) -> str:
    """Lower case without accents (đ as d): "kinh te" finds "Kinh tế"."""
    text = text.lower().replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


@dataclass
class ProposalLine:
    id: str
    title: str
    field: str
    field_label: str
    detail: str
    member: str
    point: str
    district: str
    merged_into: str | None
    duplicates: int
    forwarded_at: str | None
    forwarded_to: str


async def collect(
    db: AsyncSession, conference_id: str, tree: PointTree, query: str = "", field: str | None = None,
    district: str | None = None, include_merged: bool = False,
) -> list[ProposalLine]:
    """Every proposal of the conference (duplicates merged away unless ``include_merged``), matching
    ``query`` (every word, in the title, the detail or the member's name, accents ignored)."""
    rows = await db.execute(
        select(Proposal, Member)
        .join(Essay, Essay.id == Proposal.essay_id)
        .join(Member, Member.id == Essay.member_id)
        .where(Proposal.conference_id == conference_id)
        .order_by(Proposal.field, Proposal.created_at, Proposal.position)
    )
    pairs = list(rows.tuples())
    duplicates = Counter(p.merged_into for p, _ in pairs if p.merged_into)
    words = folded(query).split()
    lines = []
    for p, m in pairs:
        if p.merged_into and not include_merged:
            continue
        found_district = tree.ancestor_at(m.point_id, "district")
        line = ProposalLine(
            id=p.id, title=p.title, field=p.field, field_label=FIELDS.get(p.field, p.field), detail=p.detail,
            member=m.name, point=tree.name(m.point_id), district=found_district.name if found_district else NO_DISTRICT,
            merged_into=p.merged_into, duplicates=duplicates.get(p.id, 0),
            forwarded_at=p.forwarded_at.isoformat() if p.forwarded_at else None, forwarded_to=p.forwarded_to,
        )
        haystack = folded(" ".join((p.title, p.detail, m.name)))
        if words and not all(w in haystack for w in words):
            continue
        if (field and p.field != field) or (district and line.district != district):
            continue
        lines.append(line)
    return lines


def groups(lines: Sequence[ProposalLine], key: str) -> list[dict]:
    """Counts per ``field`` or ``district`` (a merged proposal counts with its duplicates)."""
    counts: Counter[str] = Counter()
    for line in lines:
        counts[getattr(line, key)] += 1 + line.duplicates
    label = (lambda k: FIELDS.get(k, k)) if key == "field" else (lambda k: k)
    return [{"key": k, "label": label(k), "count": n} for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


async def get_proposal(db: AsyncSession, conference_id: str, proposal_id: str) -> Proposal:
    return await conference_row(db, Proposal, proposal_id, conference_id, ProposalNotFound)


async def merge(db: AsyncSession, conference_id: str, proposal_id: str, into_id: str) -> Proposal:
    """Merge a duplicate into the proposal kept; the duplicates of the duplicate follow it."""
    duplicate = await get_proposal(db, conference_id, proposal_id)
    kept = await get_proposal(db, conference_id, into_id)
    if kept.merged_into:
        kept = await get_proposal(db, conference_id, kept.merged_into)
    if kept.id == duplicate.id:
        raise ProposalError(409, "a proposal cannot be merged into itself")
    followers = await db.execute(select(Proposal).where(Proposal.merged_into == duplicate.id))
    for follower in followers.scalars():
        follower.merged_into = kept.id
    duplicate.merged_into = kept.id
    await db.flush()
    return kept


async def set_forwarded(
    db: AsyncSession, conference_id: str, proposal_id: str, forwarded: bool, to: str, now: dt.datetime | None = None
) -> Proposal:
    row = await get_proposal(db, conference_id, proposal_id)
    if row.merged_into:
        raise ProposalError(409, "this proposal was merged into another one: forward that one")
    row.forwarded_at = (now or utcnow()) if forwarded else None
    row.forwarded_to = to.strip()[:200] if forwarded else ""
    await db.flush()
    return row
