"""What the fuzz suite works with: generated items in DynamoDB AttributeValue form (valid
ones built from the contract's rules, and arbitrary ones: wrong types, unknown and
pipeline-owned attributes, empty and huge values, any unicode DynamoDB can store), the
check that a reason names a field, and an in-memory store and starter with the trigger's
contract."""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from disa_lambda.logic.attempts import PAYLOAD_LIMIT_BYTES, STATE_GROWTH_RESERVE_BYTES
from disa_lambda.logic.validation import known_fields, pipeline_owned_fields
from disa_lambda.models.exceptions import PayloadObjectMissing
from hypothesis import strategies as st

# DynamoDB stores any valid UTF-8; surrogates cannot be encoded, so they never reach Disa.
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
nonempty_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=60)
numbers = st.one_of(
    st.integers(-(10**9), 10**9).map(str),
    st.decimals(-(10**9) + 1, 10**9 - 1, places=5, allow_nan=False, allow_infinity=False).map(
        lambda d: format(d.normalize(), "f")
    ),
)
attribute_names = st.from_regex(r"\A[A-Za-z0-9_-]([A-Za-z0-9_-]|\.(?=[A-Za-z0-9_-])){0,30}\Z").filter(
    lambda n: not n.lower().startswith(("aws.", "amazon.", "disa."))
)
subjects = st.text(alphabet=string.printable[:95].replace("\t", "").replace("\n", ""), min_size=1, max_size=99).filter(
    lambda s: s[0] != " "
)
# Disa's payload bucket and an allowed source (tests/support/settings.py), one it may not read
object_buckets = st.sampled_from(["disa-payloads", "producer-uploads", "someone-elses-bucket"])
fifo_ids = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=128)


def _value(kind: str):
    return {
        "S": nonempty_text.map(lambda v: {"S": v}),
        "N": numbers.map(lambda v: {"N": v}),
        "SS": st.sets(text, min_size=1, max_size=4).map(lambda v: {"SS": sorted(v)}),
        "NS": st.sets(st.integers(-1000, 1000).map(str), min_size=1, max_size=4).map(lambda v: {"NS": sorted(v)}),
    }[kind]


attribute_values = st.sampled_from(["S", "N", "SS", "NS"]).flatmap(_value)


@st.composite
def valid_items(draw, fifo: bool = False, near_limit: bool = True):
    """``near_limit`` adds messages close to Disa's size limit (counted in UTF-8 bytes, as
    AWS counts them; moto counts the ASCII-escaped JSON, so its engine needs it off)."""
    sizes = [1, 10, 1000, 30_000]
    if near_limit:  # around where bodies start to be stored in S3, and well beyond
        sizes += [PAYLOAD_LIMIT_BYTES - STATE_GROWTH_RESERVE_BYTES - 2000, PAYLOAD_LIMIT_BYTES + 1, 350_000]
    size = draw(st.sampled_from(sizes))
    message = draw(st.one_of(nonempty_text, st.just("x" * size), st.just("é✓🎉" * (size // 12 + 1))))
    item: dict[str, Any] = {"message": {"S": message}}
    if draw(st.integers(0, 4)) == 0:  # the body in an S3 object the item names
        item = {"messageObject": {"M": {"bucket": {"S": draw(object_buckets)}, "key": {"S": draw(nonempty_text)}}}}
    if draw(st.booleans()):
        item["subject"] = {"S": draw(subjects)}
    # A body stored in S3 spends one of SNS's 10 attributes on the extended clients' marker.
    attributes = draw(st.dictionaries(attribute_names, attribute_values, max_size=8 if size < 200_000 else 7))
    if attributes or draw(st.booleans()):
        item["attributes"] = {"M": attributes}
    if fifo:
        item["messageGroupId"] = {"S": draw(fifo_ids)}
        item["messageSequence"] = {"N": str(draw(st.integers(1, 10**18 - 1)))}
        if draw(st.booleans()):
            item["deduplicationId"] = {"S": draw(fifo_ids)}
    return item


any_attribute_value = st.recursive(
    st.one_of(
        text.map(lambda v: {"S": v}),
        numbers.map(lambda v: {"N": v}),
        st.binary(max_size=20).map(lambda v: {"B": v}),
        st.booleans().map(lambda v: {"BOOL": v}),
        st.just({"NULL": True}),
        st.sets(text, min_size=1, max_size=3).map(lambda v: {"SS": sorted(v)}),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda v: {"L": v}),
        st.dictionaries(text, inner, max_size=4).map(lambda v: {"M": v}),
    ),
    max_leaves=8,
)
field_names = st.one_of(
    st.sampled_from(known_fields()), st.sampled_from(sorted(pipeline_owned_fields())), st.text(min_size=1, max_size=12)
)


@st.composite
def arbitrary_items(draw, near_limit: bool = True):
    """Anything an `aws dynamodb put-item` could write, near-valid items most of all."""
    base = draw(st.one_of(valid_items(near_limit=near_limit), st.just({})))
    extra = draw(st.dictionaries(field_names, any_attribute_value, max_size=3))
    return {**base, **extra}


def reason_names_a_field(reason: str, item: dict[str, Any]) -> bool:
    """The reason starts with the attribute it is about: a top-level attribute of the item
    (quoted when it is not a plain name), a missing `message`, or `attributes.<name>`."""
    names = {*item, "message"}
    attributes = item.get("attributes")
    entries = attributes.get("M") if isinstance(attributes, dict) else None
    if isinstance(entries, dict):
        names |= {f"attributes.{n}" for n in entries}
        names |= {f"attributes.{json.dumps(n, ensure_ascii=False)}" for n in entries}
    shown = names | {json.dumps(n, ensure_ascii=False) for n in names}
    return any(reason.startswith(f"{name}: ") for name in shown)


class RecordingStore:
    """An in-memory store with the trigger's contract: a key is claimed once."""

    def __init__(self) -> None:
        self.rejected: dict[str, str] = {}
        self.claimed: dict[str, Any] = {}
        self.deferred: dict[str, str] = {}

    def claim_new(self, key, claim, now_iso) -> bool:
        return self.claimed.setdefault(json.dumps(key), claim) is claim

    def reject(self, key, reason, now_iso, inserted_token=None, expires_at=None) -> bool:
        self.rejected[json.dumps(key)] = reason
        return True

    def finish_unclaimable(
        self, key, observed_status, observed_token, status, reason, now_iso, expires_at=None, right=None
    ) -> bool:
        self.rejected[json.dumps(key)] = reason
        return True

    def defer_start(self, key, claim, reason, now_epoch, now_iso, counted=False) -> bool:
        self.deferred[json.dumps(key)] = reason
        return True


@dataclass
class SourceBody:
    size: int
    etag: str


@dataclass
class StoredBody:
    size: int
    written_at: float


class MemoryPayloads:
    """The payload bucket as the logic sees it (logic/ports.py PayloadStore), in memory:
    bodies by key, and the objects items may reference. dal/payloads.py, the real one, is
    tested against moto's S3 in tests/handlers."""

    def __init__(self, bucket: str = "disa-payloads", sources: dict[tuple[str, str], bytes] | None = None) -> None:
        self.bucket = bucket
        self.objects: dict[str, tuple[bytes, float]] = {}
        self.sources = dict(sources or {})
        self.calls: list[str] = []
        self.clock = 1_700_000_000.0

    def stored(self, key):
        found = self.objects.get(key)
        return None if found is None else StoredBody(len(found[0]), found[1])

    def put(self, key, body) -> None:
        self.calls.append("put")
        self.objects[key] = (body, self.clock)

    def restamp(self, key) -> None:
        self.calls.append("restamp")
        self.objects[key] = (self.objects[key][0], self.clock)

    def size_of(self, source) -> SourceBody:
        if (source.bucket, source.key) not in self.sources:
            raise PayloadObjectMissing(str(source))
        return SourceBody(len(self.sources[(source.bucket, source.key)]), "etag")

    def copy_in(self, source, etag, key) -> None:
        self.calls.append("copy")
        self.objects[key] = (self.sources[(source.bucket, source.key)], self.clock)


class RecordingStarter:
    """Records each execution it is asked to start."""

    def __init__(self) -> None:
        self.started: list[tuple[str, dict[str, Any]]] = []

    def start(self, name, document) -> str:
        self.started.append((name, document))
        return name
