"""Masking of ID numbers (MOD 11-2 check character, old 15-digit form), mobiles and emails, in
whatever form they are typed: separators, full-width, zero-width, prefixes, Chinese numerals."""

import json
import os
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rasa.shared.core.events import ActionExecuted, UserUttered

from core import parsing
from core.privacy import (
    EMAIL,
    ID_NUMBER,
    MOBILE,
    id_check_character,
    is_id_number,
    mask,
    stored_message_id,
)
from stores.masking import masked


def test_check_character_follows_iso_7064_mod_11_2() -> None:
    # The example of GB 11643-1999.
    assert id_check_character("11010519491231002") == "X"
    assert is_id_number("11010519491231002X") and is_id_number("11010519491231002x")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("我的身份证号是11010519491231002X", f"我的身份证号是{ID_NUMBER}"),
        ("440304199001011233。", f"{ID_NUMBER}。"),
        ("老身份证110105491231002", f"老身份证{ID_NUMBER}"),
        ("手机13812345678", f"手机{MOBILE}"),
        ("电话 +86 138-1234-5678 找我", f"电话 {MOBILE} 找我"),
        ("邮箱 Li.Si@example.edu.cn 谢谢", f"邮箱 {EMAIL} 谢谢"),
        # the words before an address stay (traditional characters too)
        ("電子郵件test@foxmail.com", f"電子郵件{EMAIL}"),
        ("发到我邮箱abc@qq.com", f"发到我邮箱{EMAIL}"),
        # mistyped check character: still an ID number by its birth date, still masked
        ("110105194912310020", ID_NUMBER),
    ],
)
def test_personal_data_is_masked(text: str, expected: str) -> None:
    assert mask(text) == expected


# How students type them (written for this test: each form was seen in or described by
# students' messages).
ID_FORMS = [
    "110105-19491231-002X",
    "110105 19491231 002X",
    "110105  19491231  002x",
    "1101 0519 4912 3100 2X",
    "110105.19491231.002X",
    "110105—19491231—002X",
    "110105_19491231_002X",
    "110105/19491231/002X",
    "１１０１０５１９４９１２３１００２Ｘ",
    "１１０１０５－１９４９１２３１－００２ｘ",
    "110105\u200b19491231\u200b002X",
    "1\u200d1\u200d0105194912310\u200c02X",
    "110105\ufeff19491231002X",
    "110105\u300019491231\u3000002X",
    "11 01 05 19 49 12 31 00 2X",
    "440304199001011233",
    "4403-0419-9001-0112-33",
    "110105491231002",
    "110105 491231 002",
    "１１０１０５４９１２３１００２",
]
MOBILE_FORMS = [
    "1381 234 5678",
    "138 1234 5678",
    "138-1234-5678",
    "138.1234.5678",
    "138  1234  5678",
    "+86 13812345678",
    "+86-138-1234-5678",
    "0086 13812345678",
    "0086-138-1234-5678",
    "(+86) 138 1234 5678",
    "8613812345678",
    "１３８１２３４５６７８",
    "１３８－１２３４－５６７８",
    "＋８６ １３８ １２３４ ５６７８",
    "138\u200b1234\u200b5678",
    "1\u200c3\u200c812345678",
    "138\u30001234\u30005678",
    "一三八一二三四五六七八",
    "幺三八 幺二三四 五六七八",
    "一三八-一二三四-五六七八",
    "壹叁捌13812345678",
    "13８12345678",
    "138—1234—5678",
]
EMAIL_FORMS = [
    "li.si@example.edu.cn",
    "lisi＠qq．com",
    "ＬＩＳＩ＠ＱＱ．ＣＯＭ",
    "张三@163.com",
    "zhang.san+chsi@北京大学.edu.cn",
    "lisi@qq。com",
    "li\u200bsi@qq.com",
]
# Forms an outside attacker found stored verbatim (round two of hardening).
MOBILE_FORMS_SEEN = [
    "138，1234，5678",
    "138、1234、5678",
    "138,1234,5678",
    "138          1234          5678",
    "138\u202e1234\u202c5678",
    "138\u20661234\u20695678",
    "1\ufe0f\u20e33\ufe0f\u20e38\ufe0f\u20e312345678",
    "壹叁捌壹贰叁肆伍陆柒捌",
]
ID_FORMS_SEEN = ["11010519491231002×", "110105，19491231，002X", "110105\u202e19491231002X"]
EMAIL_FORMS_SEEN = [
    "zhaoliu @ example.edu.cn",
    "zhaoliu#example.com",
    "zhaoliu@qq",
    "zhaoliu@例子.中国",
]
LEFT_ALONE = [
    "2",
    "1234567",
    "2026年11月28日",
    "12345678901234567",
    "123456789012345678901",
    "证件号码已被注册",
    "010-67410388",
    "010-82199588",
    "第2步 第3步",
    "3个工作日",
    "2023-09-01 13:45",
    "大一",
    "我是一二年级的",
    "一三五",
    "a@b",
    "12:30",
]


def _readable_digits(text: str) -> str:
    """Every digit a reader could still see in `text`, Chinese numerals included."""
    chinese = dict(zip("零〇○一幺二两三四五六七八九", "00011223456789", strict=True))
    chinese.update(zip("壹贰叁肆伍陆柒捌玖", "123456789", strict=True))
    return "".join(
        chinese.get(c, c)
        for c in unicodedata.normalize("NFKC", text)
        if c in chinese or c.isdigit()
    )


@pytest.mark.parametrize("form", ID_FORMS)
@pytest.mark.parametrize(
    "before, after", [("我的身份证号是", "，帮我看看"), ("", ""), ("证件号：", "。")]
)
def test_id_numbers_in_any_typed_form_are_masked(form: str, before: str, after: str) -> None:
    masked_text = mask(before + form + after)
    assert masked_text == before + ID_NUMBER + after


@pytest.mark.parametrize("form", MOBILE_FORMS)
def test_mobiles_in_any_typed_form_are_masked(form: str) -> None:
    masked_text = mask(f"我的手机是{form}，谢谢")
    assert MOBILE in masked_text
    assert "1234" not in _readable_digits(masked_text)
    assert "5678" not in _readable_digits(masked_text)


@pytest.mark.parametrize("form", EMAIL_FORMS)
def test_emails_in_any_typed_form_are_masked(form: str) -> None:
    assert mask(f"邮箱是{form}谢谢") == f"邮箱是{EMAIL}谢谢"


@pytest.mark.parametrize("form", MOBILE_FORMS_SEEN)
def test_mobiles_in_the_forms_found_stored_are_masked(form: str) -> None:
    masked_text = mask(f"我的手机是{form}，谢谢")
    assert masked_text == f"我的手机是{MOBILE}，谢谢"


@pytest.mark.parametrize("form", ID_FORMS_SEEN)
def test_id_numbers_in_the_forms_found_stored_are_masked(form: str) -> None:
    assert mask(f"身份证{form}。") == f"身份证{ID_NUMBER}。"


@pytest.mark.parametrize("form", EMAIL_FORMS_SEEN)
def test_emails_in_the_forms_found_stored_are_masked(form: str) -> None:
    assert "zhaoliu" not in mask(f"发到{form}就行"), mask(f"发到{form}就行")


def test_a_number_glued_to_a_chinese_numeral_is_still_found() -> None:
    assert mask("我是大一13812345678") == f"我是大一{MOBILE}"
    assert mask("一13812345678") == f"一{MOBILE}"


# ---- property-based: valid numbers, written any way a student might ------------------------
SEPARATORS = [
    *["", " ", "  ", "-", ".", "—", "－", "\u3000", "\u200b", "_", " - "],
    *["，", "、", ",", " " * 9, "\u202e", "\u2066", "\u2069", "\u200f", "\ufe0f\u20e3"],
]
CAPITALS = dict(zip("0123456789", "零壹贰叁肆伍陆柒捌玖", strict=True))
CONTEXT = st.sampled_from(["", "我的号码", "身份证：", "手机号是", "帮我查查", "麻烦了！", "。"])


@st.composite
def id_numbers(draw: st.DrawFn) -> str:
    region = draw(st.integers(110000, 659999))
    birth = draw(
        st.dates(
            min_value=__import__("datetime").date(1930, 1, 1),
            max_value=__import__("datetime").date(2012, 12, 31),
        )
    )
    first17 = f"{region:06d}{birth:%Y%m%d}{draw(st.integers(0, 999)):03d}"
    return first17 + id_check_character(first17)


@st.composite
def mobiles(draw: st.DrawFn) -> str:
    return f"1{draw(st.integers(3, 9))}{draw(st.integers(0, 999_999_999)):09d}"


@st.composite
def typed(draw: st.DrawFn, number: str) -> str:
    """`number` with separators between some digits, some digits full-width, an optional
    country prefix for mobiles."""
    out = []
    for i, char in enumerate(number):
        if i and draw(st.booleans()):
            out.append(draw(st.sampled_from(SEPARATORS)))
        form = draw(st.integers(0, 7)) if char.isdigit() else 7
        if form == 0:
            char = chr(ord(char) - ord("0") + ord("０"))
        elif form == 1:
            char += "\ufe0f\u20e3"  # a keycap
        elif form == 2:
            char = CAPITALS[char]
        elif char == "X" and draw(st.booleans()):
            char = "×"
        out.append(char)
    return "".join(out)


@settings(max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "300")), deadline=None)
@given(data=st.data(), before=CONTEXT, after=CONTEXT)
def test_no_valid_id_or_mobile_survives_masking(
    data: st.DataObject, before: str, after: str
) -> None:
    id_number = data.draw(id_numbers())
    mobile = data.draw(mobiles())
    prefix = data.draw(st.sampled_from(["", "+86", "0086", "+86 ", "86-"]))
    text = (
        f"{before}{data.draw(typed(id_number))}{after}，手机{prefix}"
        f"{data.draw(typed(mobile))}{after}"
    )
    masked_text = mask(text)
    assert ID_NUMBER in masked_text and MOBILE in masked_text
    assert _readable_digits(masked_text) == "", masked_text


@pytest.mark.parametrize("text", LEFT_ALONE)
def test_other_text_is_left_alone(text: str) -> None:
    assert mask(text) == text


def test_masking_is_idempotent() -> None:
    once = mask("身份证11010519491231002X 手机13812345678 a@b.cn")
    assert mask(once) == once


def test_tracker_store_writes_masked_copies_of_user_messages_only() -> None:
    event = UserUttered(
        "身份证11010519491231002X",
        {"name": "share_personal_info", "confidence": 1.0},
        parse_data={"text": "身份证11010519491231002X"},
    )
    safe = masked(event)
    assert safe.text == f"身份证{ID_NUMBER}" and safe.parse_data["text"] == f"身份证{ID_NUMBER}"
    assert event.text == "身份证11010519491231002X"  # the live conversation is untouched
    assert safe.intent_name == "share_personal_info"
    assert "11010519491231002X" not in str(safe.as_dict())


def test_metadata_and_message_ids_are_stored_masked_and_hashed() -> None:
    """Both were stored as a client sent them: a mobile as message_id, an email in metadata."""
    event = UserUttered(
        "你好",
        {"name": "greet", "confidence": 1.0},
        message_id="13812345678",
        metadata={"note": "zhaoliu@qq", "deep": [{"手机13987654321": ["139，8765，4321"]}]},
    )
    safe = masked(event)
    stored = json.dumps(safe.as_dict(), ensure_ascii=False)
    assert "zhaoliu" not in stored and "8765" not in stored and "13812345678" not in stored
    assert safe.message_id == stored_message_id("13812345678")
    assert masked(safe).message_id == safe.message_id  # saved again: not hashed twice
    forged = masked(UserUttered("hi", message_id="m:13812345678000000000000000000000"))
    assert "13812345678" not in str(forged.message_id)
    assert not parsing.plain_id(safe.message_id)  # no client can send a digest as its own id


@pytest.mark.parametrize(
    ("sender", "refused"),
    [
        ("13812345678", True),
        ("u-13812345678", True),
        ("11010519491231002X", True),
        ("w-4f1c9a13812345678e0b7d2c31a9f0e", False),  # a random id with a digit run in it
        ("student-1", False),
    ],
)
def test_a_sender_id_that_is_a_phone_or_id_number_is_refused(sender: str, refused: bool) -> None:
    from channels import limits

    assert limits.valid_sender(sender) is not refused


def test_sqlite_store_keeps_no_plain_personal_data(sqlite_url: str) -> None:
    import asyncio
    import json
    import sqlite3

    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import BotUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from stores.tracker_store import MaskingSQLTrackerStore

    store = MaskingSQLTrackerStore(domain=Domain.empty(), host=sqlite_url)
    not_understood = {"name": "nlu_fallback", "confidence": 1.0}
    tracker = DialogueStateTracker.from_events(
        "student",
        [
            ActionExecuted("action_listen"),
            UserUttered(
                "手机13812345678",
                {"name": "share_personal_info", "confidence": 1.0},
                parse_data={"text": "手机13812345678"},
            ),
            BotUttered("请不要在这里发送手机号"),
            UserUttered(
                "qq 13812345678 zz", not_understood, parse_data={"text": "qq 13812345678 zz"}
            ),
        ],
    )
    asyncio.run(store.save(tracker))
    with sqlite3.connect(sqlite_url[len("sqlite:///") :]) as conn:
        # Stored as JSON with ASCII escapes; decoded to read the placeholders.
        rows = [
            json.dumps(json.loads(r), ensure_ascii=False)
            for (r,) in conn.execute("SELECT data FROM events")
        ]
        unanswered = list(conn.execute("SELECT text, count FROM unanswered_questions"))
    assert len(rows) == 4
    assert not any("13812345678" in r for r in rows)
    assert any(MOBILE in r for r in rows)
    # the not-understood message is counted for the trainers, masked too
    assert unanswered == [(f"qq {MOBILE} zz", 1)]
    restored = asyncio.run(store.retrieve("student"))
    assert [e.text for e in restored.events if isinstance(e, UserUttered)] == [
        f"手机{MOBILE}",
        f"qq {MOBILE} zz",
    ]


@pytest.mark.processes
def test_masker_component_rewrites_messages_and_training_data() -> None:
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    from understanding.masker import PersonalDataMasker

    component = PersonalDataMasker.create({}, None, None, None)
    message = Message(data={TEXT: "手机13812345678"})
    component.process([message])
    assert message.get(TEXT) == f"手机{MOBILE}"
    data = TrainingData([Message(data={TEXT: "a@b.cn", "intent": "share_personal_info"})])
    component.process_training_data(data)
    assert data.training_examples[0].get(TEXT) == EMAIL
