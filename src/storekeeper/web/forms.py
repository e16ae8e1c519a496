"""Reading posted forms into the domains' own input models, and turning refusals into
messages shown next to the fields they concern."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from storekeeper.errors import ValidationFailed

ModelT = TypeVar("ModelT", bound=BaseModel)

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


def optional_text(form: FormData, name: str) -> str | None:
    return text(form, name) or None


def _message(msg: str) -> str:
    message = msg.removeprefix("Value error, ")
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def field_errors(errors: list[dict[str, Any]], prefix: str = "") -> dict[str, str]:
    """The first message per field of pydantic-style errors (`loc` lists); the API's
    `body`/`query` prefix is dropped, and errors of nested items keep their index
    (`skus.1.code`)."""
    messages: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        field = prefix + ".".join(loc) if loc else FORM_ERROR
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


def money_cents(form: FormData, name: str, label: str) -> int | None:
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
