"""Parsing ``Set-Cookie`` response headers, for the behaviour tests."""

from __future__ import annotations

import typing as t
from datetime import datetime
from urllib.parse import unquote

from werkzeug.http import parse_date

if t.TYPE_CHECKING:
    from werkzeug.test import TestResponse

#: The ``Expires`` a deleted cookie gets.
EPOCH = "Thu, 01 Jan 1970 00:00:00 GMT"


class SetCookie(t.NamedTuple):
    """One parsed ``Set-Cookie`` header."""

    name: str
    value: str
    attrs: dict[str, str | bool]

    @property
    def header(self) -> str:
        """The ``Cookie`` request header that sends this cookie back."""
        return f"{self.name}={self.value}"

    @property
    def sid(self) -> str:
        """The session id in a signed cookie value."""
        raw = unquote(self.value)
        assert raw.startswith("s:"), raw
        return raw[2:].rpartition(".")[0]

    @property
    def expires(self) -> datetime | None:
        """The ``Expires`` attribute, parsed."""
        value = self.attrs.get("expires")
        return parse_date(value) if isinstance(value, str) else None

    @property
    def deleted(self) -> bool:
        """Whether this header deletes the cookie."""
        return self.value == "" and (
            self.attrs.get("max-age") == "0" or self.attrs.get("expires") == EPOCH
        )


def parse_set_cookie(header: str) -> SetCookie:
    """Parse one ``Set-Cookie`` header value."""
    first, *rest = (part.strip() for part in header.split(";"))
    name, _, value = first.partition("=")
    attrs: dict[str, str | bool] = {}
    for part in rest:
        attr, eq, attr_value = part.partition("=")
        attrs[attr.lower()] = attr_value if eq else True
    return SetCookie(name, value, attrs)


def set_cookies(rv: TestResponse, name: str) -> list[SetCookie]:
    """Every ``Set-Cookie`` of the response for ``name``."""
    parsed = [parse_set_cookie(h) for h in rv.headers.getlist("Set-Cookie")]
    return [c for c in parsed if c.name == name]


def the_cookie(rv: TestResponse, name: str) -> SetCookie:
    """The one ``Set-Cookie`` for ``name`` (fails if there is not exactly one)."""
    found = set_cookies(rv, name)
    assert len(found) == 1, rv.headers.getlist("Set-Cookie")
    return found[0]
