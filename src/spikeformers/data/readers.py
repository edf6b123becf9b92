"""Low-level readers: file bytes -> decoded lines -> rows of named fields.

This is the one place where files are opened and decoded. Every problem is raised as a
:class:`~spikeformers.data.examples.DataError` whose message starts with ``path:LINE:``:

- a missing file, an empty file (no non-blank line);
- a byte sequence that is not valid in the chosen encoding (never a bare ``UnicodeDecodeError``,
  and no line is ever dropped or silently "repaired");
- malformed CSV / TSV records and JSON lines, missing columns, empty text.

Blank lines hold no data and are skipped everywhere (they are not counted as examples).

Supported layouts:

- ``label sentence`` files (SST / MR / Subj style): the first whitespace separates the label
  from the sentence;
- CSV (``.csv``, RFC 4180 quoting, header row), TSV (``.tsv``, header row, no quoting, as in GLUE);
- JSON Lines (``.jsonl``, ``.ndjson``, ``.json``: one object per line) and, for ``.json``, also
  a single JSON array of objects.

Files ending in ``.gz``, ``.bz2`` or ``.xz`` are decompressed first; the format is chosen from
the extension before the compression suffix.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import gzip
import json
import logging
import lzma
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from spikeformers.data.examples import DataError

logger = logging.getLogger(__name__)

Format = Literal["csv", "tsv", "jsonl", "json"]
FORMAT_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_DECOMPRESS = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}


@dataclass(frozen=True)
class Row:
    """One record read from a file.

    Attributes:
        values: Field name -> value (strings for CSV/TSV, any JSON value for JSON Lines).
        path: The file it came from.
        line: The 1-based line the record starts on.
    """

    values: dict[str, Any]
    path: str
    line: int | None

    @property
    def source(self) -> str:
        """``"path:line"`` (or just the path when the line is unknown)."""
        return self.path if self.line is None else f"{self.path}:{self.line}"

    def error(self, reason: str) -> DataError:
        """Build a :class:`DataError` located at this row."""
        return DataError(reason, path=self.path, line=self.line)


def read_bytes(path: str | os.PathLike) -> bytes:
    """Return the raw bytes of ``path``, decompressing ``.gz`` / ``.bz2`` / ``.xz`` files.

    Raises:
        DataError: The file does not exist, is a directory, or cannot be read or decompressed.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", path=str(p))
    if p.is_dir():
        raise DataError("is a directory, expected a file", path=str(p))
    try:
        data = p.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read file: {err}", path=str(p)) from err
    decompress = _DECOMPRESS.get(p.suffix.lower())
    if decompress is not None:
        try:
            data = decompress(data)
        except (OSError, EOFError, ValueError, lzma.LZMAError) as err:
            raise DataError(f"cannot decompress {p.suffix} file: {err}", path=str(p)) from err
    return data


def _is_ascii_compatible(encoding: str) -> bool:
    """Whether a newline byte always means a newline in ``encoding`` (false for UTF-16/32)."""
    try:
        return "\n".encode(encoding) == b"\n" and "a\n".encode(encoding) == b"a\n"
    except (LookupError, UnicodeError):
        return False


def _decode_hint(encoding: str) -> str:
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        return "pass --encoding latin-1 (or the file's real encoding) if the file is not UTF-8"
    return "pass --encoding with the file's real encoding"


def decode_lines(data: bytes, path: str, *, encoding: str = "utf-8") -> list[str]:
    r"""Decode ``data`` line by line; element ``i`` of the result is line ``i + 1``.

    Lines end at ``\n``; a trailing ``\r`` (Windows line ends) is removed, and a UTF-8 byte
    order mark at the start of the file is skipped. Decoding line by line lets an error name
    the exact line.

    Args:
        data: The file contents.
        path: The file name, for messages.
        encoding: Any Python codec name (``"utf-8"``, ``"latin-1"``, ``"cp1252"``...).

    Raises:
        DataError: Unknown encoding, or bytes that are not valid in ``encoding``.
    """
    try:
        codecs.lookup(encoding)
    except LookupError as err:
        raise DataError(f"unknown encoding {encoding!r}", path=path) from err
    if not _is_ascii_compatible(encoding):
        # UTF-16/32: newline bytes are not b"\n", so decode the whole text and locate errors.
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as err:
            line = data[: err.start].decode(encoding, errors="replace").count("\n") + 1
            raise DataError(
                f"cannot decode bytes {data[err.start : err.end]!r} as {encoding}; "
                f"{_decode_hint(encoding)}",
                path=path,
                line=line,
            ) from err
        return [s.removesuffix("\r") for s in text.removesuffix("\n").split("\n")] if text else []
    if data.startswith(codecs.BOM_UTF8) and codecs.lookup(encoding).name.startswith("utf-8"):
        data = data[len(codecs.BOM_UTF8) :]
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # the file ends with a newline: no extra empty line
    lines = []
    for number, raw in enumerate(raw_lines, start=1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        try:
            lines.append(raw.decode(encoding))
        except UnicodeDecodeError as err:
            raise DataError(
                f"cannot decode bytes {raw[err.start : err.end]!r} (byte {err.start + 1} of the "
                f"line) as {encoding}; {_decode_hint(encoding)}",
                path=path,
                line=number,
            ) from err
    return lines


def read_lines(path: str | os.PathLike, *, encoding: str = "utf-8") -> list[str]:
    """Read and decode a text file; element ``i`` of the result is line ``i + 1``.

    Raises:
        DataError: Missing file, undecodable bytes, or a file with no non-blank line.
    """
    path = str(path)
    lines = decode_lines(read_bytes(path), path, encoding=encoding)
    if not any(line.strip() for line in lines):
        raise DataError("file is empty (no non-blank line)", path=path)
    return lines


def parse_label_sentence(
    lines: Sequence[str],
    path: str,
    *,
    label_column: str = "label",
    text_column: str = "sentence",
) -> list[Row]:
    """Parse ``label sentence`` lines: the first whitespace separates label and sentence.

    Args:
        lines: Decoded lines (line ``i + 1`` at index ``i``).
        path: File name, for messages.
        label_column: Field name to store the label under.
        text_column: Field name to store the sentence under.

    Returns:
        One row per non-blank line, with the label and the stripped sentence (possibly empty;
        :func:`get_text` reports empty text).
    """
    rows = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        label, _, text = stripped.partition(" ")
        if "\t" in label:  # tolerate "label<TAB>sentence"
            label, _, rest = label.partition("\t")
            text = f"{rest} {text}" if text else rest
        rows.append(Row({label_column: label, text_column: text.strip()}, path, number))
    return rows


def parse_delimited(
    lines: Sequence[str], path: str, *, delimiter: str
) -> tuple[list[str], list[Row]]:
    r"""Parse CSV (``delimiter=","``) or TSV (``"\t"``) lines whose first record is a header.

    CSV follows RFC 4180 quoting, so a quoted field may span lines (the row's line is the one
    it starts on). TSV is read without quoting, as GLUE's ``.tsv`` files expect: a ``"`` is an
    ordinary character there.

    Returns:
        The header and one row per non-blank record.

    Raises:
        DataError: No header, an empty or duplicate column name, a record with the wrong number
            of fields, or a CSV syntax error.
    """
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader((line + "\n" for line in lines), delimiter=delimiter, quoting=quoting)
    header: list[str] | None = None
    header_line = 0
    rows: list[Row] = []
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            raise DataError(
                f"malformed {_kind(delimiter)} record: {err}", path=path, line=start
            ) from err
        line, start = start, reader.line_num + 1
        if not record or (len(record) == 1 and not record[0].strip()):
            continue  # blank line
        if header is None:
            header = [name.strip() for name in record]
            header_line = line
            if any(not name for name in header):
                raise DataError(f"empty column name in header {header}", path=path, line=line)
            duplicates = sorted({name for name in header if header.count(name) > 1})
            if duplicates:
                raise DataError(
                    f"duplicate column name(s) {duplicates} in header", path=path, line=line
                )
            continue
        if len(record) != len(header):
            raise DataError(
                f"expected {len(header)} fields (header on line {header_line}: {header}), "
                f"found {len(record)}",
                path=path,
                line=line,
            )
        rows.append(Row(dict(zip(header, record, strict=True)), path, line))
    if header is None:
        raise DataError("file is empty (no header row)", path=path)
    return header, rows


def _kind(delimiter: str) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def parse_json_lines(lines: Sequence[str], path: str) -> tuple[list[str], list[Row]]:
    """Parse JSON Lines: one JSON object per non-blank line.

    Returns:
        The keys in order of first appearance, and one row per object.

    Raises:
        DataError: A line that is not valid JSON or not a JSON object.
    """
    columns: dict[str, None] = {}
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                f"malformed JSON: {err.msg} (column {err.colno})", path=path, line=number
            ) from err
        if not isinstance(obj, dict):
            raise DataError(
                f"expected a JSON object, found {type(obj).__name__}", path=path, line=number
            )
        columns.update(dict.fromkeys(obj))
        rows.append(Row(obj, path, number))
    return list(columns), rows


def parse_json_array(lines: Sequence[str], path: str) -> tuple[list[str], list[Row]]:
    """Parse a JSON document that is one array of objects, keeping each object's line number.

    Raises:
        DataError: Malformed JSON (with its line) or an element that is not an object.
    """
    text = "\n".join(lines)
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    columns: dict[str, None] = {}
    rows = []

    def skip_space(i: int) -> int:
        while i < len(text) and text[i].isspace():
            i += 1
        return i

    def fail(message: str, at: int) -> DataError:
        return DataError(f"malformed JSON: {message}", path=path, line=text.count("\n", 0, at) + 1)

    pos = skip_space(pos)
    if pos < len(text) and text[pos] == "]":
        pos += 1
    else:
        while True:
            pos = skip_space(pos)
            try:
                obj, end = decoder.raw_decode(text, pos)
            except json.JSONDecodeError as err:
                raise DataError(
                    f"malformed JSON: {err.msg} (column {err.colno})", path=path, line=err.lineno
                ) from err
            line = text.count("\n", 0, pos) + 1
            if not isinstance(obj, dict):
                raise DataError(
                    f"expected a JSON object, found {type(obj).__name__}", path=path, line=line
                )
            columns.update(dict.fromkeys(obj))
            rows.append(Row(obj, path, line))
            pos = skip_space(end)
            if pos < len(text) and text[pos] == ",":
                pos += 1
            elif pos < len(text) and text[pos] == "]":
                pos += 1
                break
            else:
                raise fail("expected ',' or ']' after an array element", pos)
    if skip_space(pos) != len(text):
        raise fail("extra data after the array", skip_space(pos))
    return list(columns), rows


def infer_format(path: str | os.PathLike) -> Format:
    """Choose the table format from the file extension (ignoring ``.gz`` / ``.bz2`` / ``.xz``).

    Raises:
        DataError: An extension that is not ``.csv``, ``.tsv``, ``.jsonl`` or ``.json``.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in _DECOMPRESS:
        suffix = Path(p.stem).suffix.lower()
    try:
        return FORMAT_BY_SUFFIX[suffix]
    except KeyError:
        known = ", ".join(sorted(FORMAT_BY_SUFFIX))
        raise DataError(
            f"unknown file format {suffix or '(no extension)'!r}; expected one of {known}",
            path=str(p),
        ) from None


def read_table(
    path: str | os.PathLike, *, encoding: str = "utf-8", fmt: Format | None = None
) -> tuple[list[str], list[Row]]:
    """Read a CSV / TSV / JSON Lines / JSON file into rows.

    Args:
        path: The file.
        encoding: Text encoding of the file.
        fmt: Format; by default chosen from the extension (:func:`infer_format`).

    Returns:
        The column names (CSV/TSV header, or JSON keys in order of first appearance) and the rows.

    Raises:
        DataError: Any problem with the file, named with its line.
    """
    fmt = fmt or infer_format(path)
    path = str(path)
    lines = read_lines(path, encoding=encoding)
    if fmt == "csv":
        return parse_delimited(lines, path, delimiter=",")
    if fmt == "tsv":
        return parse_delimited(lines, path, delimiter="\t")
    if fmt == "json" and next(line for line in lines if line.strip()).lstrip().startswith("["):
        return parse_json_array(lines, path)
    return parse_json_lines(lines, path)


def require_columns(
    path: str, columns: Iterable[str], required: Iterable[str | None], *, line: int | None = None
) -> None:
    """Check that every name in ``required`` (``None`` entries ignored) is in ``columns``.

    Raises:
        DataError: Naming the file, the missing column(s) and the columns present.
    """
    present = list(columns)
    missing = [name for name in required if name is not None and name not in present]
    if missing:
        names = ", ".join(repr(m) for m in missing)
        raise DataError(f"missing column {names}; columns present: {present}", path=path, line=line)


def get_text(row: Row, column: str) -> str:
    """Return the stripped, non-empty text in ``row[column]``.

    Raises:
        DataError: The column is absent from this row, not a string, or empty.
    """
    if column not in row.values:
        raise row.error(f"missing column {column!r}; columns present: {list(row.values)}")
    value = row.values[column]
    if not isinstance(value, str):
        raise row.error(f"text in column {column!r} must be a string, found {type(value).__name__}")
    text = value.strip()
    if not text:
        raise row.error(f"empty text in column {column!r}")
    return text
