"""Deploy: the registry and its aliases, the gate between a candidate and the champion,
promotion, the post-promotion watch and rollback."""
