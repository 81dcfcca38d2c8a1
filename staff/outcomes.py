"""What each conversation came to: the outcomes, defined once, and the figures counted from them.

A conversation is cut into its sessions (Rasa starts a new one after 60 minutes of silence:
`domain.yml`). Each session gets one outcome, the first of these that holds:

- **taken_over**: an agent joined (the console's takeover paused the conversation);
- **handed_off**: the assistant gave the contacts and opened a ticket (`utter_handoff`);
- **resolved_confirmed**: the student said an answer helped (their yes to "找回了吗？", recorded
  by `action_record_feedback`);
- **not_understood**: the session ended on a message the assistant did not understand;
- **gave_up**: the student left in the middle of a flow (a form still asking: the step is the
  question left unanswered), said the answer did not help and went no further ("answer_failed"),
  or came back within 24 hours with the same topic ("came_back");
- **resolved_assumed**: an answer was given, and none of the above;
- **no_question**: nothing asked that the assistant answers (a greeting, an empty session): not
  counted in the rates.

The resolution rate is (confirmed + assumed) ÷ the sessions counted; the handoff rate (handed off
+ taken over) ÷ the same. An assumed resolution is final only when 24 hours have passed without
the student coming back (until then it is "pending"), and a session whose last event is less than
an hour old is still "open": neither is counted yet.

Why here, in Python over the tracker store's events, and not Rasa's markers (`rasa evaluate
markers`): markers read one tracker at a time and cannot see the next session of the same
student (the 24 hours), and replaying every tracker each time is what a dashboard must not do.
The outcome of each session is kept in `session_outcomes`; `refresh()` reads only conversations
with new events, so the pages count rows.
"""

from __future__ import annotations

import io
import json
import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import sqlalchemy as sa

from core import settings
from core.answers import HELPFUL_INTENTS
from core.db import queries
from core.db.engine import session_scope
from core.db.models import SessionOutcome, SharedValue, utcnow
from core.db.queries import EVENTS, without_reverted

OUTCOMES = {
    "resolved_confirmed": "解决了（学生确认）",
    "resolved_assumed": "解决了（推定）",
    "handed_off": "转人工（给了联系方式、开了工单）",
    "taken_over": "工作人员接手",
    "gave_up": "中途放弃",
    "not_understood": "没听懂就结束",
}
NOT_COUNTED = {"no_question": "没有提问", "pending": "待定（24 小时内）", "open": "还在进行"}
RESOLVED = ("resolved_confirmed", "resolved_assumed")
HANDED = ("handed_off", "taken_over")

# The answers that give the student a way to solve their problem themselves.
ANSWERS = frozenset(
    {
        "utter_forgot_username",
        "utter_forgot_password",
        "utter_forgot_both",
        "utter_conscription_password",
        "utter_pending_review_answer",
        "utter_already_registered_before",
        "utter_reregister_route",
        "utter_verification_routes",
        "utter_route3_items",
        "utter_reregister_effect",
        "utter_review_time",
    }
)
HANDOFF = "utter_handoff"  # the contacts; the ticket follows (data/rules/handoff.yml)
FEEDBACK = "action_record_feedback"
FALLBACK_INTENT = "nlu_fallback"
SESSION_START = "session_started"
# Stored right before session_started, they open the new session: the slot of the message's
# metadata (Rasa sets it when a channel sends metadata), then action_session_start.
SESSION_OPENERS = frozenset({"session_started_metadata", "action_session_start"})
RATING = "action_record_agent_rating"  # a student's rating of an agent: no question
# Intents that bring no account problem: a session of only these asked nothing to count.
NOT_A_QUESTION = frozenset(
    {
        "",
        "greet",
        "thank",
        "goodbye",
        "affirm",
        "deny",
        "bot_challenge",
        "start_over",
        "share_personal_info",
        "out_of_scope",
        "site_other_question",
    }
)

# The flows a student walks through, each a list of steps (name, what marks it reached). Marks:
# "intent:X", "action:X", "slot:X" (set to a value), "loop:X" (a form started), "helped".
FLOWS: dict[str, tuple[str, list[tuple[str, frozenset[str]]]]] = {
    "account": (
        "找回用户名或密码",
        [
            (
                "问了",
                frozenset(
                    f"intent:{name}"
                    for name in (
                        "forgot_username",
                        "forgot_password",
                        "forgot_both",
                        "conscription_user",
                    )
                ),
            ),
            (
                "得到找回方法",
                frozenset(
                    f"action:{name}"
                    for name in (
                        "utter_forgot_username",
                        "utter_forgot_password",
                        "utter_forgot_both",
                        "utter_conscription_password",
                    )
                ),
            ),
            ("回答了是否找回", frozenset({f"action:{FEEDBACK}"})),
            ("找回了", frozenset({"helped"})),
        ],
    ),
    "duplicate_id": (
        "注册时证件号码重复",
        [
            ("问了", frozenset({"loop:duplicate_id_form"})),
            ("说了看到的提示", frozenset({"slot:id_error"})),
            ("说了以前是否注册过", frozenset({"slot:registered_before"})),
            (
                "得到处理方法",
                frozenset(
                    f"action:{name}"
                    for name in (
                        "utter_pending_review_answer",
                        "utter_already_registered_before",
                        "utter_reregister_route",
                    )
                ),
            ),
        ],
    ),
    "route3": (
        "核验途径 3 要填的信息",
        [
            ("问了", frozenset({"loop:student_status_form"})),
            ("说了身份", frozenset({"slot:student_status"})),
            ("得到要填的信息", frozenset({"action:utter_route3_items"})),
        ],
    ),
}
GAVE_UP_STEPS = {
    "id_error": "没说看到的提示",
    "registered_before": "没说以前是否注册过",
    "student_status": "没说身份",
    "answer_failed": "说没找回，没再继续",
    "came_back": "24 小时内又来问同一问题",
    "no_answer": "问了，没等到答案就走了",
}
TOPIC_NAMES = {
    "username": "忘记用户名",
    "password": "忘记密码",
    "both": "用户名和密码都忘了",
    "duplicate_id": "注册时证件号码重复",
    "": "未说明",
}
TAKEOVER_ENDS = {
    "handed_back": "交还助手",
    "resolved": "工单已解决",
    "timed_out": "超时交还",
    "open": "还没结束",
}
RETURN_WINDOW = timedelta(hours=24)
MAX_DAYS = 92  # a term: the longest window the dashboard and the report count
OPEN_WINDOW = timedelta(minutes=60)  # Rasa's session expiry (domain.yml)
MAX_EVENTS_PER_CONVERSATION = 20_000  # the newest; a longer one is a bot, not a student
REFRESH_BATCH = 200  # conversations read and written per transaction
REFRESH_LOCK = "outcomes:refresh"  # the shared_values row each refresh batch locks
LOCK_EXPIRES = 2.0**31  # never: the row is a lock, not a value that expires
LOADED_TYPES = (
    "user",
    "action",
    "bot",
    "slot",
    "active_loop",
    "pause",
    "resume",
    SESSION_START,
    "rewind",
    "restart",
)


logger = logging.getLogger(__name__)
Row = tuple[int, float, dict[str, Any]]  # a stored event: its id, timestamp, the event as a dict


@dataclass
class Session:
    """One session's outcome and what the dashboard counts of it (times UTC, naive)."""

    conversation_id: str
    first_event_id: int
    last_event_id: int
    started_at: datetime
    ended_at: datetime
    channel: str = ""
    topic: str = ""
    outcome: str = "no_question"
    step: str = ""
    flow: str = ""
    flow_step: int = 0
    handoff_at: datetime | None = None
    taken_at: datetime | None = None
    agent_first_at: datetime | None = None
    takeover_seconds: float | None = None
    takeover_end: str | None = None
    answered: bool = field(default=False, repr=False)


def utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


def marks(events: list[dict[str, Any]]) -> list[set[str]]:
    """What each event marks for the flows' steps."""
    found: list[set[str]] = []
    last_intent = ""
    for event in events:
        kind, mark = event.get("event"), set()
        if kind == "user":
            last_intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name") or ""
            mark.add(f"intent:{last_intent}")
        elif kind == "action":
            mark.add(f"action:{event.get('name')}")
            if event.get("name") == FEEDBACK and last_intent in HELPFUL_INTENTS:
                mark.add("helped")
        elif kind == "slot" and event.get("value") is not None:
            mark.add(f"slot:{event.get('name')}")
        elif kind == "active_loop" and event.get("name"):
            mark.add(f"loop:{event.get('name')}")
        found.append(mark)
    return found


def walk_flows(marked: list[set[str]]) -> tuple[str, int]:
    """The last flow the session entered and how many of its steps it reached, in order."""
    best: tuple[int, str, int] = (-1, "", 0)  # (where it started, flow, steps reached)
    for name, (_, steps) in FLOWS.items():
        reached, started = 0, -1
        for position, mark in enumerate(marked):
            while reached < len(steps) and mark & steps[reached][1]:
                if reached == 0:
                    started = position
                reached += 1
        if reached and started > best[0]:
            best = (started, name, reached)
    return best[1], best[2]


def classify(conversation_id: str, rows: list[Row]) -> Session:
    """The outcome of one session: `rows` are (event id, timestamp, event as a dict), in order."""
    events = without_reverted([event for _, _, event in rows], kind=lambda e: e.get("event", ""))
    session = Session(
        conversation_id=conversation_id,
        first_event_id=rows[0][0],
        last_event_id=rows[-1][0],
        started_at=utc(rows[0][1]),
        ended_at=utc(rows[-1][1]),
    )
    times = {id(event): timestamp for _, timestamp, event in rows}
    marked = marks(events)
    session.flow, session.flow_step = walk_flows(marked)
    asked = asked_before = helped = failed = False
    last_intent, active_loop, requested = "", "", ""
    topic, id_error = "", False
    for event, mark in zip(events, marked, strict=True):
        kind, at = event.get("event"), utc(times[id(event)])
        if kind == "user":
            session.channel = session.channel or str(event.get("input_channel") or "")[:32]
            last_intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name") or ""
            asked_before, asked = asked, asked or last_intent not in NOT_A_QUESTION
        elif kind == "action":
            name = event.get("name") or ""
            if name in ANSWERS:
                session.answered, failed = True, False
            elif name == HANDOFF and session.handoff_at is None:
                session.handoff_at = at
            elif name == RATING:  # the message rated an agent: it asked nothing
                asked, last_intent = asked_before, ""
            elif name == FEEDBACK:
                helped = helped or "helped" in mark
                failed = "helped" not in mark
        elif kind == "slot":
            if event.get("name") == "topic" and event.get("value"):
                topic = str(event["value"])
            elif event.get("name") == "id_error" and event.get("value"):
                id_error = True
            elif event.get("name") == "requested_slot":
                requested = str(event.get("value") or "")
        elif kind == "active_loop":
            active_loop = str(event.get("name") or "")
        elif kind == "pause" and session.taken_at is None:
            session.taken_at = at
        elif kind == "bot":
            metadata = event.get("metadata") or {}
            if metadata.get("takeover") == "agent" and session.agent_first_at is None:
                session.agent_first_at = at
            if metadata.get("takeover") == "note" and metadata.get("ended"):
                ends = {"timeout": "timed_out", "resolved": "resolved"}
                session.takeover_end = ends.get(str(metadata["ended"]), "handed_back")
        elif kind == "resume" and session.taken_at is not None and session.takeover_seconds is None:
            session.takeover_seconds = (at - session.taken_at).total_seconds()
            session.takeover_end = session.takeover_end or "handed_back"
    session.topic = (topic or ("duplicate_id" if id_error else ""))[:32]
    if session.taken_at is not None:
        session.outcome = "taken_over"
        if session.takeover_seconds is None:
            session.takeover_end = "open"
    elif session.handoff_at is not None:
        session.outcome = "handed_off"
    elif helped:
        session.outcome = "resolved_confirmed"
    elif last_intent == FALLBACK_INTENT:
        session.outcome = "not_understood"
    elif active_loop:
        session.outcome, session.step = "gave_up", requested or active_loop
    elif failed:
        session.outcome, session.step = "gave_up", "answer_failed"
    elif session.answered:
        session.outcome = "resolved_assumed"
    elif asked:
        session.outcome, session.step = "gave_up", "no_answer"
    return session


def sessions_of(conversation_id: str, rows: list[Row]) -> list[Session]:
    """Every session of one conversation (rows in order), with the 24-hour return applied: an
    answer followed by the same topic again within 24 hours did not resolve it."""
    pieces: list[list[Row]] = [[]]
    for row in rows:
        if row[2].get("event") == SESSION_START:
            # what Rasa stores just before it (the message's metadata, action_session_start)
            carried: list[Row] = []
            while pieces[-1] and pieces[-1][-1][2].get("name") in SESSION_OPENERS:
                carried.insert(0, pieces[-1].pop())
            pieces.append(carried)
        pieces[-1].append(row)
    found = [classify(conversation_id, piece) for piece in pieces if piece]
    for number, earlier in enumerate(found):
        if earlier.outcome != "resolved_assumed":
            continue
        for later in found[number + 1 :]:  # a greeting in between does not hide a return
            if later.started_at - earlier.ended_at > RETURN_WINDOW:
                break
            if later.topic == earlier.topic and later.outcome != "no_question":
                earlier.outcome, earlier.step = "gave_up", "came_back"
                break
    return found


# ---- kept in the database ------------------------------------------------------------------


def refresh(max_conversations: int | None = None) -> int:
    """Recomputes the sessions of every conversation with events newer than those already read
    (at most `max_conversations` of them, the ones whose newest event is oldest first); returns
    how many conversations it read. Refreshes run one at a time (each batch holds a row lock,
    REFRESH_LOCK); one that meets a conflict stops, and the next picks up where it left.

    A batch reads the events up to the newest it chose and no further, and records exactly that
    far: an event written meanwhile, by a conversation of the batch or another, is newer than
    what is recorded, so the next refresh reads it. (On PostgreSQL an id can become visible
    after a larger one; such an event is read with its conversation's next one.)"""
    from sqlalchemy.exc import DBAPIError, IntegrityError

    read = 0
    while max_conversations is None or read < max_conversations:
        batch = REFRESH_BATCH
        if max_conversations is not None:
            batch = min(batch, max_conversations - read)
        try:
            changed = refresh_batch(batch)
        except (IntegrityError, DBAPIError) as error:  # another refresh, or a deadlock
            logger.info("Outcomes refresh stopped: %s", type(error).__name__)
            return read
        if not changed:
            return read
        read += changed
    return read


def refresh_batch(size: int) -> int:
    """One transaction of refresh(): how many conversations it read (0: none had news)."""
    with session_scope() as db:
        # the lock first: what follows reads what the refresh before this one wrote
        locked = db.execute(
            sa.update(SharedValue).where(SharedValue.key == REFRESH_LOCK).values(value="refresh")
        )
        if not locked.rowcount:  # the first refresh (or the row was deleted): made once
            db.add(SharedValue(key=REFRESH_LOCK, value="refresh", expires=LOCK_EXPIRES))
            db.flush()
        if not sa.inspect(db.connection()).has_table("events"):
            return 0
        seen = db.execute(sa.select(sa.func.max(SessionOutcome.last_event_id))).scalar() or 0
        newest = sa.func.max(EVENTS.c.id)
        changed = db.execute(
            sa.select(EVENTS.c.sender_id, newest)
            .where(EVENTS.c.id > seen)
            .group_by(EVENTS.c.sender_id)
            .order_by(newest)
            .limit(size)
        ).all()
        if not changed:
            return 0
        senders = [sender for sender, _ in changed]
        until = max(last_id for _, last_id in changed)
        rows: dict[str, list[Row]] = defaultdict(list)
        for sender, event_id, timestamp, data in db.execute(
            sa.select(EVENTS.c.sender_id, EVENTS.c.id, EVENTS.c.timestamp, EVENTS.c.data)
            .where(
                EVENTS.c.sender_id.in_(senders),
                EVENTS.c.type_name.in_(LOADED_TYPES),
                EVENTS.c.id <= until,
            )
            .order_by(EVENTS.c.sender_id, EVENTS.c.id)
        ):
            rows[sender].append((event_id, float(timestamp or 0), parsed(data)))
        db.execute(sa.delete(SessionOutcome).where(SessionOutcome.conversation_id.in_(senders)))
        for sender, last_id in changed:
            kept = rows.get(sender, [])[-MAX_EVENTS_PER_CONVERSATION:]
            sessions = sessions_of(sender, kept) if kept else []
            if sessions:
                sessions[-1].last_event_id = last_id
            else:  # only events that say nothing (e.g. a lone "listen"): read all the same
                now = utcnow()
                sessions = [Session(sender, last_id, last_id, now, now)]
            db.add_all(row_of(found) for found in sessions)
        return len(changed)


def parsed(data: Any) -> dict[str, Any]:
    try:
        event = json.loads(data) if isinstance(data, str | bytes) else data
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


def row_of(found: Session) -> SessionOutcome:
    return SessionOutcome(
        **{
            column: getattr(found, column)
            for column in SessionOutcome.__table__.columns.keys()  # noqa: SIM118
            if column != "id"
        }
    )


# ---- the figures ---------------------------------------------------------------------------


@dataclass
class Rate:
    """Sessions counted, resolved and handed to a person, in one slice."""

    counted: int = 0
    resolved: int = 0
    handed: int = 0

    def add(self, outcome: str, sessions: int = 1) -> None:
        self.counted += sessions
        self.resolved += sessions if outcome in RESOLVED else 0
        self.handed += sessions if outcome in HANDED else 0

    @property
    def resolution(self) -> float | None:
        return self.resolved / self.counted if self.counted else None

    @property
    def handoff(self) -> float | None:
        return self.handed / self.counted if self.counted else None


@dataclass
class Figures:
    """Everything the dashboard and the weekly report show, for sessions started in a window."""

    since: datetime  # in the team's zone
    until: datetime
    zone: str
    outcomes: Counter[str] = field(default_factory=Counter)
    total: Rate = field(default_factory=Rate)
    topics: dict[str, Rate] = field(default_factory=lambda: defaultdict(Rate))
    channels: dict[str, Rate] = field(default_factory=lambda: defaultdict(Rate))
    days: dict[str, Rate] = field(default_factory=lambda: defaultdict(Rate))
    gave_up: Counter[str] = field(default_factory=Counter)
    funnels: dict[str, list[int]] = field(default_factory=dict)
    first_reply_minutes: list[float] = field(default_factory=list)
    takeover_minutes: list[float] = field(default_factory=list)
    takeover_ends: Counter[str] = field(default_factory=Counter)
    ratings: list[tuple[str, int, int]] = field(default_factory=list)  # agent, yes, no

    def worst_steps(self) -> dict[str, tuple[str, int]]:
        """Per flow, the step where most of those who reached the one before it left."""
        found = {}
        for flow, counts in self.funnels.items():
            steps = FLOWS[flow][1]
            drops = [(counts[i] - counts[i + 1], steps[i + 1][0]) for i in range(len(counts) - 1)]
            lost, step = max(drops) if drops else (0, "")
            if lost > 0:
                found[flow] = (step, lost)
        return found


def window(
    days: int, now: datetime | None = None, zone: tzinfo | None = None
) -> tuple[datetime, datetime]:
    """The last `days` calendar days in the team's zone, today included (aware datetimes)."""
    zone = zone or settings.team_timezone()
    here = (now or datetime.now(timezone.utc)).astimezone(zone)
    start = here.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    return start, here


def final_outcome(row: Any, now: datetime) -> str:
    """The outcome as counted now: recent sessions are open, recent assumptions pending."""
    if now - row.ended_at < OPEN_WINDOW and row.outcome not in ("taken_over", "handed_off"):
        return "open"
    if row.outcome == "resolved_assumed" and now - row.ended_at < RETURN_WINDOW:
        return "pending"
    return str(row.outcome)


def figures(since: datetime, until: datetime, now: datetime | None = None) -> Figures:
    """The figures for sessions started in [since, until) (aware datetimes, the team's zone).

    Counted in the database, grouped (a term is 100,000 rows: bench/outcomes.py); only the
    sessions of the last 24 hours, whose outcome may still be open or pending, and the takeovers
    (their times) are read one by one. Days are hours in UTC put into the team's zone: exact
    for the zones whose offset is whole hours (Asia/Shanghai's is)."""
    zone = since.tzinfo or timezone.utc
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:  # naive: UTC already, as the stored times
        now = now.astimezone(timezone.utc).replace(tzinfo=None)
    start = since.astimezone(timezone.utc).replace(tzinfo=None)
    end = until.astimezone(timezone.utc).replace(tzinfo=None)
    found = Figures(since=since, until=until, zone=str(zone))
    found.funnels = {flow: [0] * len(steps) for flow, (_, steps) in FLOWS.items()}
    c = SessionOutcome.__table__.c
    in_window = sa.and_(c.started_at >= start, c.started_at < end)
    settled = sa.and_(in_window, c.ended_at < now - RETURN_WINDOW)  # every outcome final
    count = sa.func.count()
    days: dict[str, str] = {}

    def day_of(hour: str) -> str:
        if hour not in days:
            moment = datetime.strptime(hour, "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
            days[hour] = moment.astimezone(zone).strftime("%Y-%m-%d")
        return days[hour]

    def counted(outcome: str, n: int, hour: str, topic: str | None, channel: str | None) -> None:
        found.outcomes[outcome] += n
        if outcome in OUTCOMES:
            found.days[day_of(hour)].add(outcome, n)
            if topic is not None:
                found.topics[topic].add(outcome, n)
            if channel is not None:
                found.channels[channel].add(outcome, n)
                found.total.add(outcome, n)

    with session_scope() as db:
        hour = hour_of(db, c.started_at)
        for when, outcome, n in db.execute(
            sa.select(hour, c.outcome, count).where(settled).group_by(hour, c.outcome)
        ):
            counted(outcome, n, when, None, None)
        for topic, outcome, n in db.execute(
            sa.select(c.topic, c.outcome, count).where(settled).group_by(c.topic, c.outcome)
        ):
            if outcome in OUTCOMES:
                found.topics[topic].add(outcome, n)
        for channel, outcome, n in db.execute(
            sa.select(c.channel, c.outcome, count).where(settled).group_by(c.channel, c.outcome)
        ):
            if outcome in OUTCOMES:
                found.channels[channel].add(outcome, n)
                found.total.add(outcome, n)
        for step, n in db.execute(
            sa.select(c.step, count).where(settled, c.outcome == "gave_up").group_by(c.step)
        ):
            found.gave_up[step] += n
        for flow, reached, n in db.execute(
            sa.select(c.flow, c.flow_step, count).where(in_window).group_by(c.flow, c.flow_step)
        ):
            for step in range(min(reached, len(found.funnels.get(flow, [])))):
                found.funnels[flow][step] += n
        recent = db.execute(
            sa.select(c.started_at, c.ended_at, c.topic, c.channel, c.outcome, c.step).where(
                in_window, c.ended_at >= now - RETURN_WINDOW
            )
        ).all()
        taken = db.execute(
            sa.select(
                c.handoff_at, c.taken_at, c.agent_first_at, c.takeover_seconds, c.takeover_end
            ).where(in_window, c.taken_at.is_not(None))
        ).all()
    for row in recent:
        outcome = final_outcome(row, now)
        counted(outcome, 1, row.started_at.strftime("%Y-%m-%d %H"), row.topic, row.channel)
        if outcome == "gave_up":
            found.gave_up[row.step] += 1
    for row in taken:
        if row.takeover_end:
            found.takeover_ends[row.takeover_end] += 1
        if row.agent_first_at is not None:
            asked = row.handoff_at or row.taken_at
            waited = (row.agent_first_at - asked).total_seconds() / 60
            found.first_reply_minutes.append(max(0.0, waited))
        if row.takeover_seconds is not None:
            found.takeover_minutes.append(row.takeover_seconds / 60)
    found.ratings = queries.agent_ratings(start, end)
    return found


def hour_of(db: Any, column: Any) -> Any:
    """The hour a stored (UTC) time falls in, as "YYYY-MM-DD HH", in the database's own SQL."""
    if db.get_bind().dialect.name == "sqlite":
        return sa.func.strftime("%Y-%m-%d %H", column)
    return sa.func.to_char(column, "YYYY-MM-DD HH24")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


# ---- as text and tables --------------------------------------------------------------------


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def minutes(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} 分钟"


def tables(found: Figures) -> dict[str, tuple[str, list[str], list[list[str]]]]:
    """Every table the dashboard shows (and offers as CSV): name -> (title, header, rows)."""

    def rates(slices: dict[str, Rate], names: dict[str, str] | None = None) -> list[list[str]]:
        return [
            [
                (names or {}).get(key, key or "未说明"),
                str(rate.counted),
                str(rate.resolved),
                percent(rate.resolution),
                str(rate.handed),
                percent(rate.handoff),
            ]
            for key, rate in sorted(slices.items())
        ]

    header = ["", "会话", "解决", "解决率", "转人工", "转人工率"]
    outcomes = [
        [name, str(found.outcomes.get(key, 0))] for key, name in {**OUTCOMES, **NOT_COUNTED}.items()
    ]
    funnel = [
        [FLOWS[flow][0], step, str(count)]
        for flow, counts in found.funnels.items()
        for (step, _), count in zip(FLOWS[flow][1], counts, strict=True)
    ]
    human = [
        ["转人工后到工作人员第一句话（中位数）", minutes(median(found.first_reply_minutes))],
        ["接手时长（中位数）", minutes(median(found.takeover_minutes))],
        *[
            [f"接手结束：{name}", str(found.takeover_ends.get(key, 0))]
            for key, name in TAKEOVER_ENDS.items()
        ],
    ]
    ratings = [
        [agent, str(yes + no), str(yes), str(no), percent(yes / (yes + no))]
        for agent, yes, no in found.ratings
    ]
    return {
        "outcomes": ("每种结果的会话数", ["结果", "会话"], outcomes),
        "topics": ("按问题", ["问题", *header[1:]], rates(found.topics, TOPIC_NAMES)),
        "channels": ("按渠道", ["渠道", *header[1:]], rates(found.channels)),
        "days": ("按天", ["日期", *header[1:]], rates(found.days)),
        "funnel": ("每个流程走到每一步的会话数", ["流程", "步骤", "会话"], funnel),
        "gave_up": (
            "在哪一步放弃",
            ["步骤", "会话"],
            [[GAVE_UP_STEPS.get(step, step), str(n)] for step, n in found.gave_up.most_common()],
        ),
        "human": ("人工服务", ["指标", "值"], human),
        "ratings": (
            "学生对工作人员的评价（交回助手时一键回答）",
            ["工作人员", "评价", "有帮助", "没帮助", "满意率"],
            ratings,
        ),
    }


def report_lines(found: Figures) -> Iterator[str]:
    """The weekly report as text (`python -m staff report --week`)."""
    yield (
        f"Outcomes of the sessions started {found.since:%Y-%m-%d} to {found.until:%Y-%m-%d %H:%M} "
        f"({found.zone})"
    )
    yield (
        f"  resolution rate {percent(found.total.resolution)} "
        f"({found.total.resolved} of {found.total.counted} sessions counted), "
        f"handoff rate {percent(found.total.handoff)} ({found.total.handed})"
    )
    worst = found.worst_steps()
    for name, (title, _, rows) in tables(found).items():
        yield ""
        yield title
        if not rows:
            yield "  none"
        for row in rows:
            yield "  " + "  ".join(row)
        if name == "funnel":
            for flow, (step, lost) in worst.items():
                yield f"  最多人离开：{FLOWS[flow][0]} 在「{step}」之前（{lost} 个会话）"


TABLES = ("outcomes", "topics", "channels", "days", "funnel", "gave_up", "human", "ratings")
CHARTS = ("days", "funnel")


def csv_rows(found: Figures, name: str) -> list[list[str]]:
    _, header, rows = tables(found)[name]
    return [header, *rows]


# ---- charts --------------------------------------------------------------------------------


def charts(found: Figures, only: str | None = None) -> dict[str, str]:
    """The dashboard's charts as SVG (matplotlib's Figure, no script inside; `only`: just that
    one); labels in ASCII (the console's fonts may lack Chinese), the tables beside them name
    everything."""
    from matplotlib.figure import Figure

    drawn = {}
    if only in (None, "days"):
        days = sorted(found.days)
        figure = Figure(figsize=(8, 3.2))
        axes = figure.subplots()
        for label, values in (
            ("resolved", [found.days[day].resolution or 0 for day in days]),
            ("to a person", [found.days[day].handoff or 0 for day in days]),
        ):
            axes.plot(range(len(days)), [100 * v for v in values], marker="o", label=label)
        every = max(1, len(days) // 12)  # at most a dozen dates under the axis
        axes.set_xticks(range(0, len(days), every), [day[5:] for day in days][::every])
        axes.set_ylabel("% of sessions")
        axes.set_ylim(0, 100)
        axes.legend(fontsize=8)
        drawn["days"] = svg(figure)
    if only in (None, "funnel"):
        figure = Figure(figsize=(8, 3.2))
        axes = figure.subplots()
        for flow, counts in found.funnels.items():
            axes.plot(range(1, len(counts) + 1), counts, marker="o", label=flow)
        axes.set_xlabel("step of the flow")
        axes.set_ylabel("sessions")
        axes.legend(fontsize=8)
        drawn["funnel"] = svg(figure)
    return drawn


def svg(figure: Any) -> str:
    import matplotlib

    figure.tight_layout()
    out = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: smaller, faster
        figure.savefig(out, format="svg")
    return out.getvalue()
