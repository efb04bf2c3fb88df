"""cft/subscriber-stack.yaml, read and evaluated: what `disa` passes it and reads back, its
rules, what AWS enforces and the local engine does not (visibility timeout against the
consumer's), the dashboard against AWS's body syntax and the consumer stages contract, and
least privilege and encryption."""

from __future__ import annotations

import itertools
import json
import re

import jsonschema
import pytest
from disa_lambda.consumer import stages
from disa_lambda.consumer.consumer import Settings
from disa_lambda.models.settings import names_in

from tests.support.templates import (
    DASHBOARD_SCHEMA,
    Evaluator,
    dashboard_grid_faults,
    resources,
    template,
)
from tests.support.templates import dashboard_metric_rows as _metric_rows

pytestmark = pytest.mark.templates
NAME = "subscriber-stack"
SCHEMA = DASHBOARD_SCHEMA

# What the CLI passes (disa deploys the stack as <disa-stack>-sub-<name>): the names it relies on
# and the defaults of those it may leave out.
CLI_PARAMETERS = {
    "NamePrefix": None,
    "SubscriberName": None,
    "TopicArn": None,
    "TopicType": None,
    "QueueType": None,
    "AlarmTopicArn": None,
    "RawMessageDelivery": "true",
    "FilterPolicy": "",
    "FilterPolicyScope": "MessageAttributes",
    "MaxReceiveCount": 5,
    "DelaySeconds": 0,
    "MessageRetentionSeconds": 345600,
    "DeadLetterRetentionSeconds": 1209600,
    "OldestMessageAgeAlarmSeconds": 900,
    "ConsumerHandler": "",
    "ArtifactBucket": "",
    "ConsumerCodeKey": "",
    "ConsumerTimeoutSeconds": "30",
    "ConsumerBatchSize": 10,
    "ConsumerMemorySize": 256,
    "ProcessedIdRetentionSeconds": 1296000,
    "PayloadBucketName": "",
    "DisaKeyArn": "",
    "ExtraPayloadBuckets": ",,",  # padded to its 3 positions by `disa subscribe --payload-bucket`
    # Two regions (disa/deploy/subscribers.py, subscribe_in_both_regions); the defaults are one region.
    "PeerTopicArn": "",
    "PeerQueueArn": "",
    "ProcessedIdsReplica": "false",
    "ConsumerActive": "true",
    "OwnershipTableName": "",
    "PrimaryRegion": "",
}
OUTPUTS = {
    "QueueUrl",
    "QueueArn",
    "QueueName",
    "DeadLetterQueueUrl",
    "DeadLetterQueueArn",
    "SubscriptionArn",
    "QueueIsFifo",
    "KeyArn",
    "DashboardName",
    "DeadLetterAlarmName",
    "OldestMessageAlarmName",
}
CONSUMER_OUTPUTS = {"ConsumerFunctionName", "ProcessedIdsTableName"}
CONSUMER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "kms:Decrypt",
    "logs:CreateLogStream",
    "logs:PutLogEvents",
}
TOPIC = "arn:aws:sns:us-east-1:123456789012:disa-messages"
SAMPLE = {
    "NamePrefix": "disa",
    "SubscriberName": "orders",
    "TopicArn": TOPIC,
    "TopicType": "standard",
    "QueueType": "standard",
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:disa-alarms",
}
WITH_CONSUMER = {"ConsumerHandler": "orders.handler", "ArtifactBucket": "team-bucket", "ConsumerCodeKey": "orders.zip"}
DISA_KEY = "arn:aws:kms:us-east-1:123456789012:key/00000000-1111-2222-3333-444444444444"
# The Disa stack's outputs `disa subscribe` passes on (PayloadBucketName, KeyArn).
WITH_PAYLOADS = {"PayloadBucketName": "disa-payloads-payloadbucket-1a2b3c", "DisaKeyArn": DISA_KEY}
# What only a deployment knows, as CloudFormation would return it.
ATTRIBUTES = {
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "Queue.QueueName": "disa-orders",
    "DeadLetterQueue.QueueName": "disa-orders-dlq",
    "DeadLetterAlarm.Arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:disa-orders-dead-letters",
    "OldestMessageAlarm.Arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:disa-orders-oldest-message",
    "Queue.Arn": "arn:aws:sqs:us-east-1:123456789012:disa-orders",
    "DeadLetterQueue.Arn": "arn:aws:sqs:us-east-1:123456789012:disa-orders-dlq",
    "Key.Arn": "arn:aws:kms:us-east-1:123456789012:key/0f0e0d0c-0b0a-0908-0706-050403020100",
    "ConsumerFunction": "disa-orders-consumer",
    "ConsumerRole.Arn": "arn:aws:iam::123456789012:role/disa-sub-orders-ConsumerRole",
    "ConsumerLogGroup": "/aws/lambda/disa-orders-consumer",
    "ProcessedIdsTable": "disa-orders-processed-ids",
    "ProcessedIdsTable.Arn": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-orders-processed-ids",
    "ConsumerLogGroup.Arn": "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/disa-orders-consumer:*",
}


PEER_TOPIC = "arn:aws:sns:us-west-2:123456789012:disa-messages"
PEER_QUEUE = "arn:aws:sqs:us-west-2:123456789012:disa-orders"
# The primary's subscriber stack of a two-region deployment, as the CLI deploys it.
TWO_REGIONS = {
    "PeerTopicArn": PEER_TOPIC,
    "PeerQueueArn": PEER_QUEUE,
    "OwnershipTableName": "disa-ownership",
    "PrimaryRegion": "us-east-1",
    "DisaKeyArn": DISA_KEY,
}


def _stack(**parameters: str) -> Evaluator:
    return Evaluator(NAME, {**SAMPLE, **parameters}, ATTRIBUTES)


def _resource(logical_id: str) -> dict:
    return template(NAME)["Resources"][logical_id]


def _props(logical_id: str) -> dict:
    return _resource(logical_id)["Properties"]


def test_is_standalone_not_nested_in_the_root_stack():
    assert "subscriber-stack" not in json.dumps(template("root-stack"))


def test_takes_the_parameters_the_cli_passes_with_their_defaults():
    parameters = template(NAME)["Parameters"]
    assert set(CLI_PARAMETERS) <= set(parameters)
    for name, default in CLI_PARAMETERS.items():
        assert parameters[name].get("Default") == default, name
    extra = set(parameters) - set(CLI_PARAMETERS)
    assert all("Default" in parameters[name] for name in extra), "a parameter the CLI does not know needs a default"
    assert (
        parameters["NamePrefix"]["AllowedPattern"]
        == template("root-stack")["Parameters"]["NamePrefix"]["AllowedPattern"]
    )
    assert parameters["SubscriberName"]["AllowedPattern"] == "^[a-z][a-z0-9-]{0,39}$"


def test_parameters_are_all_grouped_and_labelled():
    subscriber = template(NAME)
    interface = subscriber["Metadata"]["AWS::CloudFormation::Interface"]
    grouped = [p for g in interface["ParameterGroups"] for p in g["Parameters"]]
    assert sorted(grouped) == sorted(subscriber["Parameters"])
    assert set(interface["ParameterLabels"]) == set(subscriber["Parameters"])


def test_outputs_are_what_the_cli_reads():
    outputs = template(NAME)["Outputs"]
    assert set(outputs) >= OUTPUTS | CONSUMER_OUTPUTS
    assert {name for name, output in outputs.items() if output.get("Condition") == "HasConsumer"} == CONSUMER_OUTPUTS
    assert _stack(QueueType="fifo", TopicType="fifo").resolve(outputs["QueueIsFifo"]["Value"]) == "true"
    assert _stack().resolve(outputs["QueueIsFifo"]["Value"]) == "false"


@pytest.mark.parametrize(
    ("queue_type", "queue", "dead_letter_queue"),
    [("standard", "disa-orders", "disa-orders-dlq"), ("fifo", "disa-orders.fifo", "disa-orders-dlq.fifo")],
)
def test_resources_carry_the_names_the_cli_and_the_dashboard_rely_on(queue_type, queue, dead_letter_queue):
    stack = _stack(QueueType=queue_type, TopicType="fifo", **WITH_CONSUMER)
    names = {
        logical_id: stack.resolve(_props(logical_id)[key])
        for logical_id, key in [
            ("Queue", "QueueName"),
            ("DeadLetterQueue", "QueueName"),
            ("ConsumerFunction", "FunctionName"),
            ("ProcessedIdsTable", "TableName"),
            ("ConsumerLogGroup", "LogGroupName"),
            ("DeadLetterAlarm", "AlarmName"),
            ("OldestMessageAlarm", "AlarmName"),
            ("Dashboard", "DashboardName"),
        ]
    }
    assert names == {
        "Queue": queue,
        "DeadLetterQueue": dead_letter_queue,
        "ConsumerFunction": "disa-orders-consumer",
        "ProcessedIdsTable": "disa-orders-processed-ids",
        "ConsumerLogGroup": "/aws/lambda/disa-orders-consumer",
        "DeadLetterAlarm": "disa-orders-dead-letters",
        "OldestMessageAlarm": "disa-orders-oldest-message",
        "Dashboard": "disa-orders-us-east-1",  # dashboards are global: one name per region
    }


@pytest.mark.parametrize("queue_type", ["standard", "fifo"])
def test_queues_are_fifo_exactly_when_asked_and_never_deduplicate_by_content(queue_type):
    stack = _stack(QueueType=queue_type, TopicType="fifo")
    for logical_id in ("Queue", "DeadLetterQueue"):
        props = stack.resolve(_props(logical_id))
        if queue_type == "fifo":
            assert props["FifoQueue"] is True and props["ContentBasedDeduplication"] is False, logical_id
        else:
            assert "FifoQueue" not in props and "ContentBasedDeduplication" not in props, logical_id


def test_queue_polls_long_keeps_sns_sized_messages_and_dead_letters_after_max_receives():
    props = _stack(MaxReceiveCount="7", DelaySeconds="15", MessageRetentionSeconds="86400").resolve(_props("Queue"))
    assert props["ReceiveMessageWaitTimeSeconds"] == 20
    assert props["MaximumMessageSize"] == 262144 == _props("DeadLetterQueue")["MaximumMessageSize"]
    assert (props["DelaySeconds"], props["MessageRetentionPeriod"]) == ("15", "86400")
    assert props["RedrivePolicy"] == {"deadLetterTargetArn": ATTRIBUTES["DeadLetterQueue.Arn"], "maxReceiveCount": "7"}


def test_dead_letters_outlive_the_queue_by_default():
    # On a standard queue a message's age in the dead-letter queue counts from its first enqueue.
    parameters = template(NAME)["Parameters"]
    assert parameters["DeadLetterRetentionSeconds"]["Default"] > parameters["MessageRetentionSeconds"]["Default"]
    assert parameters["ProcessedIdRetentionSeconds"]["Default"] > parameters["DeadLetterRetentionSeconds"]["MaxValue"]


def test_visibility_timeout_is_at_least_six_consumer_timeouts_for_every_allowed_timeout():
    # The local engine accepts a shorter one; AWS refuses the event source mapping.
    allowed = template(NAME)["Parameters"]["ConsumerTimeoutSeconds"]["AllowedValues"]
    assert set(allowed) == set(template(NAME)["Mappings"]["VisibilityTimeouts"])
    for timeout in allowed:
        stack = _stack(ConsumerTimeoutSeconds=timeout, **WITH_CONSUMER)
        visibility = stack.resolve(_props("Queue")["VisibilityTimeout"])
        assert int(stack.resolve(_props("ConsumerFunction")["Timeout"])) == int(timeout)
        assert 6 * int(timeout) <= visibility <= 43200, timeout


@pytest.mark.parametrize(
    ("topic_type", "queue_type"), list(itertools.product(["standard", "fifo"], ["standard", "fifo"]))
)
def test_rule_refuses_only_a_fifo_queue_on_a_standard_topic(topic_type, queue_type):
    failures = _stack(TopicType=topic_type, QueueType=queue_type).rule_failures()
    if (topic_type, queue_type) == ("standard", "fifo"):
        [failure] = failures
        assert failure.startswith("AWS refuses to subscribe a FIFO queue to a standard topic;")
    else:
        assert failures == []


def test_rule_refuses_a_consumer_without_its_code():
    assert _stack(**WITH_CONSUMER).rule_failures() == []
    assert len(_stack(ConsumerHandler="orders.handler").rule_failures()) == 2
    assert _stack().rule_failures() == [], "no consumer needs no code"


def test_subscription_delivers_to_the_queue_filtered_only_when_asked():
    props = _stack().resolve(_props("Subscription"))
    assert props["Protocol"] == "sqs" and props["RawMessageDelivery"] == "true"
    assert props["TopicArn"] == TOPIC
    assert "FilterPolicy" not in props and "FilterPolicyScope" not in props
    policy = '{"kind": ["order"]}'
    filtered = _stack(FilterPolicy=policy, FilterPolicyScope="MessageBody").resolve(_props("Subscription"))
    assert (filtered["FilterPolicy"], filtered["FilterPolicyScope"]) == (policy, "MessageBody")
    assert json.loads(filtered["FilterPolicy"])


@pytest.mark.parametrize(
    ("topic_type", "queue_type", "kept"),
    [("standard", "standard", True), ("fifo", "fifo", True), ("fifo", "standard", False)],
)
def test_subscription_keeps_what_sns_cannot_deliver_where_sns_accepts_the_dead_letter_queue(
    topic_type, queue_type, kept
):
    # SNS takes a dead-letter queue of its subscription's kind (FIFO topic: FIFO queue), and a
    # standard queue's dead-letter queue is standard.
    props = _stack(TopicType=topic_type, QueueType=queue_type).resolve(_props("Subscription"))
    assert props.get("RedrivePolicy") == ({"deadLetterTargetArn": ATTRIBUTES["DeadLetterQueue.Arn"]} if kept else None)


def _queue_policy(queue: str) -> dict:
    """The policy document of ``queue`` ("Queue" or "DeadLetterQueue"), as written."""
    [policy] = [
        r["Properties"]
        for r in resources(NAME, "AWS::SQS::QueuePolicy").values()
        if r["Properties"]["Queues"] == [{"Ref": queue}]
    ]
    return policy["PolicyDocument"]


@pytest.mark.parametrize("queue", ["Queue", "DeadLetterQueue"])
def test_queue_policy_refuses_plain_http_and_lets_only_disas_topic_send(queue):
    deny, allow = _queue_policy(queue)["Statement"]
    arn = {"Fn::GetAtt": [queue, "Arn"]}
    assert deny == {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "sqs:*",
        "Resource": arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"Service": "sns.amazonaws.com"}
    assert (allow["Action"], allow["Resource"]) == ("sqs:SendMessage", arn)
    [_, resolved] = _stack().resolve(_queue_policy(queue))["Statement"]
    assert resolved["Condition"] == {"ArnEquals": {"aws:SourceArn": TOPIC}}, "one region: exactly as before"


def test_key_rotates_and_lets_sns_use_it_only_for_disas_topic():
    props = _props("Key")
    assert props["EnableKeyRotation"] is True
    statements = props["KeyPolicy"]["Statement"]
    assert all(s["Principal"] != "*" and s["Principal"] != {"AWS": "*"} for s in statements)
    [sns] = [s for s in statements if s["Principal"] == {"Service": "sns.amazonaws.com"}]
    assert set(sns["Action"]) == {"kms:GenerateDataKey*", "kms:Decrypt"}
    assert _stack().resolve(sns["Condition"]) == {"ArnEquals": {"aws:SourceArn": TOPIC}}
    [logs] = [s for s in statements if "logs." in json.dumps(s["Principal"])]
    log_group = _stack().resolve(logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"])
    assert log_group.endswith(":log-group:/aws/lambda/disa-orders-consumer")


def test_queues_table_logs_and_environment_use_the_stacks_key():
    key = {"Fn::GetAtt": ["Key", "Arn"]}
    assert _props("Queue")["KmsMasterKeyId"] == key == _props("DeadLetterQueue")["KmsMasterKeyId"]
    assert _props("ProcessedIdsTable")["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": key,
    }
    assert _props("ConsumerLogGroup")["KmsKeyId"] == key
    assert _props("ConsumerFunction")["KmsKeyArn"] == key


def test_processed_ids_table_has_powertools_idempotency_layout_and_recovery():
    props = _props("ProcessedIdsTable")
    assert props["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_consumer_exists_only_with_a_handler():
    conditional = {k for k, r in template(NAME)["Resources"].items() if r.get("Condition") == "HasConsumer"}
    assert conditional == {"ConsumerLogGroup", "ConsumerRole", "ConsumerFunction", "ConsumerMapping"}
    assert not _stack().condition("HasConsumer")
    assert _stack(**WITH_CONSUMER).condition("HasConsumer")
    # The processed-ids table, also with a consumer only (and not where it is a replica: below).
    assert _resource("ProcessedIdsTable")["Condition"] == "CreatesProcessedIdsTable"
    assert not _stack().condition("CreatesProcessedIdsTable")
    assert _stack(**WITH_CONSUMER).condition("CreatesProcessedIdsTable")


def test_consumer_runs_the_handler_from_the_teams_zip_with_the_contracts_environment():
    props = _stack(**WITH_CONSUMER).resolve(_props("ConsumerFunction"))
    assert (props["Runtime"], props["Architectures"], props["Handler"]) == ("python3.12", ["arm64"], "orders.handler")
    assert props["Code"] == {"S3Bucket": "team-bucket", "S3Key": "orders.zip"}
    assert props["Environment"]["Variables"] == {
        "SUBSCRIBER_NAME": "disa-orders",
        "PROCESSED_IDS_TABLE_NAME": "disa-orders-processed-ids",
        "QUEUE_IS_FIFO": "false",
        "PROCESSED_ID_RETENTION_SECONDS": "1296000",
        "POWERTOOLS_SERVICE_NAME": "disa-orders",
        "POWERTOOLS_METRICS_NAMESPACE": stages.NAMESPACE,
        "PAYLOAD_BUCKETS": "",
        "PAYLOAD_BUCKET_OWNER": "123456789012",
        "OWNERSHIP_TABLE_NAME": "",
        "PRIMARY_REGION": "",
    }
    fifo = _stack(QueueType="fifo", TopicType="fifo", **WITH_CONSUMER).resolve(_props("ConsumerFunction"))
    assert fifo["Environment"]["Variables"]["QUEUE_IS_FIFO"] == "true"
    offloaded = _stack(**WITH_CONSUMER, **WITH_PAYLOADS).resolve(_props("ConsumerFunction"))
    assert offloaded["Environment"]["Variables"]["PAYLOAD_BUCKETS"] == WITH_PAYLOADS["PayloadBucketName"]


def test_consumer_mapping_reports_partial_batch_failures():
    props = _stack(ConsumerBatchSize="4", **WITH_CONSUMER).resolve(_props("ConsumerMapping"))
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["BatchSize"] == "4"
    assert _props("ConsumerMapping")["EventSourceArn"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["Enabled"] is True, "one region: the consumer runs"


def test_consumer_role_grants_exactly_what_the_consumer_needs_on_this_stacks_resources():
    [policy] = _props("ConsumerRole")["Policies"]
    granted, resources_by_action = set(), {}
    # The conditional statements read the Disa stack's payload bucket and, in two regions,
    # the ownership record (the tests below).
    own = [s for s in policy["PolicyDocument"]["Statement"] if "Fn::If" not in s]
    for statement in own:
        assert statement["Effect"] == "Allow"
        actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
        granted.update(actions)
        resources_by_action.update(dict.fromkeys(actions, statement["Resource"]))
    assert granted == CONSUMER_ACTIONS
    owner = {"sqs": "Queue", "kms": "Key", "logs": "ConsumerLogGroup"}
    for action, resource in resources_by_action.items():
        if action.startswith("dynamodb:"):
            # Built, not read from the table: in the secondary region the table is a replica.
            assert _stack(**WITH_CONSUMER).resolve(resource) == ATTRIBUTES["ProcessedIdsTable.Arn"], action
        else:
            assert resource == {"Fn::GetAtt": [owner[action.split(":")[0]], "Arn"]}, action


def _payload_statements(**parameters: str) -> list[dict]:
    [policy] = _stack(**WITH_CONSUMER, **parameters).resolve(_props("ConsumerRole")["Policies"])
    own = {
        "ReadTheQueue",
        "RememberProcessedMessages",
        "DecryptMessagesAndEnvironment",
        "WriteLogs",
        "ReadOwnership",
        "DecryptOwnership",
    }
    return [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] not in own]


def test_consumer_reads_stored_bodies_only_when_given_the_disa_stacks_payload_bucket():
    assert _payload_statements() == []
    assert not _stack(**WITH_CONSUMER).condition("ReadsPayloads")
    read, listing, decrypt = _payload_statements(**WITH_PAYLOADS)
    # What Disa stored (payloads/), never what producers upload (incoming/).
    assert read == {
        "Sid": "ReadDisaPayloads",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::disa-payloads-payloadbucket-1a2b3c/payloads/*",
    }
    # Without it S3 answers a GetObject of an expired body with 403, not 404 (as for Disa's roles).
    assert listing == {
        "Sid": "ListDisaPayloads",
        "Effect": "Allow",
        "Action": "s3:ListBucket",
        "Resource": "arn:aws:s3:::disa-payloads-payloadbucket-1a2b3c",
    }
    assert decrypt == {
        "Sid": "DecryptDisaPayloads",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": DISA_KEY,
        "Condition": {
            "StringEquals": {
                "kms:ViaService": "s3.us-east-1.amazonaws.com",
                "kms:EncryptionContext:aws:s3:arn": "arn:aws:s3:::disa-payloads-payloadbucket-1a2b3c",
            }
        },
    }
    statement = json.dumps(_props("ConsumerRole"))
    assert "arn:${AWS::Partition}:s3:::${PayloadBucketName}/payloads/*" in statement


EXTENDED_CLIENT_BUCKET = "orders-large-bodies"


@pytest.mark.parametrize(
    ("extra", "buckets"),
    [
        (f"{EXTENDED_CLIENT_BUCKET},,", [EXTENDED_CLIENT_BUCKET]),
        ("a.b-c,orders-raw,third", ["a.b-c", "orders-raw", "third"]),
        (",only-second,", ["only-second"]),
    ],
)
def test_consumer_reads_the_extra_payload_buckets_whole_with_their_keys_only_through_s3(extra, buckets):
    # Given a producer's SNS extended client that stores bodies at the root of a bucket of its own
    statements = _payload_statements(ExtraPayloadBuckets=extra)
    read, listing, decrypt = statements
    arns = [f"arn:aws:s3:::{b}" for b in buckets]
    # Then the consumer reads every object there and may list it (a missing body is 404, not 403)
    assert read == {
        "Sid": "ReadExtraPayloads",
        "Effect": "Allow",
        "Action": "s3:GetObject",
        "Resource": [f"{arn}/*" for arn in arns],
    }
    assert listing == {"Sid": "ListExtraPayloadBuckets", "Effect": "Allow", "Action": "s3:ListBucket", "Resource": arns}
    # And decrypts with a key of this account and region only as S3 does for those buckets' objects
    assert decrypt == {
        "Sid": "DecryptExtraPayloads",
        "Effect": "Allow",
        "Action": "kms:Decrypt",
        "Resource": "arn:aws:kms:us-east-1:123456789012:key/*",
        "Condition": {
            "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
            "StringLike": {"kms:EncryptionContext:aws:s3:arn": [v for arn in arns for v in (arn, f"{arn}/*")]},
        },
    }
    # And the helper follows pointers into them, beside Disa's bucket
    function = _stack(**WITH_CONSUMER, **WITH_PAYLOADS, ExtraPayloadBuckets=extra).resolve(_props("ConsumerFunction"))
    variables = function["Environment"]["Variables"]
    assert names_in(variables["PAYLOAD_BUCKETS"]) == {WITH_PAYLOADS["PayloadBucketName"], *buckets}
    assert variables["PAYLOAD_BUCKET_OWNER"] == ATTRIBUTES["AWS::AccountId"], "the helper names this account as owner"
    alone = _stack(**WITH_CONSUMER, ExtraPayloadBuckets=extra).resolve(_props("ConsumerFunction"))
    assert names_in(alone["Environment"]["Variables"]["PAYLOAD_BUCKETS"]) == set(buckets)
    # And with Disa's bucket too, both sets of grants stand side by side
    assert len(_payload_statements(**WITH_PAYLOADS, ExtraPayloadBuckets=extra)) == 6


def test_extra_payload_buckets_take_three_bucket_names_or_empty_positions():
    parameter = template(NAME)["Parameters"]["ExtraPayloadBuckets"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert len(parameter["Default"].split(",")) == 3, "every position the conditions select exists"
    pattern = re.compile(parameter["AllowedPattern"])
    for accepted in ("", EXTENDED_CLIENT_BUCKET, "a.b-c", "abc"):
        assert pattern.fullmatch(accepted), accepted
    for refused in ("Upper", "ab", "-lead", "trail-", "a_b", "x" * 64):
        assert not pattern.fullmatch(refused), refused
    # Each position is granted only when named: none by default.
    assert not _stack(**WITH_CONSUMER).condition("HasExtraPayloadBuckets")
    assert _payload_statements() == []


def test_rule_refuses_a_payload_bucket_without_the_disa_key():
    assert _stack(**WITH_PAYLOADS).rule_failures() == []
    [failure] = _stack(PayloadBucketName=WITH_PAYLOADS["PayloadBucketName"]).rule_failures()
    assert failure.startswith("PayloadBucketName needs DisaKeyArn")
    assert _stack(DisaKeyArn=DISA_KEY).rule_failures() == [], "the key alone grants nothing"


def test_alarms_notify_disas_alarm_topic_both_ways_and_say_what_to_do():
    stack = _stack()
    for logical_id in ("DeadLetterAlarm", "OldestMessageAlarm"):
        props = stack.resolve(_props(logical_id))
        assert props["AlarmActions"] == props["OKActions"] == [SAMPLE["AlarmTopicArn"]], logical_id
        assert props["TreatMissingData"] == "notBreaching", logical_id
        assert (props["Namespace"], props["Statistic"]) == ("AWS/SQS", "Maximum"), logical_id
        assert "disa redrive orders" in props["AlarmDescription"], logical_id
    dead = stack.resolve(_props("DeadLetterAlarm"))
    assert (dead["MetricName"], dead["Threshold"], dead["ComparisonOperator"]) == (
        "ApproximateNumberOfMessagesVisible",
        1,
        "GreaterThanOrEqualToThreshold",
    )
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": "disa-orders-dlq"}]
    oldest = _stack(OldestMessageAgeAlarmSeconds="600").resolve(_props("OldestMessageAlarm"))
    assert (oldest["MetricName"], oldest["Threshold"]) == ("ApproximateAgeOfOldestMessage", "600")
    assert oldest["Dimensions"] == [{"Name": "QueueName", "Value": "disa-orders"}]
    assert oldest["EvaluationPeriods"] > 1


def _dashboard(**parameters: str) -> dict:
    body = _stack(**parameters).resolve(_props("Dashboard")["DashboardBody"])
    return json.loads(body)


@pytest.mark.parametrize("consumer", [False, True])
def test_dashboard_body_follows_aws_dashboard_syntax(consumer):
    dashboard = _dashboard(**(WITH_CONSUMER if consumer else {}))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(dashboard, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert dashboard_grid_faults(dashboard) == []


def test_dashboard_schema_refuses_what_aws_refuses():
    good = _dashboard()
    for broken in (
        {},
        {"widgets": [{"type": "metric", "properties": {"metrics": [["A", "B"]]}}]},  # no region
        {"widgets": [{"type": "metric", "width": 25, "properties": {"region": "us-east-1", "metrics": [["A", "B"]]}}]},
        {"widgets": [{"type": "text", "properties": {}}]},
        {
            "widgets": [
                {"type": "metric", "properties": {"region": "us-east-1", "metrics": [["A", "B", {"stat": "p"}]]}}
            ]
        },
        {**good, "widget": []},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_dashboard_charts_every_stage_at_every_percentile_and_every_counter_from_the_contract():
    rows = _metric_rows(_dashboard())
    subscriber = (stages.DIMENSION, "disa-orders")
    charted = {
        (metric, rendering.get("stat"))
        for namespace, metric, dims, rendering in rows
        if namespace == stages.NAMESPACE and dims == subscriber
    }
    expected = {(stage.metric, p) for stage in stages.STAGES for p in stages.PERCENTILES}
    assert expected <= charted
    assert {(counter, "Sum") for counter in stages.COUNTERS} <= charted
    ours = {metric for namespace, metric, _, _ in rows if namespace == stages.NAMESPACE}
    assert ours == {stage.metric for stage in stages.STAGES} | set(stages.COUNTERS), "nothing outside the contract"
    # The dimension the consumer emits is the one its environment names.
    env = _stack(**WITH_CONSUMER).resolve(_props("ConsumerFunction")["Environment"]["Variables"])
    assert env["SUBSCRIBER_NAME"] == subscriber[1]


def test_dashboard_shows_queue_health_always_and_the_consumer_only_when_there_is_one():
    without = {(ns, m, dims) for ns, m, dims, _ in _metric_rows(_dashboard())}
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", ("QueueName", "disa-orders-dlq")) in without
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", ("QueueName", "disa-orders")) in without
    assert not any(ns == "AWS/Lambda" for ns, _, _ in without)
    with_consumer = {(ns, m, dims) for ns, m, dims, _ in _metric_rows(_dashboard(**WITH_CONSUMER))}
    function = ("FunctionName", "disa-orders-consumer")
    assert {("AWS/Lambda", m, function) for m in ("Errors", "Throttles", "Duration")} <= with_consumer


# Two regions: each region's subscriber stack subscribes its own queue and the other region's
# queue to its own topic, and only the owning region's consumer runs.


def _sns_source_arns(statement: dict) -> set[str]:
    """The topics an SNS statement lets in (its only condition is ArnEquals aws:SourceArn)."""
    assert list(statement["Condition"]) == ["ArnEquals"] and list(statement["Condition"]["ArnEquals"]) == [
        "aws:SourceArn"
    ]
    arns = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
    return {arns} if isinstance(arns, str) else set(arns)


def test_with_a_peer_queue_this_topic_delivers_to_it_too_keeping_what_it_cannot_deliver_here():
    assert not _stack().condition("HasPeerQueue"), "one region: no second subscription"
    assert _resource("PeerSubscription")["Condition"] == "HasPeerQueue"
    stack = _stack(FilterPolicy='{"kind": ["order"]}', FilterPolicyScope="MessageBody", **TWO_REGIONS)
    assert stack.condition("HasPeerQueue")
    peer, local = stack.resolve(_props("PeerSubscription")), stack.resolve(_props("Subscription"))
    # Declared in the topic's region, from this region's topic: SNS keeps it here.
    assert (peer["TopicArn"], peer["Protocol"], peer["Endpoint"]) == (TOPIC, "sqs", PEER_QUEUE)
    # The subscription's dead-letter queue must be in its region: this stack's own.
    assert peer["RedrivePolicy"] == {"deadLetterTargetArn": ATTRIBUTES["DeadLetterQueue.Arn"]}
    assert {k: v for k, v in peer.items() if k != "Endpoint"} == {k: v for k, v in local.items() if k != "Endpoint"}
    outputs = template(NAME)["Outputs"]
    assert outputs["PeerSubscriptionArn"] == {"Condition": "HasPeerQueue", "Value": {"Ref": "PeerSubscription"}}


def test_the_queue_and_the_key_let_in_exactly_both_regions_topics_and_the_dead_letter_queue_only_this_one():
    key_statements = _props("Key")["KeyPolicy"]["Statement"]
    [key] = [s for s in key_statements if s["Principal"] == {"Service": "sns.amazonaws.com"}]
    for parameters, topics in [({}, {TOPIC}), (TWO_REGIONS, {TOPIC, PEER_TOPIC})]:
        stack = _stack(**parameters)
        assert _sns_source_arns(stack.resolve(key)) == topics, parameters
        [_, queue] = stack.resolve(_queue_policy("Queue"))["Statement"]
        assert _sns_source_arns(queue) == topics, parameters
        # Both subscriptions naming this dead-letter queue are from this region's topic; the
        # other region's subscription to our queue keeps its failures in its own region.
        [_, dead_letter] = stack.resolve(_queue_policy("DeadLetterQueue"))["Statement"]
        assert _sns_source_arns(dead_letter) == {TOPIC}, parameters
    # The other region's topic alone, without its queue: the secondary before the primary's
    # queue exists (disa deploys the secondary first).
    [_, queue] = _stack(PeerTopicArn=PEER_TOPIC).resolve(_queue_policy("Queue"))["Statement"]
    assert _sns_source_arns(queue) == {TOPIC, PEER_TOPIC}


def _secondary(**parameters: str) -> Evaluator:
    """The secondary region's stack, where a Ref or GetAtt of the processed-ids table would
    fail to resolve: the table there is the replica the CLI adds."""
    attributes = {k: v for k, v in ATTRIBUTES.items() if not k.startswith("ProcessedIdsTable")}
    peer = {
        "TopicArn": PEER_TOPIC,
        "PeerTopicArn": TOPIC,
        "PeerQueueArn": ATTRIBUTES["Queue.Arn"],
        "OwnershipTableName": "disa-ownership",
        "PrimaryRegion": "us-east-1",
        "DisaKeyArn": DISA_KEY,
        "ProcessedIdsReplica": "true",
        "ConsumerActive": "false",
    }
    return Evaluator(
        NAME, {**SAMPLE, **WITH_CONSUMER, **peer, **parameters}, {**attributes, "AWS::Region": "us-west-2"}
    )


def test_a_processed_ids_replica_is_not_created_yet_the_consumer_names_it_everywhere():
    secondary = _secondary()
    assert secondary.rule_failures() == []
    assert secondary.condition("HasConsumer") and not secondary.condition("CreatesProcessedIdsTable")
    name, arn = "disa-orders-processed-ids", "arn:aws:dynamodb:us-west-2:123456789012:table/disa-orders-processed-ids"
    env = secondary.resolve(_props("ConsumerFunction")["Environment"]["Variables"])
    assert env["PROCESSED_IDS_TABLE_NAME"] == name
    [policy] = secondary.resolve(_props("ConsumerRole")["Policies"])
    [remember] = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "RememberProcessedMessages"]
    assert remember["Resource"] == arn, "this region's replica"
    assert secondary.resolve(template(NAME)["Outputs"]["ProcessedIdsTableName"]["Value"]) == name
    # Where the stack creates the table, the same name, from the table itself.
    primary = _stack(**WITH_CONSUMER, **TWO_REGIONS)
    assert primary.condition("CreatesProcessedIdsTable")
    assert primary.resolve(_props("ProcessedIdsTable")["TableName"]) == name
    assert _props("ConsumerFunction")["Environment"]["Variables"]["PROCESSED_IDS_TABLE_NAME"]["Fn::If"][1] == {
        "Ref": "ProcessedIdsTable"
    }, "the function waits for the table it names"


def test_the_processed_ids_table_has_a_stream_only_in_two_regions_as_a_global_table_needs():
    assert "StreamSpecification" not in _stack(**WITH_CONSUMER).resolve(_props("ProcessedIdsTable"))
    props = _stack(**WITH_CONSUMER, **TWO_REGIONS).resolve(_props("ProcessedIdsTable"))
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}


@pytest.mark.parametrize(("active", "enabled"), [("true", True), ("false", False)])
def test_consumer_active_turns_the_mapping_on_or_off(active, enabled):
    props = _stack(ConsumerActive=active, **WITH_CONSUMER).resolve(_props("ConsumerMapping"))
    assert props["Enabled"] is enabled
    assert _secondary(ConsumerActive=active).resolve(_props("ConsumerMapping"))["Enabled"] is enabled


def test_consumer_reads_the_ownership_record_only_in_two_regions():
    one_region = _stack(**WITH_CONSUMER)
    [policy] = one_region.resolve(_props("ConsumerRole")["Policies"])
    assert "ReadOwnership" not in {s["Sid"] for s in policy["PolicyDocument"]["Statement"]}
    env = one_region.resolve(_props("ConsumerFunction")["Environment"]["Variables"])
    assert (env["OWNERSHIP_TABLE_NAME"], env["PRIMARY_REGION"]) == ("", "")
    two = _stack(**WITH_CONSUMER, **TWO_REGIONS)
    [policy] = two.resolve(_props("ConsumerRole")["Policies"])
    [read] = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "ReadOwnership"]
    assert read == {
        "Sid": "ReadOwnership",
        "Effect": "Allow",
        "Action": "dynamodb:GetItem",
        "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/disa-ownership",
    }
    env = two.resolve(_props("ConsumerFunction")["Environment"]["Variables"])
    assert (env["OWNERSHIP_TABLE_NAME"], env["PRIMARY_REGION"]) == ("disa-ownership", "us-east-1")


def test_consumer_settings_read_the_two_region_environment_the_template_sets(monkeypatch):
    env = _secondary().resolve(_props("ConsumerFunction")["Environment"]["Variables"])
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_REGION", "us-west-2")  # Lambda's, not the template's
    settings = Settings.from_environment()
    assert (settings.processed_ids_table, settings.ownership_table, settings.primary_region, settings.region) == (
        "disa-orders-processed-ids",
        "disa-ownership",
        "us-east-1",
        "us-west-2",
    )


@pytest.mark.parametrize(
    ("parameters", "refusal"),
    [
        ({"PeerTopicArn": "arn:aws:sns:us-west-2:123456789012:disa-messages.fifo", "TopicType": "fifo"}, "Two regions"),
        ({"PeerQueueArn": PEER_QUEUE}, "PeerQueueArn (the other region's queue)"),
        ({"ProcessedIdsReplica": "true"}, "ProcessedIdsReplica true"),
        ({"OwnershipTableName": "disa-ownership", "DisaKeyArn": DISA_KEY}, "OwnershipTableName needs PrimaryRegion"),
        ({"OwnershipTableName": "disa-ownership", "PrimaryRegion": "us-east-1"}, "OwnershipTableName needs DisaKeyArn"),
    ],
)
def test_rules_refuse_half_a_two_region_deployment(parameters, refusal):
    [failure] = _stack(**parameters).rule_failures()
    assert failure.startswith(refusal)
    assert _stack(**TWO_REGIONS).rule_failures() == []
    assert _stack(**TWO_REGIONS, ProcessedIdsReplica="true").rule_failures() == []


def test_the_consumer_may_decrypt_the_ownership_table_with_the_disa_key_only_through_dynamodb():
    key = WITH_PAYLOADS["DisaKeyArn"]
    two_regions = {"OwnershipTableName": "disa-ownership", "PrimaryRegion": "us-east-1", "DisaKeyArn": key}
    [policy] = _stack(**WITH_CONSUMER, **two_regions).resolve(_props("ConsumerRole")["Policies"])
    [decrypt] = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "DecryptOwnership"]
    assert decrypt["Action"] == "kms:Decrypt" and decrypt["Resource"] == key
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"}}
    [one_region] = _stack(**WITH_CONSUMER).resolve(_props("ConsumerRole")["Policies"])
    assert "DecryptOwnership" not in {s["Sid"] for s in one_region["PolicyDocument"]["Statement"]}
