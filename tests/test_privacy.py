"""Masking of ID numbers (MOD 11-2 check character, old 15-digit form), mobiles and emails."""
import pytest
from rasa.shared.core.events import ActionExecuted, UserUttered

from addons.privacy import EMAIL, ID_NUMBER, MOBILE, id_check_character, is_id_number, mask
from addons.tracker_store import masked


def test_check_character_follows_iso_7064_mod_11_2() -> None:
    # The example of GB 11643-1999.
    assert id_check_character("11010519491231002") == "X"
    assert is_id_number("11010519491231002X") and is_id_number("11010519491231002x")


@pytest.mark.parametrize("text, expected", [
    ("我的身份证号是11010519491231002X", f"我的身份证号是{ID_NUMBER}"),
    ("440304199001011233。", f"{ID_NUMBER}。"),
    ("老身份证110105491231002", f"老身份证{ID_NUMBER}"),
    ("手机13812345678", f"手机{MOBILE}"),
    ("电话 +86 138-1234-5678 找我", f"电话 {MOBILE} 找我"),
    ("邮箱 Li.Si@example.edu.cn 谢谢", f"邮箱 {EMAIL} 谢谢"),
    # mistyped check character: still an ID number by its birth date, still masked
    ("110105194912310020", ID_NUMBER),
])
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


@pytest.mark.parametrize("text", ["2", "1234567", "2026年11月28日", "12345678901234567",
                                  "123456789012345678901", "证件号码已被注册", "", "010-67410388"])
def test_other_text_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_masking_is_idempotent() -> None:
    once = mask("身份证11010519491231002X 手机13812345678 a@b.cn")
    assert mask(once) == once


def test_tracker_store_writes_masked_copies_of_user_messages_only() -> None:
    event = UserUttered("身份证11010519491231002X", {"name": "share_personal_info",
                                                     "confidence": 1.0},
                        parse_data={"text": "身份证11010519491231002X"})
    safe = masked(event)
    assert safe.text == f"身份证{ID_NUMBER}" and safe.parse_data["text"] == f"身份证{ID_NUMBER}"
    assert event.text == "身份证11010519491231002X"  # the live conversation is untouched
    assert safe.intent_name == "share_personal_info"
    assert "11010519491231002X" not in str(safe.as_dict())


def test_sqlite_store_keeps_no_plain_personal_data(sqlite_url: str) -> None:
    import asyncio
    import json
    import sqlite3

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from addons.tracker_store import MaskingSQLTrackerStore

    store = MaskingSQLTrackerStore(domain=Domain.empty(), host=sqlite_url)
    not_understood = {"name": "nlu_fallback", "confidence": 1.0}
    tracker = DialogueStateTracker.from_events("student", [
        ActionExecuted("action_listen"),
        UserUttered("手机13812345678", {"name": "share_personal_info", "confidence": 1.0},
                    parse_data={"text": "手机13812345678"}),
        BotUttered("请不要在这里发送手机号"),
        UserUttered("qq 13812345678 zz", not_understood, parse_data={"text": "qq 13812345678 zz"}),
    ])
    asyncio.run(store.save(tracker))
    with sqlite3.connect(sqlite_url[len("sqlite:///"):]) as conn:
        # Stored as JSON with ASCII escapes; decoded to read the placeholders.
        rows = [json.dumps(json.loads(r), ensure_ascii=False)
                for (r,) in conn.execute("SELECT data FROM events")]
        unanswered = list(conn.execute("SELECT text, count FROM unanswered_questions"))
    assert len(rows) == 4
    assert not any("13812345678" in r for r in rows)
    assert any(MOBILE in r for r in rows)
    # the not-understood message is counted for the trainers, masked too
    assert unanswered == [(f"qq {MOBILE} zz", 1)]
    restored = asyncio.run(store.retrieve("student"))
    assert [e.text for e in restored.events if isinstance(e, UserUttered)] == [
        f"手机{MOBILE}", f"qq {MOBILE} zz"]


def test_masker_component_rewrites_messages_and_training_data() -> None:
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from addons.masker import PersonalDataMasker

    component = PersonalDataMasker.create({}, None, None, None)
    message = Message(data={TEXT: "手机13812345678"})
    component.process([message])
    assert message.get(TEXT) == f"手机{MOBILE}"
    data = TrainingData([Message(data={TEXT: "a@b.cn", "intent": "share_personal_info"})])
    component.process_training_data(data)
    assert data.training_examples[0].get(TEXT) == EMAIL
