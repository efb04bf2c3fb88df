"""The message attributes Disa adds to every published message (contracts/published-message.schema.json).

Items may not use the ``disa.`` prefix, so these never collide with an item's own attributes.
"""

from __future__ import annotations

from datetime import datetime

INSERT_ID = "disa.insertId"
ACCEPTED_AT = "disa.acceptedAt"


def epoch_ms(iso: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time such as an item's ``acceptedAt``."""
    return round(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
