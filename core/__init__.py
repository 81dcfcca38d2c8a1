"""The shared core: settings, the database, personal-data masking and shared state.

Imported by the actions, the Rasa plugins (understanding, stores, channels), the staff commands and
the migrations; it imports none of them.
"""
