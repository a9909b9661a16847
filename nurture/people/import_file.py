"""Reading an import's CSV file: its text, its header, and its records with the line each starts on.

The whole file is decoded before anything is imported, so a file that is not UTF-8 is refused with the
line of the first bad byte before a single row is written (a half-imported file is worse than none).
Commas, semicolons (spreadsheets in much of Europe) and tabs are recognised by csv.Sniffer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SNIFF_BYTES = 16_384


class UnreadableFile(ValueError):
    """The file cannot be imported at all (not text, no header): nothing was read into the database."""


@dataclass(frozen=True)
class CsvRow:
    line: int  # where the record starts in the file (the header is line 1)
    cells: list[str]
    error: str | None = None  # the csv module could not read this record


@dataclass(frozen=True)
class CsvFile:
    name: str  # as shown in reports: FILE:line: reason
    text: str
    dialect: type[csv.Dialect]
    headers: tuple[str, ...]

    @property
    def lines(self) -> int:
        """Physical lines, for a progress bar (a quoted cell may span several)."""
        return self.text.count("\n") + (0 if self.text.endswith("\n") else 1)

    def rows(self) -> Iterator[CsvRow]:
        """Every record after the header; blank lines are left out, an unreadable record is a row with
        its `error` (the rows after it are still read)."""
        reader = csv.reader(io.StringIO(self.text), self.dialect)
        next(reader, None)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield CsvRow(start, [], f"unreadable CSV record: {exc}")
                if reader.line_num < start:  # the reader did not move on: nothing more can be read
                    return
                continue
            if any(cell.strip() for cell in cells):
                yield CsvRow(start, cells)

    def first_rows(self, count: int) -> list[CsvRow]:
        rows: list[CsvRow] = []
        for row in self.rows():
            rows.append(row)
            if len(rows) == count:
                break
        return rows


def read_csv(path: Path, name: str | None = None) -> CsvFile:
    return parse_csv(path.read_bytes(), name or path.name)


def parse_csv(data: bytes, name: str) -> CsvFile:
    """The file, decoded and its header read. Raises UnreadableFile saying why, with the line."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UnreadableFile(f"{name}:{line}: not UTF-8 text (save the sheet as 'CSV UTF-8')") from None
    if "\x00" in text:
        line = text[:text.index("\x00")].count("\n") + 1
        raise UnreadableFile(f"{name}:{line}: a NUL byte: this is not a CSV text file") from None
    dialect = _dialect(text)
    try:
        header = next(csv.reader(io.StringIO(text), dialect), None)
    except csv.Error as exc:
        raise UnreadableFile(f"{name}:1: unreadable header: {exc}") from None
    if not header or not any(h.strip() for h in header):
        raise UnreadableFile(f"{name}:1: no header row (the first line names the columns, e.g. email,first_name)")
    headers = tuple(h.strip() or f"column {i + 1}" for i, h in enumerate(header))
    return CsvFile(name, text, dialect, headers)


def _dialect(text: str) -> type[csv.Dialect]:
    """Excel's CSV with the delimiter the sniffer sees in the header line. Only the delimiter is taken
    from it: its guesses at quoting go wrong on short samples, and every spreadsheet quotes with '"'."""
    try:
        delimiter = csv.Sniffer().sniff(text[:SNIFF_BYTES].split("\n", 1)[0], delimiters=",;\t").delimiter
    except csv.Error:  # one column, or nothing to tell by: plain commas
        return csv.excel
    return type("Sniffed", (csv.excel,), {"delimiter": delimiter})
