"""Per-request guards kept in Redis, so they hold across every API replica.

- Revoked token ids: ``auth:revoked:<jti>``, set by ``learnflow token revoke`` until the token
  would have expired anyway.
- The per-student rate limit: a sliding 60 s log in ``student:{<id>}:ratelimit`` (a sorted set of
  request times), checked and updated by one Lua script using Redis's clock, so concurrent
  requests on several replicas can never let the 101st through.
- Idempotent submits: ``student:{<id>}:idempotency:<key>`` holds the first answer for 24 h.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from learnflow import keys
from serve.exceptions import IdempotencyConflictError

_WINDOW_MS = 60_000

# KEYS[1] the student's request log. ARGV: limit, window (ms), a unique member.
# Returns {1, remaining} when admitted, {0, retry_after_ms} when over the limit.
_RATE_LIMIT = """
local now_parts = redis.call('TIME')
local now = tonumber(now_parts[1]) * 1000 + math.floor(tonumber(now_parts[2]) / 1000)
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return {0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, limit - count - 1}
"""


@dataclass(frozen=True, slots=True)
class Admission:
    revoked: bool
    admitted: bool
    remaining: int
    retry_after_s: int
    reads: tuple[bytes | None, ...] = ()
    """The values of the keys the caller asked to read in the same round trip."""


class RequestGuard:
    """Revocation and rate limit of one request (and any reads) in a single Redis round trip.

    The rate-limit script is called by its SHA inside the pipeline: redis-py's registered
    scripts add a ``SCRIPT EXISTS`` round trip to every pipeline that carries one. If Redis
    lost its script cache (a restart), the script is loaded again and the request retried once.
    """

    def __init__(self, client: aioredis.Redis, per_minute: int) -> None:
        self._redis = client
        self._per_minute = per_minute
        self._sha = hashlib.sha1(_RATE_LIMIT.encode()).hexdigest()  # noqa: S324 - Redis's id

    async def admit(self, student_id: str, jti: str, reads: Sequence[str] = ()) -> Admission:
        """Revocation, the rate limit and a GET of each of ``reads``, in one round trip."""
        try:
            return await self._admit(student_id, jti, reads)
        except NoScriptError:
            await self._redis.script_load(_RATE_LIMIT)
            return await self._admit(student_id, jti, reads)

    async def _admit(self, student_id: str, jti: str, reads: Sequence[str]) -> Admission:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(keys.revoked_token(jti))
            pipe.evalsha(
                self._sha,
                1,
                keys.rate_limit(student_id),
                self._per_minute,
                _WINDOW_MS,
                uuid.uuid4().hex,
            )
            for key in reads:
                pipe.get(key)
            revoked, (admitted, figure), *values = await pipe.execute()
        if revoked:
            return Admission(True, False, 0, 0)
        if admitted:
            return Admission(False, True, int(figure), 0, tuple(values))
        return Admission(False, False, 0, max(1, math.ceil(int(figure) / 1000)))


async def revoke(client: aioredis.Redis, jti: str, ttl_s: int) -> None:
    await client.set(keys.revoked_token(jti), "1", ex=ttl_s)


class IdempotencyStore:
    """The first answer to each (student, idempotency key), and a claim while it is made.

    A key is graded and recorded at most once: the claim lives as long as the answer would, so
    a submit interrupted after its event reached Kafka (but before its answer was stored) can
    never be graded and sent again under the same key.
    """

    def __init__(self, client: aioredis.Redis, ttl_s: int, claim_ttl_s: int) -> None:
        self._redis = client
        self._ttl = ttl_s
        self._claim_ttl = claim_ttl_s
        """How long a claim counts as still being graded; after that it was interrupted."""

    @staticmethod
    def fingerprint(body: Any) -> str:
        return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()

    async def claim(self, student_id: str, key: str, fingerprint: str) -> dict[str, Any] | None:
        """Claim the key for a new submit (returns None), or return the stored first answer.

        Raises :class:`IdempotencyConflictError` when the key came with another body, while the
        first submit with it is still being graded, or when that submit was interrupted.
        """
        name = keys.idempotency(student_id, key)
        claim = orjson.dumps(
            {"state": "pending", "fingerprint": fingerprint, "claimed_at": time.time()}
        )
        if await self._redis.set(name, claim, nx=True, ex=self._ttl):
            return None
        raw = await self._redis.get(name)
        if raw is None:  # expired between the two calls: claim again
            return await self.claim(student_id, key, fingerprint)
        stored = orjson.loads(raw)
        if stored.get("fingerprint") != fingerprint:
            raise IdempotencyConflictError(
                "this Idempotency-Key was already used with a different request body"
            )
        if stored.get("state") == "done":
            answer: dict[str, Any] = stored["answer"]
            return answer
        if time.time() - float(stored.get("claimed_at", 0.0)) < self._claim_ttl:
            raise IdempotencyConflictError(
                "a submit with this Idempotency-Key is still being graded; retry shortly", 1
            )
        raise IdempotencyConflictError(
            "a submit with this Idempotency-Key was interrupted before it answered and may "
            "have been recorded; submit again with a new key"
        )

    async def store(
        self, student_id: str, key: str, fingerprint: str, answer: dict[str, Any]
    ) -> None:
        document = {"state": "done", "fingerprint": fingerprint, "answer": answer}
        await self._redis.set(
            keys.idempotency(student_id, key), orjson.dumps(document), ex=self._ttl
        )

    async def release(self, student_id: str, key: str) -> None:
        """Drop an unfinished claim (the submit failed before any event): a retry may run."""
        await self._redis.delete(keys.idempotency(student_id, key))
