"""Who may end what another agent holds, decided in one place.

A ticket is held by the agent who claimed it; its conversation, during a live takeover, by the
agent who took it over. An agent may release or resolve a ticket, or hand its conversation back,
only when no other agent holds either; an admin may always (a lead ending a colleague's work
after a shift). Anyone may claim an open ticket or take over a conversation nobody holds.
"""

from core.db.models import Ticket
from core.db.takeover_claims import Held

WHY_NOT = "这个工单（或它的对话）由 {holder} 负责；只有本人或管理员可以结束。"


def other_holder(name: str, ticket: Ticket, held: Held | None) -> str | None:
    """The other agent holding the ticket or its conversation, if any."""
    if ticket.status == "claimed" and ticket.claimed_by and ticket.claimed_by != name:
        return str(ticket.claimed_by)
    if held is not None and held.agent != name:
        return held.agent
    return None


def may_end(name: str, role: str, ticket: Ticket, held: Held | None) -> str | None:
    """None when `name` may release, resolve or hand back this ticket; else why not."""
    holder = other_holder(name, ticket, held)
    if role == "admin" or holder is None:
        return None
    return WHY_NOT.format(holder=holder)
