"""The IoT SQL evaluator (infra/iot_sql.py), checked against the examples and tables of the AWS IoT
developer guide's SQL reference, not against our own rules."""
from __future__ import annotations

import pytest

from infra.iot_sql import NotInSubset, TopicRule

NOW_MS = 1481825251155


def run(sql: str, payload, topic: str = "topic/subtopic"):
    return TopicRule(sql).evaluate(topic, payload, NOW_MS)


def test_case_statement_example():
    # "Case statements": {"color": "yellow"} -> {"instructions": "caution"}.
    sql = ("SELECT VALUE {'instructions': CASE color WHEN 'green' THEN 'go' WHEN 'yellow' THEN 'caution' "
           "WHEN 'red' THEN 'stop' ELSE 'you are not at a stop light' END} FROM 'topic/subtopic'")
    assert run(sql, {"color": "yellow"}) == {"instructions": "caution"}
    assert run(sql, {"color": "blue"}) == {"instructions": "you are not at a stop light"}
    # "If v is Undefined, the result of the case statement is Undefined" (and no ELSE: Undefined).
    assert run(sql, {}) == {}
    assert run("SELECT VALUE {'x': CASE color WHEN 'green' THEN 1 END} FROM 'topic/subtopic'", {"color": "red"}) == {}


def test_literals_and_nested_members():
    # "Literals": array literals group values; "JSON extensions": '.' reads nested members.
    assert run("SELECT VALUE {'lat_long': [lat, long]} FROM 'topic/subtopic'", {"lat": 47.696, "long": -122.332}) == \
        {"lat_long": [47.696, -122.332]}
    assert run("SELECT VALUE {'red_value': color.red} FROM 'a/b'", {"color": {"red": 255}}, "a/b") == \
        {"red_value": 255}


def test_undefined_members_are_left_out():
    # "Data types": {"foo": null, "bar": undefined} serializes as {"foo": null}.
    assert run("SELECT VALUE {'foo': foo, 'bar': bar} FROM 'topic/subtopic'", {"foo": None}) == {"foo": None}


def test_where_runs_the_actions_only_when_true():
    # "WHERE clause" example: color <> 'red' is false for a red payload: no outgoing payload.
    sql = "SELECT VALUE {'my_color': color} FROM 'topic/subtopic' WHERE color <> 'red'"
    assert run(sql, {"color": "red"}) is None
    assert run(sql, {"color": "blue"}) == {"my_color": "blue"}
    # Undefined is not true.
    assert run("SELECT VALUE 1 FROM 'topic/subtopic' WHERE color = 'red'", {}) is None


@pytest.mark.parametrize("expression, expected", [
    # "Operators": AND/OR/NOT take Booleans or "true"/"false" strings, anything else gives Undefined.
    ("true AND 'TRUE'", True), ("true AND false", False), ("false OR 'true'", True), ("NOT 'false'", True),
    ("true AND 1", None), ("NOT 1", None),
    # = and <>: Undefined if either side is; mismatched types are unequal.
    ("1 = 1.0", True), ("'1' = 1", False), ("'1' <> 1", True), ("missing = 1", None), ("missing <> 1", None),
    # "Functions": isUndefined.
    ("isUndefined(5)", False), ("isUndefined(missing)", True),
])
def test_operators_and_isundefined(expression, expected):
    result = run(f"SELECT VALUE {{'r': {expression}}} FROM 'topic/subtopic'", {})
    assert result == ({} if expected is None else {"r": expected})


@pytest.mark.parametrize("value, expected", [
    # "cast", Cast to decimal: Boolean true = 1.0 / false = 0.0 (whole numbers are Int in SQL V2),
    # numeric strings parsed, arrays/objects/null Undefined.
    (True, 1), (False, 0), (7, 7), (7.25, 7.25), ("-1.2", -1.2), ("5E-12", 5e-12), ("0", 0),
    ("twelve", None), ("1.", None), (None, None), ([1], None), ({"a": 1}, None),
])
def test_cast_to_decimal(value, expected):
    result = run("SELECT VALUE {'d': cast(v AS Decimal)} FROM 'topic/subtopic'", {"v": value})
    assert result == ({} if expected is None else {"d": expected})


def test_topic_and_timestamp():
    # "Functions": for foo/bar/baz, topic(1) is foo; topic() the whole topic; timestamp() in ms.
    sql = "SELECT VALUE {'all': topic(), 'first': topic(1), 'third': topic(3), 'at': timestamp()} FROM 'foo/+/baz'"
    assert TopicRule(sql).evaluate("foo/bar/baz", {}, NOW_MS) == \
        {"all": "foo/bar/baz", "first": "foo", "third": "baz", "at": NOW_MS}


def test_from_takes_mqtt_wildcards():
    rule = TopicRule("SELECT VALUE 1 FROM '$aws/things/+/shadow/name/weather/update/documents'")
    assert rule.evaluate("$aws/things/pi-1/shadow/name/weather/update/documents", {}, NOW_MS) == 1
    for topic in ("$aws/things/pi-1/shadow/name/rain/update/documents", "$aws/things/pi-1/shadow/update/documents",
                  "$aws/things/pi-1/shadow/name/weather/update/accepted"):
        assert rule.evaluate(topic, {}, NOW_MS) is None


@pytest.mark.parametrize("sql", [
    "SELECT * FROM 'a'",  # only SELECT VALUE is modelled
    "SELECT VALUE cast(x AS Int) FROM 'a'",
    "SELECT VALUE upper(x) FROM 'a'",
    "SELECT VALUE x FROM 'a' WHERE x > 1",
])
def test_what_is_not_modelled_is_refused(sql):
    with pytest.raises(NotInSubset):
        TopicRule(sql)


@pytest.mark.parametrize("value, pattern, expected", [
    # "Functions", regexp_matches(String, String): the page's two examples.
    ("aaaa", "a{2,}", True), ("aaaa", "b", False),
    # "Returns true if the string contains a match": a match anywhere, unless the pattern anchors it.
    ("station 2026-12-07", "[0-9]{4}-[0-9]{2}", True), ("station 2026-12-07", "^[0-9]{4}", False),
    # First argument: an Int, Decimal or Boolean is matched as its String representation, an Array or
    # Object as its JSON; Null and Undefined give Undefined.
    (20261207, "^[0-9]{8}$", True), (True, "^true$", True), (["2026"], "^2026$", False), (["2026"], "2026", True),
    (None, ".*", None), ("<missing>", ".*", None),
    # "If the (converted) argument is not valid regex, the result is Undefined."
    ("aaaa", "[a", None), ("aaaa", "(", None),
])
def test_regexp_matches(value, pattern, expected):
    payload = {} if value == "<missing>" else {"v": value}
    result = run(f"SELECT VALUE {{'r': regexp_matches(v, '{pattern}')}} FROM 'topic/subtopic'", payload)
    assert result == ({} if expected is None else {"r": expected})


def test_an_undefined_regexp_match_fails_the_where_clause():
    # "WHERE clause": actions run only when the condition is true; Undefined AND true is Undefined.
    sql = "SELECT VALUE 1 FROM 'topic/subtopic' WHERE regexp_matches(v, '^x$') AND true"
    assert run(sql, {"v": "x"}) == 1
    assert run(sql, {"v": None}) is None and run(sql, {}) is None and run(sql, {"v": "y"}) is None
