"""HTTP bodies of the events domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class EventOut(BaseModel):
    id: int = Field(description="Gapless, in the order events became visible.")
    type: str = Field(examples=["order.created"])
    occurred_at: datetime
    data: dict[str, Any]
