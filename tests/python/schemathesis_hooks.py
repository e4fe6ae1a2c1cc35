"""Schemathesis hooks of test_api.py (loaded through SCHEMATHESIS_HOOKS): how to send a
request body of `POST /ingest`, whose media type (NDJSON) schemathesis has no serializer
for. The document describes the body as a string, so generated values are sent as its
UTF-8 bytes (unpaired surrogates, which UTF-8 cannot hold, as replacement characters)."""

from __future__ import annotations

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value) -> bytes:
    if isinstance(value, bytes):
        return value
    text = value if isinstance(value, str) else str(value)
    return text.encode("utf-8", errors="replace")
