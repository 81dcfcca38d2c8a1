"""A long conversation's turn reads a checkpoint and the last messages, and answers the same.

The store is checked event by event against Rasa's own whole-session read, and the real servers
are checked reply by reply against a server whose store reads whole sessions (`compact: false`).
"""

import asyncio
import concurrent.futures
import sqlite3
from pathlib import Path

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    ConversationPaused,
    ConversationResumed,
    Event,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from core.db import queries
from harness.databases import migrate
from stores import compaction
from stores.tracker_store import MaskingSQLTrackerStore, compacted_until
from tests.servers import Chat, running

ROOT = Path(__file__).resolve().parents[1]


def turn(number: int) -> list[Event]:
    """The events of one exchange: a form that stays active across several turns, a slot set
    early and kept, an agent's pause, and answers."""
    intent = ("greet", "forgot_password", "inform", "deny")[number % 4]
    events: list[Event] = [
        UserUttered(f"第{number}句 手机 138 0013 8000", {"name": intent, "confidence": 0.9})
    ]
    if number == 2:
        events.append(SlotSet("student_status", "graduate"))
    if number == 5:
        events.append(ActiveLoop("duplicate_id_form"))
    if number == 30:
        events.append(ActiveLoop(None))
    if number == 33:
        events.append(ConversationPaused())
    if number == 36:
        events.append(ConversationResumed())
    if number % 7 == 0:
        events.append(SlotSet("registered_before", number % 2 == 0))
    events += [ActionExecuted(f"utter_step_{number % 5}"), ActionExecuted("action_listen")]
    return events


@pytest.fixture
def store(sqlite_url: str) -> MaskingSQLTrackerStore:
    migrate(sqlite_url)
    return MaskingSQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), host=sqlite_url)


def whole_session(store: MaskingSQLTrackerStore, sender: str) -> DialogueStateTracker:
    tracker = asyncio.run(SQLTrackerStore.retrieve(store, sender))
    assert tracker is not None
    return tracker


def saved(store: MaskingSQLTrackerStore, sender: str, turns: int) -> None:
    """Stores a conversation of `turns` exchanges at once."""
    tracker = DialogueStateTracker(sender, store.domain.slots)
    for number in range(turns):
        for event in turn(number):
            tracker.update(event)
    asyncio.run(store.save(tracker))


def test_a_turn_s_events_are_written_as_rasa_writes_them(
    store: MaskingSQLTrackerStore, tmp_path: Path
) -> None:
    """The store writes a turn's events in one statement: the rows are those Rasa's save writes
    (the same store, so masked alike), column for column, across three saves."""
    migrate(f"sqlite:///{tmp_path / 'rasa.db'}")
    rasa_s = MaskingSQLTrackerStore(store.domain, host=f"sqlite:///{tmp_path / 'rasa.db'}")
    ours = DialogueStateTracker("writer", store.domain.slots)
    theirs = DialogueStateTracker("writer", store.domain.slots)
    for part in (range(0, 3), range(3, 8), range(8, 40)):
        for number in part:
            for event in turn(number):
                ours.update(event)
                theirs.update(event)
        asyncio.run(store.save(ours))
        asyncio.run(SQLTrackerStore.save(rasa_s, theirs))

    def rows(url: str) -> list[tuple]:
        with sqlite3.connect(url) as db:
            return db.execute(
                "SELECT sender_id, type_name, timestamp, intent_name, action_name, data"
                " FROM events ORDER BY id"
            ).fetchall()

    written = rows(store.engine.url.database)
    assert len(written) == len(ours.events) > 100
    assert written == rows(rasa_s.engine.url.database)
    assert {row[1] for row in written} >= {"user", "action", "slot", "active_loop", "pause"}


def test_boundary_keeps_the_last_messages_and_waits_until_enough_have_gathered() -> None:
    kinds = ["action", "user", "action", "action"] * compaction.COMPACT_AFTER
    assert compaction.boundary(kinds) is None
    kinds += ["user", "action"]
    cut = compaction.boundary(kinds)
    assert cut is not None and kinds[cut] == "user"
    assert kinds[cut:].count("user") == compaction.KEEP_USER_MESSAGES


def test_a_long_conversation_reads_short_and_holds_the_same_state(
    store: MaskingSQLTrackerStore,
) -> None:
    domain = store.domain
    sender = "long-conversation"
    total = 0
    for number in range(60):
        tracker = asyncio.run(store.retrieve(sender)) or DialogueStateTracker(sender, domain.slots)
        for event in turn(number):
            tracker.update(event)
        total += len(turn(number))
        asyncio.run(store.save(tracker))

        compacted = asyncio.run(store.retrieve(sender))
        whole = whole_session(store, sender)
        assert compacted is not None
        # everything is stored once, in order; the turn reads little
        assert len(whole.events) == total
        assert [e.type_name for e in whole.events][-12:] == [e.type_name for e in compacted.events][
            -12:
        ]
        users = sum(isinstance(e, UserUttered) for e in compacted.events)
        assert users <= compaction.COMPACT_AFTER
        # and what a turn's answer depends on is the same
        assert compacted.current_slot_values() == whole.current_slot_values()
        assert compacted.active_loop == whole.active_loop
        assert compacted.is_paused() == whole.is_paused()
        assert compacted.latest_message == whole.latest_message
        assert compacted.latest_action == whole.latest_action
        assert compacted.past_states(domain)[-6:] == whole.past_states(domain)[-6:]

    assert compacted_until(compacted) is not None  # it was compacted
    # stored masked, checkpoint included; the checkpoint holds no personal data
    with sqlite3.connect(store.engine.url.database) as db:
        texts = [row[0] for row in db.execute("SELECT data FROM events")]
        (state,) = db.execute("SELECT state FROM conversation_checkpoints").fetchone()
    assert not any("138 0013 8000" in text for text in texts)
    assert "138" not in state and '"student_status": "graduate"' in state


def test_a_new_session_is_read_whole_and_an_old_checkpoint_is_ignored(
    store: MaskingSQLTrackerStore,
) -> None:
    sender = "new-session"
    saved(store, sender, 40)
    assert compacted_until(asyncio.run(store.retrieve(sender))) is not None

    tracker = asyncio.run(store.retrieve(sender))
    for event in [ActionExecuted("action_session_start"), SessionStarted(), *turn(1)]:
        tracker.update(event)
    asyncio.run(store.save(tracker))
    fresh = asyncio.run(store.retrieve(sender))
    assert compacted_until(fresh) is None
    assert [e.type_name for e in fresh.events] == [
        e.type_name for e in whole_session(store, sender).events
    ]
    assert fresh.get_slot("student_status") is None  # slots of the old session are not carried


def test_the_steps_before_a_checkpoint_are_read_from_the_database(
    store: MaskingSQLTrackerStore, sqlite_url: str, monkeypatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    sender = "steps"
    saved(store, sender, 20)
    compacted = asyncio.run(store.retrieve(sender))
    position, until = compacted_until(compacted)
    steps = queries.session_steps_until(sender, until)
    whole = whole_session(store, sender)
    expected = [
        (e.type_name, e.intent_name if isinstance(e, UserUttered) else e.action_name)
        for e in list(whole.events)[: len(whole.events) - (len(compacted.events) - position - 1)]
        if isinstance(e, UserUttered | ActionExecuted)
    ]
    assert steps == expected and steps[0] == ("user", "greet")


# A long conversation as a student might have it, written for this test: flows begun, broken off,
# taken up again, the duplicate-ID form answered across many turns, then a handoff.
LONG_CHAT = [
    "你好呀",
    "学信网的密码记不得了",
    "/affirm",
    "还有个问题",
    "注册学信网提示身份证已经被注册了怎么办",
    "1",
    "我之前没注册过",
    "已经毕业了",
    "谢谢你",
    "用户名也想不起来了",
    "/self_service_failed",
    "我在读研究生",
    "今天食堂吃什么",
    "怎么核验身份",
    "途径一要准备什么材料",
    "我还是在校生",
    "重新注册以后旧账号会怎样",
    "好的明白了",
    "你是机器人吗",
    "注册时候显示证件号码重复待审核",
    "审核需要几天啊",
    "以前好像注册过",
    "嗯嗯",
    "手机号换了密码找不回来",
    "/self_service_failed",
    "好",
    "账号问题",
    "忘了密码",
    "/affirm",
    "再问一下身份证被注册的事",
    "2",
    "没有注册过",
    "我是往届毕业生",
    "谢啦",
    "用户名和密码全忘了",
    "还是登录不上",
    "人工客服在吗",
    "好的谢谢",
    "拜拜",
]


def new_database(tmp: Path) -> Path:
    tmp.mkdir()
    migrate(f"sqlite:///{tmp / 'assistant.db'}")  # Alembic's context is global: one at a time
    return tmp / "assistant.db"


def chat_through(model_path: Path, database: Path, compact: bool) -> tuple[list[str], list[tuple]]:
    tmp = database.parent
    with running(model_path, tmp, {"DATABASE_URL": f"sqlite:///{database}"}, compact=compact) as s:
        chat = Chat(s.rasa[0], sender="long-chat")
        replies = [chat.say(text) for text in LONG_CHAT]
    with sqlite3.connect(database) as db:
        tickets = list(db.execute("SELECT topic, path, summary FROM tickets ORDER BY id"))
        checkpoints = db.execute("SELECT count(*) FROM conversation_checkpoints").fetchone()[0]
    assert checkpoints == (1 if compact else 0)
    return replies, tickets


def test_a_long_conversation_gets_the_same_answers_as_from_whole_sessions(
    model_path: Path, tmp_path: Path
) -> None:
    with concurrent.futures.ThreadPoolExecutor(2) as both:  # two server sets, side by side
        compact = both.submit(chat_through, model_path, new_database(tmp_path / "compact"), True)
        whole_db = new_database(tmp_path / "whole")
        read_whole = both.submit(chat_through, model_path, whole_db, False)
        (compacted, compacted_tickets), (whole, whole_tickets) = (
            compact.result(),
            read_whole.result(),
        )
    for number, (text, mine, theirs) in enumerate(zip(LONG_CHAT, compacted, whole, strict=True)):
        assert mine == theirs, f"turn {number + 1} ({text}) answered differently"
    assert compacted_tickets == whole_tickets and compacted_tickets
    # the ticket describes the problem handed off last, from where it began: not the ID-number
    # questions earlier in the conversation (steps before a checkpoint are read from the
    # database alike: test_the_steps_before_a_checkpoint_are_read_from_the_database)
    topic, path, summary = compacted_tickets[0]
    assert topic == "both" and path.startswith("用户名和密码都忘了 → 已给找回用户名和密码的方法")
    assert "证件号码" not in path + summary
