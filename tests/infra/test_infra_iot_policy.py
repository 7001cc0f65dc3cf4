"""The IoT policy evaluator against the rules AWS documents (so that the AWS-rule tests mean something)."""
import pytest

from infra.iot_policy import UnsupportedPolicy, allows, allows_any, document_size, matches


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action, resource):
    return {"Effect": "Allow", "Action": action, "Resource": resource}


@pytest.mark.parametrize("glob, value, expected", [
    ("thing/core-1", "thing/core-1", True),
    ("thing/core-1", "thing/core-10", False),
    ("thing/core-1*", "thing/core-10", True),  # '*' runs on, which is why client/<thing>* is avoided
    ("topic/$aws/things/a/*", "topic/$aws/things/a/shadow/name/x/update", True),  # '*' crosses '/'
    ("thing/core-?", "thing/core-7", True),
    ("thing/core-?", "thing/core-17", False),
    # Device authentication and authorization: "treat MQTT wildcard characters (+ and #) as literal strings".
    ("topic/a/+/b", "topic/a/x/b", False),
    ("topic/a/+/b", "topic/a/+/b", True),
    ("client/t#*", "client/t#2", True),
    ("client/t#*", "client/t2", False),
    ("Thing/A", "thing/a", False),  # resources are case-sensitive
])
def test_wildcards(glob, value, expected):
    assert matches(glob, value) is expected


def test_default_deny_allow_and_explicit_deny_wins():
    document = policy(allow(["iot:Publish", "iot:Receive"], ["arn:t/a/*"]),
                      {"Effect": "Deny", "Action": "iot:Publish", "Resource": "arn:t/a/secret"})
    assert allows(document, "iot:Publish", "arn:t/a/x")
    assert allows(document, "IOT:publish", "arn:t/a/x")  # action names are case-insensitive
    assert not allows(document, "iot:Publish", "arn:t/a/secret")
    assert allows(document, "iot:Receive", "arn:t/a/secret")
    assert not allows(document, "iot:Subscribe", "arn:t/a/x")
    assert not allows(policy(allow("iot:*", "arn:t/b")), "iot:Connect", "arn:t/a")


def test_a_deny_in_one_attached_policy_overrides_an_allow_in_another():
    granting = policy(allow("iot:Connect", "*"))
    denying = policy({"Effect": "Deny", "Action": "iot:Connect", "Resource": "arn:client/x"})
    assert allows_any([granting], "iot:Connect", "arn:client/x")
    assert not allows_any([granting, denying], "iot:Connect", "arn:client/x")
    assert allows_any([granting, denying], "iot:Connect", "arn:client/y")


def test_elements_it_does_not_model_are_refused_not_guessed():
    with pytest.raises(UnsupportedPolicy, match="Condition"):
        allows(policy({**allow("iot:Connect", "*"), "Condition": {"Bool": {"iot:Connection.Thing.IsAttached": "true"}}}),
               "iot:Connect", "arn:client/x")


def test_size_counts_characters_without_whitespace():
    # CreatePolicy: "Maximum length of 2048, excluding whitespace."
    document = policy(allow("iot:Connect", "arn:aws:iot:r:1:client/x"))
    compact = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect",' \
              '"Resource":"arn:aws:iot:r:1:client/x"}]}'
    assert document_size(document) == len(compact)
