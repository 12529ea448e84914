"""Ray jobs the platform submits to its cluster: fitting the mastery model from the history."""
