"""Entry point of the `disa` command. Every failure the user can act on is one line on
stderr and a non-zero exit; tracebacks are for bugs only."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError
from disa_lambda.models.status import Status
from rich.console import Console

from disa.common import console
from disa.common.aws import Clients, Target
from disa.common.errors import UserError
from disa.deploy import packaging, stacks, subscribers
from disa.deploy import regions as region_deploy
from disa.drills import bench, chaos, demo, recovery, region_outage
from disa.drills.faults import TopicPolicyOutage, TopicRemovalOutage
from disa.local_cloud.engine import LocalCloud
from disa.operate import abandoned, cost, groups, items, records, redrive, screens
from disa.operate import regions as ownership
from disa.operate import subscribers as subscriber_stacks
from disa.operate.retry_job import run_retry
from disa.operate.stack import StackInfo
from disa.operate.status import status_report, watch_cost_note, watch_frame

EXIT_USER_ERROR = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of argparse's usage block
        self.exit(EXIT_USER_ERROR, f"disa: {message}; see `{self.prog} --help`\n")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--region", help="AWS region (default: AWS_REGION or the profile's)")
    common.add_argument("--profile", help="AWS profile name")
    common.add_argument("--endpoint-url", help="send every call to this endpoint (also AWS_ENDPOINT_URL)")
    common.add_argument("--local", action="store_true", help="target the local cloud started by `disa local up`")
    stack = argparse.ArgumentParser(add_help=False)
    stack.add_argument("--stack", default="disa", help="root stack name (default: disa)")

    parser = _Parser(prog="disa", description="Package, deploy and operate Disa: DynamoDB items become SNS messages.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    package = commands.add_parser(
        "package",
        parents=[common],
        help="build and upload artifacts; print the template URL and its artifact parameters",
    )
    package.add_argument(
        "--bucket", help="artifact bucket (default: disa-artifacts-ACCOUNT-REGION, created if missing)"
    )

    deploy = commands.add_parser("deploy", parents=[common, stack], help="create or update the stack via a change set")
    deploy.add_argument("--bucket", help="artifact bucket (default: disa-artifacts-ACCOUNT-REGION, created if missing)")
    deploy.add_argument(
        "--parameter",
        "-p",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a root stack parameter; repeat for more",
    )
    deploy.add_argument(
        "--regions",
        metavar="PRIMARY,SECONDARY",
        help="deploy to two regions: global tables, the pipeline in both, the primary publishing (README, Two regions)",
    )
    failover = commands.add_parser(
        "failover", parents=[common, stack], help="two regions: move publishing and consumers to REGION"
    )
    failover.add_argument("--to", required=True, metavar="REGION", help="the region that takes over")
    failover.add_argument(
        "--force", action="store_true", help="go on when the other region does not answer (a real outage)"
    )

    send = commands.add_parser("send", parents=[common, stack], help="insert an item; prints its key")
    send.add_argument("message", nargs="?", help="the message text")
    send.add_argument("--subject")
    send.add_argument("--attribute", "-a", action="append", default=[], metavar="NAME=VALUE")
    send.add_argument("--group-id", help="message group id (FIFO topics)")
    send.add_argument("--dedup-id", help="deduplication id (FIFO topics)")
    send.add_argument(
        "--sequence", type=int, metavar="N", help="messageSequence: the item's place in its group, 1, 2, 3, ... (FIFO)"
    )
    send.add_argument("--key", help="the item's key (default: a new UUID)")
    send.add_argument("--file", help="a JSON item (plain or DynamoDB JSON); - reads stdin")

    status = commands.add_parser("status", parents=[common, stack], help="counts per status, alarms, recent failures")
    status.add_argument("--json", action="store_true", help="print JSON instead of tables")
    status.add_argument(
        "--minutes", type=int, default=60, help="window of the subscribers' latency percentiles (default 60)"
    )
    status.add_argument(
        "--watch",
        action="store_true",
        help="a live view refreshing in place until Ctrl-C, from CloudWatch, not a table scan: items per status "
        "at the retry job's last run, rates per minute, alarms, latency percentiles over --minutes, dead letters; "
        f"{watch_cost_note()}. When the output is not a terminal, prints one view and exits",
    )
    status.add_argument(
        "--every",
        type=float,
        default=10,
        metavar="SECONDS",
        help=f"seconds between refreshes of --watch (default 10, at least {screens.MIN_EVERY_SECONDS:g})",
    )
    items_parser = commands.add_parser(
        "items", parents=[common, stack], help="the items in one status, newest first, with their reasons and errors"
    )
    items_parser.add_argument(
        "--status",
        required=True,
        type=str.upper,
        choices=[str(s) for s in Status],
        metavar="STATUS",
        help=f"one of {', '.join(Status)}. {', '.join(records.IN_DUE_INDEX)} are read from the sparse due index "
        "(what is in flight, a small read); the others have no index, so they are found by a paginated Scan "
        "of the whole table with a filter, which reads, and bills, every item",
    )
    items_parser.add_argument(
        "--limit", type=int, default=records.DEFAULT_LIMIT, metavar="N", help="at most N items (default 50)"
    )
    items_parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    show_parser = commands.add_parser(
        "show", parents=[common, stack], help="one item: its attributes explained and its history"
    )
    show_parser.add_argument("key", metavar="KEY", help="the item's key (base64 for a binary key)")
    show_parser.add_argument("--json", action="store_true", help="print JSON instead of tables")

    commands.add_parser("retry", parents=[common, stack], help="run the retry job now")
    group = commands.add_parser(
        "group", parents=[common, stack], help="FIFO: a message group's turn (show), or release one held by ABANDONED"
    )
    group.add_argument("action", choices=["show", "release"])
    group.add_argument("group", metavar="GROUP", help="the messageGroupId")
    abandoned_command = commands.add_parser(
        "abandoned",
        parents=[common, stack],
        help="ABANDONED items waiting for a person: list, requeue KEY (publish again), dismiss KEY",
    )
    abandoned_command.add_argument(
        "action",
        choices=["list", "requeue", "dismiss", "backfill"],
        help="backfill: once after upgrading a stack deployed before the attention index, so that its "
        "ABANDONED items are counted and listed (a Scan of the whole table)",
    )
    abandoned_command.add_argument("key", metavar="KEY", nargs="?", help="the item's key (requeue, dismiss)")
    abandoned_command.add_argument("--all", action="store_true", help="requeue or dismiss every waiting item")
    abandoned_command.add_argument("--limit", type=int, default=50, help="items to list (default 50)")
    abandoned_command.add_argument("--json", action="store_true", help="print JSON instead of a table (list)")
    fault = commands.add_parser("fault", parents=[common, stack], help="inject a fault: sns-outage on|off")
    fault.add_argument("fault", choices=["sns-outage"])
    fault.add_argument("switch", choices=["on", "off"])
    local = commands.add_parser("local", help="the embedded local cloud: up, down, status, logs")
    local.add_argument("action", choices=["up", "down", "status", "logs"])
    local.add_argument("--lines", type=int, default=40, help="log lines to show (logs)")
    commands.add_parser("demo", help="run Disa end to end on the local cloud and check every outcome")
    drill = commands.add_parser("drill", help="region-outage: two regions on the local cloud, a failover and back")
    drill.add_argument("drill", choices=["region-outage"])
    drill.add_argument(
        "--orders", type=int, default=region_outage.DEFAULT_ORDERS, help="orders to insert (default %(default)s)"
    )
    drill.add_argument(
        "--rate", type=float, default=region_outage.DEFAULT_RATE, help="orders per second (default %(default)s)"
    )
    chaos_command = commands.add_parser("chaos", help="insert items under injected faults, then check every guarantee")
    chaos_command.add_argument("--items", type=int, default=10_000, help="items to insert (default 10000)")
    chaos_command.add_argument("--seed", type=int, default=1, help="seed of the fault schedule (default 1)")
    chaos_command.add_argument("--faults", default=",".join(chaos.FAULTS), help="comma-separated faults to inject")
    chaos_command.add_argument(
        "--large-share",
        type=float,
        default=chaos.LARGE_SHARE,
        metavar="SHARE",
        help=f"share of items sent large, half as ~300 KB bodies in the item, half as 300 KB-1 MB S3 objects "
        f"named by messageObject; each must arrive byte-exact (default {chaos.LARGE_SHARE:g}; 0 for none)",
    )
    chaos_command.add_argument(
        "--fifo",
        action="store_true",
        help=f"on a FIFO topic (stack {chaos.FIFO_STACK}): each group must arrive in order, each message once",
    )
    chaos_command.add_argument(
        "--groups",
        type=int,
        metavar="G",
        help=f"message groups with --fifo (default {chaos.GROUPS}, at most one per item)",
    )
    bench_command = commands.add_parser(
        "bench", help="throughput and latency on the local cloud, beside the engine's ceiling and the seed design"
    )
    bench_command.add_argument("--items", type=int, default=1000, help="items to send per stack (default 1000)")
    bench_command.add_argument(
        "--mode",
        choices=["burst", "steady", "both"],
        help="burst: insert as fast as possible; steady: at --rate (default: steady if --rate is given, else burst)",
    )
    bench_command.add_argument(
        "--rate", type=float, help=f"items/s in steady mode (default {bench.P95_TARGET_RATE:g}, the latency target's)"
    )
    bench_command.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for each stack's items to finish"
    )
    bench_command.add_argument(
        "--recovery", type=int, metavar="N", help="instead: one retry run redriving a backlog of N FAILED items"
    )
    bench_command.add_argument(
        "--fifo",
        action="store_true",
        help=f"burst: Disa on a standard topic beside Disa on a FIFO topic (stack {bench.FIFO_STACK})",
    )
    bench_command.add_argument(
        "--groups", type=int, metavar="G", help=f"message groups with --fifo (default {bench.GROUPS})"
    )
    # No `stack` parent: without --stack the template's defaults are priced, with no AWS call.
    cost_command = commands.add_parser(
        "cost", parents=[common], help="itemized dollars per million messages, Disa beside the seed design"
    )
    cost.add_arguments(cost_command)
    subscribe = commands.add_parser(
        "subscribe",
        parents=[common, stack],
        help="add (or update) a subscriber: a queue, its dead-letter queue, a consumer",
    )
    subscribe.add_argument("name", help="subscriber name: 1-40 lowercase letters, digits or -")
    subscribe.add_argument(
        "--queue-type", choices=["standard", "fifo"], help="default: the topic's (a FIFO queue needs a FIFO topic)"
    )
    subscribe.add_argument("--handler", metavar="MODULE.FUNCTION", help="consumer Lambda handler, e.g. orders.handler")
    subscribe.add_argument(
        "--code", type=Path, metavar="FOLDER", help="folder with the handler's code (with --handler)"
    )
    subscribe.add_argument(
        "--filter-policy", metavar="JSON", help="SNS filter policy (on attributes unless --filter-on body)"
    )
    subscribe.add_argument("--filter-on", choices=["attributes", "body"], help="what the filter policy matches")
    subscribe.add_argument("--max-receive-count", type=int, metavar="N", help="receives before the dead-letter queue")
    subscribe.add_argument(
        "--consumer-timeout", type=int, metavar="SECONDS", help="consumer timeout; the queue's visibility is 6x"
    )
    subscribe.add_argument("--envelope", action="store_true", help="deliver the SNS JSON envelope, not the raw message")
    subscribe.add_argument(
        "--payload-bucket",
        action="append",
        dest="payload_buckets",
        metavar="NAME",
        help="another bucket of this account the consumer reads bodies from, e.g. an SNS extended client's "
        "(repeatable, up to 3)",
    )
    subscribe.add_argument("--bucket", help="artifact bucket (default: disa-artifacts-ACCOUNT-REGION)")
    subscribe.add_argument(
        "--parameter", "-p", action="append", default=[], metavar="NAME=VALUE", help="any subscriber stack parameter"
    )
    unsubscribe = commands.add_parser("unsubscribe", parents=[common, stack], help="delete a subscriber's stack")
    unsubscribe.add_argument("name")
    unsubscribe.add_argument("--discard", action="store_true", help="delete even if its queues hold messages")
    commands.add_parser(
        "subscribers", parents=[common, stack], help="list subscribers with queue and dead-letter depths"
    )
    redrive_command = commands.add_parser(
        "redrive", parents=[common, stack], help="move a subscriber's dead-letter messages back to its queue"
    )
    redrive_command.add_argument("name")
    redrive_command.add_argument("--rate", type=float, metavar="N", help="messages per second (AWS: at most 500)")
    redrive_command.add_argument("--cancel", action="store_true", help="cancel the running move task (AWS)")
    destroy = commands.add_parser("destroy", parents=[common, stack], help="delete the stack (the table is kept)")
    destroy.add_argument("--delete-table", action="store_true", help="also delete the retained table and its data")
    return parser


def _parameters(pairs: Sequence[str]) -> dict[str, str]:
    parsed = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9]+", name):
            raise UserError(f"--parameter {pair!r} must look like Name=Value")
        parsed[name] = value
    return parsed


def _name_prefix(stack: str) -> str:
    prefix = re.sub(r"[^a-z0-9-]", "-", stack.lower())[:31]
    if not re.fullmatch(r"[a-z][a-z0-9-]{1,30}", prefix):
        raise UserError(f"stack name {stack!r} must start with a letter and be 2-31 letters, digits or hyphens")
    return prefix


def _print_table(rows: list[dict[str, Any]]) -> None:
    if rows:
        print(console.table(rows, headers="keys"))


def _package(clients: Clients, args: argparse.Namespace) -> int:
    packaged = packaging.package(clients, args.bucket or packaging.default_bucket(clients))
    print(packaged.template_url)
    for name, value in packaged.parameters.items():
        print(f"  {name}={value}")
    return 0


def _deploy(clients: Clients, args: argparse.Namespace) -> int:
    parameters = {"NamePrefix": _name_prefix(args.stack), **_parameters(args.parameter)}
    if args.regions:
        pair = region_deploy.RegionPair.parse(args.regions)
        for region, out in region_deploy.deploy(clients, args.stack, pair, parameters, args.bucket).items():
            print(f"\n{region}")
            _print_table([{"Output": k, "Value": v} for k, v in sorted(out.items())])
        return 0
    packaged = packaging.package(clients, args.bucket or packaging.default_bucket(clients))
    stacks.deploy(clients, args.stack, packaged, parameters)
    _print_table([{"Output": k, "Value": v} for k, v in sorted(stacks.outputs(clients, args.stack).items())])
    return 0


def _destroy(clients: Clients, args: argparse.Namespace) -> int:
    if stacks.stack_status(clients, args.stack) is None:
        if not args.delete_table:
            raise UserError(f"stack {args.stack} does not exist; nothing to destroy")
        # Run again after the stack went: the tables it retained, by the names it gives them.
        prefix = _name_prefix(args.stack)
        _delete_tables(clients, [f"{prefix}-items", f"{prefix}-groups", f"{prefix}-ownership"])
        return 0
    info = StackInfo.of(clients, args.stack)
    if info.two_regions:
        return _destroy_both(clients, info, args)
    stacks.destroy(clients, args.stack)
    print(f"stack {args.stack} deleted")
    if args.delete_table:
        # The groups table is kept with the items table: without it FIFO groups would start over.
        _delete_tables(clients, [info.table, info.groups_table])
    return 0


def _delete_tables(clients: Clients, tables: list[str]) -> None:
    for table in tables:
        gone = stacks.delete_retained_table(clients, table)
        print(f"deleted table {table}" if gone else f"table {table}: already gone")


def _destroy_both(clients: Clients, info: StackInfo, args: argparse.Namespace) -> int:
    """The secondary's stack first, then the primary's; with --delete-table the replicas go
    before the tables (a table with replicas cannot be deleted)."""
    primary, secondary = (clients.in_region(region) for region in info.regions)
    for regional in (secondary, primary):
        if stacks.stack_status(regional, args.stack) is not None:
            stacks.destroy(regional, args.stack)
            print(f"stack {args.stack} deleted in {regional.region}")
    if args.delete_table:
        tables = [info.table, info.ownership_table, info.groups_table]
        for table in tables:
            region_deploy.remove_replica(primary, table, secondary)
        _delete_tables(primary, tables)
    return 0


def _failover(clients: Clients, args: argparse.Namespace) -> int:
    report = ownership.failover(clients, args.stack, args.to, force=args.force)
    print("\n".join(report.lines()))
    return 0


def _send(clients: Clients, args: argparse.Namespace) -> int:
    info = StackInfo.of(clients, args.stack)
    if args.file:
        text = sys.stdin.read() if args.file == "-" else _read(args.file)
        try:
            item = items.item_from_document(json.loads(text))
        except json.JSONDecodeError as error:
            raise UserError(f"{args.file} is not JSON: {error}") from error
    else:
        item = items.build_item(args.message, args.subject, args.attribute, args.group_id, args.dedup_id, args.sequence)
    print(items.show_key(items.send(clients, info, item, args.key)))
    return 0


def _status(clients: Clients, args: argparse.Namespace) -> int:
    if args.minutes < 1:
        raise UserError("--minutes must be at least 1")
    if args.watch:
        return _status_watch(clients, args)
    info = StackInfo.of(clients, args.stack)
    report = status_report(clients, info)
    report["subscribers"] = subscriber_report(clients, args.stack, args.minutes)
    report["ownership"] = ownership.describe(clients, info)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    _print_table([{"Status": s, "Items": n} for s, n in report["counts"].items()])
    print(f"\noldest PENDING since: {report['oldestPending'] or '-'}\n")
    if report["ownership"]:
        # Each region's replica of the record: they differ only while a failover replicates.
        _print_table(
            [
                {
                    "Replica in": region,
                    "Says the owner is": view.get("owner", view.get("error")),
                    "Epoch": view.get("epoch", "-"),
                    "Since": view.get("since") or "-",
                }
                for region, view in report["ownership"].items()
            ]
        )
        print()
    _print_table([{"Alarm": a, "State": s} for a, s in report["alarms"].items()])
    if report["recentProblems"]:
        print()
        _print_table(report["recentProblems"])
    for subscriber in report["subscribers"]:
        print(
            f"\nsubscriber {subscriber['name']}: {subscriber['queue']['waiting']} waiting, "
            f"{subscriber['queue']['in flight']} in flight, {subscriber['deadLetters']} dead letters"
        )
        if subscriber["latency"]:
            print(f"latency (ms) over the last {args.minutes} min:")
            _print_table(subscriber["latency"])
        elif subscriber["consumer"]:
            print(f"no message processed in the last {args.minutes} min")
    return 0


def subscriber_report(clients: Clients, disa_stack: str, minutes: int) -> list[dict[str, Any]]:
    return [
        {
            "name": subscriber.name,
            "consumer": subscriber.consumer_function,
            "queue": subscriber_stacks.depth(clients, subscriber.queue),
            "deadLetters": subscriber_stacks.depth(clients, subscriber.dead_letter)["waiting"],
            "latency": subscriber_stacks.latency(clients, subscriber, minutes),
        }
        for subscriber in subscriber_stacks.subscribers(clients, disa_stack)
    ]


def _status_watch(clients: Clients, args: argparse.Namespace) -> int:
    if args.json:
        raise UserError("--watch draws a live view, not JSON: drop --json, or drop --watch for one JSON report")
    if args.every < screens.MIN_EVERY_SECONDS:
        raise UserError(f"--every must be at least {screens.MIN_EVERY_SECONDS:g} seconds")
    info = StackInfo.of(clients, args.stack)
    # Looked up once: a subscriber added while the view runs shows after a restart.
    found = subscriber_stacks.subscribers(clients, args.stack)
    return screens.watch(lambda: watch_frame(clients, info, found, args.minutes), args.every)


def _items(clients: Clients, args: argparse.Namespace) -> int:
    listing = records.list_items(clients, StackInfo.of(clients, args.stack), Status(args.status), args.limit)
    if args.json:
        print(json.dumps([line.as_json() for line in listing.items], indent=2))
    else:
        Console().print(screens.items_table(listing))
    return 0


def _show(clients: Clients, args: argparse.Namespace) -> int:
    record = records.show(clients, StackInfo.of(clients, args.stack), args.key)
    if args.json:
        print(json.dumps(screens.item_json(record), indent=2, ensure_ascii=False))
    else:
        Console().print(screens.item_view(record))
    return 0


def _subscribe(clients: Clients, args: argparse.Namespace) -> int:
    parameters = _parameters(args.parameter)
    named = {
        "MaxReceiveCount": args.max_receive_count,
        "ConsumerTimeoutSeconds": args.consumer_timeout,
        "FilterPolicyScope": {"attributes": "MessageAttributes", "body": "MessageBody", None: None}[args.filter_on],
        "RawMessageDelivery": "false" if args.envelope else None,
    }
    parameters.update({name: str(value) for name, value in named.items() if value is not None})
    request = subscribers.Subscription(
        name=subscriber_stacks.check_name(args.name),
        queue_type=args.queue_type,
        handler=args.handler,
        code=args.code,
        filter_policy=args.filter_policy,
        parameters=parameters,
        payload_buckets=tuple(args.payload_buckets) if args.payload_buckets else None,
    )
    info = StackInfo.of(clients, args.stack)
    if info.two_regions:
        for region, out in subscribers.subscribe_in_both_regions(clients, args.stack, request, args.bucket).items():
            print(f"\n{region}")
            _print_table([{"Output": k, "Value": v} for k, v in sorted(out.items())])
        return 0
    out = subscribers.subscribe(clients, info, request, args.bucket or packaging.default_bucket(clients))
    _print_table([{"Output": k, "Value": v} for k, v in sorted(out.items())])
    return 0


def _unsubscribe(clients: Clients, args: argparse.Namespace) -> int:
    name = subscriber_stacks.check_name(args.name)
    if StackInfo.of(clients, args.stack).two_regions:
        subscribers.unsubscribe_in_both_regions(clients, args.stack, name, args.discard)
    else:
        subscribers.unsubscribe(clients, args.stack, name, args.discard)
    print(f"subscriber {args.name} deleted")
    return 0


def _subscribers(clients: Clients, args: argparse.Namespace) -> int:
    rows = []
    for subscriber in subscriber_stacks.subscribers(clients, args.stack):
        queue = subscriber_stacks.depth(clients, subscriber.queue)
        rows.append(
            {
                "Name": subscriber.name,
                "Queue": subscriber.queue.url.rsplit("/", 1)[-1],
                "Waiting": queue["waiting"],
                "In flight": queue["in flight"],
                "Dead letters": subscriber_stacks.depth(clients, subscriber.dead_letter)["waiting"],
                "Consumer": subscriber.consumer_function or "-",
                "Filter": subscriber.filter_policy or "-",
            }
        )
    if not rows:
        print(f"stack {args.stack} has no subscribers; add one with `disa subscribe NAME --stack {args.stack}`")
    _print_table(rows)
    return 0


def _redrive(clients: Clients, args: argparse.Namespace) -> int:
    if args.rate is not None and args.rate <= 0:
        raise UserError("--rate must be above 0 messages/s")
    subscriber = subscriber_stacks.SubscriberInfo.of(clients, args.stack, subscriber_stacks.check_name(args.name))
    if args.cancel:
        print(redrive.cancel(clients, subscriber.dead_letter))
        return 0
    report = redrive.redrive(clients, subscriber.dead_letter, subscriber.queue, args.rate)
    print(f"redrive of {args.name} ({report.mode}): {report.moved} moved, {report.failed} failed, {report.status}")
    return 0 if report.complete and report.failed == 0 else 1


def _retry(clients: Clients, args: argparse.Namespace) -> int:
    print(json.dumps(run_retry(clients, StackInfo.of(clients, args.stack)), indent=2))
    return 0


def _group(clients: Clients, args: argparse.Namespace) -> int:
    info = StackInfo.of(clients, args.stack)
    if args.action == "release":
        print(groups.release(clients, info, args.group))
    else:
        _print_table([groups.show(clients, info, args.group)])
    return 0


def _abandoned(clients: Clients, args: argparse.Namespace) -> int:
    info = StackInfo.of(clients, args.stack)
    if args.action == "list":
        if args.key or args.all:
            raise UserError("list takes no KEY and no --all; use --limit N")
        if args.limit < 1:
            raise UserError("--limit must be at least 1")
        found = abandoned.rows(clients, info, args.limit)
        if args.json:
            print(json.dumps(found, indent=2))
        elif found:
            _print_table(found)
        else:
            print("no ABANDONED item waits for a person")
        return 0
    if args.action == "backfill":
        if args.key or args.all:
            raise UserError("backfill takes no KEY and no --all: it finds every ABANDONED item itself")
        print(f"{abandoned.backfill(clients, info)} ABANDONED item(s) now wait in the attention index")
        return 0
    if bool(args.key) == args.all:
        raise UserError(f"give the item's KEY or --all: `disa abandoned {args.action} KEY`")
    act = abandoned.requeue if args.action == "requeue" else abandoned.dismiss
    keys = (
        [records.parse_key(info, args.key)]
        if args.key
        else [{info.key_name: entry[info.key_name]} for entry in list(abandoned.waiting(clients, info))]
    )
    refused = _each_or_refusals(lambda key: act(clients, info, key), keys, args.all)
    done = "requeued: the next retry run publishes" if args.action == "requeue" else "dismissed"
    print(f"{len(keys) - len(refused)} item(s) {done}" if args.all else f"item {args.key} {done}")
    for refusal in refused:
        print(f"disa: {refusal}", file=sys.stderr)
    return 1 if refused else 0


def _each_or_refusals(act: Callable[[Any], None], keys: list[Any], go_on: bool) -> list[UserError]:
    """``act`` on each key; with ``go_on`` (--all) a refused item does not stop the others,
    and the refusals are returned to be said after the count."""
    refused = []
    for key in keys:
        try:
            act(key)
        except UserError as refusal:
            if not go_on:
                raise
            refused.append(refusal)
    return refused


def _fault(clients: Clients, args: argparse.Namespace) -> int:
    topic_arn = StackInfo.of(clients, args.stack).topic_arn
    # An endpoint is a local engine, which does not enforce topic policies (drills/faults.py).
    if clients.target.endpoint_url:
        outage = TopicRemovalOutage(clients("sns"), topic_arn, LocalCloud().fault_snapshots)
    else:
        outage = TopicPolicyOutage(clients("sns"), topic_arn)
    print(outage.on() if args.switch == "on" else outage.off())
    return 0


def _local(args: argparse.Namespace) -> int:
    cloud = LocalCloud()
    if args.action == "up":
        started = cloud.up()
        print(f"local cloud {'started' if started else 'already running'} at {cloud.endpoint}")
    elif args.action == "down":
        print("local cloud stopped (state saved)" if cloud.down() else "local cloud was not running")
    elif args.action == "status":
        print(json.dumps(cloud.status(), indent=2))
    elif not cloud.log_file.exists():
        raise UserError("no engine log yet; start the local cloud with `disa local up`")
    else:
        print("\n".join(cloud.log_file.read_text(errors="replace").splitlines()[-args.lines :]))
    return 0


def _chaos(args: argparse.Namespace) -> int:
    enabled = tuple(f for f in args.faults.split(",") if f)
    unknown = sorted(set(enabled) - set(chaos.FAULTS))
    if unknown or args.items < chaos.CHUNKS:
        raise UserError(f"--faults takes {', '.join(chaos.FAULTS)}; --items at least {chaos.CHUNKS}")
    if not 0 <= args.large_share <= 1:
        raise UserError("--large-share is a share of the items, from 0 to 1")
    groups = _groups(args, chaos.GROUPS)
    cloud = LocalCloud()
    cloud.up()
    result = chaos.run(
        cloud.clients(), cloud, args.items, args.seed, enabled, large_share=args.large_share, groups=groups
    )
    print(chaos.report(result))
    return 0 if result.passed else 1


def _drill(args: argparse.Namespace) -> int:
    if args.orders < 8:
        raise UserError("--orders must be at least 8: the drill cuts, fails over and back at quarters of them")
    if args.rate <= 0:
        raise UserError("--rate must be above 0 orders/s")
    cloud = LocalCloud()
    cloud.up()
    result = region_outage.run(cloud.clients(), args.orders, args.rate)
    print(region_outage.report(result))
    return 0 if result.passed else 1


def _groups(args: argparse.Namespace, default: int) -> int | None:
    """The message groups of a --fifo drill, or None without --fifo."""
    if args.groups is not None and not args.fifo:
        raise UserError("--groups applies to a FIFO run; add --fifo")
    if args.groups is not None and args.groups < 1:
        raise UserError("--groups must be at least 1")
    return (args.groups or default) if args.fifo else None


def _bench(args: argparse.Namespace) -> int:
    if args.items < 1:
        raise UserError("--items must be at least 1")
    if args.recovery is not None and args.recovery < 1:
        raise UserError("--recovery must be at least 1")
    if args.rate is not None and args.rate <= 0:
        raise UserError("--rate must be above 0 items/s")
    mode = args.mode or ("steady" if args.rate is not None else "burst")
    if mode == "burst" and args.rate is not None:
        raise UserError("--rate applies to steady mode; use --mode steady or --mode both")
    groups = _groups(args, bench.GROUPS)
    if groups is not None and (mode != "burst" or args.recovery is not None):
        raise UserError("--fifo measures burst mode only; drop --mode, --rate and --recovery")
    rate = args.rate if args.rate is not None else bench.P95_TARGET_RATE
    modes = {"burst": [bench.Mode.burst()], "steady": [bench.Mode.steady(rate)]}
    modes["both"] = modes["burst"] + modes["steady"]
    cloud = LocalCloud()
    cloud.up()
    if args.recovery is not None:
        print(recovery.report(recovery.run(cloud.clients(), cloud, args.recovery, args.timeout)))
        return 0
    measured = bench.STACKS if groups is None else (bench.DISA, bench.fifo_stack(groups))
    results = bench.run(cloud.clients(), modes[mode], args.items, args.timeout, measured)
    print(bench.report(results))
    return 0 if all(result.finished for result in results) else 1


COMMANDS = {
    "package": _package,
    "deploy": _deploy,
    "destroy": _destroy,
    "failover": _failover,
    "send": _send,
    "status": _status,
    "items": _items,
    "show": _show,
    "retry": _retry,
    "group": _group,
    "abandoned": _abandoned,
    "fault": _fault,
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "subscribers": _subscribers,
    "redrive": _redrive,
}


def _clients(args: argparse.Namespace) -> Clients:
    if not args.local:
        return Clients(Target(region=args.region, profile=args.profile, endpoint_url=args.endpoint_url))
    cloud = LocalCloud()
    cloud.require_running()
    return cloud.clients()


def run(args: argparse.Namespace) -> int:
    if args.command == "local":
        return _local(args)
    if args.command == "demo":
        return demo.main()
    if args.command == "cost":
        return cost.run(args, lambda: _clients(args))
    if args.command == "bench":
        return _bench(args)
    if args.command == "chaos":
        return _chaos(args)
    if args.command == "drill":
        return _drill(args)
    return COMMANDS[args.command](_clients(args), args)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise UserError(f"cannot read {path}: {error.strerror}") from error


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except UserError as error:
        print(f"disa: {error}", file=sys.stderr)
    except NoCredentialsError:
        print(
            "disa: no AWS credentials found; run `aws configure`, pass --profile, or set AWS_ACCESS_KEY_ID",
            file=sys.stderr,
        )
    except EndpointConnectionError as error:
        endpoint = error.kwargs.get("endpoint_url")
        print(f"disa: cannot reach {endpoint}; check the endpoint URL and that its service is running", file=sys.stderr)
    except ClientError as error:
        detail = error.response.get("Error", {})
        print(
            f"disa: AWS refused {error.operation_name}: {detail.get('Code')}: {detail.get('Message')}", file=sys.stderr
        )
    except BotoCoreError as error:
        print(f"disa: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        print("disa: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader (e.g. `| head`) left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1
