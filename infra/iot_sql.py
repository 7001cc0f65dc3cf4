"""A small evaluator for the subset of AWS IoT SQL (version 2016-03-23) that the fleet-metric rules use.

It exists so that tests and the simulator's offline dashboard can run the rules' SQL, as written in the
synthesized template, on real shadow documents. What it models, each from the AWS IoT developer guide:
- "SELECT clause": `SELECT VALUE expr` produces the value of `expr` as the outgoing payload.
- "FROM clause": an MQTT topic filter; `+` and `#` are wildcards.
- "WHERE clause": the actions run only when the condition evaluates to true.
- "Literals": JSON object and array literals (keys are strings) and string/number/boolean literals.
- "JSON extensions": `a.b.c` reads nested members; a missing member is Undefined.
- "Data types": Undefined "isn't explicitly representable in JSON except by omitting the value", so a
  member whose value is Undefined is left out of an object.
- "Operators": AND, OR, NOT (Boolean operands or "true"/"false" strings, else Undefined), `=` and `<>`
  (Undefined if either side is Undefined; mismatched types compare unequal).
- "Case statements": `CASE v WHEN t THEN r ... [ELSE e] END`; Undefined if `v` is Undefined or nothing
  matches without ELSE.
- "Functions": topic([n]), timestamp(), isUndefined(x), cast(x AS Decimal), regexp_matches(s, pattern).
Anything else is refused with NotInSubset rather than guessed.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Callable

from device_code.simulator.pubsub import topic_matches


class NotInSubset(ValueError):
    """The SQL uses something this evaluator does not model."""


class _Undefined:
    def __repr__(self) -> str:
        return "Undefined"


UNDEFINED = _Undefined()
_KEYWORDS = {"SELECT", "VALUE", "FROM", "WHERE", "AND", "OR", "NOT", "CASE", "WHEN", "THEN", "ELSE", "END", "AS",
             "TRUE", "FALSE"}
_TOKEN = re.compile(r"\s*(?:(?P<number>-?\d+(?:\.\d+)?(?:[eE]-?\d+)?)|(?P<string>'[^']*'|\"[^\"]*\")|"
                    r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op><>|[=(){}\[\],.:]))")
# "Cast to decimal", String row: the strings AWS IoT parses as a number.
_DECIMAL_STRING = re.compile(r"^-?\d+(\.\d+)?((?i:E)-?\d+)?$")


def _tokens(sql: str) -> list[tuple[str, Any]]:
    tokens, position = [], 0
    while position < len(sql.rstrip()):
        match = _TOKEN.match(sql, position)
        if not match:
            raise NotInSubset(f"cannot read the SQL at {sql[position:position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        text = match.group(kind)
        if kind == "number":
            tokens.append(("value", float(text) if any(c in text for c in ".eE") else int(text)))
        elif kind == "string":
            tokens.append(("value", text[1:-1]))
        elif kind == "name" and text.upper() in _KEYWORDS:
            tokens.append(("keyword", text.upper()))
        else:
            tokens.append((kind, text))
    return tokens


Expr = Callable[["_Context"], Any]


@dataclass(frozen=True)
class _Context:
    topic: str
    payload: Any
    now_ms: int


class _Parser:
    def __init__(self, sql: str) -> None:
        self.tokens, self.index = _tokens(sql), 0

    def peek(self, kind: str, text: Any = None) -> bool:
        if self.index >= len(self.tokens):
            return False
        token_kind, token_text = self.tokens[self.index]
        return token_kind == kind and (text is None or token_text == text)

    def take(self, kind: str, text: Any = None) -> Any:
        if not self.peek(kind, text):
            found = self.tokens[self.index] if self.index < len(self.tokens) else "the end"
            raise NotInSubset(f"expected {text or kind}, found {found}")
        self.index += 1
        return self.tokens[self.index - 1][1]

    def statement(self) -> tuple[Expr, str, Expr | None]:
        self.take("keyword", "SELECT")
        self.take("keyword", "VALUE")
        selected = self.expression()
        self.take("keyword", "FROM")
        topic_filter = self.take("value")
        condition = None
        if self.peek("keyword", "WHERE"):
            self.take("keyword", "WHERE")
            condition = self.expression()
        if self.index != len(self.tokens):
            raise NotInSubset(f"unexpected {self.tokens[self.index]}")
        return selected, topic_filter, condition

    def expression(self) -> Expr:
        return self._binary("OR", self._and, _or)

    def _and(self) -> Expr:
        return self._binary("AND", self._not, _and)

    def _binary(self, keyword: str, operand: Callable[[], Expr], combine) -> Expr:
        left = operand()
        while self.peek("keyword", keyword):
            self.take("keyword", keyword)
            right = operand()
            left = (lambda a, b: lambda ctx: combine(a(ctx), b(ctx)))(left, right)
        return left

    def _not(self) -> Expr:
        if self.peek("keyword", "NOT"):
            self.take("keyword", "NOT")
            operand = self._not()
            return lambda ctx: _not(operand(ctx))
        left = self.primary()
        for operator, compare in (("=", _equal), ("<>", _not_equal)):
            if self.peek("op", operator):
                self.take("op", operator)
                right = self.primary()
                return lambda ctx: compare(left(ctx), right(ctx))
        return left

    def primary(self) -> Expr:
        if self.peek("value"):
            value = self.take("value")
            return lambda ctx: value
        if self.peek("keyword", "TRUE") or self.peek("keyword", "FALSE"):
            value = self.take("keyword") == "TRUE"
            return lambda ctx: value
        if self.peek("keyword", "CASE"):
            return self.case()
        if self.peek("op", "{"):
            return self.object_literal()
        if self.peek("op", "["):
            items = self.listed("[", "]", self.expression)
            return lambda ctx: [value for value in (item(ctx) for item in items) if value is not UNDEFINED]
        if self.peek("op", "("):
            self.take("op", "(")
            inner = self.expression()
            self.take("op", ")")
            return inner
        name = self.take("name")
        if self.peek("op", "("):
            return self.function(name)
        path = [name]
        while self.peek("op", "."):
            self.take("op", ".")
            path.append(self.take("name"))
        return lambda ctx: _member(ctx.payload, path)

    def listed(self, opening: str, closing: str, item: Callable[[], Any]) -> list:
        self.take("op", opening)
        items = []
        while not self.peek("op", closing):
            if items:
                self.take("op", ",")
            items.append(item())
        self.take("op", closing)
        return items

    def object_literal(self) -> Expr:
        def member() -> tuple[str, Expr]:
            key = self.take("value")
            if not isinstance(key, str):
                raise NotInSubset("object literal keys must be strings")
            self.take("op", ":")
            return key, self.expression()

        members = self.listed("{", "}", member)
        return lambda ctx: {key: value for key, value in ((key, expr(ctx)) for key, expr in members)
                            if value is not UNDEFINED}

    def case(self) -> Expr:
        self.take("keyword", "CASE")
        subject, branches, otherwise = self.expression(), [], None
        while self.peek("keyword", "WHEN"):
            self.take("keyword", "WHEN")
            test = self.expression()
            self.take("keyword", "THEN")
            branches.append((test, self.expression()))
        if not branches:
            raise NotInSubset("CASE needs at least one WHEN clause")
        if self.peek("keyword", "ELSE"):
            self.take("keyword", "ELSE")
            otherwise = self.expression()
        self.take("keyword", "END")

        def evaluate(ctx: _Context) -> Any:
            value = subject(ctx)
            if value is UNDEFINED:
                return UNDEFINED
            for test, result in branches:
                if _equal(value, test(ctx)) is True:
                    return result(ctx)
            return otherwise(ctx) if otherwise else UNDEFINED

        return evaluate

    def function(self, name: str) -> Expr:
        if name == "cast":
            self.take("op", "(")
            value = self.expression()
            self.take("keyword", "AS")
            target = self.take("name")
            self.take("op", ")")
            if target != "Decimal":
                raise NotInSubset(f"cast to {target}")
            return lambda ctx: _to_decimal(value(ctx))
        arguments = self.listed("(", ")", self.expression)
        if name == "topic" and len(arguments) <= 1:
            return lambda ctx: _topic(ctx.topic, *(argument(ctx) for argument in arguments))
        if name == "timestamp" and not arguments:
            return lambda ctx: ctx.now_ms
        if name == "isUndefined" and len(arguments) == 1:
            return lambda ctx: arguments[0](ctx) is UNDEFINED
        if name == "regexp_matches" and len(arguments) == 2:
            return lambda ctx: _regexp_matches(arguments[0](ctx), arguments[1](ctx))
        raise NotInSubset(f"function {name} with {len(arguments)} argument(s)")


def _member(value: Any, path: list[str]) -> Any:
    for name in path:
        if not isinstance(value, dict) or name not in value:
            return UNDEFINED
        value = value[name]
    return value


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    return {str: "String", list: "Array", dict: "Object", type(None): "Null"}.get(type(value), "Undefined")


def _equal(left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    if _kind(left) != _kind(right):
        return False
    return left == right


def _not_equal(left: Any, right: Any) -> Any:
    equal = _equal(left, right)
    return equal if equal is UNDEFINED else not equal


def _boolean(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    return UNDEFINED


def _and(left: Any, right: Any) -> Any:
    left, right = _boolean(left), _boolean(right)
    return UNDEFINED if UNDEFINED in (left, right) else left and right


def _or(left: Any, right: Any) -> Any:
    left, right = _boolean(left), _boolean(right)
    return UNDEFINED if UNDEFINED in (left, right) else left or right


def _not(value: Any) -> Any:
    value = _boolean(value)
    return UNDEFINED if value is UNDEFINED else not value


def _to_decimal(value: Any) -> Any:
    """"Cast to decimal": Int/Decimal as they are, Boolean true = 1.0 / false = 0.0, numeric strings
    parsed, anything else Undefined. SQL V2 processes whole numbers as Int."""
    if isinstance(value, bool):
        number = 1.0 if value else 0.0
    elif isinstance(value, (int, float)):
        number = value
    elif isinstance(value, str) and _DECIMAL_STRING.match(value):
        number = float(value)
    else:
        return UNDEFINED
    return int(number) if float(number).is_integer() else number


def _as_string(value: Any) -> Any:
    """The String a function's argument stands for ("Functions", regexp_matches, First argument): a Boolean as
    "true"/"false", a number as its representation, an Array or Object serialized to JSON; Null and Undefined are
    Undefined. (A Decimal's representation may differ from AWS IoT's in exponent notation, which the docs leave
    open: "possibly in scientific notation".)"""
    if value is None or value is UNDEFINED:
        return UNDEFINED
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value if isinstance(value, str) else repr(value)


def _regexp_matches(value: Any, pattern: Any) -> Any:
    """"Returns true if the string (first argument) contains a match for the regular expression (second
    argument)": a search, not a whole-string match; anchors in the pattern make it whole. A (converted) pattern
    that is not a valid regular expression gives Undefined ("Functions", regexp_matches). The docs name no
    dialect (AWS IoT runs on Java); Python's re reads the constructs the app's patterns use (classes, counted
    repetition, groups, ^ and $) alike. Like Java's, Python's $ also matches before a final newline; where the
    two disagree on validity (Python reads an unclosed "a{2" as literal text), the evaluator follows Python."""
    text, regex = _as_string(value), _as_string(pattern)
    if text is UNDEFINED or regex is UNDEFINED:
        return UNDEFINED
    try:
        compiled = re.compile(regex)
    except re.error:
        return UNDEFINED
    return compiled.search(text) is not None


def _topic(topic: str, segment: Any = None) -> Any:
    """topic(): the whole topic; topic(n): segment n, counting from 1."""
    if segment is None:
        return topic
    levels = topic.split("/")
    return levels[segment - 1] if isinstance(segment, int) and 1 <= segment <= len(levels) else UNDEFINED


@dataclass(frozen=True)
class TopicRule:
    """One rule's SQL, parsed once."""

    sql: str

    def __post_init__(self) -> None:
        selected, topic_filter, condition = _Parser(self.sql).statement()
        object.__setattr__(self, "_parts", (selected, topic_filter, condition))

    @property
    def topic_filter(self) -> str:
        return self._parts[1]  # type: ignore[attr-defined]

    def evaluate(self, topic: str, payload: Any, now_ms: int) -> Any:
        """The outgoing payload for a message on `topic`, or None when the rule does not act on it."""
        selected, topic_filter, condition = self._parts  # type: ignore[attr-defined]
        if not topic_matches(topic_filter, topic):
            return None
        context = _Context(topic, payload, now_ms)
        if condition is not None and condition(context) is not True:
            return None
        result = selected(context)
        return None if result is UNDEFINED else result
