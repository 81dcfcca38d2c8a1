"""Settings from the environment, read when they are used (never at import time).

The same names drive the Rasa server's tracker store and lock store (stores/), the
action server, Alembic and the staff command line, so one `DATABASE_URL` points all of them at
one database.
"""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_FILE = ROOT / "var" / "assistant.db"
DEFAULT_RETENTION_DAYS = 90


def database_url() -> str:
    """`DATABASE_URL`, or the embedded SQLite file var/assistant.db of this checkout."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return url
    DEFAULT_DATABASE_FILE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DATABASE_FILE}"


def redis_url() -> str | None:
    """`REDIS_URL` (for the lock store shared by several Rasa servers), or None for one server."""
    return os.environ.get("REDIS_URL", "").strip() or None


def workers() -> int:
    """`SANIC_WORKERS`: Rasa's own setting, the number of worker processes of one Rasa server
    (scripts/run.sh sets it to default_workers() unless it is set)."""
    raw = os.environ.get("SANIC_WORKERS", "").strip()
    return max(1, int(raw)) if raw.isdigit() else 1


# What one worker of the Rasa server holds once it has answered (make bench: about 1.1 GB
# resident, more once it reads a picture).
WORKER_MEMORY_BYTES = int(1.4 * 1024**3)


def default_workers() -> int:
    """One worker per core this process may run on, as many as the available memory holds."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    available = None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    by_memory = available // WORKER_MEMORY_BYTES if available is not None else cores or 1
    return max(1, min(cores or 1, by_memory))


def shared_between_processes() -> str:
    """Where what every process of the assistant must see alike lives: "redis" (REDIS_URL),
    "database" (several workers and no Redis) or "process" (one worker, no Redis)."""
    if redis_url():
        return "redis"
    return "database" if workers() > 1 else "process"


def retention_days() -> int:
    """How long conversations are kept: `RETENTION_DAYS`, 90 by default."""
    raw = os.environ.get("RETENTION_DAYS", "").strip()
    if not raw:
        return DEFAULT_RETENTION_DAYS
    days = int(raw)
    if days < 1:
        raise ValueError(f"RETENTION_DAYS must be at least 1, not {days}")
    return days


DEFAULT_NLU_MAX_CHARS = 300


def nlu_max_chars() -> int:
    """How much of a message the NLU pipeline reads: `NLU_MAX_CHARS`, 300 by default."""
    raw = os.environ.get("NLU_MAX_CHARS", "").strip()
    chars = int(raw) if raw else DEFAULT_NLU_MAX_CHARS
    if chars < 20:
        raise ValueError(f"NLU_MAX_CHARS must be at least 20, not {chars}")
    return chars


def staff_secure_cookies() -> bool:
    """STAFF_SECURE_COOKIES=1: the console is served over HTTPS, so its cookies say Secure."""
    return os.environ.get("STAFF_SECURE_COOKIES", "").strip().lower() in ("1", "true", "yes")


def takeover_secret() -> str:
    """`TAKEOVER_SECRET`: the key the staff console signs its live-takeover calls to the Rasa
    server with (core/signed_calls.py); empty turns live takeover off. `make run` makes a random
    one for each start when it is not set."""
    return os.environ.get("TAKEOVER_SECRET", "").strip()


def assistant_url() -> str:
    """Where the staff console reaches the Rasa server: `ASSISTANT_URL`, by default this machine's
    port 5005 (with several servers: any one of them, or the proxy in front of them)."""
    return os.environ.get("ASSISTANT_URL", "").strip().rstrip("/") or "http://127.0.0.1:5005"


DEFAULT_TAKEOVER_IDLE_MINUTES = 10


def takeover_idle_minutes() -> int:
    """After how many minutes without a word from the agent a taken-over conversation goes back
    to the assistant, with a note to the student: `TAKEOVER_IDLE_MINUTES`, 10 by default."""
    raw = os.environ.get("TAKEOVER_IDLE_MINUTES", "").strip()
    minutes = int(raw) if raw else DEFAULT_TAKEOVER_IDLE_MINUTES
    if minutes < 1:
        raise ValueError(f"TAKEOVER_IDLE_MINUTES must be at least 1, not {minutes}")
    return minutes


DEFAULT_TAKEOVER_CHECK_SECONDS = 30.0


def takeover_check_seconds() -> float:
    """How often the console looks for takeovers to hand back: `TAKEOVER_CHECK_SECONDS`, 30."""
    raw = os.environ.get("TAKEOVER_CHECK_SECONDS", "").strip()
    return max(0.5, float(raw)) if raw else DEFAULT_TAKEOVER_CHECK_SECONDS


def workers_status_urls() -> list[str]:
    """Where the staff console reads how many workers each Rasa server has serving
    (runtime/workers.py, `GET /ready` on loopback): `WORKERS_STATUS_URLS`, comma-separated, or
    this machine's WORKERS_STATUS_PORT (scripts/run.sh sets 5007), or none."""
    raw = os.environ.get("WORKERS_STATUS_URLS", "").strip()
    if raw:
        return [url.strip() for url in raw.split(",") if url.strip()]
    port = os.environ.get("WORKERS_STATUS_PORT", "").strip()
    return [f"http://127.0.0.1:{port}/ready"] if port.isascii() and port.isdigit() else []
