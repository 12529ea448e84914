"""Stateful Ray actors: ``ShardHost`` actors holding one ``StudentShard`` per Kafka partition,
and the shards' checkpoint stores."""
