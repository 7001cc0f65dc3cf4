"""An offline stand-in for AWS IoT fleet indexing, for the part of its query language this app writes
(infra/fleet_index.py): `field:value` terms, AND, OR, NOT, parentheses, AND as the default operator
("Query syntax": "The default operator is AND"; "All field names are case sensitive"; "Search is case
insensitive"). Values are single words; a field that a document lacks matches nothing.

A thing document is shaped like a SearchIndex result (AWS IoT API reference, ThingDocument):
{"thingName", "thingGroupNames": [...], "connectivity": {"connected": bool}, "shadow": {"name":
{<shadow>: {"reported": {...}}}}} (the API returns `shadow` as a JSON string; pass it parsed). Anything
outside that subset is refused, so a query this evaluator accepts is one whose meaning it knows.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping

_TOKEN = re.compile(r"\s*(\(|\)|[^\s()]+)")
_TERM = re.compile(r"([A-Za-z][A-Za-z0-9_.]*):([A-Za-z0-9][A-Za-z0-9_.-]*)")
Document = Mapping[str, Any]


class UnsupportedQuery(ValueError):
    """The query uses syntax this stand-in does not model."""


def _field_values(document: Document, field: str) -> list[Any]:
    node: Any = document
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return []
        node = node[part]
    return list(node) if isinstance(node, list) else [node]


def _word(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value).lower()
    return None  # objects and null are not terms


def compile_query(query: str) -> Callable[[Document], bool]:
    tokens = [match.group(1) for match in _TOKEN.finditer(query)]
    if "".join(tokens) != re.sub(r"\s", "", query):
        raise UnsupportedQuery(f"cannot read {query!r}")
    position = 0

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    def take() -> str:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def expression() -> Callable[[Document], bool]:
        parts = [conjunction()]
        while peek() == "OR":
            take()
            parts.append(conjunction())
        return lambda doc: any(part(doc) for part in parts)

    def conjunction() -> Callable[[Document], bool]:
        parts = [unary()]
        while peek() not in (None, ")", "OR"):
            if peek() == "AND":
                take()
            parts.append(unary())
        return lambda doc: all(part(doc) for part in parts)

    def unary() -> Callable[[Document], bool]:
        token = take() if peek() is not None else None
        if token == "NOT":
            inner = unary()
            return lambda doc: not inner(doc)
        if token == "(":
            inner = expression()
            if peek() != ")":
                raise UnsupportedQuery(f"unbalanced parentheses in {query!r}")
            take()
            return inner
        match = _TERM.fullmatch(token or "")
        if not match:
            raise UnsupportedQuery(f"{token!r} in {query!r} is not a field:value term")
        field, value = match.group(1), match.group(2).lower()
        return lambda doc: any(_word(found) == value for found in _field_values(doc, field))

    matcher = expression()
    if position != len(tokens):
        raise UnsupportedQuery(f"unexpected {tokens[position]!r} in {query!r}")
    return matcher


def search(query: str, documents: list[Document]) -> list[Document]:
    matches = compile_query(query)
    return [document for document in documents if matches(document)]


def thing_document(thing_name: str, groups: list[str], connected: bool,
                   shadows: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A document as the index would hold it for one thing (named shadows: their reported state)."""
    return {"thingName": thing_name, "thingGroupNames": list(groups), "connectivity": {"connected": connected},
            "shadow": {"name": {name: {"reported": dict(reported)} for name, reported in shadows.items()}}}
