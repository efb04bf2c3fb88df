"""What a subscriber's consumer imports: ``Consumer`` and ``Message`` (see README, Subscribing).

Lazy, so the CLI can read ``stages`` without importing Powertools and boto3's clients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from disa_lambda.consumer.consumer import Consumer
    from disa_lambda.consumer.message import Message

__all__ = ["Consumer", "Message"]


def __getattr__(name: str) -> Any:
    if name == "Consumer":
        from disa_lambda.consumer.consumer import Consumer

        return Consumer
    if name == "Message":
        from disa_lambda.consumer.message import Message

        return Message
    raise AttributeError(name)
