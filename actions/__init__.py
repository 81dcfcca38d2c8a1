"""Custom actions for the CHSI account assistant, served by `rasa run actions --actions actions`."""
