"""The providers' documented examples and their libraries' test values, as fixed vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pyconvex.webhooks import WebhookVerificationError, verify

# A copy of ../shared/data/webhook_vectors.json (sources named in each vector), kept in the
# repository so CI's clean clone has it.
VECTORS = json.loads((Path(__file__).parent / "data" / "webhook_vectors.json").read_text())[
    "vectors"
]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["id"] for v in VECTORS])
def test_vector(vector: dict[str, Any]) -> None:
    options = vector.get("options") or {}
    call = lambda: verify(  # noqa: E731
        vector["provider"],
        body=vector["body"].encode(),
        headers=vector["headers"],
        secret=vector["secret"],
        now=vector["now"],
        url=vector.get("url"),
        **({"tolerance": options["tolerance"]} if "tolerance" in options else {}),
    )
    if vector["expect"] == "valid":
        event = call()
        assert event.body == vector["body"].encode()
    else:
        with pytest.raises(WebhookVerificationError):
            call()
