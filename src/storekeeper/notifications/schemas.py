"""HTTP bodies of the notifications domain: waitlist entries."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class WaitlistEntryOut(BaseModel):
    sku: str = Field(description="The SKU's code.")
    status: Literal["waiting", "notified"] = Field(
        description="`waiting` until a back-in-stock email is made, then `notified`."
    )
    created_at: datetime = Field(description="When the customer (last) joined.")
    notified_at: datetime | None = Field(
        default=None, description="When the back-in-stock email was made; null while waiting."
    )
