"""addons/shared_state.py in-process: values expire on time, and the conditions hold."""
import time

from addons.shared_state import SharedState


def test_values_expire_and_conditional_sets_hold(monkeypatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    state = SharedState()
    assert state.set("a", "1", 0.2, only_if_new=True)
    assert not state.set("a", "2", 10, only_if_new=True) and state.get("a") == "1"
    assert not state.set("b", "1", 10, only_if_present=True) and state.get("b") is None
    assert state.set("a", "3", 0.2, only_if_present=True) and state.get("a") == "3"
    time.sleep(0.25)
    assert state.get("a") is None  # expired, before any sweep
    assert state.set("a", "4", 10, only_if_new=True) and state.get("a") == "4"
