"""Conversations saved as tests (#27 item 3): from a ticket's transcript, "save as test" turns
the conversation's last session into a Rasa test story, with Rasa's own writer (the one `rasa
interactive` uses): the student's text masked as stored, each intent as a reviewer labelled that
text (review_labels) or else as the assistant read it, and the actions, slots and forms the
assistant went through. Kept in the database (saved_tests); `python -m staff improvements export`
writes them to tests/stories/test_saved_conversations.yml, which `make test` runs with the others.
"""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa
import yaml
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import Event, SessionStarted, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.core.training_data.story_writer.yaml_story_writer import YAMLStoryWriter

from core.db import queries
from core.db.engine import session_scope
from core.db.models import FAQ_GAP, ReviewLabel, SavedTest, utcnow

ROOT = Path(__file__).resolve().parent.parent
STORIES = ROOT / "tests" / "stories" / "test_saved_conversations.yml"
# A session longer than this is no test a person reads: refused, not cut (a story must begin at
# its beginning).
MAX_EVENTS = 600


class NotSavable(ValueError):
    """The conversation cannot become a test story; the message says why, for the console."""


def session_events(conversation_id: str) -> list[Event]:
    """The conversation's last session as stored, as Rasa events."""
    query = (
        sa.select(queries.EVENTS.c.type_name, queries.EVENTS.c.data)
        .where(queries.EVENTS.c.sender_id == conversation_id)
        .order_by(queries.EVENTS.c.id.desc())
        .limit(MAX_EVENTS + 1)
    )
    with session_scope() as session:
        rows = list(session.execute(query))
    events: list[Event] = []
    for row in rows:  # newest first, back to the session's start
        event = Event.from_parameters(json.loads(row.data or "{}"))
        if event is None:
            continue
        events.append(event)
        if isinstance(event, SessionStarted):
            break
    else:
        if len(rows) > MAX_EVENTS:
            raise NotSavable(f"这段对话超过 {MAX_EVENTS} 个事件，太长，不适合做测试。")
    events.reverse()
    if not any(isinstance(event, UserUttered) for event in events):
        raise NotSavable("这段对话里学生还没说过话。")
    return events


def labelled_intents() -> dict[str, str]:
    """Text digest -> the intent a reviewer gave it (FAQ gaps are no intent)."""
    query = sa.select(ReviewLabel.text_hash, ReviewLabel.intent).where(
        ReviewLabel.intent != FAQ_GAP
    )
    with session_scope() as session:
        return {digest: intent for digest, intent in session.execute(query)}


def as_labelled(events: list[Event], labels: dict[str, str]) -> list[Event]:
    for event in events:
        if isinstance(event, UserUttered) and event.text:
            intent = labels.get(queries.text_digest(" ".join(event.text.split())))
            if intent:
                event.intent = {**(event.intent or {}), "name": intent}
                event.parse_data["intent"] = event.intent
    return events


def story_yaml(name: str, events: list[Event], domain: Domain) -> str:
    """The events as one test story (the `- story:` item, without the file's header)."""
    tracker = DialogueStateTracker.from_events(name, events, slots=domain.slots, domain=domain)
    story = tracker.as_story()
    written = YAMLStoryWriter().dumps(story.story_steps, is_test_story=True)
    stories = (yaml.safe_load(written) or {}).get("stories") or []
    if not stories:
        raise NotSavable("这段对话里没有可以测试的步骤。")
    stories[0]["story"] = name
    return str(yaml.safe_dump(stories[:1], allow_unicode=True, sort_keys=False))


def save(conversation_id: str, name: str, by: str, domain: Domain) -> int:
    """Saves the conversation's last session as a test story; returns its number."""
    events = as_labelled(session_events(conversation_id), labelled_intents())
    story = story_yaml(name, events, domain)
    with session_scope() as session:
        saved = SavedTest(name=name[:200], story=story, saved_by=by, saved_at=utcnow())
        session.add(saved)
        session.flush()
        return int(saved.id)


def saved_stories() -> list[tuple[int, str, str, str]]:
    """(number, name, saved by, story YAML) of every saved test, oldest first."""
    query = sa.select(SavedTest.id, SavedTest.name, SavedTest.saved_by, SavedTest.story).order_by(
        SavedTest.id
    )
    with session_scope() as session:
        return [(row[0], row[1], row[2], row[3]) for row in session.execute(query)]


def stories_file(stories: list[str]) -> str:
    lines = [
        'version: "3.1"',
        "# Conversations the support team saved as tests in the staff console",
        "# (python -m staff improvements export). Masked as stored; the intents as labelled.",
        "stories:",
    ]
    lines += [story.rstrip("\n") for story in stories]
    return "\n".join(lines) + "\n"


def export(path: Path = STORIES) -> int:
    """Writes the saved tests to `path`, after the stories it holds under other names (a purged
    or another database loses none); returns how many stories it holds."""
    saved = {name: story for _, name, _, story in saved_stories()}
    kept = []
    if path.exists():
        for story in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stories") or []:
            if story.get("story") not in saved:
                kept.append(yaml.safe_dump([story], allow_unicode=True, sort_keys=False))
    stories = kept + list(saved.values())
    if stories:
        path.write_text(stories_file(stories), encoding="utf-8")
    return len(stories)
