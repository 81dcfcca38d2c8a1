"""The project's tables through core.db.queries, on SQLite and on PostgreSQL, migrated by
Alembic."""

import subprocess
import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from core.db import queries
from core.db.engine import engine
from harness.databases import alembic
from harness.servers import project_command
from stores.tracker_store import CHECKPOINTS


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, monkeypatch) -> str:
    url = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def staff(url: str, *args: str) -> subprocess.CompletedProcess:
    return project_command("python", "-m", "staff", *args, env={"DATABASE_URL": url}, timeout=60)


@pytest.mark.processes
def test_migrations_create_the_tables_and_run_again_without_change(database: str) -> None:
    tables = set(sa.inspect(engine()).get_table_names())
    expected = {"tickets", "unanswered_questions", "answer_feedback", "review_messages"}
    assert expected | {"alembic_version"} <= tables
    result = alembic(database, "upgrade", "head")
    assert result.returncode == 0, result.stderr
    current = alembic(database, "current")
    assert "0008 (head)" in current.stdout


def test_a_conversation_keeps_one_ticket_until_it_is_resolved(database: str) -> None:
    first = queries.open_ticket("conv-a", "rest", "password", "忘记密码", "问题：忘记密码")
    again = queries.open_ticket("conv-a", "rest", "password", "忘记密码 → 联系学信网客服", "更新")
    other = queries.open_ticket("conv-b", "socketio", "duplicate_id", "注册时身份证号重复", "x")
    assert again == first and other != first
    ticket = queries.get_ticket(first)
    assert ticket.path == "忘记密码 → 联系学信网客服" and ticket.summary == "更新"
    assert queries.change_status(first, "claimed", staff="wang").claimed_by == "wang"
    assert queries.change_status(first, "resolved").status == "resolved"
    # resolved: the conversation's next handoff is a new ticket
    assert queries.open_ticket("conv-a", "rest", "password", "p", "s") not in (first, other)
    assert [t.id for t in queries.list_tickets(status="resolved")] == [first]


def test_status_changes_follow_open_claimed_resolved(database: str) -> None:
    number = queries.open_ticket("conv-c", "rest", "", "", "")
    with pytest.raises(ValueError, match="cannot become open"):
        queries.change_status(number, "open")
    queries.change_status(number, "resolved")
    with pytest.raises(ValueError, match="cannot become claimed"):
        queries.change_status(number, "claimed")
    with pytest.raises(ValueError, match="no ticket"):
        queries.change_status(number + 1000, "claimed")


def test_unanswered_questions_are_counted_by_text(database: str) -> None:
    queries.record_unanswered("学信网  能查四六级成绩吗")
    queries.record_unanswered("学信网 能查四六级成绩吗")  # same text once whitespace is folded
    queries.record_unanswered("asdfgh")
    queries.record_unanswered("   ")
    top = queries.top_unanswered(10)
    assert [(text, count) for text, count, _ in top] == [
        ("学信网 能查四六级成绩吗", 2),
        ("asdfgh", 1),
    ]


def test_feedback_is_summed_per_answer(database: str) -> None:
    for helpful in (True, True, False):
        queries.record_feedback("conv-d", "utter_forgot_password", helpful)
    queries.record_feedback("conv-e", "utter_forgot_username", False)
    counts = {
        c.answer: (c.helpful, c.not_helpful, round(c.rate, 2)) for c in queries.feedback_by_answer()
    }
    assert counts == {"utter_forgot_password": (2, 1, 0.67), "utter_forgot_username": (0, 1, 0.0)}


def test_purge_deletes_old_conversations_and_keeps_unresolved_tickets(database: str) -> None:
    from rasa.core.tracker_store import SQLTrackerStore

    SQLTrackerStore.Base.metadata.create_all(engine())  # Rasa's events table, as Rasa makes it
    events = SQLTrackerStore.SQLEvent.__table__
    now = time.time()
    with engine().begin() as connection:
        for sender, age_days in (("old", 120), ("old", 100), ("recent", 100), ("recent", 1)):
            connection.execute(
                events.insert().values(
                    sender_id=sender, type_name="user", timestamp=now - age_days * 86400, data="{}"
                )
            )
    checkpoints = CHECKPOINTS  # made with the events table: a long conversation's checkpoint
    with engine().begin() as connection:
        for sender in ("old", "recent"):
            connection.execute(
                checkpoints.insert().values(
                    conversation_id=sender, until_id=1, until_timestamp=now, state="{}"
                )
            )
    kept = queries.open_ticket("old", "rest", "", "", "")
    done = queries.purge_older_than(90)
    assert (done.conversations, done.events) == (1, 2)
    with engine().connect() as connection:
        left = connection.execute(sa.select(events.c.sender_id)).scalars().all()
        left_checkpoints = connection.execute(sa.select(checkpoints.c.conversation_id)).scalars()
        assert list(left_checkpoints) == ["recent"]
    assert sorted(left) == ["recent", "recent"]
    assert queries.get_ticket(kept) is not None
    # a resolved ticket past the retention period goes
    queries.change_status(kept, "resolved")
    assert queries.purge_older_than(90, now=datetime.utcnow() + timedelta(days=91)).tickets == 1


def test_a_purged_ticket_takes_its_notes_along(database: str) -> None:
    from core.db import staff as staff_queries

    number = queries.open_ticket("noted", "rest", "password", "忘记密码", "问题：忘记密码")
    staff_queries.add_note(number, "wang", "打过电话")
    other = queries.open_ticket("kept", "rest", "password", "忘记密码", "问题：忘记密码")
    staff_queries.add_note(other, "wang", "还在处理")
    queries.change_status(number, "resolved")
    later = datetime.utcnow() + timedelta(days=91)
    assert queries.purge_older_than(90, now=later).tickets == 1
    assert staff_queries.notes(number) == []
    assert [text for _, text, _ in staff_queries.notes(other)] == ["还在处理"]


@pytest.mark.processes
def test_staff_command_line(database: str) -> None:
    number = queries.open_ticket(
        "wx:abc",
        "wechat",
        "duplicate_id",
        "注册时身份证号重复",
        "问题：注册时身份证号重复\n身份：毕业生",
    )
    listed = staff(database, "tickets", "list")
    assert listed.returncode == 0 and f"{number}  open" in listed.stdout
    shown = staff(database, "tickets", "show", str(number))
    assert "wx:abc" in shown.stdout and "身份：毕业生" in shown.stdout
    claimed = staff(database, "tickets", "claim", str(number), "--by", "li")
    assert claimed.returncode == 0 and "[claimed]  claimed by li" in claimed.stdout
    assert staff(database, "tickets", "claim", str(number)).returncode == 1  # already claimed
    assert "[resolved]" in staff(database, "tickets", "resolve", str(number)).stdout
    missing = staff(database, "tickets", "show", "99999")
    assert missing.returncode == 1 and "no ticket 99999" in missing.stderr
    queries.record_unanswered("能帮我查成绩吗")
    queries.record_feedback("wx:abc", "utter_forgot_password", True)
    report = staff(database, "report").stdout
    assert "能帮我查成绩吗" in report and "utter_forgot_password" in report and "100%" in report
    assert "deleted 0 conversations" in staff(database, "purge", "--days", "30").stdout


@pytest.mark.processes
def test_purge_refuses_a_period_that_would_delete_everything(database: str) -> None:
    queries.open_ticket("rest-student", "rest", "forgot_password", "忘记密码", "问题：忘记密码")
    for days in ("-1", "0"):
        refused = staff(database, "purge", "--days", days)
        assert refused.returncode == 2 and "at least 1 day" in refused.stderr
    assert "forgot_password" in staff(database, "tickets", "list").stdout  # nothing deleted


@pytest.mark.processes
def test_the_staff_terminal_never_receives_control_characters(database: str) -> None:
    queries.record_unanswered("清屏\x1b[2J\x1b]0;owned\x07\r伪造")
    number = queries.open_ticket(
        "old\nsender\x1b[31m",
        "rest",
        "duplicate_id",
        "注册时身份证号重复",
        "问题：注册时身份证号重复",
    )
    for output in (
        staff(database, "report").stdout,
        staff(database, "tickets", "show", str(number)).stdout,
    ):
        assert "\x1b" not in output and "\x07" not in output and "\r" not in output
    assert "\\x1b[2J" in staff(database, "report").stdout  # shown, not obeyed
