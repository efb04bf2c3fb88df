"""What `disa status --watch`, `disa items` and `disa show` draw, with rich. Each function
takes the plain data its command gathered (operate/status.py, operate/records.py) and returns
a renderable; ``watch`` is the refresh loop."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime
from typing import Any, Callable

from boto3.dynamodb.types import TypeDeserializer
from botocore.exceptions import BotoCoreError, ClientError
from disa_lambda.models.metrics import Count, Gauge
from disa_lambda.models.status import Field, Status
from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from disa.operate.records import DUE_MEANINGS, FIELD_MEANINGS, STATUS_MEANINGS, ItemRecord, Listing, pipeline_fields
from disa.operate.status import PERCENTILES, PUBLISHED, Percentiles, Reading, WatchFrame

MIN_EVERY_SECONDS = 2.0
ALARM_STYLES = {"ALARM": "bold white on red", "OK": "green", "INSUFFICIENT_DATA": "yellow"}
# The rates in the order a message passes them; a count models/metrics.py adds later shows
# after these under its metric name.
RATE_LABELS = {
    Count.ITEMS_ACCEPTED: "accepted",
    PUBLISHED: "published (SNS)",
    Count.ITEMS_REJECTED: "rejected",
    Count.PUBLISH_FAILED: "publish failed",
    Count.OUTCOMES_NOT_RECORDED: "outcome not recorded",
    Count.RETRY_DUE: "retry due",
    Count.RETRIES_STARTED: "retries started",
    Count.STARTS_DEFERRED: "start deferred",
    Count.ITEMS_SWEPT: "swept in",
    Count.ITEMS_ABANDONED: "abandoned",
    Count.RETRY_JOB_RUNS: "retry job runs",
}
GAUGE_ROWS = (
    (Gauge.WAITING_ITEMS, Status.WAITING),
    (Gauge.PENDING_ITEMS, Status.PENDING),
    (Gauge.FAILED_ITEMS, Status.FAILED),
    (Gauge.ABANDONED_WAITING, "ABANDONED, unattended"),
)
AGE_ROWS = (
    (Gauge.OLDEST_PENDING_AGE, "oldest PENDING"),
    (Gauge.OLDEST_FAILED_AGE, "oldest FAILED"),
    # FIFO topics: what the groups-stalled alarm reads.
    (Gauge.OLDEST_WAITING_AGE, "oldest WAITING"),
)
VALUE_CHARACTERS = 300  # an attribute value longer than this is cut in `disa show` (not in --json)


# --- `disa status --watch` ------------------------------------------------------------------


def watch(gather: Callable[[], WatchFrame], every: float) -> int:
    """Draw ``gather()``'s frame every ``every`` seconds in place until Ctrl-C; one frame when
    the output is not a terminal. A refresh that fails keeps the last figures on screen and
    says why; only the first frame's failure ends the command."""
    console = Console()
    try:
        started = time.monotonic()
        frame = gather()
        if not console.is_terminal:
            console.print(watch_view(frame, every))
            return 0
        with Live(watch_view(frame, every), console=console, auto_refresh=False) as live:
            while True:
                time.sleep(max(0.0, every - (time.monotonic() - started)))  # every SECONDS from start to start
                started = time.monotonic()
                problem = ""
                try:
                    frame = gather()
                except (ClientError, BotoCoreError) as error:
                    problem = f"refresh at {_clock(datetime.now(tz=UTC))} failed: {_short(error)}"
                live.update(watch_view(frame, every, problem), refresh=True)
    except KeyboardInterrupt:
        return 0


def watch_view(frame: WatchFrame, every: float, problem: str = "") -> RenderableType:
    cost = frame.usd_per_hour(every)
    header = Text.assemble(
        (f"Disa {frame.stack}", "bold"),
        f" in {frame.region} · {_clock(frame.taken_at)} UTC, every {every:g} s · "
        f"{frame.metrics_requested} metrics a refresh ≈ ${cost:.2f}/hour · Ctrl-C quits",
    )
    rows: list[RenderableType] = [header, _side_by_side(_status_panel(frame), _rates_panel(frame))]
    # The alarms list is the longest: the other panels stack beside it.
    beside = [_latency_panel(frame), _subscribers_panel(frame), _ownership_panel(frame)]
    rows.append(_side_by_side(_alarms_panel(frame), Group(*(panel for panel in beside if panel is not None))))
    if problem:
        rows.append(Text(f"{problem}; the figures are from {_clock(frame.taken_at)}", style="bold yellow"))
    return Group(*rows)


def _side_by_side(left: RenderableType, right: RenderableType | None) -> RenderableType:
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1)
    grid.add_column(ratio=1)
    grid.add_row(left, right or Text(""))
    return grid


def _status_panel(frame: WatchFrame) -> Panel:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("Status")
    table.add_column("Items", justify="right")
    for gauge, label in GAUGE_ROWS:
        reading = frame.gauges.get(gauge)
        table.add_row(str(label), _figure(reading.value) if reading else "-")
    for gauge, label in AGE_ROWS:
        reading = frame.gauges.get(gauge)
        table.add_row(label, "-" if reading is None else _duration(reading.value) if reading.value else "none")
    readings = [r for r in frame.gauges.values() if isinstance(r, Reading)]
    if readings:
        last = max(r.at for r in readings)
        caption = f"the retry job's last count, in the minute {last:%H:%M} UTC"
    else:
        caption = f"no count from the retry job in {frame.window_minutes} min: is it running?"
    table.caption = caption + "\nfinal statuses are not counted: disa items --status"
    return Panel(table, title="Items per status now", title_align="left")


def _rates_panel(frame: WatchFrame) -> Panel:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("Per minute")
    table.add_column("this min", justify="right")
    table.add_column("last min", justify="right")
    table.add_column(f"avg, {frame.window_minutes} min", justify="right")
    names = [*(n for n in RATE_LABELS if n in frame.rates), *(n for n in frame.rates if n not in RATE_LABELS)]
    for name in names:
        rate = frame.rates[name]
        style = "red" if name in (Count.PUBLISH_FAILED, Count.ITEMS_ABANDONED) and rate.this_minute else None
        table.add_row(
            RATE_LABELS.get(name, name),
            _figure(rate.this_minute),
            _figure(rate.last_minute),
            _figure(rate.per_minute),
            style=style,
        )
    return Panel(table, title="Rates", title_align="left")


def _alarms_panel(frame: WatchFrame) -> Panel:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("Alarm")
    table.add_column("State")
    for name, state in frame.alarms.items():
        table.add_row(name, Text(state, style=ALARM_STYLES.get(state, "")))
    if not frame.alarms:
        table.add_row("none found", "")
    in_alarm = sum(state == "ALARM" for state in frame.alarms.values())
    title = f"Alarms: {in_alarm} in ALARM" if in_alarm else "Alarms"
    return Panel(table, title=title, title_align="left", border_style="red" if in_alarm else "")


def _latency_panel(frame: WatchFrame) -> Panel:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("ms")
    for percentile in PERCENTILES:
        table.add_column(percentile, justify="right")
    table.add_column("n", justify="right")
    rows = [("state machine execution", frame.execution_time)]
    rows += [(f"{s.name}: accepted -> done", s.end_to_end) for s in frame.subscribers]
    for label, percentiles in rows:
        table.add_row(label, *_percentile_cells(percentiles))
    return Panel(table, title=f"Latency, last {frame.window_minutes} min", title_align="left")


def _percentile_cells(percentiles: Percentiles) -> list[str]:
    values = [percentiles.p50, percentiles.p95, percentiles.p99]
    cells = ["-" if value is None else f"{value:,.0f}" for value in values]
    return [*cells, "-" if percentiles.samples is None else f"{percentiles.samples:,}"]


def _subscribers_panel(frame: WatchFrame) -> Panel:
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("Subscriber")
    table.add_column("Dead letters", justify="right")
    for subscriber in frame.subscribers:
        style = "bold red" if subscriber.dead_letters else ""
        table.add_row(subscriber.name, Text(f"{subscriber.dead_letters:,}", style=style))
    if not frame.subscribers:
        table.add_row("none (disa subscribe NAME)", "-")
    return Panel(table, title="Dead letters", title_align="left")


def _ownership_panel(frame: WatchFrame) -> Panel | None:
    if not frame.ownership:
        return None
    table = Table(box=box.SIMPLE_HEAD, expand=True, pad_edge=False)
    table.add_column("Replica in")
    table.add_column("Says the owner is")
    table.add_column("Epoch", justify="right")
    for region, view in frame.ownership.items():
        table.add_row(region, str(view.get("owner", view.get("error", "-"))), str(view.get("epoch", "-")))
    owners = {view.get("owner") for view in frame.ownership.values() if "owner" in view}
    title = "Who publishes" if len(owners) <= 1 else "Who publishes: the replicas disagree (replicating)"
    return Panel(table, title=title, title_align="left")


# --- `disa items --status STATUS` -----------------------------------------------------------


def items_table(listing: Listing) -> RenderableType:
    if not listing.items:
        return Text(f"no {listing.status} items ({_source(listing)})")
    in_flight = listing.source != "Scan"
    table = Table(
        title=f"{len(listing.items)} {listing.status} item{'' if len(listing.items) == 1 else 's'}, newest first "
        f"({_source(listing)})",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    # Folded, never cut: a key or a time with an ellipsis could not be copied.
    table.add_column("Key", overflow="fold")
    table.add_column("Attempt", justify="right")
    table.add_column("Updated", overflow="fold", min_width=len("2026-01-01T00:00:00.000Z"))
    if in_flight:
        table.add_column("Due", overflow="fold", min_width=len("2026-01-01T00:00:00Z"))
    table.add_column("Reason", overflow="fold")
    table.add_column("Last error", overflow="fold")
    for line in listing.items:
        due = [_epoch_text(line.due_at)] if in_flight else []
        attempt = "-" if line.attempt is None else str(line.attempt)
        table.add_row(line.key, attempt, line.updated_at or "-", *due, line.reason or "-", line.last_error or "-")
    return table


def _source(listing: Listing) -> str:
    if listing.source == "Scan":
        return f"a Scan of the whole table: {listing.read:,} items read"
    return f"{listing.source}: {listing.read:,} entries read"


# --- `disa show KEY` ------------------------------------------------------------------------


def item_view(record: ItemRecord, now: float | None = None) -> RenderableType:
    now = time.time() if now is None else now
    owned = pipeline_fields()
    pipeline = Table(title="What the pipeline recorded", title_justify="left", box=box.SIMPLE_HEAD)
    pipeline.add_column("Field")
    pipeline.add_column("Value", overflow="fold")
    pipeline.add_column("Meaning", overflow="fold")
    for name in sorted(n for n in record.item if n in owned or n in FIELD_MEANINGS):
        pipeline.add_row(name, _pipeline_value(record, name, now), _meaning(record, name))
    if not any(name in owned for name in record.item):
        pipeline.add_row("-", "nothing yet", "the pipeline has not seen this item (the sweep takes it in)")
    data = Table(title="The item's own attributes", title_justify="left", box=box.SIMPLE_HEAD)
    data.add_column("Attribute")
    data.add_column("Type")
    data.add_column("Value", overflow="fold")
    for name in sorted(n for n in record.item if n not in owned and n not in FIELD_MEANINGS):
        ((kind, _),) = record.item[name].items()
        data.add_row(name, kind, _cut(attribute_text(record.item[name])))
    history = Table(title="History (UTC)", title_justify="left", box=box.SIMPLE_HEAD)
    history.add_column("When")
    history.add_column("What happened", overflow="fold")
    for event in record.timeline(now):
        history.add_row(
            _moment(event.at),
            event.what + (" (ahead)" if event.upcoming else ""),
            style="dim" if event.upcoming else "",
        )
    parts: list[RenderableType] = [pipeline, data, history]
    if record.executions:
        executions = Table(title="Executions, newest first", title_justify="left", box=box.SIMPLE_HEAD)
        for column in ("Name", "Status", "Started", "Ended", "Error"):
            executions.add_column(column, overflow="fold")
        for execution in record.executions:
            executions.add_row(
                execution.name,
                Text(execution.status, style="green" if execution.status == "SUCCEEDED" else "yellow"),
                _moment(execution.started),
                _moment(execution.stopped) if execution.stopped else "-",
                execution.error or "-",
            )
        parts.append(executions)
    if record.executions_note:
        parts.append(Text(f"executions: {record.executions_note}", style="dim"))
    title = f"item {record.key} in {record.table}" + (f": {record.status}" if record.status else "")
    return Panel(Group(*parts), title=title, title_align="left")


def item_json(record: ItemRecord, now: float | None = None) -> dict[str, Any]:
    return {
        "key": record.key,
        "table": record.table,
        "item": {name: _json_av(value) for name, value in record.item.items()},
        "timeline": [
            {"at": e.at.isoformat().replace("+00:00", "Z"), "what": e.what, "upcoming": e.upcoming}
            for e in record.timeline(now)
        ],
        "executions": [
            {
                "name": e.name,
                "status": e.status,
                "started": e.started.isoformat(),
                "stopped": e.stopped.isoformat() if e.stopped else None,
                "error": e.error or None,
                "cause": e.cause or None,
            }
            for e in record.executions
        ],
        "executionsNote": record.executions_note,
    }


def _pipeline_value(record: ItemRecord, name: str, now: float) -> str:
    value = record.item[name]
    if name == Field.DUE_AT and "N" in value:
        return _epoch_text(int(float(value["N"])), now)
    return _cut(attribute_text(value))


def _meaning(record: ItemRecord, name: str) -> str:
    if name == Field.STATUS:
        try:
            return STATUS_MEANINGS[Status(record.status)]
        except ValueError:
            return "not a status Disa writes"
    if name == Field.DUE_AT and record.status in DUE_MEANINGS:
        return f"{FIELD_MEANINGS[name]}: {DUE_MEANINGS[Status(record.status)]}"
    return FIELD_MEANINGS.get(name, "")


_deserializer = TypeDeserializer()


def attribute_text(value: dict[str, Any]) -> str:
    """One attribute value as people read it: strings and numbers as stored, binary as base64,
    sets, lists and maps as JSON."""
    ((kind, raw),) = value.items()
    if kind in ("S", "N"):
        return str(raw)
    if kind == "B":
        return base64.b64encode(raw).decode()
    if kind == "BOOL":
        return "true" if raw else "false"
    if kind == "NULL":
        return "null"
    plain = _deserializer.deserialize(value)
    return json.dumps(plain, default=_json_default, ensure_ascii=False, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if hasattr(value, "value") and isinstance(getattr(value, "value", None), bytes):  # boto3's Binary
        return base64.b64encode(value.value).decode()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    return str(value)


def _json_av(value: Any) -> Any:
    """DynamoDB JSON, binary as base64 (as `aws dynamodb get-item` prints it)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dict):
        return {k: _json_av(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_av(v) for v in value]
    return value


def _cut(text: str) -> str:
    if len(text) <= VALUE_CHARACTERS:
        return text
    return f"{text[:VALUE_CHARACTERS]}… ({len(text):,} characters; --json shows all)"


# --- figures --------------------------------------------------------------------------------


def _figure(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _epoch_text(epoch: int | None, now: float | None = None) -> str:
    if epoch is None:
        return "-"
    now = time.time() if now is None else now
    when = datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    delta = epoch - now
    return f"{when} ({'in ' + _duration(delta) if delta >= 0 else _duration(-delta) + ' ago'})"


def _moment(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "")


def _clock(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M:%S")


def _short(error: Exception) -> str:
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        return f"{error.operation_name}: {detail.get('Code')}: {detail.get('Message')}"
    return str(error)
