"""How the assistant names each topic to a student (intent_titles.yml): the did-you-mean buttons
(actions/clarify.py) and the steps written into a handoff ticket (actions/handoff.py)."""

from pathlib import Path

from core.yaml_files import read_yaml

TITLES_FILE = Path(__file__).with_name("intent_titles.yml")


def intent_titles() -> dict[str, str]:
    """Intent name -> the title a student reads."""
    titles: dict[str, str] = read_yaml(TITLES_FILE)
    return titles
