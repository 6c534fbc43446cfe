"""What the readers of users' text files (logs for fit-law and compare, prompt files for tasks)
agree on about encodings that Windows tools write."""

from __future__ import annotations

from pathlib import Path

# The UTF-8 byte-order mark Excel, Notepad and PowerShell put first: no part of the text.
BOM = b"\xef\xbb\xbf"
UTF16 = "UTF-16 text (what Windows PowerShell's > writes)"


def is_utf16(path_or_head: Path | bytes) -> bool:
    """Starts with a UTF-16 byte-order mark (either byte order)."""
    if isinstance(path_or_head, Path):
        with open(path_or_head, "rb") as f:
            path_or_head = f.read(2)
    return path_or_head[:2] in (b"\xff\xfe", b"\xfe\xff")
