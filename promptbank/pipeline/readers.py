"""Readers: stream records out of a binary file, one at a time, never holding the whole file in memory.

Each reader yields `(line, record)` where `record` is a dict, or a `ReadError` for a record that could not be read
(invalid JSON, invalid UTF-8, too large): one bad line is a rejected record, not a failed import. What "line" means:

- JSONL: the physical line number (blank lines are skipped and not counted as records);
- CSV: the physical line the row starts on (the header is line 1, so the first record is usually line 2);
- JSON array: the element's position in the array (1 = first element), because several elements can share a
  physical line. `{"prompts": [...]}` (also `records`, `data`, `items`) is read like a bare array when that key comes
  first in the object.

Line numbers only grow, which is what lets an interrupted import resume after the last committed line.

A structural problem that makes the rest of the file unreadable (a JSON array that never closes, a CSV without a
header) raises `FileFormatError`.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from promptbank.choices import IngestionFormat

CHUNK = 1 << 20
MAX_RECORD_BYTES = 1 << 20  # 20,000 characters need at most ~240 KB even as \\u escapes; a megabyte is generous
_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class ReadError:
    """A record that could not be read; `reason` has no line number (the pipeline adds it)."""

    reason: str


class FileFormatError(ValueError):
    """The file cannot be read as the format it claims to be."""


Record = tuple[int, "dict[str, Any] | ReadError"]

_EXTENSIONS = {
    ".json": IngestionFormat.JSON,
    ".jsonl": IngestionFormat.JSONL,
    ".ndjson": IngestionFormat.JSONL,
    ".jsonlines": IngestionFormat.JSONL,
    ".csv": IngestionFormat.CSV,
}


def detect_format(filename: str = "", head: bytes = b"") -> str:
    """The format from the file name's extension, else from its first bytes; "" when neither tells.

    A `.json` file whose first record starts on the first line (`{...}` followed by another line) is JSONL: the
    common misnaming of JSON lines.
    """
    name = filename.lower().removesuffix(".gz")
    for extension, fmt in _EXTENSIONS.items():
        if name.endswith(extension):
            if fmt == IngestionFormat.JSON and _looks_like_jsonl(head):
                return IngestionFormat.JSONL
            return fmt
    stripped = head.removeprefix(_BOM).lstrip()
    if stripped.startswith(b"["):
        return IngestionFormat.JSON
    if stripped.startswith(b"{"):
        return IngestionFormat.JSONL if _looks_like_jsonl(head) else IngestionFormat.JSON
    first_line = stripped.split(b"\n", 1)[0]
    if b"," in first_line or b";" in first_line or b"\t" in first_line:
        return IngestionFormat.CSV
    return ""


def _looks_like_jsonl(head: bytes) -> bool:
    stripped = head.removeprefix(_BOM).lstrip()
    if not stripped.startswith(b"{"):
        return False
    first_line = stripped.split(b"\n", 1)[0].strip()
    try:
        first = json.loads(first_line)
    except ValueError:
        return False
    # A one-line `{"prompts": [...]}` document is JSON, not one JSON line.
    return not (isinstance(first, dict) and any(isinstance(first.get(k), list) for k in _WRAPPER_KEYS))


def read_records(fileobj: IO[bytes], fmt: str) -> Iterator[Record]:
    """Stream `(line, record or ReadError)` out of a binary file in the given format."""
    if fmt == IngestionFormat.JSONL:
        return read_jsonl(fileobj)
    if fmt == IngestionFormat.JSON:
        return read_json_array(fileobj)
    if fmt == IngestionFormat.CSV:
        return read_csv(fileobj)
    raise FileFormatError(f"unknown format {fmt!r}: expected one of {', '.join(IngestionFormat.values)}")


def _decode_object(data: bytes) -> dict[str, Any] | ReadError:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ReadError(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return ReadError(f"invalid JSON ({exc.msg} at column {exc.colno})")
    if not isinstance(value, dict):
        return ReadError(f"expected a JSON object, got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _too_large(size: int) -> ReadError:
    return ReadError(f"record is larger than {MAX_RECORD_BYTES:,} bytes ({size:,})")


def read_jsonl(fileobj: IO[bytes]) -> Iterator[Record]:
    """JSON lines: one object per line."""
    line_no = 0
    while True:
        raw = fileobj.readline(MAX_RECORD_BYTES + 1)
        if not raw:
            return
        line_no += 1
        if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
            size = len(raw)
            while raw and not raw.endswith(b"\n"):  # skip the rest of the line without keeping it
                raw = fileobj.readline(CHUNK)
                size += len(raw)
            yield line_no, _too_large(size)
            continue
        if line_no == 1:
            raw = raw.removeprefix(_BOM)
        raw = raw.strip()
        if not raw:
            continue
        yield line_no, _decode_object(raw)


# Outside strings, the bytes that matter to the structure; inside, the rest of a string up to its closing quote.
_STRUCTURE = re.compile(rb'[\[\]{}",]')
_STRING_REST = re.compile(rb'(?:[^"\\]|\\.)*"', re.DOTALL)
_WRAPPER_KEYS = ("prompts", "records", "data", "items")
_WRAPPER = re.compile(rb'\s*\{\s*"(?:prompts|records|data|items)"\s*:\s*\[')
_WHITESPACE = b" \t\r\n"


class _ArrayScanner:
    """Splits a JSON array into its elements' bytes without parsing them, so one bad element is one bad record."""

    def __init__(self, fileobj: IO[bytes]) -> None:
        self.fileobj = fileobj
        self.buf = b""
        self.pos = 0
        self.eof = False

    def _more(self) -> bool:
        if self.eof:
            return False
        chunk = self.fileobj.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        if self.pos > CHUNK:  # drop what was consumed
            self.buf = self.buf[self.pos :]
            self.pos = 0
        self.buf += chunk
        return True

    def _skip_whitespace(self) -> bytes:
        """The next non-whitespace byte (not consumed), or b"" at the end of the file."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in _WHITESPACE:
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos : self.pos + 1]
            if not self._more():
                return b""

    def open(self) -> None:
        while len(self.buf) < 4096 and self._more():
            pass
        self.buf = self.buf.removeprefix(_BOM)
        first = self._skip_whitespace()
        if first == b"[":
            self.pos += 1
            return
        wrapper = _WRAPPER.match(self.buf, self.pos)
        if first == b"{" and wrapper:
            self.pos = wrapper.end()
            return
        raise FileFormatError('expected a JSON array of records (or {"prompts": [...]})')

    def elements(self) -> Iterator[tuple[bytes | None, int]]:
        """(element bytes, or None when too large, and its size); stops after the closing bracket."""
        first = True
        while True:
            nxt = self._skip_whitespace()
            if nxt == b"":
                raise FileFormatError("the JSON array is not closed (the file ends inside it)")
            if nxt == b"]" and first:
                return
            first = False
            data, size, closing = self._element()
            yield data, size
            if closing == b"]":
                return

    def _element(self) -> tuple[bytes | None, int, bytes]:
        start = self.pos
        depth = 0
        kept: list[bytes] = []
        size = 0
        too_large = False
        while True:
            match = _STRUCTURE.search(self.buf, self.pos)
            if match is None:
                if not self._refill(start, kept):
                    raise FileFormatError("the JSON array is not closed (the file ends inside an element)")
                start, size, too_large = self._after_refill(start, kept, size, too_large)
                continue
            ch = match.group()
            if ch == b'"':
                rest = _STRING_REST.match(self.buf, match.end())
                if rest is None:
                    self.pos = match.start()
                    if not self._refill(start, kept):
                        raise FileFormatError("the JSON array is not closed (a string never ends)")
                    start, size, too_large = self._after_refill(start, kept, size, too_large)
                    continue
                self.pos = rest.end()
                continue
            if ch in b"[{":
                depth += 1
            elif ch in b"]}" and depth > 0:
                depth -= 1
            elif depth == 0:  # a top-level comma or the closing bracket ends the element
                end = match.start()
                size += end - start
                data = None if too_large or size > MAX_RECORD_BYTES else b"".join([*kept, self.buf[start:end]])
                self.pos = match.end()
                return data, size, ch
            self.pos = match.end()

    def _refill(self, start: int, kept: list[bytes]) -> bool:
        # Keep the element's bytes read so far (the buffer may be trimmed), then read on.
        kept.append(self.buf[start : self.pos])
        self.buf = self.buf[self.pos :]
        self.pos = 0
        return self._more()

    @staticmethod
    def _after_refill(start: int, kept: list[bytes], size: int, too_large: bool) -> tuple[int, int, bool]:
        size += len(kept[-1])
        if size > MAX_RECORD_BYTES:
            kept.clear()  # stop keeping an element that will be rejected anyway
            too_large = True
        return 0, size, too_large


def read_json_array(fileobj: IO[bytes]) -> Iterator[Record]:
    """A JSON array of objects (or `{"prompts": [...]}`), streamed element by element."""
    scanner = _ArrayScanner(fileobj)
    scanner.open()
    for position, (data, size) in enumerate(scanner.elements(), start=1):
        if data is None:
            yield position, _too_large(size)
            continue
        data = data.strip()
        if not data:
            yield position, ReadError("invalid JSON (an empty element)")
            continue
        yield position, _decode_object(data)


def read_csv(fileobj: IO[bytes]) -> Iterator[Record]:
    """CSV with a header row (comma, semicolon or tab separated, sniffed from the header line)."""
    csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES))
    # Undecodable bytes survive as lone surrogates, which validation rejects per line instead of failing the file.
    text = io.TextIOWrapper(fileobj, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        header_line = text.readline()
        if not header_line.strip():
            raise FileFormatError("the CSV file has no header row")
        delimiter = max((",", ";", "\t"), key=header_line.count)
        header = [name.strip().lower() for name in next(csv.reader([header_line], delimiter=delimiter))]
        if not any(header):
            raise FileFormatError("the CSV file has no header row")
        reader = csv.reader(text, delimiter=delimiter)
        last_line = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield last_line + 1, ReadError(f"invalid CSV ({exc})")
                if reader.line_num + 1 <= last_line:
                    return
                last_line = reader.line_num + 1
                continue
            start, last_line = last_line + 1, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            yield start, {name: value for name, value in zip(header, row, strict=False) if name}
    finally:
        text.detach()  # leave the caller's file open
