"""The ingestion pipeline: every prompt that enters the bank (a file import, a feed, a hand-made prompt, a variant,
an accepted submission, a red-team finding, a blocked input) goes through the same stages.

    readers -> validate -> normalize -> dedup (exact, then MinHash/LSH near duplicates) -> classify -> tagging
            -> quality -> store (+ version) -> propagate

Public API (the services, the API and page views, the firewall and testing apps call these):

- `ingest_records(records, *, organization, source_name, ...) -> IngestResult` for many records (an import);
- `ingest_one(record, *, organization, source_name, ...) -> RecordOutcome` for one;
- `normalize_text(text) -> NormalizedText` (normalized `text`, `hash`, `tags`), the bank's notion of "the same text",
  and `signature_bytes(normalized_text)` for `Prompt.minhash` when a service changes a prompt's text;
- `read_records(fileobj, fmt)` and `detect_format(filename, head)` to stream a file into `ingest_records`.
"""

from promptbank.pipeline.ingest import IngestResult, RecordOutcome, ingest_one, ingest_records
from promptbank.pipeline.minhash import signature as _signature
from promptbank.pipeline.normalize import NormalizedText, clean_text, normalize_text
from promptbank.pipeline.readers import FileFormatError, ReadError, detect_format, read_records


def signature_bytes(normalized: str) -> bytes:
    """The MinHash signature stored in `Prompt.minhash`, of a normalized text (`normalize_text(text).text`): for a
    service that changes a prompt's text outside an ingest."""
    return _signature(normalized.casefold())


__all__ = [
    "FileFormatError",
    "IngestResult",
    "NormalizedText",
    "ReadError",
    "RecordOutcome",
    "clean_text",
    "detect_format",
    "ingest_one",
    "ingest_records",
    "normalize_text",
    "read_records",
    "signature_bytes",
]
