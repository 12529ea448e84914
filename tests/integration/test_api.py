"""The HTTP API as deployed by ``learnflow up`` on Ray Serve, against the real services."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
from confluent_kafka import Consumer, TopicPartition
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from learnflow import keyring
from learnflow.events import attempt_event_id
from learnflow.partitioning import partition_for_student
from learnflow.settings import Settings

SOLUTION = "def sum_to(n):\n    return n * (n + 1) // 2\n"
WRONG = "def sum_to(n):\n    return n\n"


def student() -> str:
    return f"api-{uuid.uuid4().hex[:10]}"


def token_for(settings: Settings, ring: keyring.KeyRing, student_id: str, **kw: Any) -> str:
    return keyring.mint(ring, settings.auth, student_id, **kw)[0]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def submit(
    api: httpx.Client, token: str, code: str = SOLUTION, key: str | None = None
) -> httpx.Response:
    return api.post(
        "/attempts",
        json={"exercise_id": "sum-to-n", "code": code},
        headers={**bearer(token), "Idempotency-Key": key or str(uuid.uuid4())},
    )


def high_watermark(settings: Settings, student_id: str) -> int:
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": "x"})
    try:
        partition = partition_for_student(student_id, settings.kafka.partitions)
        _, high = consumer.get_watermark_offsets(
            TopicPartition(settings.kafka.events_topic, partition), timeout=10
        )
        return int(high)
    finally:
        consumer.close()


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(settings: Settings, student_id: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": student_id,
        "iss": settings.auth.issuer,
        "aud": settings.auth.audience,
        "iat": now,
        "exp": now + 600,
        "jti": str(uuid.uuid4()),
        "permissions": list(keyring.PERMISSIONS),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(ring: keyring.KeyRing, claims: dict[str, Any], kid: str | None = None) -> str:
    return jwt.encode(
        claims, ring.private_key(), algorithm="RS256", headers={"kid": kid or ring.signing}
    )


def bad_tokens(settings: Settings, ring: keyring.KeyRing, sid: str) -> dict[str, str]:
    now = int(time.time())
    public_pem = ring.public_path(ring.signing).read_bytes()
    good = _sign(ring, _claims(settings, sid))
    head, body, signature = good.split(".")
    tampered_body = _b64({**_claims(settings, sid), "sub": "someone-else"})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    hs_header = _b64({"alg": "HS256", "typ": "JWT", "kid": ring.signing})
    hs_body = _b64(_claims(settings, sid))
    import hashlib
    import hmac

    hs_signature = (
        base64.urlsafe_b64encode(
            hmac.new(public_pem, f"{hs_header}.{hs_body}".encode(), hashlib.sha256).digest()
        )
        .rstrip(b"=")
        .decode()
    )
    return {
        "alg none": f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': ring.signing})}.{body}.",
        "HS256 with the public key": f"{hs_header}.{hs_body}.{hs_signature}",
        "expired": _sign(ring, _claims(settings, sid, iat=now - 7200, exp=now - 3600)),
        "iat in the future": _sign(ring, _claims(settings, sid, iat=now + 3600, exp=now + 7200)),
        "missing exp": _sign(ring, _claims(settings, sid, exp=None)),
        "missing iat": _sign(ring, _claims(settings, sid, iat=None)),
        "lifetime over 24 h": _sign(ring, _claims(settings, sid, exp=now + 90_000)),
        "not yet valid (nbf)": _sign(ring, _claims(settings, sid, nbf=now + 3600)),
        "unknown kid": _sign(ring, _claims(settings, sid), kid="no-such-key"),
        "tampered payload": f"{head}.{tampered_body}.{signature}",
        "signed by another key": jwt.encode(
            _claims(settings, sid), other_pem, algorithm="RS256", headers={"kid": ring.signing}
        ),
        "wrong audience": _sign(ring, _claims(settings, sid, aud="someone-else")),
        "wrong issuer": _sign(ring, _claims(settings, sid, iss="evil")),
        "garbage": "not-a-token",
    }


def test_exercises_are_listed_without_hidden_tests(api: httpx.Client) -> None:
    listing = api.get("/exercises")
    assert listing.status_code == 200
    exercises = listing.json()["exercises"]
    assert len(exercises) >= 15
    detail = api.get("/exercises/sum-to-n").json()
    assert detail["starter"].startswith("def sum_to")
    assert "solution" not in detail and "expected" not in json.dumps(detail)
    missing = api.get("/exercises/nope")
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]


def test_every_bad_token_is_refused_with_a_reason_and_produces_nothing(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    sid = student()
    before = high_watermark(settings, sid)
    reasons = {}
    for name, token in bad_tokens(settings, ring, sid).items():
        response = submit(api, token)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        reasons[name] = response.json()["detail"]
    assert "RS256 only" in reasons["alg none"]
    assert "RS256 only" in reasons["HS256 with the public key"]
    assert reasons["expired"] == "token expired"
    assert "future" in reasons["iat in the future"]
    assert "'exp'" in reasons["missing exp"]
    assert "'iat'" in reasons["missing iat"]
    assert "lifetime" in reasons["lifetime over 24 h"]
    assert "not yet valid" in reasons["not yet valid (nbf)"]
    assert "unknown key" in reasons["unknown kid"]
    assert "signature" in reasons["tampered payload"]
    assert "signature" in reasons["signed by another key"]
    assert "audience" in reasons["wrong audience"]
    assert "issuer" in reasons["wrong issuer"]
    no_header = api.post("/attempts", json={"exercise_id": "sum-to-n", "code": SOLUTION})
    assert no_header.status_code == 401 and "Authorization" in no_header.json()["detail"]
    assert high_watermark(settings, sid) == before


def test_missing_permission_is_403(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    sid = student()
    before = high_watermark(settings, sid)
    reader_only = token_for(settings, ring, sid, permissions=["progress:read"])
    refused = submit(api, reader_only)
    assert refused.status_code == 403
    assert "exercise:submit" in refused.json()["detail"]
    assert api.get("/progress", headers=bearer(reader_only)).status_code == 200
    assert high_watermark(settings, sid) == before


def test_revoked_token_is_refused(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing, redis_client: Any
) -> None:
    sid = student()
    token, claims = keyring.mint(ring, settings.auth, sid)
    assert api.get("/progress", headers=bearer(token)).status_code == 200
    from typer.testing import CliRunner

    from ops.cli import app

    result = CliRunner().invoke(app, ["token", "revoke", claims["jti"]])
    assert result.exit_code == 0, result.output
    before = high_watermark(settings, sid)
    refused = submit(api, token)
    assert refused.status_code == 401 and refused.json()["detail"] == "token revoked"
    assert high_watermark(settings, sid) == before


def test_rate_limit_per_student(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    limit = settings.serve.rate_limit_per_minute
    busy, other = student(), student()
    busy_token, other_token = token_for(settings, ring, busy), token_for(settings, ring, other)
    statuses = [
        api.get("/progress/history", headers=bearer(busy_token)).status_code for _ in range(limit)
    ]
    assert statuses == [200] * limit
    over = api.get("/progress/history", headers=bearer(busy_token))
    assert over.status_code == 429
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert "rate limit" in over.json()["detail"]
    assert api.get("/progress/history", headers=bearer(other_token)).status_code == 200


def test_retried_submit_returns_first_answer_and_one_event(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    sid = student()
    token = token_for(settings, ring, sid)
    key = str(uuid.uuid4())
    before = high_watermark(settings, sid)
    first = submit(api, token, key=key)
    assert first.status_code == 201, first.text
    retry = submit(api, token, key=key)
    assert retry.status_code == 200
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == first.json()
    assert high_watermark(settings, sid) == before + 1
    assert first.json()["event"]["event_id"] == str(attempt_event_id(sid, uuid.UUID(key)))
    conflict = submit(api, token, code=WRONG, key=key)
    assert conflict.status_code == 409 and "different" in conflict.json()["detail"]
    assert high_watermark(settings, sid) == before + 1
    bad_key = submit(api, token, key="not-a-uuid")
    assert bad_key.status_code == 422 and "UUID" in bad_key.json()["detail"]
    no_key = api.post(
        "/attempts", json={"exercise_id": "sum-to-n", "code": SOLUTION}, headers=bearer(token)
    )
    assert no_key.status_code == 422 and "idempotency-key" in no_key.json()["detail"]


def test_an_interrupted_submit_is_never_graded_again_under_its_key(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing, redis_client: Any
) -> None:
    from serve.limits import IdempotencyStore

    sid = student()
    token = token_for(settings, ring, sid)
    key = str(uuid.uuid4())
    body = {"exercise_id": "sum-to-n", "code": SOLUTION}
    # What a server that died after producing but before answering leaves behind.
    interrupted = {
        "state": "pending",
        "fingerprint": IdempotencyStore.fingerprint(body),
        "claimed_at": time.time() - 3600,
    }
    redis_client.set(f"student:{{{sid}}}:idempotency:{key}", json.dumps(interrupted), ex=600)
    before = high_watermark(settings, sid)
    retry = submit(api, token, key=key)
    assert retry.status_code == 409
    assert "new key" in retry.json()["detail"]
    assert high_watermark(settings, sid) == before
    interrupted["claimed_at"] = time.time()
    redis_client.set(f"student:{{{sid}}}:idempotency:{key}", json.dumps(interrupted), ex=600)
    busy = submit(api, token, key=key)
    assert busy.status_code == 409 and busy.headers["Retry-After"] == "1"
    assert high_watermark(settings, sid) == before


def test_read_your_writes_after_a_submit(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    sid = student()
    token = token_for(settings, ring, sid)
    empty = api.get("/progress", headers=bearer(token)).json()
    assert empty["components"]["loops"]["level"] == "not_started"
    assert {c["attempts"] for c in empty["components"].values()} == {0}
    wrong = submit(api, token, code=WRONG)
    assert wrong.status_code == 201
    body = wrong.json()
    assert not body["passed"] and body["tests_passed"] < body["tests_total"]
    right = submit(api, token).json()
    assert right["passed"] and right["status"] == "passed"
    offset = right["event"]["offset"]
    assert right["event"]["partition"] == partition_for_student(sid, settings.kafka.partitions)
    seen = api.get("/progress", params={"min_offset": offset}, headers=bearer(token)).json()
    assert seen["caught_up"] and not seen["stale"] and seen["source"] == "redis"
    assert seen["applied_offset"] == offset
    loops = seen["components"]["loops"]
    assert loops["attempts"] == 2 and loops["correct"] == 1
    attempts = api.get(
        "/attempts", params={"exercise_id": "sum-to-n"}, headers=bearer(token)
    ).json()["attempts"]
    assert [a["offset"] for a in attempts] == [offset, body["event"]["offset"]]
    history = api.get("/progress/history", headers=bearer(token)).json()["weeks"]
    assert [(w["component"], w["attempts"], w["correct"]) for w in history] == [("loops", 2, 1)]


def test_bad_requests_get_4xx_with_a_reason(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    token = token_for(settings, ring, student())
    unknown = api.post(
        "/attempts",
        json={"exercise_id": "nope", "code": ""},
        headers={**bearer(token), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert unknown.status_code == 404
    malformed = api.post(
        "/attempts",
        content=b"{not json",
        headers={**bearer(token), "Idempotency-Key": str(uuid.uuid4())},
    )
    assert malformed.status_code == 422 and "invalid request" in malformed.json()["detail"]
    negative = api.get("/progress", params={"min_offset": -1}, headers=bearer(token))
    assert negative.status_code == 422
    beyond = api.get("/progress", params={"min_offset": 10**15}, headers=bearer(token))
    assert beyond.status_code == 422 and "beyond the end" in beyond.json()["detail"]


def test_dev_token_logs_a_student_in(api: httpx.Client) -> None:
    sid = student()
    minted = api.post("/dev/token", json={"student_id": sid})
    assert minted.status_code == 200
    token = minted.json()["token"]
    assert api.get("/progress", headers=bearer(token)).json()["student_id"] == sid
    assert api.post("/dev/token", json={"student_id": "bad id!"}).status_code == 422


def test_progress_comes_from_redis_as_fresh_as_the_shard(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing, ray_cluster: None
) -> None:
    import ray

    from actors.registry import shard_name

    sid = student()
    token = token_for(settings, ring, sid)
    offset = submit(api, token).json()["event"]["offset"]
    read = api.get("/progress", params={"min_offset": offset}, headers=bearer(token)).json()
    assert read["source"] == "redis" and read["caught_up"] and not read["stale"]
    assert read["applied_offset"] == offset and read["partition_offset"] >= offset
    partition = partition_for_student(sid, settings.kafka.partitions)
    shard = ray.get_actor(shard_name(settings, partition), namespace=settings.ray.namespace)
    held = ray.get(shard.get.remote(partition, sid))
    assert {name: read["components"][name] for name in held["components"]} == held["components"]
    others = [c for name, c in read["components"].items() if name not in held["components"]]
    assert others and {c["level"] for c in others} == {"not_started"}  # the API adds priors
    assert read["applied_offset"] == held["applied_offset"]


def test_a_checkpoint_notification_wakes_a_waiting_read(settings: Settings) -> None:
    import asyncio

    import redis.asyncio as aioredis

    from learnflow import keys
    from learnflow.deadline import Deadline
    from serve.checkpoint_watch import CheckpointWatch

    topic = f"test.{uuid.uuid4().hex[:12]}"

    async def scenario() -> tuple[bool, bool, bool, float]:
        client = aioredis.Redis.from_url(settings.redis.url)
        watch = CheckpointWatch(client, settings.redis, topic)
        try:
            await client.set(keys.partition_checkpoint(topic, 3), 9)
            already = await watch.wait(3, 9, Deadline.after(1.0))
            began = time.monotonic()
            waiting = asyncio.ensure_future(watch.wait(3, 12, Deadline.after(5.0)))
            await asyncio.sleep(0.3)
            await client.publish(keys.checkpoint_channel(topic, 3), 11)  # not far enough
            await asyncio.sleep(0.1)
            assert not waiting.done()
            await client.publish(keys.checkpoint_channel(topic, 3), 12)
            woke = await waiting
            waited = time.monotonic() - began
            never = await watch.wait(4, 1, Deadline.after(0.3))
            return already, woke, never, waited
        finally:
            await watch.close()
            await client.delete(keys.partition_checkpoint(topic, 3))
            await client.aclose()

    already, woke, never, waited = asyncio.run(scenario())
    assert already and woke and not never
    assert waited < 2.0  # woken by the notification, not by the 5 s deadline


def test_progress_reads_answer_like_the_documented_route(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    from serve.wire import ProgressResponse

    sid = student()
    token = token_for(settings, ring, sid)
    offset = submit(api, token).json()["event"]["offset"]
    fast = api.get("/progress", params={"min_offset": offset}, headers=bearer(token))
    assert fast.status_code == 200 and fast.headers["content-type"] == "application/json"
    body = fast.json()
    assert ProgressResponse.model_validate(body).model_dump() == body
    # A query the fast path leaves to the route: the route's own validation answers.
    refused = api.get("/progress", params={"min_offset": "x"}, headers=bearer(token))
    assert refused.status_code == 422 and "min_offset" in refused.json()["detail"]
    unknown = api.get("/progress", params={"min_offset": offset, "x": 1}, headers=bearer(token))
    assert unknown.status_code == 200 and unknown.json()["applied_offset"] == offset
    # Every refusal reads as the route's would.
    anonymous = api.get("/progress")
    assert anonymous.status_code == 401 and "Authorization" in anonymous.json()["detail"]
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    writer = token_for(settings, ring, sid, permissions=["exercise:submit"])
    forbidden = api.get("/progress", headers=bearer(writer))
    assert forbidden.status_code == 403 and "progress:read" in forbidden.json()["detail"]


def test_a_full_grader_answers_503_at_once_and_reads_never_wait_behind_it(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing
) -> None:
    import concurrent.futures

    places = settings.grader.slots
    token = token_for(settings, ring, student())
    sleeper = "import time\ndef sum_to(n):\n    time.sleep(60)\n"
    finished: list[tuple[float, float, httpx.Response]] = []

    def slow_submit() -> None:
        with httpx.Client(base_url=api.base_url, timeout=120) as own:
            sent = time.monotonic()
            answer = submit(own, token, code=sleeper)
        finished.append((sent, time.monotonic(), answer))

    extra = 12
    with concurrent.futures.ThreadPoolExecutor(places + extra) as pool:
        pending = [pool.submit(slow_submit) for _ in range(places)]
        time.sleep(1.5)  # every place held for 1.5 s: a queued submit expects >= 0.375 s
        pending += [pool.submit(slow_submit) for _ in range(extra)]
        time.sleep(1.0)  # the extra ones queued or refused
        read = api.get("/progress", headers=bearer(token))
        listing = api.get("/exercises")
        page = httpx.get(f"{settings.serve.url}/", timeout=30)
        reads_done = time.monotonic()
        for future in pending:
            future.result()
    assert read.status_code == 200 and listing.status_code == 200 and page.status_code == 200
    graded = [(at, r) for _, at, r in finished if r.status_code == 201]
    refused = [(sent, at, r) for sent, at, r in finished if r.status_code == 503]
    assert len(graded) + len(refused) == places + extra, [r.status_code for *_, r in finished]
    # The queue holds what the places clear within serve.submit_queue_s, not all of them.
    queued = len(graded) - places
    assert 0 <= queued < extra and len(refused) == extra - queued
    assert all(r.json()["status"] == "time limit exceeded" for _, r in graded)
    for sent, at, r in refused:
        assert "busy" in r.json()["detail"] and int(r.headers["Retry-After"]) >= 1
        assert at - sent < 1.0  # refused at once, not after waiting
    # The refusals came back before any grade, and the reads before the grades too.
    assert max(at for _, at, _ in refused) < min(at for at, _ in graded)
    assert reads_done < min(at for at, _ in graded)


def test_the_api_rides_over_redis_dropping_its_connections(
    api: httpx.Client, settings: Settings, ring: keyring.KeyRing, redis_client: Any
) -> None:
    token = token_for(settings, ring, student())
    assert api.get("/progress", headers=bearer(token)).status_code == 200
    time.sleep(6)  # past the pool's health-check interval: the next use pings first
    redis_client.client_kill_filter(_type="normal", skipme=True)  # as a Redis restart does
    for _ in range(3):
        again = api.get("/progress", headers=bearer(token))
        assert again.status_code == 200, again.text
        assert (
            api.get(
                "/attempts", params={"exercise_id": "sum-to-n"}, headers=bearer(token)
            ).status_code
            == 200
        )
