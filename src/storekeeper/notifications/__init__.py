"""Customer emails: made from published `order.*` events, sent through SMTP."""
