"""HTTP routes of the orders domain."""

from fastapi import APIRouter

router = APIRouter()
