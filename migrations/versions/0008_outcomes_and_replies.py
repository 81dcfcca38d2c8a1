"""what each conversation session came to (staff/outcomes.py); the team's canned replies;
the students' ratings of the agents who helped them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "session_outcomes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("first_event_id", sa.Integer(), nullable=False),
        sa.Column("last_event_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("topic", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("flow_step", sa.Integer(), nullable=False),
        sa.Column("handoff_at", sa.DateTime(), nullable=True),
        sa.Column("taken_at", sa.DateTime(), nullable=True),
        sa.Column("agent_first_at", sa.DateTime(), nullable=True),
        sa.Column("takeover_seconds", sa.Float(), nullable=True),
        sa.Column("takeover_end", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("conversation_id", "first_event_id"),
    )
    op.create_index("ix_session_outcomes_conversation_id", "session_outcomes", ["conversation_id"])
    op.create_index("ix_session_outcomes_last_event_id", "session_outcomes", ["last_event_id"])
    op.create_index(
        "ix_session_outcomes_counted",
        "session_outcomes",
        ["started_at", "ended_at", "outcome", "topic", "channel", "step", "flow", "flow_step"],
    )
    op.create_table(
        "canned_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=40), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "agent_ratings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("agent", sa.String(length=64), nullable=False),
        sa.Column("helpful", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agent_ratings_conversation_id", "agent_ratings", ["conversation_id"])
    op.create_index("ix_agent_ratings_agent", "agent_ratings", ["agent"])
    op.create_index("ix_agent_ratings_created_at", "agent_ratings", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_agent_ratings_created_at", table_name="agent_ratings")
    op.drop_index("ix_agent_ratings_agent", table_name="agent_ratings")
    op.drop_index("ix_agent_ratings_conversation_id", table_name="agent_ratings")
    op.drop_table("agent_ratings")
    op.drop_table("canned_replies")
    op.drop_index("ix_session_outcomes_counted", table_name="session_outcomes")
    op.drop_index("ix_session_outcomes_last_event_id", table_name="session_outcomes")
    op.drop_index("ix_session_outcomes_conversation_id", table_name="session_outcomes")
    op.drop_table("session_outcomes")
