"""`disa subscribe` and `disa unsubscribe`: a subscriber is its own stack
(cft/subscriber-stack.yaml), owned by the team that consumes it, wired to the Disa stack's
topic and alarm topic through that stack's outputs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from disa_lambda.models.ownership import NO_OWNER

from disa.common import paths
from disa.common.aws import Clients
from disa.common.console import progress
from disa.common.errors import UserError
from disa.deploy import packaging, stacks
from disa.operate.stack import StackInfo
from disa.operate.subscribers import SubscriberInfo, depth, stack_name


@dataclass(frozen=True)
class Subscription:
    """What a consumer team asks for; ``parameters`` holds any other template parameter."""

    name: str
    queue_type: str | None = None  # None: the topic's type
    handler: str | None = None
    code: Path | None = None
    filter_policy: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    # Other buckets the consumer reads bodies from (ExtraPayloadBuckets), such as the one a
    # producer's own SNS extended client writes to; None: as the stack has them.
    payload_buckets: tuple[str, ...] | None = None


def subscribe(
    clients: Clients, disa: StackInfo, request: Subscription, bucket: str, log: Callable[[str], None] = progress
) -> dict[str, str]:
    """Create or update the subscriber's stack; returns its outputs."""
    topic_type = "fifo" if disa.topic_is_fifo else "standard"
    queue_type = request.queue_type or topic_type
    if queue_type == "fifo" and topic_type == "standard":
        raise UserError(
            f"stack {disa.name} publishes to a standard topic and AWS refuses to subscribe a FIFO queue to it; "
            "drop --queue-type fifo, or deploy Disa with -p TopicType=fifo"
        )
    _check_consumer(request)
    _check_names(disa.name_prefix, request, queue_type)
    _check_retention(request.parameters)
    extra = _extra_payload_buckets(request, disa.payload_bucket)
    parameters = {
        "NamePrefix": disa.name_prefix,
        "SubscriberName": request.name,
        "TopicArn": disa.topic_arn,
        "TopicType": topic_type,
        "QueueType": queue_type,
        "AlarmTopicArn": disa.alarm_topic_arn,
        "ConsumerHandler": request.handler or "",
        # Without them the consumer cannot follow a pointer to a body Disa stored in S3.
        "PayloadBucketName": disa.payload_bucket,
        "DisaKeyArn": disa.key_arn,
        **({"FilterPolicy": _filter_policy(request.filter_policy)} if request.filter_policy is not None else {}),
        **request.parameters,
        **({"ExtraPayloadBuckets": extra} if extra is not None else {}),
    }
    packaged = packaging.package_subscriber(clients, bucket, request.code, log=log)
    stack = stack_name(disa.name, request.name)
    stacks.deploy(clients, stack, packaged, parameters, log)
    return stacks.outputs(clients, stack)


def subscribe_in_both_regions(
    clients: Clients,
    stack: str,
    request: Subscription,
    bucket: str | None,
    log: Callable[[str], None] = progress,
) -> dict[str, dict[str, str]]:
    """A subscriber of a two-region deployment: a queue (and consumer) in each region, each
    queue subscribed to both regions' topics, so a message published in either region waits
    in both and a region that takes over finds what the other had not processed. Each
    region's stack declares the subscriptions of its own topic (SNS keeps a subscription in
    the topic's region, and the local engine ignores one declared elsewhere). Only the owning
    region's consumer runs; both share a global processed-ids table, created by the primary's
    stack and replicated to the secondary. Returns each region's outputs."""
    from disa.deploy.regions import ensure_replica, replica_regions
    from disa.operate.regions import read_ownership

    infos = {region: StackInfo.of(clients.in_region(region), stack) for region in StackInfo.of(clients, stack).regions}
    primary, secondary = infos
    owner = read_ownership(clients.in_region(primary), infos[primary].ownership_table, primary).owner
    if owner == NO_OWNER:
        # Neither region's consumer would be deployed active, and a failover ending after
        # this deploy would not know to start it.
        raise UserError(
            "a failover is under way (nobody owns publishing): finish it (`disa failover --to REGION`), then subscribe"
        )
    name = stack_name(stack, request.name)

    def two_region_parameters(region: str, peer_queue_arn: str, active: bool) -> dict[str, str]:
        other = secondary if region == primary else primary
        return {
            "PeerTopicArn": infos[other].topic_arn,
            "PeerQueueArn": peer_queue_arn,
            "ProcessedIdsReplica": "true" if region == secondary else "false",
            "ConsumerActive": "true" if active else "false",
            "OwnershipTableName": infos[region].ownership_table,
            "PrimaryRegion": primary,
        }

    def deploy_in(region: str, peer_queue_arn: str, active: bool) -> dict[str, str]:
        regional = clients.in_region(region)
        log(f"subscriber {request.name} in {region}")
        parameters = {**request.parameters, **two_region_parameters(region, peer_queue_arn, active)}
        with_regions = Subscription(**{**request.__dict__, "parameters": parameters})
        return subscribe(regional, infos[region], with_regions, bucket or packaging.default_bucket(regional), log)

    def queue_arn(region: str) -> str:
        try:
            return stacks.outputs(clients.in_region(region), name)["QueueArn"]
        except UserError:
            return ""

    # The secondary first (with the primary's queue if it exists), so the primary's stack can
    # subscribe the secondary's queue, and with its consumer off until its processed-ids
    # replica exists; then the secondary again for whatever it could not have the first time.
    known_primary_queue = queue_arn(primary)
    processed_ids = f"{infos[primary].name_prefix}-{request.name}-processed-ids"
    replica_exists = not request.handler or secondary in (
        replica_regions(clients.in_region(primary), processed_ids) or set()
    )
    early_active = owner == secondary and replica_exists
    out = {secondary: deploy_in(secondary, known_primary_queue, early_active)}
    out[primary] = deploy_in(primary, out[secondary]["QueueArn"], owner == primary)
    if request.handler:
        ensure_replica(
            clients.in_region(primary),
            out[primary]["ProcessedIdsTableName"],
            clients.in_region(secondary),
            out[secondary]["KeyArn"],
            log,
        )
    if known_primary_queue != out[primary]["QueueArn"] or early_active != (owner == secondary):
        out[secondary] = deploy_in(secondary, out[primary]["QueueArn"], owner == secondary)
    return out


def unsubscribe(
    clients: Clients, disa_stack: str, name: str, discard: bool, log: Callable[[str], None] = progress
) -> None:
    """Delete the subscriber's stack, queues included; refuses while they hold messages
    unless ``discard``, so no message is lost by accident."""
    subscriber = SubscriberInfo.of(clients, disa_stack, name)
    _check_empty(clients, subscriber, discard)
    stacks.destroy(clients, subscriber.stack, log)


def unsubscribe_in_both_regions(
    clients: Clients, disa_stack: str, name: str, discard: bool, log: Callable[[str], None] = progress
) -> None:
    """Both regions' stacks of a subscriber, the secondary's first (its queue is the peer the
    primary's topic delivers to); the processed-ids replica goes before its table."""
    from disa.deploy.regions import remove_replica

    primary, secondary = (clients.in_region(region) for region in StackInfo.of(clients, disa_stack).regions)
    found = {regional: SubscriberInfo.of(regional, disa_stack, name) for regional in (primary, secondary)}
    for regional, subscriber in found.items():  # refuse before deleting anything
        _check_empty(regional, subscriber, discard)
    if found[primary].processed_ids_table:
        remove_replica(primary, found[primary].processed_ids_table, secondary, log)
    for regional in (secondary, primary):
        stacks.destroy(regional, found[regional].stack, log)


def _check_empty(clients: Clients, subscriber: SubscriberInfo, discard: bool) -> None:
    waiting = {
        queue: depth(clients, ref)
        for queue, ref in (("queue", subscriber.queue), ("dead-letter queue", subscriber.dead_letter))
    }
    held = {queue: sum(counts.values()) for queue, counts in waiting.items() if sum(counts.values())}
    if held and not discard:
        described = ", ".join(f"its {queue} in {clients.region} holds {n}" for queue, n in held.items())
        raise UserError(
            f"subscriber {subscriber.name} still has messages ({described}); drain or redrive them, "
            "or pass --discard to delete them with the queues"
        )


def _check_consumer(request: Subscription) -> None:
    if request.handler is None and request.code is None:
        return
    if request.handler is None or request.code is None:
        raise UserError("--handler and --code go together: --handler MODULE.FUNCTION --code FOLDER")
    module, _, function = request.handler.rpartition(".")
    if not module or not function:
        raise UserError(f"--handler {request.handler!r} must look like module.function, e.g. orders.handler")
    relative = Path(*module.split("."))
    if not any(
        (request.code / candidate).is_file() for candidate in (relative.with_suffix(".py"), relative / "__init__.py")
    ):
        raise UserError(f"--handler {request.handler}: no {relative.with_suffix('.py')} in {request.code}")


# AWS's name limits: a Lambda function name is at most 64 characters (the consumer is
# PREFIX-NAME-consumer), a queue name at most 80 (the dead-letter queue is PREFIX-NAME-dlq.fifo).
_LONGEST_WITH_CONSUMER = 64 - len("--consumer")
_LONGEST_QUEUE = {"standard": 80 - len("--dlq"), "fifo": 80 - len("--dlq.fifo")}


def _check_names(name_prefix: str, request: Subscription, queue_type: str) -> None:
    length = len(name_prefix) + len(request.name)
    longest = min(_LONGEST_QUEUE[queue_type], _LONGEST_WITH_CONSUMER if request.handler else 10**6)
    if length > longest:
        raise UserError(
            f"subscriber name {request.name!r} is too long for stack prefix {name_prefix!r}: together they may have "
            f"{longest} characters (AWS's limits on queue and function names); choose a shorter name"
        )


def _check_retention(parameters: dict[str, str]) -> None:
    """On a standard queue a message's age in the dead-letter queue counts from when it was
    first queued, so a dead-letter queue that keeps messages no longer than its source
    would drop them as they arrive (CloudFormation rules cannot compare numbers)."""
    defaults = packaging.load_template(paths.SUBSCRIBER_TEMPLATE)["Parameters"]
    source, dead = (
        int(parameters.get(name, defaults[name]["Default"]))
        for name in ("MessageRetentionSeconds", "DeadLetterRetentionSeconds")
    )
    if dead <= source:
        raise UserError(
            f"DeadLetterRetentionSeconds ({dead}) must exceed MessageRetentionSeconds ({source}): a dead letter's "
            "age counts from when it was first queued"
        )


def _extra_payload_buckets(request: Subscription, disa_bucket: str) -> str | None:
    """ExtraPayloadBuckets padded to every position the template grants (it selects each by
    its position), from --payload-bucket or -p ExtraPayloadBuckets=A,B; None when neither is
    given. The names are checked against the template's own pattern, before any AWS call."""
    if request.payload_buckets is not None:
        names = list(request.payload_buckets)
    elif "ExtraPayloadBuckets" in request.parameters:
        names = [n.strip() for n in request.parameters["ExtraPayloadBuckets"].split(",") if n.strip()]
    else:
        return None
    parameter = packaging.load_template(paths.SUBSCRIBER_TEMPLATE)["Parameters"]["ExtraPayloadBuckets"]
    positions, member = len(parameter["Default"].split(",")), re.compile(parameter["AllowedPattern"])
    names = list(dict.fromkeys(names))
    for name in names:
        # S3 also refuses two dots in a row and names shaped like an IP address.
        if not name or not member.fullmatch(name) or ".." in name or re.fullmatch(r"[0-9.]+", name):
            raise UserError(
                f"--payload-bucket {name!r} is not an S3 bucket name: 3-63 lowercase letters, digits, dots or "
                "hyphens, starting and ending with a letter or digit"
            )
        if name == disa_bucket:
            raise UserError(
                f"--payload-bucket {name} is the Disa stack's own payload bucket, whose payloads/ the consumer "
                "reads already; name only buckets other producers' SNS extended clients write to"
            )
    if len(names) > positions:
        raise UserError(
            f"--payload-bucket takes at most {positions} buckets (the subscriber stack grants each by its "
            f"position); {len(names)} were given"
        )
    return ",".join(names + [""] * (positions - len(names)))


def _filter_policy(text: str) -> str:
    try:
        policy = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"--filter-policy is not JSON: {error}") from error
    if not isinstance(policy, dict) or not policy:
        raise UserError('--filter-policy must be a JSON object, e.g. \'{"kind": ["order"]}\'')
    return json.dumps(policy, separators=(",", ":"))
