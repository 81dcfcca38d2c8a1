"""Settings from the environment, read when they are used (never at import time).

The same names drive the Rasa server's tracker store and lock store (stores/), the
action server, Alembic and the staff command line, so one `DATABASE_URL` points all of them at
one database.

Every setting is in one registry, SETTINGS: its name, its default, what it means and how a value
is checked. Python reads them through `read(name)` (an unregistered name is an error), the
settings table of docs/operations.md is printed from it (`python -m core.settings`), and
tests/test_settings.py checks that the table, deploy/systemd/assistant.env.example, the YAML
files Rasa expands and scripts/run.sh name exactly these settings, and that no module reads the
environment around it. `problems()` says which set values a check refuses.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path

from core import parsing

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_FILE = ROOT / "var" / "assistant.db"
DEFAULT_RETENTION_DAYS = 90


def _number(value: str, kind: Callable[[str], float]) -> float:
    if kind is int:  # ASCII digits only: int() also takes "+5", "1_0" and "٥"
        number = parsing.ascii_int(value)
        if number is None:
            raise ValueError("a whole number")
        return number
    try:
        return kind(value)
    except ValueError:
        raise ValueError("a number") from None


def _at_least(low: float, kind: Callable[[str], float] = int) -> Callable[[str], None]:
    def check(value: str) -> None:
        if _number(value, kind) < low:
            raise ValueError(f"at least {low:g}")

    return check


def _time_zone(value: str) -> None:
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(value)
    except (ValueError, OSError, KeyError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise ValueError("a time zone name such as Asia/Shanghai") from error


def _between(low: float, high: float) -> Callable[[str], None]:
    def check(value: str) -> None:
        if not low <= _number(value, float) <= high:
            raise ValueError(f"between {low:g} and {high:g}")

    return check


def _port(value: str) -> None:
    if not (value.isascii() and value.isdigit() and 0 < int(value) < 65536):
        raise ValueError("a port number, 1-65535")


def _url(*schemes: str) -> Callable[[str], None]:
    def check(value: str) -> None:
        for url in value.split(","):
            if url.strip() and not url.strip().startswith(tuple(f"{s}://" for s in schemes)):
                raise ValueError(f"a URL starting with {' or '.join(schemes)}://")

    return check


def _flag(value: str) -> None:
    if value.lower() not in ("1", "0", "true", "false", "yes", "no"):
        raise ValueError("1 or 0")


def _secret(value: str) -> None:
    if len(value) < 32:
        raise ValueError("at least 32 characters")


@dataclass(frozen=True)
class Setting:
    """One setting of the environment: its name, its default (as the docs say it), what it
    means, and how a value that is set is checked (None: any text)."""

    name: str
    default: str
    meaning: str
    check: Callable[[str], None] | None = None


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "DATABASE_URL",
        "`sqlite:///<checkout>/var/assistant.db`",
        "conversations (Rasa's tracker store) and the project's tables; e.g. `postgresql://user@host:5432/assistant`",
        _url("sqlite", "postgresql", "postgresql+psycopg2"),
    ),
    Setting(
        "REDIS_URL",
        "unset: one server",
        "conversation locks and duplicate-message checks shared by several Rasa servers, e.g. `redis://127.0.0.1:6379/0`",
        _url("redis", "rediss", "unix"),
    ),
    Setting(
        "SANIC_WORKERS",
        "one per core, as many as the memory holds (`make run`)",
        "worker processes of the Rasa server (Rasa's own setting), sharing its port; without `REDIS_URL` they share locks, duplicate checks and pushed messages through the database",
        _at_least(1),
    ),
    Setting(
        "RETENTION_DAYS",
        "90",
        "`make purge` deletes conversations whose last message is older",
        _at_least(1),
    ),
    Setting(
        "TEAM_TIMEZONE",
        "`Asia/Shanghai`",
        "the support team's time zone: the console's days and weeks (outcomes, reports)",
        _time_zone,
    ),
    Setting(
        "CORS_ORIGINS",
        "`http://localhost:5005`",
        "web pages (comma-separated origins) allowed to use the REST and socket.io channels from a browser; `*` for any",
    ),
    Setting(
        "RASA_HOST",
        "`127.0.0.1`",
        "the interface the Rasa server listens on (`make run`); put a reverse proxy with TLS in front, or `0.0.0.0` to listen everywhere",
    ),
    Setting("RASA_PORT", "5005", "the Rasa server's port (`make run`)", _port),
    Setting(
        "ACTION_SERVER_HOST", "`127.0.0.1`", "the interface the action server listens on (below)"
    ),
    Setting(
        "ACTION_SERVER_TOKEN",
        "unset",
        "a shared secret the Rasa server sends with every action call and the action server requires",
    ),
    Setting(
        "SESSION_SECRET",
        "kept in `var/session_secret` by `make run`",
        "the key of the widgets' session tokens (docs/security.md), at least 32 characters; the same on every Rasa server behind a proxy, required with `REDIS_URL`. Unset: a random one per start, and the widgets start new conversations after a restart",
        _secret,
    ),
    Setting(
        "TAKEOVER_SECRET",
        "random at each `make run`",
        "the key the staff console signs its live-takeover calls with; the same on every Rasa server and the console; empty on a Rasa server: takeover off",
    ),
    Setting(
        "MODEL_SERVER_URL",
        "the console's `/models/current` at each `make run`",
        "where every worker of a Rasa server pulls the model to serve (Rasa's model server, `endpoints.yml` `models:`): the staff console's `/models/current`; unset: the model it started with, for ever",
        _url("http", "https"),
    ),
    Setting(
        "MODEL_SERVER_TOKEN",
        "random at each `make run`",
        "the key the Rasa servers send to pull the model and the console requires (at least 32 characters); unset on the console: it serves no model",
        _secret,
    ),
    Setting(
        "MODEL_PULL_SECONDS",
        "10",
        "how often each worker asks for a new model: a promotion or a rollback reaches every worker within this, plus the time to load the model",
        _at_least(1),
    ),
    Setting(
        "MODEL_STORE_DIR",
        "`<checkout>/var/models`",
        "the console's model archives, candidates' training data and their logs",
    ),
    Setting(
        "GATE_F1_MARGIN",
        "0.01",
        "the gate refuses a candidate whose hold-out macro-F1 is lower than the served model's by more than this",
        _between(0, 1),
    ),
    Setting(
        "ASSISTANT_URL",
        "`http://127.0.0.1:<RASA_PORT>`",
        "where the staff console reaches a Rasa server (or the proxy in front of several)",
        _url("http", "https"),
    ),
    Setting(
        "TAKEOVER_IDLE_MINUTES",
        "10",
        "a taken-over conversation whose agent has said nothing this long goes back to the assistant",
        _at_least(1),
    ),
    Setting(
        "TAKEOVER_CHECK_SECONDS",
        "30",
        "how often the staff console looks for such conversations",
        _at_least(0.5, float),
    ),
    Setting("STAFF_HOST", "`127.0.0.1`", "the interface the staff console listens on"),
    Setting("STAFF_PORT", "5006", "the staff console's port", _port),
    Setting(
        "STAFF_SECURE_COOKIES",
        "unset",
        "`1`: the console is served over HTTPS, its cookies say Secure",
        _flag,
    ),
    Setting(
        "STAFF_CONSOLE_URL",
        "unset",
        "the console's address, for the link in a new ticket's notice to the team's WeCom group",
        _url("http", "https"),
    ),
    Setting(
        "WECHAT_TOKEN",
        "unset: WeChat off (`503`)",
        "the Official Account's server token (docs/channels.md); `WECHAT_APPID`, `WECHAT_APPSECRET` with it",
    ),
    Setting("WECHAT_APPID", "unset", "the Official Account's AppID"),
    Setting(
        "WECHAT_APPSECRET",
        "unset",
        "the Official Account's AppSecret (the customer-service message API)",
    ),
    Setting("WECHAT_AES_KEY", "unset: plain mode", "the EncodingAESKey: safe mode"),
    Setting(
        "WECHAT_TRANSFER_CUSTOMER_SERVICE",
        "unset",
        "`1`: a WeChat handoff goes to the account's own online customer-service agents",
        _flag,
    ),
    Setting(
        "WECHAT_REPLY_SECONDS",
        "4",
        "how long a WeChat turn may take before the answer goes by the message API instead of the passive reply",
        _between(0, 4.5),
    ),
    Setting(
        "WECHAT_API_BASE",
        "`https://api.weixin.qq.com`",
        "the WeChat API's address (a simulator in the tests)",
        _url("http", "https"),
    ),
    Setting(
        "WECOM_TOKEN",
        "unset: WeCom off (`503`)",
        "the WeCom application's callback token (docs/channels.md)",
    ),
    Setting("WECOM_AES_KEY", "unset", "the WeCom callback's EncodingAESKey"),
    Setting("WECOM_CORP_ID", "unset", "the WeCom corporation id"),
    Setting("WECOM_SECRET", "unset", "the WeCom application's secret"),
    Setting("WECOM_AGENT_ID", "unset", "the WeCom application's AgentId"),
    Setting(
        "WECOM_API_BASE",
        "`https://qyapi.weixin.qq.com`",
        "the WeCom API's address (a simulator in the tests)",
        _url("http", "https"),
    ),
    Setting(
        "WECOM_ROBOT_WEBHOOK",
        "unset",
        "a WeCom group robot's webhook: each new ticket is told to the team there, without personal data",
        _url("https", "http"),
    ),
    Setting(
        "NLU_MAX_CHARS",
        "300",
        "how much of a message the NLU pipeline reads (the channels keep up to 2,000 characters)",
        _at_least(20),
    ),
    Setting(
        "WORKERS_STATUS_PORT",
        "5007 (`make run`)",
        "the Rasa server's supervisor answers `GET /ready` on 127.0.0.1 of this port: how many workers serve (below)",
        _port,
    ),
    Setting(
        "WORKERS_STATUS_URLS",
        "this machine's `WORKERS_STATUS_PORT`",
        "the `/ready` addresses (comma-separated) the staff console's 服务状态 page reads",
        _url("http", "https"),
    ),
    Setting(
        "WORKER_HANG_SECONDS",
        "30",
        "a worker whose event loop is silent this long is killed and replaced (longer than any turn or database wait keeps a loop busy)",
        _between(1, 3600),
    ),
    Setting(
        "SANIC_PROXIES_COUNT",
        "unset",
        "behind a proxy (deploy/nginx: 1): how many proxies' `X-Forwarded-For` entries to trust for the client's address; each address may send 120 messages a minute (REST, screenshots, socket.io; across workers and servers), then gets `429` with a polite note. Loopback is not limited",
        _at_least(0),
    ),
    Setting(
        "MAX_CONNECTIONS",
        "512",
        "connections one server process (a Rasa worker, the action server, the console) holds at most",
        _at_least(1),
    ),
    Setting(
        "NOTIFY_SOCKET",
        "set by systemd",
        "where the Rasa server's supervisor tells systemd it is ready (`Type=notify`); never set by hand",
    ),
)
REGISTRY = {setting.name: setting for setting in SETTINGS}


def read(name: str) -> str:
    """The value of setting `name`, stripped ("" when unset). A name that is not in SETTINGS is
    a KeyError: a new setting is registered first."""
    if name not in REGISTRY:
        raise KeyError(f"{name} is not a registered setting (core/settings.py: SETTINGS)")
    return os.environ.get(name, "").strip()


def expand_as_empty(names: tuple[str, ...]) -> None:
    """Sets each unset setting of `names` to "" in this process's environment: Rasa refuses a
    YAML file naming a variable that is not set, and for these unset means "off"."""
    for name in names:
        if name not in REGISTRY:
            raise KeyError(f"{name} is not a registered setting (core/settings.py: SETTINGS)")
        os.environ.setdefault(name, "")


def checked(name: str) -> str:
    """The value of setting `name` when it is set and its check accepts it, else "" (the
    caller's default: `problems()` says what was wrong when a server starts)."""
    value, check = read(name), REGISTRY[name].check
    if value and check is not None:
        try:
            check(value)
        except ValueError:
            return ""
    return value


def cors_origins() -> list[str]:
    """`CORS_ORIGINS`: the web pages (origins) allowed to use the channels from a browser."""
    return [origin.strip() for origin in read("CORS_ORIGINS").split(",") if origin.strip()]


def problems(environ: dict[str, str] | None = None) -> list[str]:
    """What is wrong with the settings that are set, one line each (empty: nothing)."""
    environ = dict(os.environ) if environ is None else environ
    found = []
    for setting in SETTINGS:
        value = environ.get(setting.name, "").strip()
        if not value or setting.check is None:
            continue
        try:
            setting.check(value)
        except ValueError as error:
            found.append(f"{setting.name}={value!r}: must be {error}")
    return found


def markdown_table() -> str:
    """The settings table of docs/operations.md."""
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{s.name}` | {s.default} | {s.meaning} |" for s in SETTINGS]
    return "\n".join(rows) + "\n"


def database_url() -> str:
    """`DATABASE_URL`, or the embedded SQLite file var/assistant.db of this checkout."""
    url = read("DATABASE_URL")
    if url:
        return url
    DEFAULT_DATABASE_FILE.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{DEFAULT_DATABASE_FILE}"


def redis_url() -> str | None:
    """`REDIS_URL` (for the lock store shared by several Rasa servers), or None for one server."""
    return read("REDIS_URL") or None


def workers() -> int:
    """`SANIC_WORKERS`: Rasa's own setting, the number of worker processes of one Rasa server
    (scripts/run.sh sets it to default_workers() unless it is set)."""
    raw = read("SANIC_WORKERS")
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
    raw = read("RETENTION_DAYS")
    if not raw:
        return DEFAULT_RETENTION_DAYS
    days = int(raw)
    if days < 1:
        raise ValueError(f"RETENTION_DAYS must be at least 1, not {days}")
    return days


def team_timezone() -> tzinfo:
    """`TEAM_TIMEZONE`: the zone the console's days and weeks are counted in."""
    from zoneinfo import ZoneInfo

    return ZoneInfo(checked("TEAM_TIMEZONE") or "Asia/Shanghai")


DEFAULT_NLU_MAX_CHARS = 300


def nlu_max_chars() -> int:
    """How much of a message the NLU pipeline reads: `NLU_MAX_CHARS`, 300 by default."""
    raw = read("NLU_MAX_CHARS")
    chars = int(raw) if raw else DEFAULT_NLU_MAX_CHARS
    if chars < 20:
        raise ValueError(f"NLU_MAX_CHARS must be at least 20, not {chars}")
    return chars


def staff_secure_cookies() -> bool:
    """STAFF_SECURE_COOKIES=1: the console is served over HTTPS, so its cookies say Secure."""
    return read("STAFF_SECURE_COOKIES").lower() in ("1", "true", "yes")


def takeover_secret() -> str:
    """`TAKEOVER_SECRET`: the key the staff console signs its live-takeover calls to the Rasa
    server with (core/signed_calls.py); empty turns live takeover off. `make run` makes a random
    one for each start when it is not set."""
    return read("TAKEOVER_SECRET")


def assistant_url() -> str:
    """Where the staff console reaches the Rasa server: `ASSISTANT_URL`, by default this machine's
    port 5005 (with several servers: any one of them, or the proxy in front of them)."""
    return read("ASSISTANT_URL").rstrip("/") or "http://127.0.0.1:5005"


DEFAULT_TAKEOVER_IDLE_MINUTES = 10


def takeover_idle_minutes() -> int:
    """After how many minutes without a word from the agent a taken-over conversation goes back
    to the assistant, with a note to the student: `TAKEOVER_IDLE_MINUTES`, 10 by default."""
    raw = read("TAKEOVER_IDLE_MINUTES")
    minutes = int(raw) if raw else DEFAULT_TAKEOVER_IDLE_MINUTES
    if minutes < 1:
        raise ValueError(f"TAKEOVER_IDLE_MINUTES must be at least 1, not {minutes}")
    return minutes


DEFAULT_TAKEOVER_CHECK_SECONDS = 30.0


def takeover_check_seconds() -> float:
    """How often the console looks for takeovers to hand back: `TAKEOVER_CHECK_SECONDS`, 30."""
    raw = read("TAKEOVER_CHECK_SECONDS")
    return max(0.5, float(raw)) if raw else DEFAULT_TAKEOVER_CHECK_SECONDS


def workers_status_urls() -> list[str]:
    """Where the staff console reads how many workers each Rasa server has serving
    (runtime/workers.py, `GET /ready` on loopback): `WORKERS_STATUS_URLS`, comma-separated, or
    this machine's WORKERS_STATUS_PORT (scripts/run.sh sets 5007), or none."""
    raw = read("WORKERS_STATUS_URLS")
    if raw:
        return [url.strip() for url in raw.split(",") if url.strip()]
    port = checked("WORKERS_STATUS_PORT")
    return [f"http://127.0.0.1:{port}/ready"] if port else []


DEFAULT_MODEL_PULL_SECONDS = 10


def model_pull_seconds() -> int:
    """How often each Rasa worker asks the model server for a new model: `MODEL_PULL_SECONDS`."""
    raw = checked("MODEL_PULL_SECONDS")
    return int(raw) if raw else DEFAULT_MODEL_PULL_SECONDS


DEFAULT_GATE_F1_MARGIN = 0.01


def gate_f1_margin() -> float:
    """How much lower a candidate's hold-out macro-F1 may be before the gate refuses it."""
    raw = checked("GATE_F1_MARGIN")
    return float(raw) if raw else DEFAULT_GATE_F1_MARGIN


if __name__ == "__main__":
    print(markdown_table(), end="")
