"""Each outcome on hand-made sessions; the figures, the funnel and the report from a scripted set
of conversations stored as the Rasa server stores them."""

import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActiveLoop,
    BotUttered,
    ConversationPaused,
    ConversationResumed,
    Event,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

from core.db.engine import session_scope
from core.db.models import SessionOutcome
from staff import outcomes
from stores.tracker_store import MaskingSQLTrackerStore

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc).timestamp()  # a Monday, 17:00 in Shanghai


def said(intent: str, text: str = "……", channel: str = "rest") -> UserUttered:
    return UserUttered(text, {"name": intent, "confidence": 0.9}, input_channel=channel)


def did(name: str) -> ActionExecuted:
    return ActionExecuted(name)


def session(*events: Event) -> list[Event]:
    """A session as Rasa stores it when the channel sends metadata (the widget does): the
    metadata's slot, its start, then the events, each turn ending in a listen."""
    return [
        SlotSet("session_started_metadata", {"client": "widget"}),
        did("action_session_start"),
        SessionStarted(),
        did("action_listen"),
        *events,
    ]


def turn(intent: str, *answers: Event, channel: str = "rest") -> list[Event]:
    return [said(intent, channel=channel), *answers, did("action_listen")]


def rows(events: list[Event], start: float = T0, step: float = 20.0) -> list[outcomes.Row]:
    found = []
    for number, event in enumerate(events):
        event.timestamp = start + number * step
        found.append((number + 1, event.timestamp, event.as_dict()))
    return found


def one(*events: Event) -> outcomes.Session:
    found = outcomes.sessions_of("c", rows(session(*events)))
    assert len(found) == 1
    return found[0]


PASSWORD = [SlotSet("topic", "password")]
ANSWER = [did("utter_forgot_password")]


def test_the_student_saying_it_helped_is_a_confirmed_resolution() -> None:
    found = one(
        *turn("forgot_password", *PASSWORD, *ANSWER),
        *turn("affirm", did("action_record_feedback"), did("utter_glad")),
    )
    assert (found.outcome, found.topic, found.channel) == ("resolved_confirmed", "password", "rest")
    assert (found.flow, found.flow_step) == ("account", 4)


def test_an_answer_with_nothing_after_it_is_an_assumed_resolution() -> None:
    found = one(*turn("forgot_password", *PASSWORD, *ANSWER))
    assert (found.outcome, found.step, found.flow_step) == ("resolved_assumed", "", 2)


def test_a_no_to_did_it_help_without_going_further_is_giving_up_after_the_answer() -> None:
    found = one(
        *turn("forgot_password", *PASSWORD, *ANSWER),
        *turn("deny", did("action_record_feedback"), did("utter_offer_handoff")),
    )
    assert (found.outcome, found.step, found.flow_step) == ("gave_up", "answer_failed", 3)


def test_a_message_read_again_as_yes_counts_as_the_yes() -> None:
    from rasa.shared.core.events import UserUtteranceReverted

    found = one(
        *turn("forgot_password", *PASSWORD, *ANSWER),
        said("forgot_username"),  # 「可以了，原来用户名是手机号」 read alone…
        UserUtteranceReverted(),  # …then read again as the answer to "找回了吗？"
        *turn("affirm", did("action_record_feedback")),
    )
    assert found.outcome == "resolved_confirmed"


def test_contacts_given_are_a_handoff_and_beat_an_earlier_yes() -> None:
    found = one(
        *turn("forgot_password", *PASSWORD, *ANSWER),
        *turn("affirm", did("action_record_feedback")),
        *turn(
            "request_human",
            did("utter_handoff"),
            did("action_create_handoff_ticket"),
            did("utter_ticket_created"),
        ),
    )
    assert found.outcome == "handed_off"
    assert found.handoff_at == outcomes.utc(T0 + 12 * 20)  # its 13th event


def test_an_agent_joining_is_a_takeover_with_its_wait_length_and_end() -> None:
    events = session(
        *turn("request_human", did("utter_handoff"), did("action_create_handoff_ticket")),
        ConversationPaused(),
        BotUttered("已为你转接人工客服", metadata={"takeover": "note"}),
        BotUttered("同学你好", metadata={"takeover": "agent", "agent": "wang"}),
        BotUttered("工作人员暂时没有回复", metadata={"takeover": "note", "ended": "timeout"}),
        ConversationResumed(),
    )
    found = outcomes.sessions_of("c", rows(events, step=60.0))[0]
    assert found.outcome == "taken_over" and found.takeover_end == "timed_out"
    assert found.agent_first_at - found.handoff_at == timedelta(minutes=5)
    assert found.takeover_seconds == 240.0  # paused at 8 min, resumed at 12


def test_a_takeover_still_running_is_open() -> None:
    found = one(*turn("request_human", did("utter_handoff")), ConversationPaused())
    assert (found.outcome, found.takeover_end, found.takeover_seconds) == (
        "taken_over",
        "open",
        None,
    )


def test_leaving_a_form_unanswered_is_giving_up_at_its_question() -> None:
    found = one(
        *turn(
            "duplicate_id",
            did("duplicate_id_form"),
            ActiveLoop("duplicate_id_form"),
            SlotSet("topic", "duplicate_id"),
            SlotSet("requested_slot", "id_error"),
        ),
        *turn(
            "error_pending_review",
            SlotSet("id_error", "pending_review"),
            did("duplicate_id_form"),
            SlotSet("requested_slot", "registered_before"),
        ),
    )
    assert (found.outcome, found.step) == ("gave_up", "registered_before")
    assert (found.flow, found.flow_step, found.topic) == ("duplicate_id", 2, "duplicate_id")


def test_ending_on_a_message_not_understood_is_not_understood() -> None:
    found = one(
        *turn("forgot_username", SlotSet("topic", "username"), did("utter_forgot_username")),
        *turn("nlu_fallback", did("action_clarify"), did("utter_please_rephrase")),
    )
    assert found.outcome == "not_understood"


def test_a_greeting_alone_is_not_a_question_and_a_question_left_unanswered_is_giving_up() -> None:
    assert one(*turn("greet", did("utter_greet"))).outcome == "no_question"
    assert one(*turn("out_of_scope", did("utter_out_of_scope"))).outcome == "no_question"
    found = one(*turn("registered_before", did("utter_status_noted")))
    assert (found.outcome, found.step) == ("gave_up", "no_answer")


def test_coming_back_with_the_same_topic_within_a_day_undoes_the_assumed_resolution() -> None:
    asked = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    again = rows(asked) + [
        (100 + n, T0 + 3600 * 5 + n, e.as_dict())
        for n, e in enumerate(session(*turn("forgot_password", *PASSWORD, *ANSWER)))
    ]
    first, second = outcomes.sessions_of("c", again)
    assert (first.outcome, first.step) == ("gave_up", "came_back")
    assert second.outcome == "resolved_assumed"
    other = rows(asked) + [
        (100 + n, T0 + 3600 * 5 + n, e.as_dict())
        for n, e in enumerate(session(*turn("forgot_username", SlotSet("topic", "username"))))
    ]
    assert outcomes.sessions_of("c", other)[0].outcome == "resolved_assumed"  # another topic
    later = rows(asked) + [
        (100 + n, T0 + 3600 * 30 + n, e.as_dict())
        for n, e in enumerate(session(*turn("forgot_password", *PASSWORD, *ANSWER)))
    ]
    assert outcomes.sessions_of("c", later)[0].outcome == "resolved_assumed"  # a day later


def test_a_conversation_s_sessions_are_cut_at_each_session_start() -> None:
    events = [
        *session(*turn("greet", did("utter_greet"))),
        *session(*turn("forgot_password", *PASSWORD, *ANSWER)),
        Restarted(),  # a restart inside a session does not make a new one
        *turn("greet", did("utter_greet")),
    ]
    first, second = outcomes.sessions_of("c", rows(events))
    assert first.outcome == "no_question" and first.last_event_id == 7
    assert second.first_event_id == 8 and second.outcome == "resolved_assumed"
    assert second.started_at - first.ended_at == timedelta(seconds=20)  # not the next start


def test_every_name_the_definitions_use_is_in_the_domain(domain) -> None:
    responses, actions = set(domain["responses"]), set(domain["actions"])
    named = set(outcomes.ANSWERS) | {outcomes.HANDOFF}
    assert named <= responses, named - responses
    assert outcomes.FEEDBACK in actions
    intents = set(domain["intents"]) | {"nlu_fallback", ""}
    assert intents >= outcomes.NOT_A_QUESTION
    for _, steps in outcomes.FLOWS.values():
        for _, step in steps:
            for mark in step:
                kind, _, name = mark.partition(":")
                assert {
                    "intent": name in intents,
                    "action": name in responses | actions,
                    "slot": name in domain["slots"],
                    "loop": name in domain["forms"],
                    "helped": True,
                }[kind], mark


# ---- stored, refreshed, counted ------------------------------------------------------------


def store_conversation(store: MaskingSQLTrackerStore, sender: str, events: list[Event]) -> None:
    tracker = DialogueStateTracker(sender, store.domain.slots)
    for event in events:
        tracker.update(event)
    asyncio.run(store.save(tracker))


def account(helped: int, feedback: int, asked: int, channel: str) -> list[list[Event]]:
    """`asked` password conversations: all answered, `feedback` said whether it worked, `helped`
    said yes."""
    found = []
    for number in range(asked):
        events = session(*turn("forgot_password", *PASSWORD, *ANSWER, channel=channel))
        if number < feedback:
            intent = "affirm" if number < helped else "deny"
            events += turn(intent, did("action_record_feedback"), channel=channel)
        found.append(events)
    return found


def duplicate(started: int, said_error: int, said_before: int) -> list[list[Event]]:
    found = []
    for number in range(started):
        events = session(
            *turn(
                "duplicate_id",
                did("duplicate_id_form"),
                ActiveLoop("duplicate_id_form"),
                SlotSet("topic", "duplicate_id"),
                SlotSet("requested_slot", "id_error"),
            )
        )
        if number < said_error:
            events += turn(
                "error_already_registered",
                SlotSet("id_error", "already_registered"),
                SlotSet("requested_slot", "registered_before"),
            )
        if number < said_before:
            events += turn(
                "affirm",
                SlotSet("registered_before", True),
                ActiveLoop(None),
                SlotSet("requested_slot", None),
                did("utter_already_registered_before"),
            )
        found.append(events)
    return found


@pytest.fixture
def stored(sqlite_url: str, monkeypatch) -> MaskingSQLTrackerStore:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return MaskingSQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), host=sqlite_url)


def test_the_figures_count_outcomes_rates_and_the_funnel_s_worst_step(stored) -> None:
    conversations = [
        *account(helped=3, feedback=4, asked=6, channel="wechat"),
        *duplicate(started=5, said_error=4, said_before=2),
        session(*turn("greet", did("utter_greet"))),
    ]
    for number, events in enumerate(conversations):
        for position, event in enumerate(events):
            event.timestamp = T0 + number * 600 + position
        store_conversation(stored, f"s{number}", events)
    assert outcomes.refresh() == len(conversations)
    assert outcomes.refresh() == 0  # nothing new: nothing read again

    since = datetime(2026, 11, 2, tzinfo=ZoneInfo("Asia/Shanghai"))
    found = outcomes.figures(since, since + timedelta(days=7), now=datetime(2026, 11, 20))
    assert found.outcomes == {
        "resolved_confirmed": 3,
        "resolved_assumed": 2 + 2,  # two password answers without a reply, two duplicate-ID
        "gave_up": 1 + 3,  # one "no, it did not help", three left in the form
        "no_question": 1,
    }
    assert (found.total.counted, found.total.resolved) == (11, 7)
    assert found.topics["password"].resolution == pytest.approx(5 / 6)
    assert found.channels["wechat"].counted == 6 and found.channels["rest"].counted == 5
    assert found.days == {"2026-11-02": found.total}  # 17:00 onwards in Shanghai, one day
    assert found.funnels == {
        "account": [6, 6, 4, 3],
        "duplicate_id": [5, 4, 2, 2],
        "route3": [0] * 3,
    }
    assert found.worst_steps() == {
        "account": ("回答了是否找回", 2),
        "duplicate_id": ("说了以前是否注册过", 2),
    }
    assert found.gave_up == {"answer_failed": 1, "id_error": 1, "registered_before": 2}
    report = "\n".join(outcomes.report_lines(found))
    assert "resolution rate 64% (7 of 11 sessions counted)" in report
    assert "最多人离开：注册时证件号码重复 在「说了以前是否注册过」之前（2 个会话）" in report


def test_only_conversations_with_new_events_are_read_again_and_their_rows_replaced(
    stored, monkeypatch
) -> None:
    first = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    for position, event in enumerate(first):
        event.timestamp = T0 + position
    store_conversation(stored, "a", first)
    store_conversation(stored, "b", session(*turn("greet", did("utter_greet"))))
    assert outcomes.refresh() == 2
    more = [*first, *turn("affirm", did("action_record_feedback"))]
    store_conversation(stored, "a", more)  # the same student says it worked
    assert outcomes.refresh(max_conversations=5) == 1
    monkeypatch.setattr(outcomes, "REFRESH_BATCH", 2)  # batch after batch until all are read
    for sender in ("c", "d", "e"):
        store_conversation(stored, sender, session(*turn("greet", did("utter_greet"))))
    assert outcomes.refresh() == 3
    with session_scope() as db:
        kept = db.execute(
            sa.select(SessionOutcome.conversation_id, SessionOutcome.outcome).order_by(
                SessionOutcome.conversation_id
            )
        ).all()
    assert [tuple(row) for row in kept] == [
        ("a", "resolved_confirmed"),
        ("b", "no_question"),
        ("c", "no_question"),
        ("d", "no_question"),
        ("e", "no_question"),
    ]


def test_recent_sessions_are_open_and_recent_assumptions_pending(stored) -> None:
    events = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    for position, event in enumerate(events):
        event.timestamp = T0 + position
    store_conversation(stored, "a", events)
    outcomes.refresh()
    since = datetime(2026, 11, 2, tzinfo=ZoneInfo("Asia/Shanghai"))
    until = since + timedelta(days=1)
    counted = {
        after: outcomes.figures(since, until, now=outcomes.utc(T0) + after).outcomes
        for after in (timedelta(minutes=30), timedelta(hours=3), timedelta(hours=25))
    }
    assert counted[timedelta(minutes=30)] == {"open": 1}
    assert counted[timedelta(hours=3)] == {"pending": 1}
    assert counted[timedelta(hours=25)] == {"resolved_assumed": 1}


@pytest.mark.processes  # matplotlib may run fc-list to build its font cache
def test_the_weekly_report_prints_the_figures_and_writes_the_charts(
    stored, tmp_path, capsys
) -> None:
    from staff.__main__ import main

    now = datetime.now(timezone.utc).timestamp() - 2 * 86400
    events = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    for position, event in enumerate(events):
        event.timestamp = now + position
    store_conversation(stored, "a", events)
    assert main(["report", "--week", "--charts", str(tmp_path / "charts")]) == 0
    printed = capsys.readouterr().out
    assert "resolution rate 100% (1 of 1 sessions counted)" in printed
    assert "(Asia/Shanghai)" in printed
    for chart in ("days", "funnel"):
        assert (tmp_path / "charts" / f"outcomes-{chart}.svg").read_text().startswith("<?xml")
    assert main(["report", "--days", "0"]) == 0  # the old report: unanswered and feedback
    assert main(["report", "--days", "400"]) == 2


def test_the_console_shows_stored_times_in_the_team_s_zone(monkeypatch) -> None:
    from staff.pages import local

    stored = datetime(2026, 11, 2, 17, 30)  # naive UTC, as every stored time
    assert local(stored) == "2026-11-03 01:30"  # Asia/Shanghai by default
    monkeypatch.setenv("TEAM_TIMEZONE", "Europe/Berlin")
    assert local(stored, "%H:%M") == "18:30"
    monkeypatch.setenv("TEAM_TIMEZONE", "Mars/Olympus")  # refused: the default, not a crash
    assert local(stored, "%H:%M") == "01:30" and local(None) == "-"


@pytest.mark.parametrize(
    "ended, end", [("agent", "handed_back"), ("resolved", "resolved"), ("timeout", "timed_out")]
)
def test_how_a_takeover_ended_is_read_from_its_hand_back_note(ended: str, end: str) -> None:
    found = one(
        *turn("request_human", did("utter_handoff")),
        ConversationPaused(),
        BotUttered("……", metadata={"takeover": "note", "ended": ended}),
        ConversationResumed(),
    )
    assert (found.outcome, found.takeover_end) == ("taken_over", end)


def test_a_rating_of_an_agent_is_no_question_and_a_greeting_does_not_hide_a_return() -> None:
    rated = one(
        *turn("nlu_fallback", did("action_record_agent_rating"), did("utter_rating_thanks"))
    )
    assert rated.outcome == "no_question"  # "1" after a hand-back: not "not understood"
    asked = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    greeted = session(*turn("greet", did("utter_greet")))
    again = session(*turn("forgot_password", *PASSWORD, *ANSWER))
    events = rows(asked) + [
        (100 * (n + 1) + k, T0 + 3600 * (n + 1) * 2 + k, e.as_dict())
        for n, part in enumerate((greeted, again))
        for k, e in enumerate(part)
    ]
    first, between, last = outcomes.sessions_of("c", events)
    assert (first.outcome, first.step) == ("gave_up", "came_back")
    assert between.outcome == "no_question" and last.outcome == "resolved_assumed"


@pytest.fixture(params=["sqlite", "postgres"])
def stored_anywhere(request, monkeypatch) -> MaskingSQLTrackerStore:
    url = request.getfixturevalue(f"{request.param}_url")
    monkeypatch.setenv("DATABASE_URL", url)
    return MaskingSQLTrackerStore(Domain.load(str(ROOT / "domain.yml")), host=url)


def test_refreshes_at_once_take_turns_and_leave_one_row_per_session(stored_anywhere) -> None:
    import concurrent.futures

    stored = stored_anywhere

    for number in range(12):
        store_conversation(stored, f"t{number}", session(*turn("greet", did("utter_greet"))))
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # the page and its two charts
        list(pool.map(lambda _: outcomes.refresh(), range(3)))  # none raises
    outcomes.refresh()  # whatever one of them left, the next picks up
    with session_scope() as db:
        kept = db.execute(sa.select(SessionOutcome.conversation_id)).scalars().all()
    assert sorted(kept) == sorted(f"t{number}" for number in range(12))
