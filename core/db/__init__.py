"""The project's own tables (tickets, unanswered questions, answer feedback) and their queries.

SQLAlchemy 1.4 in 2.0 style (`future=True`, `select()`); the schema is created and upgraded by
Alembic (migrations/), never by `create_all`.
"""
