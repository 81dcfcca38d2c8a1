"""stores/review.py and the review list: answered messages worth a second look, on conversations
made by hand (events as Rasa stores them), and stored masked and counted."""

import pytest
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, UserUttered

from core.db import queries
from staff import __main__ as staff_cli
from staff import improve
from stores.review import CLOSE_MARGIN, UNSURE_CONFIDENCE, worth_review


def said(text: str, intent: str, confidence: float = 0.95, second: float = 0.01) -> UserUttered:
    ranking = [{"name": intent, "confidence": confidence}, {"name": "greet", "confidence": second}]
    return UserUttered(
        text,
        intent={"name": intent, "confidence": confidence},
        parse_data={
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": ranking,
        },
    )


def answer(name: str) -> list[Event]:
    return [ActionExecuted(name), BotUttered("…"), ActionExecuted("action_listen")]


def found(events: list[Event]) -> list[tuple[str, str, str]]:
    """Every event counts as new."""
    new = {id(event) for event in events}
    return [
        (kind, message.text or "", (message.intent or {}).get("name", ""))
        for kind, message in worth_review(events, new)
    ]


def test_a_confident_answer_is_not_listed() -> None:
    assert found([said("密码忘了", "forgot_password"), *answer("utter_forgot_password")]) == []


@pytest.mark.parametrize(
    ("confidence", "second"),
    [
        (UNSURE_CONFIDENCE - 0.05, 0.1),
        (UNSURE_CONFIDENCE + 0.05, UNSURE_CONFIDENCE + 0.1 - CLOSE_MARGIN),
    ],
)
def test_an_answer_given_with_a_low_or_a_close_confidence_is_unsure(
    confidence: float, second: float
) -> None:
    message = said("那个账号的东西咋弄回来", "forgot_username", confidence, second)
    assert found([message, *answer("utter_forgot_username")]) == [
        ("unsure", "那个账号的东西咋弄回来", "forgot_username")
    ]


def test_the_fallback_and_buttons_are_not_unsure() -> None:
    events = [
        said("qwpz", "nlu_fallback", 0.3),  # not understood: stores/unanswered.py counts it
        said("/affirm", "affirm", 0.2),  # a button's payload
    ]
    assert found(events) == []


def test_a_no_to_did_it_work_lists_the_question_answered() -> None:
    events = [
        said("密码怎么都想不起来", "forgot_password"),
        *answer("utter_forgot_password"),
        said("不行啊", "deny"),
        ActionExecuted("action_record_feedback"),
    ]
    assert found(events) == [("did_not_help", "密码怎么都想不起来", "forgot_password")]


def test_a_yes_to_did_it_work_lists_nothing() -> None:
    events = [
        said("密码怎么都想不起来", "forgot_password"),
        *answer("utter_forgot_password"),
        said("好了", "affirm"),
        ActionExecuted("action_record_feedback"),
    ]
    assert found(events) == []


def test_a_ticket_within_two_turns_of_an_answer_lists_its_question() -> None:
    question = said("注册时说身份证号被注册了", "error_already_registered")
    events = [
        question,
        *answer("utter_ask_registered_before"),
        said("谢谢", "thank"),
        *answer("utter_welcome"),
        said("转人工", "request_human"),
        ActionExecuted("action_create_handoff_ticket"),
    ]
    assert found(events) == [("handed_off", "注册时说身份证号被注册了", "error_already_registered")]
    # three turns later it is another matter
    later = [*events[:-2], said("好的", "affirm"), *answer("utter_ok"), *events[-2:]]
    assert found(later) == []


def test_buttons_form_answers_offers_and_a_second_ticket_are_not_counted() -> None:
    pressed = [
        said("/forgot_password", "forgot_password"),
        *answer("utter_forgot_password"),
        said("/self_service_failed", "self_service_failed"),
        ActionExecuted("action_record_feedback"),
        ActionExecuted("action_create_handoff_ticket"),
    ]
    assert found(pressed) == []  # a button's payload is no question a student typed
    offered = [
        said("注册提示证件号码已被注册", "error_already_registered"),
        ActionExecuted("duplicate_id_form"),
        said("以前注册过", "registered_before"),  # the form's question answered
        *answer("utter_already_registered_before"),
        ActionExecuted("utter_offer_handoff"),
        ActionExecuted("action_listen"),
        said("要", "affirm"),
        ActionExecuted("action_create_handoff_ticket"),
    ]
    assert found(offered) == []  # the person the assistant offered: the flow's end
    twice = [
        said("密码怎么都想不起来", "forgot_password"),
        *answer("utter_forgot_password"),
        said("转人工", "request_human"),
        ActionExecuted("action_create_handoff_ticket"),
        *answer("utter_contacts"),
        said("人工客服", "request_human"),
        ActionExecuted("action_create_handoff_ticket"),
    ]
    assert found(twice) == [("handed_off", "密码怎么都想不起来", "forgot_password")]
    # stored turn by turn: the second ticket's save finds the first ticket, which counted it
    assert worth_review(twice, {id(event) for event in twice[-2:]}) == []


def test_only_the_events_of_the_turn_being_stored_count() -> None:
    events = [
        said("密码怎么都想不起来", "forgot_password", 0.4),
        *answer("utter_forgot_password"),
        said("不行啊", "deny"),
        ActionExecuted("action_record_feedback"),
    ]
    new = {id(event) for event in events[-2:]}  # the first turn was stored before
    kinds = [kind for kind, _ in worth_review(events, new)]
    assert kinds == ["did_not_help"]


def test_stored_masked_counted_and_grouped(sqlite_url: str, monkeypatch, capsys) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    for text in ("用户名找不到了怎么办", "用户名找不到了怎么办", "用户名找不到了怎么办呢"):
        queries.record_for_review("unsure", text, "forgot_username", url=sqlite_url)
    queries.record_for_review("unsure", "用户名找不到了怎么办", "forgot_both", url=sqlite_url)
    queries.record_for_review("nonsense", "x", "greet", url=sqlite_url)  # not a kind: ignored
    rows = queries.review_rows("unsure")
    assert [(r.text, r.intent, r.count) for r in rows] == [
        ("用户名找不到了怎么办", "forgot_username", 2),
        ("用户名找不到了怎么办", "forgot_both", 1),
        ("用户名找不到了怎么办呢", "forgot_username", 1),
    ]
    (group,) = improve.review_groups(rows)
    assert group.group.count == 4
    assert group.intents == {
        "用户名找不到了怎么办": "forgot_username",  # the intent chosen most often
        "用户名找不到了怎么办呢": "forgot_username",
    }
    assert queries.review_rows("did_not_help") == []
    assert staff_cli.main(["review", "--kind", "unsure"]) == 0
    printed = capsys.readouterr().out
    assert "用户名找不到了怎么办  -> forgot_username" in printed and "    4  " in printed


def test_the_review_table_is_in_the_migrations(sqlite_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(sqlite_url)
    assert "review_messages" in sa.inspect(engine).get_table_names()
    engine.dispose()


def test_one_message_is_labelled_from_the_command_line(sqlite_url: str, monkeypatch) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    assert (
        staff_cli.main(
            ["label", "身份证 110101199003071234 被占了", "--intent", "nope", "--by", "lead"]
        )
        == 2
    )
    assert queries.labels() == []
    command = ["label", "身份证 110101199003071234 被占了", "--intent", "error_already_registered"]
    assert staff_cli.main([*command, "--by", "lead", "--source", "unsure"]) == 0
    (label,) = queries.labels()
    assert "1234" not in label.text and label.text.startswith("身份证 [")
    assert (label.source, label.intent, label.labelled_by) == (
        "unsure",
        "error_already_registered",
        "lead",
    )


def test_the_export_merges_labels_into_files_a_developer_commits(tmp_path) -> None:
    """#27 item 7: examples already exported stay, a relabelled text moves, an FAQ gap leaves the
    training data; the file is Rasa NLU data; exporting again changes nothing."""
    from datetime import datetime

    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    from core.db.queries import Label
    from staff import improvements

    nlu, gaps = tmp_path / "reviewed.yml", tmp_path / "faq-gaps.md"
    nlu.write_text(
        improvements.nlu_yaml(
            {"老早注册的号登不上": "forgot_password", "查四六级": "forgot_username"}
        ),
        encoding="utf-8",
    )

    def at(minute: int, text: str, intent: str) -> Label:
        return Label(text, "unsure", intent, "lead", datetime(2026, 12, 3, 9, minute))

    labels = [
        at(1, "账号  名字忘了", "forgot_username"),
        at(2, "查四六级", "faq_gap"),  # was exported as an intent: leaves the training data
        at(3, "能帮我找下辅导员吗", "out_of_scope"),
        at(4, "账号 名字忘了", "forgot_both"),  # the same text labelled again: the latest wins
    ]
    assert improvements.not_exported(labels, nlu) == 3
    assert improvements.export(labels, nlu, gaps) == 3
    first = nlu.read_text(encoding="utf-8")
    assert improvements.exported_examples(nlu) == {
        "老早注册的号登不上": "forgot_password",
        "账号 名字忘了": "forgot_both",
        "能帮我找下辅导员吗": "out_of_scope",
    }
    data = RasaYAMLReader().reads(first)
    assert {m.get("intent") for m in data.intent_examples} == {
        "forgot_password",
        "forgot_both",
        "out_of_scope",
    }
    assert "- 查四六级" in gaps.read_text(encoding="utf-8")
    assert improvements.not_exported(labels, nlu) == 0
    # a purged database loses nothing already exported; a later label moves the gap back
    assert improvements.export([at(5, "查四六级", "site_other_question")], nlu, gaps) == 4
    assert "查四六级" not in gaps.read_text(encoding="utf-8")
    improvements.export([], nlu, gaps)
    assert improvements.exported_examples(nlu)["查四六级"] == "site_other_question"
    assert first != nlu.read_text(encoding="utf-8")
    again = nlu.read_text(encoding="utf-8")
    improvements.export([], nlu, gaps)
    assert nlu.read_text(encoding="utf-8") == again


def test_a_label_form_names_groups_by_their_members() -> None:
    """A group that gained a message since the page was shown is not labelled: nobody saw it."""
    from datetime import datetime

    from staff.admin import chosen_groups

    day = datetime(2026, 12, 3)
    shown = improve.grouped([("学信网能查四六级吗", 3, day, day), ("忘了密码", 1, day, day)])
    form = {
        "intent-0": "faq_gap",
        "group-0": improve.group_key(shown[0].texts),
        "intent-1": "evil",  # no verdict: ignored
        "group-1": improve.group_key(shown[1].texts),
    }
    verdicts = {"faq_gap", "forgot_password"}
    picked, stale = chosen_groups(form, shown, verdicts)
    assert [(v, g.texts) for v, g in picked] == [("faq_gap", ["学信网能查四六级吗"])] and stale == 0
    grown = improve.grouped(
        [("学信网能查四六级吗", 3, day, day), ("学信网能查四六级么", 1, day, day)]
    )
    assert chosen_groups(form, grown, verdicts) == ([], 1)


def test_what_an_nlu_file_cannot_hold_is_left_out_and_a_broken_file_is_said(tmp_path) -> None:
    from datetime import datetime

    from core.db.queries import Label
    from staff import improvements

    nlu, gaps = tmp_path / "reviewed.yml", tmp_path / "faq-gaps.md"
    at = datetime(2026, 12, 3)
    labels = [
        Label("我的手机[手机号](不常用)登不上", "unsure", "forgot_password", "lead", at),
        Label("密码忘了[x]{oops}", "unsure", "forgot_password", "lead", at),
        Label("控制\x7f字符", "unsure", "forgot_password", "lead", at),
        Label("用手机号[手机号]注册的，用户名忘了", "unsure", "forgot_username", "lead", at),
    ]
    assert improvements.export(labels, nlu, gaps) == 1
    assert improvements.exported_examples(nlu) == {
        "用手机号[手机号]注册的，用户名忘了": "forgot_username"
    }
    assert len(improvements.untrainable(labels)) == 3
    assert improvements.not_exported(labels, nlu) == 0
    nlu.write_text("nlu: [unclosed", encoding="utf-8")
    assert "读不出来" in str(improvements.not_exported_or_why(labels, nlu))


def test_the_console_export_leaves_out_what_training_cannot_read() -> None:
    exported = improve.nlu_yaml(
        {"forgot_password": ["密码 忘了", "我的手机[手机号](不常用)登不上"]}
    )
    assert (
        exported
        == 'version: "3.1"\n\nnlu:\n- intent: forgot_password\n  examples: |\n    - 密码 忘了\n'
    )
