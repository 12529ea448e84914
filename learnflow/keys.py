"""Redis key names. The student id sits inside literal braces so Redis Cluster keeps all of one
student's keys in one hash slot (one node, atomic multi-key updates)."""

from __future__ import annotations

from datetime import date


def state(student_id: str) -> str:
    return f"student:{{{student_id}}}:state"


def daily_mastery(student_id: str, day: date) -> str:
    """Hash component → P(mastered) at the end of ``day`` (UTC); expires."""
    return f"student:{{{student_id}}}:mastery:{day.isoformat()}"


def attempts(student_id: str, exercise_id: str) -> str:
    """Sorted set of the student's latest attempts at one exercise, scored by Kafka offset."""
    return f"student:{{{student_id}}}:attempts:{exercise_id}"


def idempotency(student_id: str, request_id: str) -> str:
    return f"student:{{{student_id}}}:idempotency:{request_id}"


def rate_limit(student_id: str) -> str:
    """Sorted set of the student's request times in the last minute (the rate limit)."""
    return f"student:{{{student_id}}}:ratelimit"


def revoked_token(jti: str) -> str:
    """Set while the token with this ``jti`` is revoked (until it would have expired)."""
    return f"auth:revoked:{jti}"


def partition_checkpoint(topic: str, partition: int) -> str:
    """The last offset of ``topic[partition]`` whose students are all saved in Redis."""
    return f"partition:{{{topic}:{partition}}}:checkpoint"


def partition_alive(topic: str, partition: int) -> str:
    """Present while ``topic[partition]``'s shard runs: its host sets it again every second
    with a few seconds to live. Without it, what Redis holds of the partition's students is
    stale (events may wait on Kafka until the shard is back)."""
    return f"partition:{{{topic}:{partition}}}:alive"


def partition_stats(topic: str, partition: int) -> str:
    """Hash of the partition shard's figures (resident students, events applied, …)."""
    return f"partition:{{{topic}:{partition}}}:stats"


def checkpoint_channel(topic: str, partition: int) -> str:
    """Pub/sub channel on which each Redis checkpoint of ``topic[partition]`` announces its
    offset (read-your-writes waits on it)."""
    return f"partition:{{{topic}:{partition}}}:checkpointed"


def checkpoint_channel_pattern(topic: str) -> str:
    return f"partition:{{{topic}:*}}:checkpointed"
