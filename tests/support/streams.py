"""Reading a table's DynamoDB stream directly, to name the record an on-failure description
points at (its DDBStreamBatchInfo carries sequence numbers, not keys)."""

from __future__ import annotations

from typing import Any


def stream_sequence_number(streams: Any, stream_arn: str, key: dict[str, Any]) -> str:
    """The sequence number of the INSERT record of the item with ``key``."""
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            for record in page["Records"]:
                if record["eventName"] == "INSERT" and record["dynamodb"]["Keys"] == key:
                    return record["dynamodb"]["SequenceNumber"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    raise AssertionError(f"no INSERT record for {key} on {stream_arn}")
