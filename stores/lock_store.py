"""A conversation lock that holds across several Rasa servers: FIFO, atomic, token-owned.

Rasa serialises the turns of one conversation with a lock store. Its open-source RedisLockStore
reads the lock, changes it in Python and writes it back (rasa#9213): two servers can both take the
lock, and a holder whose ticket expired can release a newcomer's ticket. Here each turn gets a
random token queued under an increasing number in Redis, and every change is one Lua script:
- take a place: INCR a counter, queue the token under it, note when it expires;
- whose turn: drop expired tokens at the head of the queue, return the head;
- release: remove one's own token only; the keys go when the queue is empty.
A turn proceeds when its token is at the head, so turns run one at a time in arrival order.

REDIS_URL selects Redis. Without it, when the server runs several worker processes
(SANIC_WORKERS > 1, as scripts/run.sh does on a machine with several cores), the same queue lives
in files beside the SQLite database (one machine's database, so one machine's workers), or in
PostgreSQL (table `conversation_turns`); with one worker, in this process.
Registered by module path in endpoints.yml.
"""

import asyncio
import fcntl
import hashlib
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, LockStore

from core import processes, redis_connection, settings
from core.db.engine import session_scope
from core.db.models import ConversationTurn

logger = logging.getLogger(__name__)

# How often a waiting turn looks again; short, since a turn takes tens of milliseconds.
POLL_SECONDS = (0.005, 0.01, 0.02, 0.05)

TAKE_PLACE = """
local number = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], number, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[3]) end
return number
"""

WHOSE_TURN = """
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)[1]
  if not head then return false end
  local expires = tonumber(redis.call('HGET', KEYS[3], head) or '0')
  if expires > tonumber(ARGV[1]) then return head end
  redis.call('ZREM', KEYS[2], head)
  redis.call('HDEL', KEYS[3], head)
end
"""

RELEASE = """
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if redis.call('ZCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[1], KEYS[2], KEYS[3]) end
return removed
"""


# Turns one process runs at once; the others wait in arrival order. A turn is mostly CPU (the
# models), so a few at once keep the core busy through a turn's waits (database, action server);
# many at once would each take turns on the core, and every turn would be slow.
TURNS_AT_ONCE = 3

# Expired places of conversations that never had another turn are deleted this often.
SWEEP_SECONDS = 60


def _lock_key(conversation_id: str) -> int:
    """A PostgreSQL advisory lock key (bigint) for the conversation."""
    return int.from_bytes(hashlib.sha256(conversation_id.encode()).digest()[:8], "big", signed=True)


class DatabaseTurns:
    """The queue of turns in the database, for several worker processes without Redis.

    Each operation is one short transaction (run in a thread: SQLite may wait for a writer):
    a place is a row whose id is its number; the head is the live row with the lowest id;
    releasing deletes one's own row and any expired ones of the conversation.
    """

    def __init__(self) -> None:
        self._next_sweep = 0.0

    def take_place(self, conversation_id: str, token: str, expires: float) -> str | None:
        """Queues the token; returns the head of the queue right after (one transaction, so an
        uncontended turn needs no second look)."""
        with session_scope() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Ids come from a sequence, whose order is not the order transactions commit in:
                # a place taken just after another could commit first and find itself at the head
                # of the queue, while the earlier one then finds itself there too. One place at a
                # time per conversation (released at commit) keeps the two orders the same.
                session.execute(
                    sa.select(sa.func.pg_advisory_xact_lock(_lock_key(conversation_id)))
                )
            session.add(
                ConversationTurn(conversation_id=conversation_id, token=token, expires=expires)
            )
            if time.time() >= self._next_sweep:
                self._next_sweep = time.time() + SWEEP_SECONDS
                session.execute(
                    sa.delete(ConversationTurn).where(ConversationTurn.expires < time.time())
                )
            session.flush()
            return self._head(session, conversation_id, time.time())

    def whose_turn(self, conversation_id: str, now: float) -> str | None:
        with session_scope() as session:
            return self._head(session, conversation_id, now)

    @staticmethod
    def _head(session: Any, conversation_id: str, now: float) -> str | None:
        head: str | None = session.execute(
            sa.select(ConversationTurn.token)
            .where(
                ConversationTurn.conversation_id == conversation_id,
                ConversationTurn.expires > now,
            )
            .order_by(ConversationTurn.id)
            .limit(1)
        ).scalar()
        return head

    def release(self, conversation_id: str, token: str) -> bool:
        with session_scope() as session:
            mine = ConversationTurn.token == token
            removed = session.execute(
                sa.delete(ConversationTurn).where(
                    ConversationTurn.conversation_id == conversation_id,
                    sa.or_(mine, ConversationTurn.expires < time.time()),
                )
            ).rowcount
            return bool(removed)


# A queue file bigger than this is not read (each place is one line of about 50 bytes; the
# channels' rate limits keep a conversation's queue far shorter).
QUEUE_FILE_BYTES = 1 << 20
# Queue files of turns that never released (a killed worker) are swept, at most this many a time.
SWEEP_FILES = 1000


class FileTurns:
    """The queue of turns in files, for several worker processes of one server on SQLite.

    SQLite is one machine's database, so its workers share a directory: beside the database file,
    one small file per conversation with turns in flight, named by a hash of the conversation id,
    one line "token expires" per place. Every change holds an exclusive flock on the file for a few
    system calls. The database's single writer is left to the conversations themselves: through
    it, taking and releasing places cost about a sixth of a worker's time under load (py-spy).
    The last release deletes the file.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.directory = directory
        self._next_sweep = 0.0

    @classmethod
    def beside(cls, database_url: str) -> "FileTurns":
        """The queue beside the SQLite database of `database_url` (sqlite:///path)."""
        database = Path(database_url.split(":///", 1)[1]).resolve()
        return cls(database.parent / f"{database.name}-turns")

    def _path(self, conversation_id: str) -> Path:
        return self.directory / hashlib.sha256(conversation_id.encode()).hexdigest()[:40]

    @contextmanager
    def _queue(self, path: Path, create: bool) -> Iterator[tuple[int, list] | None]:
        """The queue file at `path`, locked, with its live places [(token, expires)]; None when
        there is no file. A release may delete the file while this waits for its lock, so the
        file locked must still be the one at the path."""
        while True:
            try:
                fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
            except FileNotFoundError:
                yield None
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    current = os.stat(path).st_ino == os.fstat(fd).st_ino
                except FileNotFoundError:
                    current = False
                if current:
                    yield fd, self._places(os.pread(fd, QUEUE_FILE_BYTES, 0))
                    return
            finally:
                os.close(fd)  # closing releases the flock

    @staticmethod
    def _places(data: bytes) -> list[tuple[str, float]]:
        now, places = time.time(), []
        for line in data.decode("ascii", "replace").splitlines():
            token, _, expires = line.partition(" ")
            try:
                if float(expires) > now:
                    places.append((token, float(expires)))
            except ValueError:  # a line cut short by a worker killed while writing it
                continue
        return places

    @staticmethod
    def _write(path: Path, fd: int, places: list) -> None:
        """Writes the locked queue file back; an empty queue is deleted."""
        if not places:
            path.unlink()
            return
        data = "".join(f"{token} {expires:.6f}\n" for token, expires in places).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))

    def take_place(self, conversation_id: str, token: str, expires: float) -> str | None:
        """Queues the token; returns the head of the queue right after."""
        if time.time() >= self._next_sweep:
            self._next_sweep = time.time() + SWEEP_SECONDS
            self.sweep()
        path = self._path(conversation_id)
        with self._queue(path, create=True) as queue:
            assert queue is not None
            fd, places = queue
            places.append((token, expires))
            self._write(path, fd, places)
            return str(places[0][0])

    def whose_turn(self, conversation_id: str, now: float) -> str | None:
        with self._queue(self._path(conversation_id), create=False) as queue:
            live = [token for token, expires in queue[1] if expires > now] if queue else []
            return live[0] if live else None

    def release(self, conversation_id: str, token: str) -> bool:
        path = self._path(conversation_id)
        with self._queue(path, create=False) as queue:
            if queue is None:
                return False
            fd, places = queue
            others = [place for place in places if place[0] != token]
            self._write(path, fd, others)
            return len(others) < len(places)

    def sweep(self) -> None:
        """Deletes the queues whose places have all expired (their workers were killed)."""
        for number, path in enumerate(self.directory.iterdir()):
            if number >= SWEEP_FILES:
                return
            with self._queue(path, create=False) as queue:
                if queue is not None and not queue[1]:
                    path.unlink()


def shared_queue() -> FileTurns | DatabaseTurns | None:
    """Where the workers of one server queue their turns when there is no Redis: None for one
    worker (this process), files beside SQLite, or PostgreSQL."""
    if settings.workers() <= 1:
        return None
    url = settings.database_url()
    return FileTurns.beside(url) if url.startswith("sqlite:///") else DatabaseTurns()


class ConversationLockStore(LockStore):
    """FIFO lock per conversation: in Redis when REDIS_URL is set, shared by the workers without
    Redis (shared_queue), else in this process."""

    def __init__(self, endpoint_config: Any = None, url: str | None = None) -> None:
        url = url or getattr(endpoint_config, "url", None) or settings.redis_url()
        # Rasa allows several workers with any lock store but its in-memory one; an in-process
        # queue would let two workers run turns of one conversation at once.
        self.queue = None if url else shared_queue()
        self._placing: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._running: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.url = url
        self._queues: dict[str, OrderedDict[str, float]] = {}
        self._scripts: dict[int, dict[str, Any]] = {}  # per client (one per event loop)
        super().__init__()

    def _script(self, name: str) -> Any:
        """The Lua script `name`, registered on an asyncio Redis client (one-second timeouts:
        a Redis that stops answering delays a turn by that much, it never blocks the loop)."""
        assert self.url, "the Redis scripts are used only when REDIS_URL is set"
        client = redis_connection.client(self.url)
        if id(client) not in self._scripts:
            self._scripts = {
                id(client): {
                    "take_place": client.register_script(TAKE_PLACE),
                    "whose_turn": client.register_script(WHOSE_TURN),
                    "release": client.register_script(RELEASE),
                }
            }
        return self._scripts[id(client)][name]

    def _placing_lock(self) -> asyncio.Lock:
        """The running event loop's lock around taking a place in the database."""
        loop = asyncio.get_running_loop()
        if self._placing is None or self._placing[0] is not loop:
            self._placing = (loop, asyncio.Lock())
        return self._placing[1]

    def _running_turns(self) -> asyncio.Semaphore:
        """The running event loop's limit on turns in progress at once (TURNS_AT_ONCE)."""
        loop = asyncio.get_running_loop()
        if self._running is None or self._running[0] is not loop:
            self._running = (loop, asyncio.Semaphore(TURNS_AT_ONCE))
        return self._running[1]

    async def _on_queue(self, operation: str, *args: Any) -> Any:
        """One operation of the shared queue: in a thread for the database (SQL may wait), in
        place for the files (a few system calls)."""
        run = getattr(self.queue, operation)
        if isinstance(self.queue, FileTurns):
            return run(*args)
        return await asyncio.to_thread(run, *args)

    @staticmethod
    def _keys(conversation_id: str) -> list:
        return [
            redis_connection.key("lock", conversation_id, part)
            for part in ("next", "queue", "expires")
        ]

    # The three operations, each atomic: one Lua script, or plain Python between two awaits.

    async def take_place(self, conversation_id: str, token: str, lifetime: float) -> str | None:
        """Queues the turn's token; the head of the queue when that came with it, else None."""
        expires = time.time() + lifetime
        if self.url:
            keep_ms = int((lifetime + 60) * 1000)
            await self._script("take_place")(
                keys=self._keys(conversation_id), args=[token, expires, keep_ms]
            )
        elif self.queue:
            async with self._placing_lock():  # one at a time: places follow arrival order
                return await self._on_queue("take_place", conversation_id, token, expires)
        else:
            self._queues.setdefault(conversation_id, OrderedDict())[token] = expires
        return None

    async def whose_turn(self, conversation_id: str) -> str | None:
        now = time.time()
        if self.url:
            head = await self._script("whose_turn")(keys=self._keys(conversation_id), args=[now])
            return head.decode() if head else None
        if self.queue:
            return await self._on_queue("whose_turn", conversation_id, now)
        queue = self._queues.get(conversation_id) or OrderedDict()
        while queue:
            head, expires = next(iter(queue.items()))
            if expires > now:
                return head
            queue.popitem(last=False)
        return None

    async def release(self, conversation_id: str, token: str) -> bool:
        if self.url:
            return bool(
                await self._script("release")(keys=self._keys(conversation_id), args=[token])
            )
        if self.queue:
            return await self._on_queue("release", conversation_id, token)
        queue = self._queues.get(conversation_id)
        if queue is None or queue.pop(token, None) is None:
            return False
        if not queue:
            del self._queues[conversation_id]
        return True

    @asynccontextmanager
    async def lock(
        self,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1,
    ) -> AsyncGenerator[TicketLock, None]:
        """Wait for this turn's place at the head of the conversation's queue, then run it.

        The turn may wait at most `lock_lifetime` seconds; after that its place has expired and
        LockError is raised (the channel answers with an apology and the contacts). A place whose
        worker is gone (killed, replaced: core/processes.py) is released at once, not left to
        expire: its token names the worker.
        """
        token = f"{processes.this_process()}-{secrets.token_hex(8)}"
        try:
            known = await self.take_place(conversation_id, token, lock_lifetime)
        except Exception as error:
            raise LockError(f"Could not queue a turn: {type(error).__name__}") from error
        try:
            attempt, deadline = 0, time.monotonic() + lock_lifetime
            while True:
                try:
                    head = known or await self.whose_turn(conversation_id)
                except Exception as error:
                    raise LockError(f"Could not check a turn: {type(error).__name__}") from error
                known = None
                if head == token:
                    break
                if head is not None and processes.is_gone(head.rpartition("-")[0]):
                    logger.warning("A turn's place was held by a worker that is gone; released.")
                    await self.release(conversation_id, head)
                    continue
                if head is None or time.monotonic() > deadline:  # our own place has expired
                    raise LockError(f"Waited too long for conversation '{conversation_id}'.")
                await asyncio.sleep(POLL_SECONDS[min(attempt, len(POLL_SECONDS) - 1)])
                attempt += 1
            async with self._running_turns():
                yield TicketLock(conversation_id)
        finally:
            try:
                await self.release(conversation_id, token)
            except Exception as error:  # the place expires by itself
                logger.warning("Could not release a conversation lock: %s", type(error).__name__)

    # Rasa's LockStore interface around TicketLock objects; not used by `lock` above.

    def get_lock(self, conversation_id: str) -> TicketLock | None:
        return None

    def delete_lock(self, conversation_id: str) -> None:
        # In Redis the keys expire by themselves a minute after the last place's lifetime.
        self._queues.pop(conversation_id, None)

    def save_lock(self, lock: TicketLock) -> None:
        return None
