"""Which agent holds which conversation during a live takeover (staff console).

A row per conversation held; its primary key keeps a second agent out. The console refreshes
`last_active_at` whenever the agent acts, and hands back conversations whose agent went quiet or
signed out (`stale`), so a student is never left with a silent assistant.
"""

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from core.db.engine import engine, session_scope
from core.db.models import StaffSession, StaffUser, Takeover, utcnow


@dataclass(frozen=True)
class Held:
    """A conversation an agent holds."""

    conversation_id: str
    ticket_id: int
    agent: str
    started_at: datetime
    last_active_at: datetime


def _held(row: Takeover) -> Held:
    return Held(row.conversation_id, row.ticket_id, row.agent, row.started_at, row.last_active_at)


def take(conversation_id: str, ticket_id: int, agent: str) -> Held | None:
    """The takeover, now held by `agent`; None when another agent already holds it."""
    try:
        with session_scope() as session:
            row = session.get(Takeover, conversation_id)
            if row is None:
                row = Takeover(conversation_id=conversation_id, ticket_id=ticket_id, agent=agent)
                session.add(row)
                session.flush()
            elif row.agent != agent:
                return None
            return _held(row)
    except IntegrityError:  # another agent's row was written between the read and this one
        return None


def holder(conversation_id: str) -> Held | None:
    with session_scope() as session:
        row = session.get(Takeover, conversation_id)
        return _held(row) if row is not None else None


def touch(conversation_id: str, agent: str) -> bool:
    """Marks the agent active; False when the agent no longer holds the conversation."""
    with session_scope() as session:
        changed = session.execute(
            sa.update(Takeover)
            .where(Takeover.conversation_id == conversation_id, Takeover.agent == agent)
            .values(last_active_at=utcnow())
        ).rowcount
    return changed == 1


def release(conversation_id: str, agent: str | None = None) -> bool:
    """Ends the takeover (only `agent`'s, when given); False when there was none to end."""
    query = sa.delete(Takeover).where(Takeover.conversation_id == conversation_id)
    if agent is not None:
        query = query.where(Takeover.agent == agent)
    with session_scope() as session:
        return session.execute(query).rowcount == 1


def paused_without_holder(since: float) -> list[str]:
    """Conversations whose last pause or resume (since the Unix time `since`) is a pause, and that
    no agent holds: a take-over and a hand-back that crossed left them so. The console resumes
    them (staff/agent_takeover.py)."""
    from core.db.queries import EVENTS  # Rasa's table, as the transcript reads it

    if not sa.inspect(engine()).has_table("events"):
        return []
    steps = EVENTS.c.type_name.in_(("pause", "resume"))
    last = (
        sa.select(sa.func.max(EVENTS.c.id).label("id"))
        .where(steps, EVENTS.c.timestamp > since)
        .group_by(EVENTS.c.sender_id)
        .subquery()
    )
    query = (
        sa.select(EVENTS.c.sender_id)
        .join(last, EVENTS.c.id == last.c.id)
        .where(
            EVENTS.c.type_name == "pause",
            EVENTS.c.sender_id.not_in(sa.select(Takeover.conversation_id)),
        )
    )
    with session_scope() as session:
        return [row.sender_id for row in session.execute(query)]


def stale(idle_since: datetime) -> list[Held]:
    """Takeovers whose agent has not acted since `idle_since`, or has no live session."""
    live_agents = (
        sa.select(StaffUser.name)
        .join(StaffSession, StaffSession.user_id == StaffUser.id)
        .where(StaffSession.expires_at > utcnow())
    )
    query = sa.select(Takeover).where(
        sa.or_(Takeover.last_active_at < idle_since, Takeover.agent.not_in(live_agents))
    )
    with session_scope() as session:
        return [_held(row) for row in session.execute(query).scalars()]
