"""A FIFO item's place in its message group: the order Disa publishes the group in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

# The item contract's patterns (contracts/item.schema.json), so that a place is read only from
# attributes the contract accepts; an item whose group or sequence is malformed has no place.
_GROUP = re.compile(r"[!-~]{1,128}")
_SEQUENCE = re.compile(r"[1-9][0-9]{0,17}")

# The item's attributes that give its place (contracts/item.schema.json).
GROUP_ATTRIBUTE = "messageGroupId"
SEQUENCE_ATTRIBUTE = "messageSequence"
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
    if not _GROUP.fullmatch(group_id) or not _SEQUENCE.fullmatch(number):
        return None
    return GroupPosition(group_id, int(number))
