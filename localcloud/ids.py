"""Resource ids, request ids and UUIDs shaped like Alibaba's, drawn from the cloud's seeded RNG."""

from __future__ import annotations

import random
import string
import uuid


class IdFactory:
    """Resource ids shaped like the real ones (`m-bp1…`), drawn from the seeded RNG."""

    _ALPHABET = string.ascii_lowercase + string.digits

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def resource(self, prefix: str) -> str:
        return f"{prefix}-bp1" + "".join(self.rng.choice(self._ALPHABET) for _ in range(17))

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def request_id(self) -> str:
        return self.uuid().upper()
