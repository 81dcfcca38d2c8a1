"""The training data is valid, and every fact the assistant states is the FAQ's, in its place."""
import re
import unicodedata
from typing import Dict, List

import pytest

from tests.conftest import (FAQ, HOLDOUT, HOTLINE, PASSWORD_PHONE, ROOT, load_yaml,
                            nlu_examples, rasa)

URL = re.compile(r"https?://[^\s）)，。“”<>\\\]\[]+")
PHONE = re.compile(r"\b0\d{2,3}-\d{7,8}\b")
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


# What the assistant says outside domain.yml's responses: the handoff email, the channel's apology.
OTHER_TEXTS = [ROOT / "actions" / "ticket_texts.yml", ROOT / "addons" / "channels" / "replies.yml"]


def strings(value) -> List[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    return [value] if isinstance(value, str) else []


def response_texts(domain: Dict) -> Dict[str, List[str]]:
    """response name (or text file) -> the text of each of its variants."""
    texts = {name: [variant.get("text", "") for variant in variants]
             for name, variants in domain["responses"].items()}
    for path in OTHER_TEXTS:
        texts[path.name] = strings(load_yaml(path))
    return texts


def test_rasa_data_validate_is_clean() -> None:
    result = rasa("data", "validate", "--fail-on-warnings", timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "UserWarning" not in output, output[-3000:]


def test_vendored_faq_matches_the_shared_source() -> None:
    shared = ROOT.parent / "shared" / "source" / "faq-attachment-2.md"
    if not shared.exists():
        pytest.skip("../shared/source is not beside this checkout")
    assert FAQ.read_text(encoding="utf-8") == shared.read_text(encoding="utf-8")


def test_every_link_phone_and_email_in_a_response_is_in_the_faq(domain, faq_text) -> None:
    found = set()
    for name, texts in response_texts(domain).items():
        for text in texts:
            for pattern in (URL, PHONE, EMAIL):
                for fact in pattern.findall(text):
                    assert fact in faq_text, f"{name} states {fact!r}, which the FAQ does not"
                    found.add(fact)
    # And every contact and link of the FAQ is used somewhere.
    for fact in set(URL.findall(faq_text)) | set(PHONE.findall(faq_text)) | set(EMAIL.findall(faq_text)):
        assert fact in found, f"the FAQ's {fact!r} is never given to a student"


def test_each_phone_number_stays_where_the_faq_puts_it(domain) -> None:
    for name, variants in domain["responses"].items():
        for variant in variants:
            text = variant.get("text", "")
            about_password = name in ("utter_forgot_password", "utter_forgot_both") or any(
                c.get("name") == "topic" and c.get("value") in ("password", "both")
                for c in variant.get("condition", []))
            if PASSWORD_PHONE in text:
                assert about_password, f"{name}: {PASSWORD_PHONE} belongs to password recovery"
            if HOTLINE in text:
                assert not about_password, f"{name}: password recovery uses {PASSWORD_PHONE}"
    handoff = {str(v.get("condition")): v["text"] for v in domain["responses"]["utter_handoff"]}
    assert any(PASSWORD_PHONE in t for t in handoff.values())
    assert any(HOTLINE in t for t in handoff.values())


def test_route_three_items_are_exactly_the_faqs(domain, faq_text) -> None:
    current = "院校名称、学号、入学年份(4位数字)、学历层次"
    graduate = "院校名称、证书编号、毕业年份(4位数字)、学历层次"
    assert current in faq_text and graduate in faq_text
    variants = {tuple(c["value"] for c in v.get("condition", [])): v["text"]
                for v in domain["responses"]["utter_route3_items"]}

    def items(text: str) -> List[str]:
        text = unicodedata.normalize("NFKC", text)
        return re.findall(r"院校名称|学号|证书编号|入学年份\(4位数字\)|毕业年份\(4位数字\)|学历层次", text)

    assert items(variants[("current",)]) == items(current)
    assert items(variants[("graduate",)]) == items(graduate)
    assert items(variants[()]) == items(current) + items(graduate)


def test_time_promises_are_the_faqs_only(domain, faq_text) -> None:
    assert "三个工作日" in faq_text
    for name, texts in response_texts(domain).items():
        for text in texts:
            # No opening hours, no other durations than the FAQ's three working days.
            assert not re.search(r"\d+\s*(小时|分钟)|[0-9一二两三四五六七八九十]+个?(天|日)(?!志)", text.replace("三个工作日", "")), name
            assert "工作时间" not in text and "周一" not in text, name


def test_reregistration_and_verification_warnings_match_the_faq(domain, faq_text) -> None:
    texts = response_texts(domain)
    old_account = "旧账号将不能用于征兵、研招报名"
    other_accounts = "将会注销使用了"
    assert old_account in faq_text
    assert any(old_account in t for t in texts["utter_reregister_route"])
    assert any(old_account in t for t in texts["utter_reregister_effect"])
    assert any(other_accounts in t and "研招推免和统考" in t for t in texts["utter_route3_warning"])
    assert any("简单快捷" in t for t in texts["utter_verification_routes"])


def test_every_intent_has_enough_training_and_holdout_examples(domain) -> None:
    training = nlu_examples(sorted((ROOT / "data" / "nlu").glob("*.yml")))
    holdout = nlu_examples(HOLDOUT)
    for intent in domain["intents"]:
        assert len(training.get(intent, [])) >= 20, f"{intent}: fewer than 20 training examples"
        assert len(holdout.get(intent, [])) >= 15, f"{intent}: fewer than 15 hold-out examples"


def test_holdout_is_not_copied_from_training() -> None:
    def norm(text: str) -> str:
        return re.sub(r"[\s，。,.!！?？、“”\"'~]", "", unicodedata.normalize("NFKC", text)).lower()

    training = {norm(e) for examples in nlu_examples(
        sorted((ROOT / "data" / "nlu").glob("*.yml"))).values() for e in examples}
    holdout = [e for examples in nlu_examples(HOLDOUT).values() for e in examples]
    copied = [e for e in holdout if norm(e) in training]
    assert copied == []
    assert len(holdout) == len(set(holdout)), "an example stands twice in the hold-out set"
