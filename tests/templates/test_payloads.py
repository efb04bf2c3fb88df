"""cft/nested-stacks/payloads.yaml and what binds it: the payload bucket holds bodies too large
to publish for as long as a subscriber may still hold a pointer to them, encrypted with the
stack's key, private, over TLS only, deletable by nobody but its lifecycle; the roles, the
functions and the managed policies reach exactly the prefixes each one needs."""

from __future__ import annotations

import json
import re

import pytest
from disa_lambda.models.settings import SNS_MESSAGE_LIMIT_BYTES

from tests.support.templates import Evaluator, resources, template

pytestmark = pytest.mark.templates
NAME = "payloads"
BUCKET = "disa-payloads-payloadbucket-1a2b3c"
BUCKET_ARN = f"arn:aws:s3:::{BUCKET}"
KEY = "arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0b0a-0908-0706-050403020100"
PAYLOAD_PARAMETERS = ["PayloadOffloadThreshold", "PayloadMaxBytes", "PayloadRetentionDays", "PayloadSourceBuckets"]
# The most source buckets the roles can grant (CloudFormation cannot map over a list).
MOST_SOURCE_BUCKETS = 5
DAY = 86400


def _passed_to_roles(source_buckets: str) -> str:
    """PayloadSourceBuckets as the root stack passes it to the roles stack."""
    passed = template("root-stack")["Resources"]["Roles"]["Properties"]["Parameters"]["PayloadSourceBuckets"]
    return Evaluator("root-stack", {"PayloadSourceBuckets": source_buckets}, {}).resolve(passed)


def _props(logical_id: str) -> dict:
    return template(NAME)["Resources"][logical_id]["Properties"]


def _roles(source_buckets: str = "") -> Evaluator:
    return Evaluator(
        "roles",
        {
            "NamePrefix": "disa",
            "KeyArn": KEY,
            "PayloadBucketArn": BUCKET_ARN,
            "PayloadSourceBuckets": _passed_to_roles(source_buckets),
            "TableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-items",
            "JobStateTableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-jobs",
            "GroupsTableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-groups",
            "OwnershipTableArn": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-ownership",
            "MessageTopicArn": "arn:aws:sns:us-east-1:123456789012:disa-messages",
            "MetricNamespace": "Disa",
        },
        {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"},
    )


def _s3_grants(role: str, source_buckets: str = "") -> set[tuple[str, str]]:
    """(action, resource) for every S3 action the role is granted, resolved for these buckets."""
    stack = _roles(source_buckets)
    documents = [p["PolicyDocument"] for p in template("roles")["Resources"][role]["Properties"]["Policies"]]
    documents += [
        policy["Properties"]["PolicyDocument"]
        for policy in resources("roles", "AWS::IAM::Policy").values()
        if ("Condition" not in policy or stack.condition(policy["Condition"]))
        and {"Ref": role} in policy["Properties"]["Roles"]
    ]
    grants = set()
    for statement in stack.resolve([s for d in documents for s in d["Statement"]]):
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        targets = [statement["Resource"]] if isinstance(statement["Resource"], str) else statement["Resource"]
        s3 = [a for a in actions if a.startswith("s3:")]
        if s3:
            assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
        grants |= {(a, r) for a in s3 for r in targets}
    return grants


def _payload_grants() -> set[tuple[str, str]]:
    return {
        ("s3:PutObject", f"{BUCKET_ARN}/payloads/*"),
        ("s3:GetObject", f"{BUCKET_ARN}/payloads/*"),
        ("s3:GetObject", f"{BUCKET_ARN}/incoming/*"),
        ("s3:ListBucket", BUCKET_ARN),
    }


def _source_grants(*buckets: str) -> set[tuple[str, str]]:
    return {("s3:GetObject", f"arn:aws:s3:::{b}/*") for b in buckets} | {
        ("s3:ListBucket", f"arn:aws:s3:::{b}") for b in buckets
    }


def test_root_nests_the_payload_stack_with_the_stacks_key_and_retention():
    root = template("root-stack")
    nested = root["Resources"]["Payloads"]
    assert nested["Type"] == "AWS::CloudFormation::Stack"
    assert nested["Properties"]["TemplateURL"]["Fn::Sub"].endswith("cft/nested-stacks/payloads.yaml")
    assert nested["Properties"]["Parameters"] == {
        "NamePrefix": {"Ref": "NamePrefix"},
        "KeyArn": {"Fn::GetAtt": ["Encryption", "Outputs.KeyArn"]},
        "PayloadRetentionDays": {"Ref": "PayloadRetentionDays"},
    }
    assert set(template(NAME)["Outputs"]) == {
        "PayloadBucketName",
        "PayloadBucketArn",
        "PayloadReaderPolicyArn",
        "PayloadUploaderPolicyArn",
    }
    outputs = root["Outputs"]
    for name in ("PayloadBucketName", "PayloadReaderPolicyArn", "PayloadUploaderPolicyArn"):
        assert outputs[name]["Value"] == {"Fn::GetAtt": ["Payloads", f"Outputs.{name}"]}, name
    assert outputs["PayloadRetentionDays"]["Value"] == {"Ref": "PayloadRetentionDays"}


def test_root_groups_the_large_message_parameters_with_their_defaults():
    root = template("root-stack")
    [group] = [
        g
        for g in root["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
        if g["Label"]["default"] == "Large messages (S3)"
    ]
    assert group["Parameters"] == PAYLOAD_PARAMETERS
    parameters = root["Parameters"]
    defaults = {name: parameters[name]["Default"] for name in PAYLOAD_PARAMETERS}
    assert defaults == {
        "PayloadOffloadThreshold": "262144",
        "PayloadMaxBytes": 2147483648,
        "PayloadRetentionDays": 30,
        "PayloadSourceBuckets": "",
    }
    assert (parameters["PayloadMaxBytes"]["MinValue"], parameters["PayloadMaxBytes"]["MaxValue"]) == (1, 2147483648)


@pytest.mark.parametrize("name", ["root-stack", "functions"])
def test_offload_threshold_is_always_or_a_byte_count_the_functions_accept(name):
    # A threshold the settings refuse would pass the deploy and stop every function at its start.
    pattern = re.compile(template(name)["Parameters"]["PayloadOffloadThreshold"]["AllowedPattern"])
    accepted = [n for n in range(2 * SNS_MESSAGE_LIMIT_BYTES) if pattern.fullmatch(str(n))]
    assert accepted == list(range(1, SNS_MESSAGE_LIMIT_BYTES + 1))
    assert pattern.fullmatch("always")
    for refused in ("", "-1", "1e5", "0262144", "2621440", "ALWAYS"):
        assert not pattern.fullmatch(refused), refused


@pytest.mark.parametrize("name", ["root-stack", "payloads"])
def test_bodies_outlive_a_pointer_in_a_subscribers_queue_and_then_its_dead_letter_queue(name):
    # A pointer may wait out the longest retention a subscriber's queue allows, and then its
    # dead-letter queue's; the body it names must still be there.
    subscriber = template("subscriber-stack")["Parameters"]
    longest_wait = (
        subscriber["MessageRetentionSeconds"]["MaxValue"] + subscriber["DeadLetterRetentionSeconds"]["MaxValue"]
    )
    assert longest_wait == (14 + 14) * DAY
    retention = template(name)["Parameters"]["PayloadRetentionDays"]
    assert retention["MinValue"] * DAY >= longest_wait
    assert retention.get("Default", retention["MinValue"]) >= retention["MinValue"]


def test_lifecycle_expires_stored_and_uploaded_bodies_after_the_retention_and_nothing_else():
    rules = _props("PayloadBucket")["LifecycleConfiguration"]["Rules"]
    assert all(rule["Status"] == "Enabled" for rule in rules)
    expiring = {rule["Prefix"]: rule["ExpirationInDays"] for rule in rules if "ExpirationInDays" in rule}
    assert expiring == {"payloads/": {"Ref": "PayloadRetentionDays"}, "incoming/": {"Ref": "PayloadRetentionDays"}}
    [abort] = [rule for rule in rules if "AbortIncompleteMultipartUpload" in rule]
    assert abort["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "Prefix" not in abort, "every incomplete upload, whatever its key"


def test_bucket_is_encrypted_with_the_stacks_key_private_and_owner_enforced():
    props = _props("PayloadBucket")
    assert props["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [
            {
                "ServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Ref": "KeyArn"}},
                "BucketKeyEnabled": True,
            }
        ]
    }
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


def test_bucket_name_is_generated_and_the_bucket_outlives_its_stack():
    # A fixed name would collide with the bucket a destroyed stack retained.
    bucket = template(NAME)["Resources"]["PayloadBucket"]
    assert "BucketName" not in bucket["Properties"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def _bucket_policy() -> list[dict]:
    [policy] = resources(NAME, "AWS::S3::BucketPolicy").values()
    assert policy["Properties"]["Bucket"] == {"Ref": "PayloadBucket"}
    return policy["Properties"]["PolicyDocument"]["Statement"]


def test_bucket_refuses_plain_http_on_the_bucket_and_every_object():
    [deny] = [s for s in _bucket_policy() if "Condition" in s]
    assert deny == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [{"Fn::GetAtt": ["PayloadBucket", "Arn"]}, {"Fn::Sub": "${PayloadBucket.Arn}/*"}],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def test_no_principal_may_delete_a_stored_body_and_the_policy_allows_nothing():
    # Several subscribers and dead-letter queues read one object; only the lifecycle removes it.
    statements = _bucket_policy()
    assert all(s["Effect"] == "Deny" for s in statements)
    [deny] = [s for s in statements if "Condition" not in s]
    assert deny == {
        "Sid": "DenyDeletingStoredPayloads",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": {"Fn::Sub": "${PayloadBucket.Arn}/payloads/*"},
    }


@pytest.mark.parametrize(
    ("policy", "grants"),
    [
        (
            "PayloadReaderPolicy",
            {
                ("s3:GetObject", "${PayloadBucket.Arn}/payloads/*"),
                # Without it S3 answers a GetObject of an expired body with 403, not 404.
                ("s3:ListBucket", "${PayloadBucket.Arn}"),
                ("kms:Decrypt", "KeyArn"),
            },
        ),
        (
            "PayloadUploaderPolicy",
            {
                ("s3:PutObject", "${PayloadBucket.Arn}/incoming/*"),
                ("kms:GenerateDataKey", "KeyArn"),
                # S3 reads the encrypted parts back to complete a multipart upload.
                ("kms:Decrypt", "KeyArn"),
            },
        ),
    ],
)
def test_managed_policies_reach_one_prefix_each_and_use_the_key_only_through_s3(policy, grants):
    statements = _props(policy)["PolicyDocument"]["Statement"]
    granted = set()
    for statement in statements:
        assert statement["Effect"] == "Allow"
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        resource = statement["Resource"]
        if "Fn::GetAtt" in resource:  # the bucket itself
            resource = {"Fn::Sub": "${" + ".".join(resource["Fn::GetAtt"]) + "}"}
        target = resource.get("Fn::Sub") or resource["Ref"]
        granted |= {(action, target) for action in actions}
        if target == "KeyArn":
            # Through S3, and for this bucket only (its ARN is the context with Bucket Keys).
            assert statement["Condition"] == {
                "StringEquals": {
                    "kms:ViaService": {"Fn::Sub": "s3.${AWS::Region}.amazonaws.com"},
                    "kms:EncryptionContext:aws:s3:arn": {"Fn::GetAtt": ["PayloadBucket", "Arn"]},
                }
            }
    assert granted == grants


def _grants_of(statements: list[dict]) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for s in statements
        for action in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
        for resource in ([s["Resource"]] if isinstance(s["Resource"], str) else s["Resource"])
    }


def test_every_reader_of_stored_bodies_may_list_the_bucket_so_an_expired_body_is_404_not_403():
    # S3 answers GetObject of a missing key with 403 AccessDenied, as for a forbidden one,
    # unless the caller may s3:ListBucket the bucket: a consumer could not say "expired".
    attributes = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
    reader = Evaluator(NAME, {"NamePrefix": "disa", "KeyArn": KEY}, {**attributes, "PayloadBucket.Arn": BUCKET_ARN})
    readers = {
        "PayloadReaderPolicy": _grants_of(reader.resolve(_props("PayloadReaderPolicy"))["PolicyDocument"]["Statement"]),
        **{role: _s3_grants(role) for role in ("TriggerRole", "RetryRole")},
    }
    subscriber = Evaluator(
        "subscriber-stack",
        {
            "NamePrefix": "disa",
            "SubscriberName": "orders",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:disa-messages",
            "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:disa-alarms",
            "ConsumerHandler": "orders.handler",
            "ArtifactBucket": "team-bucket",
            "ConsumerCodeKey": "orders.zip",
            "PayloadBucketName": BUCKET,
            "DisaKeyArn": KEY,
        },
        {**attributes, "Queue.Arn": "q", "Key.Arn": "k", "ConsumerLogGroup.Arn": "l"},
    )
    [consumer] = subscriber.resolve(template("subscriber-stack")["Resources"]["ConsumerRole"]["Properties"]["Policies"])
    readers["ConsumerRole"] = _grants_of(consumer["PolicyDocument"]["Statement"])
    for name, grants in readers.items():
        assert ("s3:GetObject", f"{BUCKET_ARN}/payloads/*") in grants, name
        assert ("s3:ListBucket", BUCKET_ARN) in grants, name


@pytest.mark.parametrize("role", ["TriggerRole", "RetryRole"])
def test_function_roles_reach_the_payload_bucket_prefixes_and_nothing_else_without_source_buckets(role):
    assert _s3_grants(role) == _payload_grants()
    assert not _roles().condition("HasSourceBuckets")


@pytest.mark.parametrize("role", ["TriggerRole", "RetryRole"])
@pytest.mark.parametrize(
    "buckets",
    [["team-uploads"], ["a.b-c", "orders-raw"], [f"source-{n}" for n in range(1, MOST_SOURCE_BUCKETS + 1)]],
)
def test_function_roles_read_exactly_the_listed_source_buckets(role, buckets):
    assert _s3_grants(role, ",".join(buckets)) == _payload_grants() | _source_grants(*buckets)


@pytest.mark.parametrize("name", ["root-stack", "functions"])
def test_source_bucket_list_is_refused_beyond_what_the_roles_can_grant(name):
    pattern = template(name)["Parameters"]["PayloadSourceBuckets"]["AllowedPattern"]
    assert pattern == template("root-stack")["Parameters"]["PayloadSourceBuckets"]["AllowedPattern"]
    most = [f"source-{n}" for n in range(1, MOST_SOURCE_BUCKETS + 1)]
    assert re.fullmatch(pattern, ",".join(most)) and re.fullmatch(pattern, "")
    for refused in (",".join([*most, "one-more"]), "Upper", "a,,b", "trailing,", "xy"):
        assert not re.fullmatch(pattern, refused), refused
    # The roles stack takes the list padded to every position it reads; each member is checked.
    roles = template("roles")["Parameters"]["PayloadSourceBuckets"]
    assert roles["Type"] == "CommaDelimitedList"
    for accepted in ("", ",".join(most)):
        members = _passed_to_roles(accepted).split(",")
        assert len(members) >= MOST_SOURCE_BUCKETS
        assert all(re.fullmatch(roles["AllowedPattern"], m) for m in members)


@pytest.mark.parametrize("role", ["TriggerRole", "RetryRole"])
def test_function_roles_encrypt_and_decrypt_bodies_with_the_stacks_key(role):
    statements = template("roles")["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    [key] = [s for s in statements if s["Sid"] == "UseDisaKey"]
    assert (set(key["Action"]), key["Resource"]) == ({"kms:Decrypt", "kms:GenerateDataKey"}, {"Ref": "KeyArn"})


def test_role_arns_name_the_partition_never_aws_literally():
    for name in ("roles", NAME, "subscriber-stack"):
        assert "arn:aws:" not in json.dumps(template(name)), name


@pytest.mark.parametrize("function", ["TriggerFunction", "RetryFunction"])
def test_both_functions_get_the_payload_settings_from_the_root_stack(function):
    variables = template("functions")["Resources"][function]["Properties"]["Environment"]["Variables"]
    assert {k: v for k, v in variables.items() if k.startswith("PAYLOAD_")} == {
        "PAYLOAD_BUCKET": {"Ref": "PayloadBucketName"},
        "PAYLOAD_BUCKET_OWNER": {"Ref": "AWS::AccountId"},
        "PAYLOAD_SOURCE_BUCKETS": {"Ref": "PayloadSourceBuckets"},
        "PAYLOAD_OFFLOAD_THRESHOLD": {"Ref": "PayloadOffloadThreshold"},
        "PAYLOAD_MAX_BYTES": {"Ref": "PayloadMaxBytes"},
    }
    root = template("root-stack")["Resources"]
    passed = root["Functions"]["Properties"]["Parameters"]
    assert passed["PayloadBucketName"] == {"Fn::GetAtt": ["Payloads", "Outputs.PayloadBucketName"]}
    for name in ("PayloadSourceBuckets", "PayloadOffloadThreshold", "PayloadMaxBytes"):
        assert passed[name] == {"Ref": name}, name
    roles = root["Roles"]["Properties"]["Parameters"]
    assert roles["PayloadBucketArn"] == {"Fn::GetAtt": ["Payloads", "Outputs.PayloadBucketArn"]}
    assert roles["PayloadSourceBuckets"] == {"Fn::Sub": "${PayloadSourceBuckets},,,,"}
