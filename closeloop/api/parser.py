"""The API's request parser: JSON bodies and query strings, refusing text PostgreSQL cannot store."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja.parser import Parser


class NulInText(ValueError):
    """U+0000 somewhere in the input; `loc` says where, as pydantic's errors do."""

    def __init__(self, loc: list[str | int]) -> None:
        super().__init__("text may not contain the NUL character (U+0000)")
        self.loc = loc


def refuse_nul(value: Any, loc: list[str | int]) -> None:
    """Raise NulInText at the first U+0000 in a string, key or nested value."""
    if isinstance(value, str):
        if "\x00" in value:
            raise NulInText(loc)
    elif isinstance(value, dict):
        for key, item in value.items():
            refuse_nul(key, loc)
            refuse_nul(item, [*loc, key])
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_nul(item, [*loc, i])


class StrictParser(Parser):
    # PostgreSQL refuses U+0000 in text and jsonb, so without this one character in a subject, a
    # field value or a search turned into a 500 there (and was stored on SQLite).
    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        data = super().parse_body(request)
        refuse_nul(data, ["body"])
        return data

    def parse_querydict(self, data: MultiValueDict[str, Any], list_fields: list[str],
                        request: HttpRequest) -> dict[str, Any]:
        result = super().parse_querydict(data, list_fields, request)
        refuse_nul(result, ["query"])
        return result
