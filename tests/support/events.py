"""AWS-shaped sample events (tests/events/*.json), loaded by one helper."""

from __future__ import annotations

import copy
import itertools
import json
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"
_sequence = itertools.count(1)


@cache
def _load(name: str) -> dict[str, Any]:
    return json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))


def load_event(name: str) -> dict[str, Any]:
    return copy.deepcopy(_load(name))


def stream_record(new_image: dict[str, Any], key_name: str = "id", event_name: str = "INSERT") -> dict[str, Any]:
    """A DynamoDB stream record shaped like the sample, for ``new_image``."""
    record = load_event("dynamodb-stream-insert")["Records"][0]
    number = next(_sequence)
    record["eventID"] = f"{number:032x}"
    record["eventName"] = event_name
    record["dynamodb"]["Keys"] = {key_name: new_image[key_name]}
    record["dynamodb"]["NewImage"] = new_image
    record["dynamodb"]["SequenceNumber"] = f"{number:024d}"
    return record


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}
