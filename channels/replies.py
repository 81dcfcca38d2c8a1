"""What the channels themselves say (replies.yml): when the assistant cannot answer, when a
message is not text or too long, when the help page cannot reach the server."""

from pathlib import Path
from typing import Any

from core.privacy import contains_personal_data
from core.settings import ROOT
from core.yaml_files import read_yaml

REPLIES_FILE = Path(__file__).with_name("replies.yml")
DOMAIN_FILE = ROOT / "domain.yml"


def replies() -> dict[str, str]:
    """Reply name -> text (replies.yml)."""
    texts: dict[str, str] = read_yaml(REPLIES_FILE)
    return texts


def unavailable() -> list[dict[str, Any]]:
    return [{"recipient_id": None, "text": replies()["unavailable"]}]


def personal_data_warning() -> str:
    """The assistant's own warning (domain.yml), given when a message is only personal data."""
    domain: dict[str, Any] = read_yaml(DOMAIN_FILE)
    return str(domain["responses"]["utter_personal_data_warning"][0]["text"])


def with_personal_data_note(
    said: str, messages: list[dict[str, Any]], recipient: str | None
) -> list[dict[str, Any]]:
    """`messages`, with the note that personal data is neither needed nor kept before them when
    the student's message held some and the answer does not warn already (a question asked
    with an ID number in it is answered, and the student still learns not to send it)."""
    if not messages or not contains_personal_data(said):
        return messages
    warning = personal_data_warning()
    if any(warning in (message.get("text") or "") for message in messages):
        return messages
    return [{"recipient_id": recipient, "text": replies()["personal_data_note"]}, *messages]
