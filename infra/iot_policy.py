"""AWS IoT policy rules the stack must respect and nothing offline enforces: evaluation and size.

`allows(document, action, resource)` evaluates a policy document the way AWS IoT does for the
elements this project writes (AWS IoT Core developer guide, "AWS IoT Core policies" and "Policy
elements"): statements with Effect Allow or Deny, Action and Resource as a string or a list, the
wildcards `*` (any run of characters, `/` included) and `?` (exactly one character) in both;
an explicit Deny wins over any Allow; what no statement allows is denied. Elements it does not
model (NotAction, NotResource, Condition) make it refuse the document rather than guess.

`document_size(document)` is what CreatePolicy limits: "The JSON document that describes the
policy ... Length Constraints: Maximum length of 2048" counted without whitespace (AWS IoT API
reference, CreatePolicy; AWS IoT Core quotas, "Policy document size").
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any, Iterable, Mapping

MAX_DOCUMENT_CHARACTERS = 2048
_UNMODELLED = ("NotAction", "NotResource", "Condition", "NotPrincipal")


class UnsupportedPolicy(ValueError):
    """The document uses an element this evaluator does not model."""


@lru_cache(maxsize=4096)
def _pattern(glob: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob), re.DOTALL)


def matches(glob: str, value: str) -> bool:
    """IAM-style wildcard match: `*` any run of characters, `?` exactly one; case-sensitive."""
    return _pattern(glob).fullmatch(value) is not None


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def statements(document: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = document["Statement"]
    found = [found] if isinstance(found, Mapping) else list(found)
    for statement in found:
        unmodelled = [element for element in _UNMODELLED if element in statement]
        if unmodelled:
            raise UnsupportedPolicy(f"statement {statement.get('Sid', '?')} uses {', '.join(unmodelled)}")
    return found


def _applies(statement: Mapping[str, Any], action: str, resource: str) -> bool:
    # Action names are case-insensitive in AWS policies; resources (ARNs, topics) are not.
    return (any(matches(glob.lower(), action.lower()) for glob in _as_list(statement["Action"]))
            and any(matches(glob, resource) for glob in _as_list(statement["Resource"])))


def allows(document: Mapping[str, Any], action: str, resource: str) -> bool:
    applicable = [s["Effect"] for s in statements(document) if _applies(s, action, resource)]
    return "Allow" in applicable and "Deny" not in applicable


def allows_any(documents: Iterable[Mapping[str, Any]], action: str, resource: str) -> bool:
    """Several policies attached to one certificate: allowed when one allows and none denies."""
    documents = list(documents)
    denied = any(_applies(s, action, resource) and s["Effect"] == "Deny" for d in documents for s in statements(d))
    return not denied and any(allows(document, action, resource) for document in documents)


def document_size(document: Mapping[str, Any]) -> int:
    """Characters of the JSON document without whitespace, as CreatePolicy counts them."""
    return len(re.sub(r"\s", "", json.dumps(document)))
