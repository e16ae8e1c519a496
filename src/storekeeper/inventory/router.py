"""HTTP routes of the inventory domain."""

from fastapi import APIRouter

router = APIRouter()
