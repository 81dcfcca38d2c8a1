"""Throw-away databases for the benchmark and the tests: a migrated SQLite file or PostgreSQL
database, and a check that Redis answers."""

import contextlib
import subprocess
import uuid
from collections.abc import Iterator

from harness.servers import ROOT, project_command


def alembic(url: str, *args: str) -> subprocess.CompletedProcess:
    """The project's `alembic *args` on `url`, output captured."""
    return project_command("alembic", *args, env={"DATABASE_URL": url})


def migrate(url: str) -> None:
    """`alembic upgrade head` on `url`, as `make run` does, but in this process: the same
    migrations, without starting an interpreter for each throw-away database. No
    alembic.ini, so the caller's logging is left as it is."""
    from alembic import command
    from alembic.config import Config

    from core.db.engine import engine

    config = Config()
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.attributes["database_url"] = url
    try:
        command.upgrade(config, "head")
    except Exception as error:
        raise RuntimeError(f"alembic upgrade head failed on {url}: {error}") from error
    finally:
        engine(url).dispose()  # no pooled connection left open on a database a test drops


@contextlib.contextmanager
def new_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, migrated database on `admin_url`'s server, dropped afterwards. Raises when the
    server cannot be reached (sqlalchemy.exc.OperationalError)."""
    import sqlalchemy as sa

    admin = sa.create_engine(
        admin_url, future=True, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    name = f"assistant_tmp_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        url = str(sa.engine.make_url(admin_url).set(database=name))
        try:
            migrate(url)
            yield url
        finally:
            from core.db.engine import dispose_all

            dispose_all()  # close pooled connections before dropping the database
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def redis_answers(url: str) -> None:
    """Raises when Redis at `url` does not answer a PING."""
    import redis

    redis.Redis.from_url(url, socket_connect_timeout=3).ping()
