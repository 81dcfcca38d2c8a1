"""What the staff console asks of the database: accounts, sessions, ticket notes, transcripts.

Passwords arrive here already hashed (staff/passwords.py) and session tokens as their SHA-256:
neither is ever stored as given.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from core.db import queries
from core.db.engine import engine, session_scope
from core.db.models import STAFF_ROLES, StaffSession, StaffUser, TicketNote, utcnow
from core.db.queries import EVENTS  # read for a ticket's transcript (user texts stored masked)

SESSION_HOURS = 8


@dataclass(frozen=True)
class SignedIn:
    """The person behind a session, and the session's CSRF token."""

    name: str
    role: str
    csrf_token: str


@dataclass(frozen=True)
class Line:
    """One message of a transcript."""

    sender: str  # "student", "assistant", "agent" (live takeover) or "note" (takeover notices)
    text: str
    at: datetime
    agent: str = ""  # who, for "agent"
    event_id: int = 0  # its row in the events table: what the live transcript polls after


def add_user(name: str, role: str, password_hash: str) -> None:
    """A new account; ValueError when the name is taken or the role unknown."""
    if role not in STAFF_ROLES:
        raise ValueError(f"role must be one of {', '.join(STAFF_ROLES)}")
    with session_scope() as session:
        if session.execute(sa.select(StaffUser.id).where(StaffUser.name == name)).first():
            raise ValueError(f"there is already a user {name}")
        session.add(StaffUser(name=name, role=role, password_hash=password_hash))


def password_hash_of(name: str) -> str | None:
    with session_scope() as session:
        found = session.execute(
            sa.select(StaffUser.password_hash).where(StaffUser.name == name)
        ).scalar()
        return str(found) if found is not None else None


def open_session(name: str, token_hash: str, csrf_token: str) -> None:
    with session_scope() as session:
        user_id = session.execute(sa.select(StaffUser.id).where(StaffUser.name == name)).scalar()
        if user_id is None:
            raise ValueError(f"no user {name}")
        session.execute(sa.delete(StaffSession).where(StaffSession.expires_at < utcnow()))
        expires = utcnow() + timedelta(hours=SESSION_HOURS)
        session.add(
            StaffSession(
                token_hash=token_hash, user_id=user_id, csrf_token=csrf_token, expires_at=expires
            )
        )


def signed_in(token_hash: str) -> SignedIn | None:
    """The session's person, or None when the session does not exist or has expired."""
    query = (
        sa.select(StaffUser.name, StaffUser.role, StaffSession.csrf_token)
        .join(StaffUser, StaffUser.id == StaffSession.user_id)
        .where(StaffSession.token_hash == token_hash, StaffSession.expires_at > utcnow())
    )
    with session_scope() as session:
        row = session.execute(query).first()
        return SignedIn(row.name, row.role, row.csrf_token) if row else None


def close_session(token_hash: str) -> None:
    with session_scope() as session:
        session.execute(sa.delete(StaffSession).where(StaffSession.token_hash == token_hash))


def add_note(ticket: int, author: str, text: str) -> None:
    with session_scope() as session:
        session.add(TicketNote(ticket_id=ticket, author=author, text=text))


def notes(ticket: int) -> list[tuple[str, str, datetime]]:
    query = (
        sa.select(TicketNote.author, TicketNote.text, TicketNote.created_at)
        .where(TicketNote.ticket_id == ticket)
        .order_by(TicketNote.id)
    )
    with session_scope() as session:
        return [(row.author, row.text, row.created_at) for row in session.execute(query)]


def transcript(conversation_id: str, limit: int = 400, after_id: int = 0) -> list[Line]:
    """The conversation's last `limit` messages after event `after_id`, as stored (the student's
    masked), oldest first. A message read again (a "rewind" and the same message once more:
    actions/answers.py) is shown once."""
    if not sa.inspect(engine()).has_table("events"):
        return []
    query = (
        sa.select(EVENTS.c.id, EVENTS.c.type_name, EVENTS.c.timestamp, EVENTS.c.data)
        .where(
            EVENTS.c.sender_id == conversation_id,
            EVENTS.c.type_name.in_(("user", "bot", "rewind")),
            EVENTS.c.id > after_id,
        )
        .order_by(EVENTS.c.id.desc())
        .limit(limit)
    )
    with session_scope() as session:
        rows = list(session.execute(query))
    lines: list[Line] = []
    for row in queries.without_reverted(rows[::-1], kind=lambda row: row.type_name):
        event = json.loads(row.data or "{}")
        text = (event.get("text") or "").strip()
        if not text:
            continue
        at = datetime.utcfromtimestamp(row.timestamp)
        metadata = event.get("metadata") if isinstance(event.get("metadata"), dict) else {}
        agent = str(metadata.get("agent", ""))
        if row.type_name == "user":
            lines.append(Line("student", text, at, event_id=row.id))
        elif metadata.get("takeover") in ("agent", "note"):
            lines.append(Line(metadata["takeover"], text, at, agent, row.id))
        else:
            lines.append(Line("assistant", text, at, event_id=row.id))
    return lines
