"""Input rules every domain shares."""

from __future__ import annotations


def storable_text(value: str) -> str:
    """Refuse what PostgreSQL cannot store in a text column: NUL and lone surrogates."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text") from None
    return value
