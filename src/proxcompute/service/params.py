"""DALI/TAP request parameters: case-insensitive names, GET or POST, form or multipart.

Unknown parameters are kept (and echoed by UWS) but ignored; a single-valued parameter
given twice with different values is an error; inline uploads arrive as multipart parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from proxcompute.errors import InputError

__all__ = ["TapParams", "TapRequestError", "read_params"]

MULTI_VALUED = {"UPLOAD", "PHASE"}


class TapRequestError(InputError):
    """A request the service refuses before running anything (HTTP 400)."""


@dataclass
class TapParams:
    """Parameters by upper-case name (values as given) and inline upload parts by name."""

    values: dict[str, str] = field(default_factory=dict)
    multi: dict[str, list[str]] = field(default_factory=dict)
    parts: dict[str, bytes] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name.upper(), default)

    def all(self, name: str) -> list[str]:
        return list(self.multi.get(name.upper(), []))


def _add(params: TapParams, name: str, value: str) -> None:
    key = name.upper()
    params.multi.setdefault(key, []).append(value)
    if key in params.values and params.values[key] != value and key not in MULTI_VALUED:
        raise TapRequestError(f"parameter {key} was given twice with different values")
    params.values.setdefault(key, value)


async def read_params(request, *, upload_limit_bytes: int) -> TapParams:
    """Collect the parameters of a Starlette request (query string, then the body)."""
    params = TapParams()
    for name, value in request.query_params.multi_items():
        _add(params, name, value)
    if request.method != "POST":
        return params
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        try:
            form = await request.form(max_part_size=upload_limit_bytes)
        except Exception as exc:  # malformed multipart bodies and oversize parts
            raise TapRequestError(f"cannot read the request body: {exc}") from None
        for name, value in form.multi_items():
            if isinstance(value, str):
                _add(params, name, value)
            else:
                data = await value.read()
                if len(data) > upload_limit_bytes:
                    raise TapRequestError(
                        f"upload part {name!r} has {len(data):,} bytes; the limit is {upload_limit_bytes:,}"
                    )
                params.parts[name] = data
    return params
