"""Custom actions for the CHSI account assistant, served by `python -m runtime.action_server`
(`make run`; never `rasa run actions`, which listens on every interface: docs/operations.md)."""
