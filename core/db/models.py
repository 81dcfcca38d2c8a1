"""Tables owned by the project. Rasa's own `events` table belongs to the tracker store."""

from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlalchemy.orm.decl_api import DeclarativeMeta

mapper_registry = registry()


class Base(metaclass=DeclarativeMeta):
    """The declarative base, spelled out so that type checkers see a class (SQLAlchemy 1.4)."""

    __abstract__ = True
    registry = mapper_registry
    metadata = mapper_registry.metadata
    __init__ = mapper_registry.constructor


TICKET_STATUSES = ("open", "claimed", "resolved")


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Ticket(Base):
    """A handoff to human support: what the student asked and tried, never who they are."""

    __tablename__ = "tickets"

    id = sa.Column(sa.Integer, primary_key=True)  # the ticket number the student is told
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    channel = sa.Column(sa.String(64), nullable=False, default="")
    topic = sa.Column(sa.String(64), nullable=False, default="")
    path = sa.Column(sa.Text, nullable=False, default="")
    summary = sa.Column(sa.Text, nullable=False, default="")
    status = sa.Column(sa.String(16), nullable=False, default="open", index=True)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
    updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, onupdate=utcnow)
    claimed_by = sa.Column(sa.String(64))


class UnansweredQuestion(Base):
    """A message the assistant could not understand, masked, counted over repeats."""

    __tablename__ = "unanswered_questions"

    id = sa.Column(sa.Integer, primary_key=True)
    text = sa.Column(sa.Text, nullable=False)
    text_hash = sa.Column(sa.String(64), nullable=False, unique=True)
    count = sa.Column(sa.Integer, nullable=False, default=1)
    first_seen = sa.Column(sa.DateTime, nullable=False, default=utcnow)
    last_seen = sa.Column(sa.DateTime, nullable=False, default=utcnow, index=True)


REVIEW_KINDS = ("unsure", "did_not_help", "handed_off")


class ReviewMessage(Base):
    """A message the assistant answered that deserves a second look (stores/review.py): it was
    unsure, the student said the answer did not help, or asked for a person soon after. Masked,
    counted over repeats of the same text read as the same intent."""

    __tablename__ = "review_messages"
    __table_args__ = (sa.UniqueConstraint("kind", "text_hash", "intent"),)

    id = sa.Column(sa.Integer, primary_key=True)
    kind = sa.Column(sa.String(16), nullable=False)
    text = sa.Column(sa.Text, nullable=False)
    text_hash = sa.Column(sa.String(64), nullable=False)
    intent = sa.Column(sa.String(64), nullable=False)  # the intent the assistant chose
    count = sa.Column(sa.Integer, nullable=False, default=1)
    first_seen = sa.Column(sa.DateTime, nullable=False, default=utcnow)
    last_seen = sa.Column(sa.DateTime, nullable=False, default=utcnow, index=True)


LABEL_SOURCES = ("not_understood", *REVIEW_KINDS)
# A reviewer's verdict on a message: it means this intent (out_of_scope included), or it asks
# something the FAQ does not answer (a list for whoever owns the content, not training data).
FAQ_GAP = "faq_gap"


class ReviewLabel(Base):
    """What a reviewer decided a (masked) message means, with who and when; the latest wins."""

    __tablename__ = "review_labels"

    id = sa.Column(sa.Integer, primary_key=True)
    text = sa.Column(sa.Text, nullable=False)
    text_hash = sa.Column(sa.String(64), nullable=False, unique=True)
    source = sa.Column(sa.String(16), nullable=False)  # the list it was labelled from
    intent = sa.Column(sa.String(64), nullable=False)  # an intent of the domain, or FAQ_GAP
    labelled_by = sa.Column(sa.String(64), nullable=False)
    labelled_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, index=True)


class SavedTest(Base):
    """A conversation saved from the console as a Rasa test story (staff/saved_tests.py): the
    student's text masked as stored, the intents as labelled, the actions the assistant took."""

    __tablename__ = "saved_tests"

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(200), nullable=False)
    story = sa.Column(sa.Text, nullable=False)  # the story's YAML, `- story:` and its steps
    saved_by = sa.Column(sa.String(64), nullable=False)
    saved_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


MODEL_STATUSES = ("training", "failed", "passed", "refused", "repository")


class AssistantModel(Base):
    """A trained model the console knows (staff/model_registry.py): a candidate trained from
    data/ and the accepted labels, or the repository's own (`make train`), with who trained it,
    from which data, and the gate's scores."""

    __tablename__ = "assistant_models"

    id = sa.Column(sa.Integer, primary_key=True)
    status = sa.Column(sa.String(16), nullable=False)  # MODEL_STATUSES
    mode = sa.Column(sa.String(16), nullable=False)  # full, finetune, repository
    trained_by = sa.Column(sa.String(64), nullable=False)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
    finished_at = sa.Column(sa.DateTime)
    data_hash = sa.Column(sa.String(64))  # sha256 of the training files it was trained from
    labels = sa.Column(sa.Integer, nullable=False, default=0)  # accepted labels trained on
    file_sha256 = sa.Column(sa.String(64), index=True)  # the archive's: its ETag when served
    file_name = sa.Column(sa.String(200))  # under var/models/
    seconds = sa.Column(sa.Float)  # training time
    scores = sa.Column(sa.Text)  # the gate's report, JSON (evaluation/gate.py)
    reason = sa.Column(sa.Text)  # why it failed or was refused


class ModelDeployment(Base):
    """One switch of the model the Rasa servers pull (promote, roll back, a new repository
    model); the latest row names the model served now."""

    __tablename__ = "model_deployments"

    id = sa.Column(sa.Integer, primary_key=True)
    model_id = sa.Column(sa.Integer, sa.ForeignKey("assistant_models.id"), nullable=False)
    action = sa.Column(sa.String(16), nullable=False)  # promote, rollback, repository
    by = sa.Column(sa.String(64), nullable=False)
    at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


class AnswerFeedback(Base):
    """Whether an answer helped, as the student said right after it."""

    __tablename__ = "answer_feedback"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    answer = sa.Column(sa.String(64), nullable=False, index=True)
    helpful = sa.Column(sa.Boolean, nullable=False)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


STAFF_ROLES = ("agent", "admin")


class StaffUser(Base):
    """A person of the support team who signs in to the staff console."""

    __tablename__ = "staff_users"

    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.String(64), nullable=False, unique=True)
    role = sa.Column(sa.String(16), nullable=False, default="agent")
    password_hash = sa.Column(sa.String(255), nullable=False)  # scrypt (staff/passwords.py)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


class StaffSession(Base):
    """A signed-in console session: the cookie holds the token, the table its SHA-256 only."""

    __tablename__ = "staff_sessions"

    id = sa.Column(sa.Integer, primary_key=True)
    token_hash = sa.Column(sa.String(64), nullable=False, unique=True)
    user_id = sa.Column(
        sa.Integer, sa.ForeignKey("staff_users.id", ondelete="CASCADE"), nullable=False
    )
    csrf_token = sa.Column(sa.String(64), nullable=False)
    expires_at = sa.Column(sa.DateTime, nullable=False, index=True)


class TicketNote(Base):
    """An internal note on a ticket, for the team only."""

    __tablename__ = "ticket_notes"

    id = sa.Column(sa.Integer, primary_key=True)
    ticket_id = sa.Column(
        sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False, index=True
    )
    author = sa.Column(sa.String(64), nullable=False)
    text = sa.Column(sa.Text, nullable=False)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


class Takeover(Base):
    """A conversation an agent has taken over from the assistant (staff console, live takeover).

    The primary key is the lock: a second agent's row for the same conversation is refused.
    """

    __tablename__ = "takeovers"

    conversation_id = sa.Column(sa.String(255), primary_key=True)
    ticket_id = sa.Column(
        sa.Integer, sa.ForeignKey("tickets.id", ondelete="CASCADE"), nullable=False
    )
    agent = sa.Column(sa.String(64), nullable=False)
    started_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)
    last_active_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


# What Redis holds for several servers, for several workers of one server without Redis.


class ConversationTurn(Base):
    """A turn's place in its conversation's queue (stores/lock_store.py): lowest id goes first."""

    __tablename__ = "conversation_turns"

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    token = sa.Column(sa.String(64), nullable=False)
    expires = sa.Column(sa.Float, nullable=False)  # epoch seconds


class SharedValue(Base):
    """A small value with an expiry (core/shared_state.py)."""

    __tablename__ = "shared_values"

    key = sa.Column(sa.String(255), primary_key=True)
    value = sa.Column(sa.Text, nullable=False)
    expires = sa.Column(sa.Float, nullable=False, index=True)  # epoch seconds


class LivePush(Base):
    """A message for the widget streams of every worker (channels/live_updates.py)."""

    __tablename__ = "live_pushes"
    __table_args__ = {"sqlite_autoincrement": True}  # ids only grow: workers read after the last

    id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
    conversation_id = sa.Column(sa.String(255), nullable=False)
    payload = sa.Column(sa.Text, nullable=False)
    created = sa.Column(sa.Float, nullable=False)  # epoch seconds


WINDOW_COLUMNS = (
    "started_at",
    "ended_at",
    "outcome",
    "topic",
    "channel",
    "step",
    "flow",
    "flow_step",
)


class SessionOutcome(Base):
    """What one session of a conversation came to (staff/outcomes.py defines the outcomes), kept
    so that the dashboard counts rows instead of replaying every conversation. Recomputed for a
    conversation whenever it has new events; `last_event_id` says how far the events were read."""

    __tablename__ = "session_outcomes"
    __table_args__ = (
        sa.UniqueConstraint("conversation_id", "first_event_id"),
        # What the dashboard counts, in one index: a term's figures read it, not the table.
        sa.Index("ix_session_outcomes_counted", *WINDOW_COLUMNS),
    )

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    first_event_id = sa.Column(sa.Integer, nullable=False)
    last_event_id = sa.Column(sa.Integer, nullable=False, index=True)
    started_at = sa.Column(sa.DateTime, nullable=False)  # UTC, as every time here
    ended_at = sa.Column(sa.DateTime, nullable=False)  # its last event
    channel = sa.Column(sa.String(32), nullable=False)
    topic = sa.Column(sa.String(32), nullable=False)
    outcome = sa.Column(sa.String(32), nullable=False)
    step = sa.Column(sa.String(64), nullable=False)  # where a student gave up, else ""
    flow = sa.Column(sa.String(32), nullable=False)  # the last flow entered, else ""
    flow_step = sa.Column(sa.Integer, nullable=False)  # how many of its steps were reached
    handoff_at = sa.Column(sa.DateTime, nullable=True)
    taken_at = sa.Column(sa.DateTime, nullable=True)
    agent_first_at = sa.Column(sa.DateTime, nullable=True)
    takeover_seconds = sa.Column(sa.Float, nullable=True)
    takeover_end = sa.Column(sa.String(16), nullable=True)


class CannedReply(Base):
    """A short reply the support team keeps ready (with the FAQ's links and numbers), inserted
    while taking over; admins edit them, and each is checked against the FAQ when saved."""

    __tablename__ = "canned_replies"

    id = sa.Column(sa.Integer, primary_key=True)
    title = sa.Column(sa.String(40), nullable=False)
    text = sa.Column(sa.Text, nullable=False)
    updated_by = sa.Column(sa.String(64), nullable=False)
    updated_at = sa.Column(sa.DateTime, nullable=False, default=utcnow)


class AgentRating(Base):
    """Whether the person who helped in a live takeover helped, as the student said right after
    the hand-back (actions/agent_rating.py)."""

    __tablename__ = "agent_ratings"

    id = sa.Column(sa.Integer, primary_key=True)
    conversation_id = sa.Column(sa.String(255), nullable=False, index=True)
    agent = sa.Column(sa.String(64), nullable=False, index=True)
    helpful = sa.Column(sa.Boolean, nullable=False)
    created_at = sa.Column(sa.DateTime, nullable=False, default=utcnow, index=True)
