"""Load generator: plays conversations over the REST channel from its own process.

    python -m bench.load --url http://127.0.0.1:5005 [--url …] --concurrency 10 \
        --conversations 40 [--max-seconds 120]

`concurrency` simulated students each play conversations (bench/flows.py, round robin) one message
at a time, waiting for each reply, until `conversations` conversations are done or `max-seconds`
have passed. With several URLs each message goes to the next server in turn, as behind a load
balancer. Prints one JSON object: per-message latencies in seconds, errors, empty replies, the
wall-clock duration. Written on aiohttp (an asyncio HTTP client).
"""

import argparse
import asyncio
import itertools
import json
import time
import uuid
from typing import Any

import aiohttp

from bench.flows import FLOWS

REQUEST_TIMEOUT_SECONDS = 60


async def play(
    session: aiohttp.ClientSession, urls: itertools.cycle, flow: list[str], result: dict[str, Any]
) -> None:
    sender = f"bench-{uuid.uuid4().hex[:12]}"
    for text in flow:
        url = next(urls)
        started = time.perf_counter()
        try:
            async with session.post(
                f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": text}
            ) as response:
                body = await response.json(content_type=None)
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    result["errors"] += 1
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            result["errors"] += 1
            continue
        result["latencies"].append(elapsed)
        if not body or not any(m.get("text") for m in body):
            result["empty"] += 1


async def run(urls: list[str], concurrency: int, conversations: int, max_seconds: float) -> dict:
    result: dict[str, Any] = {"latencies": [], "errors": 0, "empty": 0, "conversations": 0}
    flows = itertools.cycle(FLOWS)
    servers = itertools.cycle(urls)
    remaining = [conversations]
    deadline = time.monotonic() + max_seconds
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    connector = aiohttp.TCPConnector(limit=concurrency)

    async def student(session: aiohttp.ClientSession) -> None:
        while remaining[0] > 0 and time.monotonic() < deadline:
            remaining[0] -= 1
            await play(session, servers, next(flows), result)
            result["conversations"] += 1

    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        await asyncio.gather(*(student(session) for _ in range(concurrency)))
    result["duration"] = time.perf_counter() - started
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", action="append", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--conversations", type=int, default=10)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    print(
        json.dumps(
            asyncio.run(run(args.url, args.concurrency, args.conversations, args.max_seconds))
        )
    )


if __name__ == "__main__":
    main()
