"""One policy for reading text files that may not be valid UTF-8: replace and count.

Every file reader of logsight (log files, span files, CSV / NDJSON ML event files) decodes line
by line; a line with bytes that are not UTF-8 is decoded with U+FFFD replacement characters,
kept, and counted, and the reader says how many lines were affected and the first few line
numbers (``DecodeReport.message``). Nothing is dropped and nothing fails with a bare codec
error naming neither file nor line. (``logsight ingest`` goes further for the cluster: it also
keeps the exact bytes of such a line in base64.)
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SHOWN_LINES = 5


@dataclass
class DecodeReport:
    """Lines of one file that were not valid UTF-8 (decoded with U+FFFD replacements)."""

    path: Path
    lines: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.lines)

    @property
    def message(self) -> str | None:
        """What to tell the user, or None when every line was valid UTF-8."""
        if not self.lines:
            return None
        shown = ", ".join(str(n) for n in self.lines[:SHOWN_LINES])
        more = f" and {self.count - SHOWN_LINES} more" if self.count > SHOWN_LINES else ""
        return (f"{self.path}: {self.count} line(s) were not valid UTF-8 (line {shown}{more}); "
                "read with U+FFFD replacement characters")


def decode_line(raw: bytes) -> tuple[str, bool]:
    """(text, had invalid bytes) of one line's bytes."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True


def iter_lines(path: str | Path, report: DecodeReport | None = None
               ) -> Iterator[tuple[int, str]]:
    """(line number from 1, text without its line end) of every line of ``path``, decoded by
    the policy above; lines with invalid bytes are added to ``report``."""
    p = Path(path)
    opener = gzip.open if p.suffix.lower() == ".gz" else open
    with opener(p, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            text, bad = decode_line(raw.rstrip(b"\r\n"))
            if bad and report is not None:
                report.lines.append(number)
            yield number, text


def read_text(path: str | Path, report: DecodeReport | None = None) -> io.StringIO:
    """The whole file as text (for parsers that take a text stream, such as CSV), decoded by
    the policy above."""
    return io.StringIO("".join(text + "\n" for _, text in iter_lines(path, report)))


__all__ = ["DecodeReport", "decode_line", "iter_lines", "read_text"]
