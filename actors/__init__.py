"""Stateful Ray actors: one ``StudentShard`` per Kafka partition and its checkpoint stores."""
