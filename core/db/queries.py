"""Everything the actions, the tracker store and the staff command line ask of the database."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.db.engine import engine, session_scope
from core.db.models import (
    LABEL_SOURCES,
    REVIEW_KINDS,
    AgentRating,
    AnswerFeedback,
    ReviewLabel,
    ReviewMessage,
    SessionOutcome,
    Takeover,
    Ticket,
    TicketNote,
    UnansweredQuestion,
    utcnow,
)
from core.privacy import mask

MAX_QUESTION_CHARS = 500


# ---- tickets -------------------------------------------------------------------------------


def open_ticket(conversation_id: str, channel: str, topic: str, path: str, summary: str) -> int:
    """The number of the conversation's ticket: its unresolved one brought up to date, or a new
    one."""
    return opened_ticket(conversation_id, channel, topic, path, summary)[0]


def _unresolved(conversation_id: str, column: Any) -> Any:
    """The query for `column` of the conversation's newest ticket that is not resolved."""
    return (
        sa.select(column)
        .where(Ticket.conversation_id == conversation_id, Ticket.status != "resolved")
        .order_by(Ticket.id.desc())
        .limit(1)
    )


def open_ticket_id(conversation_id: str) -> int | None:
    """The number of the conversation's ticket that is not resolved yet, or None."""
    with session_scope() as session:
        return session.execute(_unresolved(conversation_id, Ticket.id)).scalar_one_or_none()


def opened_ticket(
    conversation_id: str, channel: str, topic: str, path: str, summary: str
) -> tuple[int, bool]:
    """open_ticket's number, and whether the ticket is new (the team is told of new ones)."""
    with session_scope() as session:
        ticket = session.execute(_unresolved(conversation_id, Ticket)).scalar_one_or_none()
        new = ticket is None
        if ticket is None:
            ticket = Ticket(conversation_id=conversation_id, status="open")
            session.add(ticket)
        ticket.channel, ticket.topic, ticket.path, ticket.summary = channel, topic, path, summary
        ticket.updated_at = utcnow()
        session.flush()
        return ticket.id, new


def list_tickets(
    status: str | None = None, limit: int = 50, oldest_first: bool = False, topic: str = ""
) -> list[Ticket]:
    order = Ticket.id.asc() if oldest_first else Ticket.id.desc()
    query = sa.select(Ticket).order_by(order).limit(limit)
    if status:
        query = query.where(Ticket.status == status)
    if topic:
        query = query.where(Ticket.topic == topic)
    with session_scope() as session:
        tickets = list(session.execute(query).scalars())
        session.expunge_all()
        return tickets


def last_student_messages(conversation_ids: list[str]) -> dict[str, datetime]:
    """When each conversation's student last wrote (naive UTC), for the ticket queue."""
    found: dict[str, datetime] = {}
    if not conversation_ids or not sa.inspect(engine()).has_table("events"):
        return found
    latest = sa.func.max(EVENTS.c.timestamp)
    with session_scope() as session:
        for start in range(0, len(conversation_ids), 500):
            batch = conversation_ids[start : start + 500]
            for sender, timestamp in session.execute(
                sa.select(EVENTS.c.sender_id, latest)
                .where(EVENTS.c.sender_id.in_(batch), EVENTS.c.type_name == "user")
                .group_by(EVENTS.c.sender_id)
            ):
                if timestamp is not None:
                    found[sender] = datetime.fromtimestamp(timestamp, timezone.utc).replace(
                        tzinfo=None
                    )
    return found


def get_ticket(number: int) -> Ticket | None:
    with session_scope() as session:
        ticket = session.get(Ticket, number)
        if ticket is not None:
            session.expunge(ticket)
        return ticket


# What each status change is allowed from.
TRANSITIONS = {"claimed": ("open",), "resolved": ("open", "claimed"), "open": ("claimed",)}


def change_status(number: int, status: str, staff: str | None = None) -> Ticket:
    """Claim, resolve or release a ticket; ValueError when it does not exist or cannot move."""
    with session_scope() as session:
        ticket = session.get(Ticket, number, with_for_update=True)
        if ticket is None:
            raise ValueError(f"no ticket {number}")
        if ticket.status not in TRANSITIONS[status]:
            raise ValueError(f"ticket {number} is {ticket.status}; it cannot become {status}")
        ticket.status = status
        if status == "claimed":
            ticket.claimed_by = staff
        ticket.updated_at = utcnow()
        session.flush()
        session.expunge(ticket)
        return ticket


# ---- what the assistant could not answer, and whether its answers helped -------------------


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def question_text(masked_text: str) -> str:
    """A (masked) message as the statistics keep it: one line, at most MAX_QUESTION_CHARS."""
    return " ".join(masked_text.split())[:MAX_QUESTION_CHARS]


def update_or_insert(
    update: Any, model: type, fields: dict[str, Any], url: str | None = None
) -> None:
    """Runs `update`; when it changed no row, inserts a `model` row of `fields`."""
    for _ in range(2):  # a second server may insert the same row between our update and insert
        with session_scope(url) as session:
            if session.execute(update).rowcount:
                return
        try:
            with session_scope(url) as session:
                session.add(model(**fields))
            return
        except IntegrityError:
            continue


def record_unanswered(masked_text: str, url: str | None = None) -> None:
    """Count one more occurrence of an (already masked) message the assistant did not understand."""
    text = question_text(masked_text)
    if not text:
        return
    digest = text_digest(text)
    bump = (
        sa.update(UnansweredQuestion)
        .where(UnansweredQuestion.text_hash == digest)
        .values(count=UnansweredQuestion.count + 1, last_seen=utcnow())
    )
    update_or_insert(bump, UnansweredQuestion, {"text": text, "text_hash": digest}, url)


def record_for_review(kind: str, masked_text: str, intent: str, url: str | None = None) -> None:
    """Count one more occurrence of an (already masked) answered message worth a second look."""
    text = question_text(masked_text)
    if not text or kind not in REVIEW_KINDS:
        return
    digest = text_digest(text)
    bump = (
        sa.update(ReviewMessage)
        .where(
            ReviewMessage.kind == kind,
            ReviewMessage.text_hash == digest,
            ReviewMessage.intent == intent,
        )
        .values(count=ReviewMessage.count + 1, last_seen=utcnow())
    )
    row = {"kind": kind, "text": text, "text_hash": digest, "intent": intent}
    update_or_insert(bump, ReviewMessage, row, url)


@dataclass(frozen=True)
class ReviewRow:
    """One answered message worth a second look, as the review list shows it."""

    kind: str
    text: str
    intent: str
    count: int
    first_seen: datetime
    last_seen: datetime


def review_rows(kind: str, limit: int = 500) -> list[ReviewRow]:
    """The most frequent messages of one kind (REVIEW_KINDS) that nobody labelled yet, with the
    intent chosen."""
    query = (
        sa.select(
            ReviewMessage.kind,
            ReviewMessage.text,
            ReviewMessage.intent,
            ReviewMessage.count,
            ReviewMessage.first_seen,
            ReviewMessage.last_seen,
        )
        .where(ReviewMessage.kind == kind)
        .where(~ReviewMessage.text_hash.in_(sa.select(ReviewLabel.text_hash)))
        .order_by(ReviewMessage.count.desc(), ReviewMessage.last_seen.desc())
        .limit(limit)
    )
    with session_scope() as session:
        return [ReviewRow(*row) for row in session.execute(query)]


def save_labels(texts: list[str], source: str, intent: str, by: str) -> int:
    """Labels each (masked) text as `intent` (an intent of the domain, or FAQ_GAP), by `by`, now;
    a text labelled before takes the new label. Returns how many texts were labelled."""
    if source not in LABEL_SOURCES:
        raise ValueError(f"unknown list {source!r}")
    cleaned = {question_text(mask(text)) for text in texts}
    cleaned.discard("")
    for text in sorted(cleaned):
        digest = text_digest(text)
        values = {"source": source, "intent": intent, "labelled_by": by, "labelled_at": utcnow()}
        relabel = sa.update(ReviewLabel).where(ReviewLabel.text_hash == digest).values(**values)
        update_or_insert(relabel, ReviewLabel, {"text": text, "text_hash": digest, **values})
    return len(cleaned)


@dataclass(frozen=True)
class Label:
    """A reviewer's decision on one message."""

    text: str
    source: str
    intent: str
    labelled_by: str
    labelled_at: datetime


def labels(limit: int | None = 5000) -> list[Label]:
    """The labels, the latest first (all of them with `limit=None`)."""
    query = (
        sa.select(
            ReviewLabel.text,
            ReviewLabel.source,
            ReviewLabel.intent,
            ReviewLabel.labelled_by,
            ReviewLabel.labelled_at,
        )
        .order_by(ReviewLabel.labelled_at.desc(), ReviewLabel.id.desc())
        .limit(limit)
    )
    with session_scope() as session:
        return [Label(*row) for row in session.execute(query)]


def top_unanswered(limit: int = 20) -> list[tuple[str, int, datetime]]:
    query = (
        sa.select(UnansweredQuestion.text, UnansweredQuestion.count, UnansweredQuestion.last_seen)
        .order_by(UnansweredQuestion.count.desc(), UnansweredQuestion.last_seen.desc())
        .limit(limit)
    )
    with session_scope() as session:
        return [tuple(row) for row in session.execute(query)]


def unanswered_rows(limit: int = 500) -> list[tuple[str, int, datetime, datetime]]:
    """(text, count, first seen, last seen) of the most frequent not-understood messages that
    nobody labelled yet."""
    query = (
        sa.select(
            UnansweredQuestion.text,
            UnansweredQuestion.count,
            UnansweredQuestion.first_seen,
            UnansweredQuestion.last_seen,
        )
        .where(~UnansweredQuestion.text_hash.in_(sa.select(ReviewLabel.text_hash)))
        .order_by(UnansweredQuestion.count.desc(), UnansweredQuestion.last_seen.desc())
        .limit(limit)
    )
    with session_scope() as session:
        return [tuple(row) for row in session.execute(query)]


def tickets_per_topic_per_day(since: datetime) -> list[tuple[str, str, int]]:
    """(day as YYYY-MM-DD, topic, tickets opened) since `since`."""
    query = sa.select(Ticket.created_at, Ticket.topic).where(Ticket.created_at >= since)
    counts: dict[tuple[str, str], int] = {}
    with session_scope() as session:
        for created, topic in session.execute(query):
            key = (created.strftime("%Y-%m-%d"), topic or "other")
            counts[key] = counts.get(key, 0) + 1
    return sorted((day, topic, n) for (day, topic), n in counts.items())


def record_agent_rating(conversation_id: str, agent: str, helpful: bool) -> None:
    with session_scope() as session:
        session.add(AgentRating(conversation_id=conversation_id, agent=agent[:64], helpful=helpful))


def agent_ratings(since: datetime, until: datetime) -> list[tuple[str, int, int]]:
    """(agent, rated helpful, rated not helpful) for ratings given in [since, until), naive UTC."""
    helped = sa.func.sum(sa.case((AgentRating.helpful.is_(True), 1), else_=0))
    with session_scope() as session:
        rows = session.execute(
            sa.select(AgentRating.agent, helped, sa.func.count())
            .where(AgentRating.created_at >= since, AgentRating.created_at < until)
            .group_by(AgentRating.agent)
            .order_by(AgentRating.agent)
        ).all()
    return [(agent, int(yes or 0), int(total) - int(yes or 0)) for agent, yes, total in rows]


def record_feedback(conversation_id: str, answer: str, helpful: bool) -> None:
    with session_scope() as session:
        session.add(AnswerFeedback(conversation_id=conversation_id, answer=answer, helpful=helpful))


@dataclass
class FeedbackCount:
    """How often one answer was marked helpful and not helpful."""

    answer: str
    helpful: int
    not_helpful: int

    @property
    def rate(self) -> float:
        return self.helpful / (self.helpful + self.not_helpful)


def feedback_by_answer() -> list[FeedbackCount]:
    helpful = sa.func.sum(sa.case((AnswerFeedback.helpful, 1), else_=0))
    query = (
        sa.select(AnswerFeedback.answer, helpful, sa.func.count())
        .group_by(AnswerFeedback.answer)
        .order_by(AnswerFeedback.answer)
    )
    with session_scope() as session:
        return [
            FeedbackCount(answer, int(yes), int(total) - int(yes))
            for answer, yes, total in session.execute(query)
        ]


# ---- the stored conversation ---------------------------------------------------------------

# Rasa's tracker store table, described just enough to read from it and delete from it.
EVENTS = sa.table(
    "events",
    sa.column("id"),
    sa.column("sender_id"),
    sa.column("type_name"),
    sa.column("timestamp"),
    sa.column("intent_name"),
    sa.column("action_name"),
    sa.column("data"),
)
# The tracker store's checkpoints of long conversations (stores/tracker_store.py), and the metadata
# key of the event that closes a checkpoint's restored state: the last stored event it sums up.
COMPACTED_UNTIL = "compacted_until"
CHECKPOINTS = sa.table("conversation_checkpoints", sa.column("conversation_id"))


def session_steps_until(conversation_id: str, until_id: int) -> list[tuple[str, str | None]]:
    """(event type, intent or action name) of the stored user messages and actions of the session
    that holds event `until_id`, up to it: the part of a long conversation that the tracker an
    action gets sums up in a checkpoint (stores/compaction.py)."""
    of_conversation = EVENTS.c.sender_id == conversation_id
    with session_scope() as session:
        start = session.execute(
            sa.select(sa.func.max(EVENTS.c.id)).where(
                of_conversation, EVENTS.c.type_name == "session_started", EVENTS.c.id <= until_id
            )
        ).scalar()
        rows = session.execute(
            sa.select(EVENTS.c.type_name, EVENTS.c.intent_name, EVENTS.c.action_name)
            .where(
                of_conversation,
                EVENTS.c.id <= until_id,
                EVENTS.c.id >= (start or 0),
                EVENTS.c.type_name.in_(("user", "action", "rewind")),
            )
            .order_by(EVENTS.c.id)
        ).all()
    return [(kind, intent if kind == "user" else action) for kind, intent, action in rows]


Step = TypeVar("Step")


def without_reverted(steps: list[Step], kind: Callable[[Step], str]) -> list[Step]:
    """The steps as Rasa applies them: a "rewind" (a message read again, actions/answers.py)
    takes back the latest user message and what followed it. `kind` names a step's event type."""
    kept: list[Step] = []
    for step in steps:
        if kind(step) != "rewind":
            kept.append(step)
            continue
        while kept and kind(kept[-1]) != "user":
            kept.pop()
        if kept:
            kept.pop()
    return kept


# ---- retention -----------------------------------------------------------------------------


@dataclass
class Purged:
    """What a purge deleted."""

    conversations: int
    events: int
    feedback: int
    tickets: int
    unanswered: int


def purge_older_than(days: int, now: datetime | None = None) -> Purged:
    """Delete conversations whose last event is older than `days`, with what refers to them.

    Unresolved tickets are kept whatever their age: someone still has to answer them.
    """
    cutoff = (now or utcnow()) - timedelta(days=days)
    cutoff_epoch = (cutoff - datetime(1970, 1, 1)).total_seconds()
    with session_scope() as session:
        conversations, events = 0, 0
        if sa.inspect(engine()).has_table("events"):
            stale = (
                sa.select(EVENTS.c.sender_id)
                .group_by(EVENTS.c.sender_id)
                .having(sa.func.max(EVENTS.c.timestamp) < cutoff_epoch)
            )
            senders = list(session.execute(stale).scalars())
            conversations = len(senders)
            for start in range(0, len(senders), 500):
                batch = senders[start : start + 500]
                events += session.execute(
                    sa.delete(EVENTS).where(EVENTS.c.sender_id.in_(batch))
                ).rowcount
                session.execute(
                    sa.delete(SessionOutcome).where(SessionOutcome.conversation_id.in_(batch))
                )
                if sa.inspect(engine()).has_table("conversation_checkpoints"):
                    session.execute(
                        sa.delete(CHECKPOINTS).where(CHECKPOINTS.c.conversation_id.in_(batch))
                    )
        feedback = session.execute(
            sa.delete(AnswerFeedback).where(AnswerFeedback.created_at < cutoff)
        ).rowcount
        session.execute(sa.delete(AgentRating).where(AgentRating.created_at < cutoff))
        old_resolved = sa.select(Ticket.id).where(
            Ticket.status == "resolved", Ticket.updated_at < cutoff
        )
        # SQLite does not enforce ON DELETE CASCADE unless asked: delete what refers to them first.
        for referring in (TicketNote, Takeover):
            session.execute(
                sa.delete(referring)
                .where(referring.ticket_id.in_(old_resolved))
                .execution_options(synchronize_session=False)
            )
        tickets = session.execute(
            sa.delete(Ticket).where(Ticket.status == "resolved", Ticket.updated_at < cutoff)
        ).rowcount
        unanswered = session.execute(
            sa.delete(UnansweredQuestion).where(UnansweredQuestion.last_seen < cutoff)
        ).rowcount
        session.execute(sa.delete(ReviewMessage).where(ReviewMessage.last_seen < cutoff))
    return Purged(conversations, events, feedback, tickets, unanswered)
