"""Events out: the transactional outbox, its publication, the feed and webhooks."""
