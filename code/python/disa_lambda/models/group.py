"""A FIFO item's place in its message group: the order Disa publishes the group in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Mapping

from disa_lambda import contracts

# The item's attributes that give its place (contracts/item.schema.json).
GROUP_ATTRIBUTE = "messageGroupId"
SEQUENCE_ATTRIBUTE = "messageSequence"


class AbandonedInGroup(StrEnum):
    """What an ABANDONED item does to its group (FifoAbandonedItems): lets it go on, or holds it."""

    RELEASE = "release"
    HOLD = "hold"


@cache
def _pattern(attribute: str, dynamo_type: str) -> re.Pattern[str]:
    """The contract's own pattern, so a place is read only from attributes it accepts; an
    item whose group or sequence is malformed has no place."""
    return re.compile(contracts.load("item")["properties"][attribute]["properties"][dynamo_type]["pattern"])


# Every group starts at sequence 1 and goes on without gaps.
FIRST_SEQUENCE = 1


@dataclass(frozen=True)
class GroupPosition:
    group: str
    sequence: int

    def describe(self) -> str:
        return f"sequence {self.sequence} of message group {self.group!r}"


def position_of(image: Mapping[str, Any]) -> GroupPosition | None:
    """The place an item (AttributeValue form) claims in its group, or None without a
    well-formed messageGroupId and messageSequence."""
    group = image.get(GROUP_ATTRIBUTE, {})
    sequence = image.get(SEQUENCE_ATTRIBUTE, {})
    if not isinstance(group, Mapping) or not isinstance(sequence, Mapping):
        return None
    group_id, number = group.get("S"), sequence.get("N")
    if not isinstance(group_id, str) or not isinstance(number, str):
        return None
    if not _pattern(GROUP_ATTRIBUTE, "S").search(group_id) or not _pattern(SEQUENCE_ATTRIBUTE, "N").search(number):
        return None
    return GroupPosition(group_id, int(number))
