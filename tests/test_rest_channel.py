"""channels/rest.py on its own: an answer whatever happens, and each message id once."""

import asyncio
from typing import Any

import pytest

from channels.replies import replies
from channels.rest import ResilientRestInput
from core.deliveries import Deliveries
from tests.helpers import EMAIL, HOTLINE


class Assistant:
    """Stands in for Rasa's handler: replies, says nothing, or fails, and counts its turns."""

    def __init__(self, behaviour: str, delay: float = 0.0) -> None:
        self.behaviour, self.delay, self.turns = behaviour, delay, []

    async def __call__(self, message: Any) -> None:
        self.turns.append(message.text)
        await asyncio.sleep(self.delay)
        if self.behaviour == "fail":
            raise RuntimeError("action server unreachable")
        if self.behaviour == "reply":
            await message.output_channel.send_text_message(
                message.sender_id, f"reply {len(self.turns)}"
            )


def answer(
    channel: ResilientRestInput, assistant: Assistant, text: str = "你好", message_id: Any = None
) -> list[dict]:
    return asyncio.run(channel.answer(assistant, "student", text, message_id, None))


@pytest.mark.parametrize("behaviour", ["fail", "silent"])
def test_a_failure_or_a_silence_gets_the_apology_with_the_contacts(behaviour: str, caplog) -> None:
    reply = answer(ResilientRestInput(Deliveries()), Assistant(behaviour), text="我的密码是abc123")
    assert [m["text"] for m in reply] == [replies()["unavailable"]]
    assert HOTLINE in reply[0]["text"] and EMAIL in reply[0]["text"]
    assert "abc123" not in caplog.text  # what the student typed is not logged


def test_a_normal_reply_passes_through() -> None:
    assert [m["text"] for m in answer(ResilientRestInput(Deliveries()), Assistant("reply"))] == [
        "reply 1"
    ]


def test_the_same_message_id_is_processed_once_and_answered_alike() -> None:
    channel, assistant = ResilientRestInput(Deliveries()), Assistant("reply", delay=0.2)

    async def three_deliveries() -> list[list[dict]]:
        return await asyncio.gather(
            *(channel.answer(assistant, "student", "忘记密码", "m-1", None) for _ in range(3))
        )

    replies_ = asyncio.run(three_deliveries())
    assert assistant.turns == ["忘记密码"]
    assert replies_[0] == replies_[1] == replies_[2] and replies_[0][0]["text"] == "reply 1"
    # another id, or the same id from another student, is a new message
    answer(channel, assistant, "忘记密码", "m-2")
    asyncio.run(channel.answer(assistant, "someone-else", "忘记密码", "m-1", None))
    assert len(assistant.turns) == 3


def test_duplicates_are_recognised_across_servers_through_redis(redis_url: str) -> None:
    import uuid

    message_id = uuid.uuid4().hex
    first, second = Assistant("reply"), Assistant("reply")
    servers = [ResilientRestInput(Deliveries(redis_url)), ResilientRestInput(Deliveries(redis_url))]
    one = answer(servers[0], first, "忘记用户名", message_id)
    two = answer(servers[1], second, "忘记用户名", message_id)
    assert one == two and len(first.turns) == 1 and second.turns == []


def test_with_redis_down_the_message_is_still_answered_once() -> None:
    channel, assistant = ResilientRestInput(Deliveries("redis://127.0.0.1:1/0")), Assistant("reply")
    assert answer(channel, assistant, message_id="m-1")[0]["text"] == "reply 1"
    # the duplicate check falls back to this server's memory
    assert answer(channel, assistant, message_id="m-1")[0]["text"] == "reply 1"
    assert len(assistant.turns) == 1


def test_delivery_keys_cannot_collide() -> None:
    assert Deliveries.key("a:b", "c") != Deliveries.key("a", "b:c")
    assert len(Deliveries.key("x" * 300, "y" * 300)) == len(Deliveries.key("a", "b"))


def test_a_long_message_is_answered_from_its_beginning_with_a_note() -> None:
    from channels import limits

    assistant = Assistant("reply")
    reply = answer(ResilientRestInput(Deliveries()), assistant, text="忘" * 50_000)
    assert len(assistant.turns[0]) == limits.MAX_MESSAGE_CHARS
    assert [m["text"] for m in reply] == [replies()["too_long"], "reply 1"]


def test_the_personal_data_note_goes_before_an_answer_only_when_needed() -> None:
    from channels.replies import personal_data_warning, with_personal_data_note

    answer = [{"recipient_id": "s", "text": "你以前注册过吗？"}]
    noted = with_personal_data_note(
        "身份证１１０１０５１９４９１２３１００２Ｘ已被注册", answer, "s"
    )
    assert [m["text"] for m in noted] == [replies()["personal_data_note"], "你以前注册过吗？"]
    assert with_personal_data_note("证件号码已被注册", answer, "s") == answer
    warned = [{"recipient_id": "s", "text": personal_data_warning()}]
    assert with_personal_data_note("13912345678", warned, "s") == warned
    assert with_personal_data_note("13912345678", [], "s") == []
