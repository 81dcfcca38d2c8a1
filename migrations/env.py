"""Alembic environment: the URL comes from DATABASE_URL (core.settings), never from alembic.ini,
or from the caller when alembic runs in its process (harness/databases.py: `database_url`)."""

from logging.config import fileConfig

from alembic import context

from core import settings
from core.db.engine import engine
from core.db.models import Base

if context.config.config_file_name is not None:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

# The tracker store's `events` table is Rasa's, created by Rasa: autogenerate must not drop it.
OWN_TABLES = set(Base.metadata.tables)


def database_url() -> str:
    return str(context.config.attributes.get("database_url") or settings.database_url())


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    return type_ != "table" or name in OWN_TABLES


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=Base.metadata,
        include_object=include_object,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    with engine(database_url()).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=include_object,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
