"""Reading posted forms into the domains' own input models, and turning refusals into
messages shown next to the fields they concern.

A form is read (and refused with `FormInvalid`) before any unit of work starts; the change
itself is one service call through `attempt`, which turns the domain's refusals into a
`Refusal` for the form."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from storekeeper.db import UnitOfWork
from storekeeper.errors import StorekeeperError, ValidationFailed, VersionConflict

ModelT = TypeVar("ModelT", bound=BaseModel)
ResultT = TypeVar("ResultT")
P = ParamSpec("P")

FORM_ERROR = "form"
STALE_EDIT = (
    "Someone else changed this since you opened the page, so nothing was saved. "
    "The page now shows the current values: check them and make your change again."
)


class FormInvalid(Exception):
    """The form's values, as typed, and a message per field (`form` for the whole form)."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> list[str]:
    """The values of the checkboxes named `name` that are ticked."""
    return [value.strip() for value in form.getlist(name) if isinstance(value, str)]


def errors_by_field(errors: dict[str, str], fields: tuple[str, ...]) -> dict[str, str]:
    """Messages keyed by the form's own fields (`scopes.0` → `scopes`); anything else is
    about the whole form (`FORM_ERROR`)."""
    shown: dict[str, str] = {}
    for key, message in errors.items():
        field = key.split(".", 1)[0]
        shown.setdefault(field if field in fields else FORM_ERROR, message)
    return shown


def optional_text(form: FormData, name: str) -> str | None:
    return text(form, name) or None


def _message(msg: str) -> str:
    message = msg.removeprefix("Value error, ")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def field_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """The first message per field of pydantic-style errors (`loc` lists); the API's
    `body`/`query` prefix is dropped, and errors of nested items keep their index
    (`skus.1.code`)."""
    messages: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        field = ".".join(loc) if loc else FORM_ERROR
        messages.setdefault(field, _message(str(error.get("msg", "is not valid"))))
    return messages


def build(model: type[ModelT], values: dict[str, Any]) -> ModelT:
    """The domain's input model from form values, or `FormInvalid` with its messages."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise FormInvalid(field_errors([dict(e) for e in exc.errors()])) from None


def refusal_errors(exc: ValidationFailed) -> dict[str, str]:
    return field_errors(exc.extra.get("errors", [])) or {FORM_ERROR: exc.detail}


def integer(form: FormData, name: str, label: str, *, required: bool = True) -> int | None:
    """An integer field; `FormInvalid` names the field when it is not a whole number."""
    raw = text(form, name)
    if not raw:
        if required:
            raise FormInvalid({name: f"Enter the {label}."})
        return None
    if len(raw) > 20 or not raw.lstrip("+-").isdecimal():
        raise FormInvalid({name: f"The {label} must be a whole number."})
    return int(raw)


def money_cents(form: FormData, name: str, label: str) -> int:
    """A price typed as `19.99` (or `19`) in cents, exactly: no floating point."""
    raw = text(form, name).replace(",", "")
    if not raw:
        raise FormInvalid({name: f"Enter the {label}."})
    units, dot, minor = raw.partition(".")
    if (
        len(raw) > 20
        or not units.isdecimal()
        or (dot and not (minor.isdecimal() and len(minor) <= 2))
    ):
        raise FormInvalid({name: f"The {label} must be an amount such as 19.99."})
    return int(units) * 100 + int(minor.ljust(2, "0") if minor else 0)


def amount_text(cents: int) -> str:
    """Cents as typed into a price field (`1250` → `12.50`): no thousands separators, so
    the value reads back through `money_cents` unchanged."""
    units, minor = divmod(cents, 100)
    return f"{units}.{minor:02d}"


ATTRIBUTES_EXAMPLE = '{"colour": "red", "size": "L"}'
_JSON_KINDS = {list: "list", str: "text", int: "number", float: "number", bool: "true/false"}


def _json_mistake(raw: str) -> str:
    """Where and why `raw` is not JSON, in words: the standard library's decoder reports
    the line and column that orjson's does not."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as error:
        advice = {
            "Expecting property name enclosed in double quotes": (
                "names and text go in double quotes, and no comma comes after the last pair"
            ),
            "Expecting value": "a value is missing or written without double quotes",
            "Expecting ',' delimiter": "a comma is missing between two pairs",
            "Expecting ':' delimiter": "a colon is missing between a name and its value",
        }.get(error.msg, error.msg[:1].lower() + error.msg[1:])
        return f"Not valid JSON at line {error.lineno}, column {error.colno}: {advice}."
    return "Not valid JSON."


def json_object(form: FormData, name: str) -> dict[str, Any]:
    """A field holding a JSON object (`attributes`); empty means `{}`. A refusal says where
    the JSON is broken, or what it is instead of an object."""
    raw = text(form, name)
    if not raw:
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FormInvalid({name: _json_mistake(raw)}) from None
    if not isinstance(value, dict):
        kind = "null" if value is None else _JSON_KINDS.get(type(value), "value")
        raise FormInvalid(
            {
                name: f"This is a JSON {kind}; attributes are one JSON object of names and "
                f"values, such as {ATTRIBUTES_EXAMPLE}, or nothing."
            }
        )
    return value


@dataclass(frozen=True)
class Refusal:
    """Why a change was not made: messages per field, the page's status, and the domain
    error when there was one (some pages read more from it, e.g. a conflict's codes)."""

    errors: dict[str, str]
    status: int
    error: StorekeeperError | None = None


def form_refusal(invalid: FormInvalid) -> Refusal:
    """A form refused as it was read, before any unit of work started (422)."""
    return Refusal(invalid.errors, 422)


async def attempt(
    uow: UnitOfWork,
    work: Callable[Concatenate[AsyncSession, P], Awaitable[ResultT]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> ResultT | Refusal:
    """Run one change, `work(session, *args, **kwargs)`, as a unit of work of its own
    (`uow.run`); a refusal comes back as messages for the form (the unit of work has
    rolled back, nothing changed)."""
    try:
        return await uow.run(work, *args, **kwargs)
    except FormInvalid as invalid:
        return form_refusal(invalid)
    except ValidationFailed as refused:
        return Refusal(refusal_errors(refused), 422, refused)
    except VersionConflict as stale:
        return Refusal({FORM_ERROR: STALE_EDIT}, 409, stale)
    except StorekeeperError as refused:
        return Refusal({FORM_ERROR: refused.detail}, refused.status_code, refused)
