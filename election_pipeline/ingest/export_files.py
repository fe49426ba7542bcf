"""Reading export files: ``.csv`` files and ``.zip`` archives of them (docs/input-format.md#file-types).

Nothing is ever extracted to disk: archive members are streamed from memory, so a member
name is never used as a path. Archives with path-like member names (``../``, absolute
paths), archives nested deeper than one level, and archives that expand far beyond their
size are refused whole with :class:`FileRefused`.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

IGNORED_SUFFIXES = (".tmp", ".part")
_CONTRACT_ID = re.compile(r"^[A-Za-z0-9]+$")
_SNIFF_BYTES = 8192
_RATIO_CHECK_FLOOR = 64 * 1024 * 1024  # small archives may compress very well; only large ones are bombs


#: What a damaged archive or a truncated file raises while it is read.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)


class FileRefused(Exception):
    """The whole file cannot be processed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class SourceLine:
    """One physical line of an export, with where it came from.

    ``source`` names the file, and for archives the member (``archive.zip::member.csv``).
    ``text`` is ``None`` when the bytes are not valid UTF-8; ``raw`` then keeps them readable.
    """

    source: str
    contract_id: str
    line_number: int
    text: str | None
    raw: str


def is_candidate(path: Path) -> bool:
    """True for files the pipeline should look at (not hidden, not a partial copy)."""
    name = path.name
    return path.is_file() and not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)


def file_sha256(path: Path) -> str:
    """Content hash used by the file ledger: the same bytes are never counted twice."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1024 * 1024), b""):
            digest.update(chunk)
    return digest.hexdigest()


def contract_id_from_name(name: str) -> str:
    """The contract (constituency) id: the file name up to its first ``_`` (docs/input-format.md#file-names)."""
    base = PurePosixPath(name).name
    stem = base.split("_", 1)[0] if "_" in base else base.rsplit(".", 1)[0]
    if not _CONTRACT_ID.match(stem):
        raise FileRefused(
            f"cannot tell the contract id from the file name {base!r}: expected "
            "'<contractId>_<date>_<hours>.csv' with a base58 contract id"
        )
    return stem


def _lines(stream: IO[bytes], source: str, contract_id: str) -> Iterator[SourceLine]:
    head = stream.read(_SNIFF_BYTES)
    if b"\x00" in head:
        raise FileRefused(f"{source} is a binary file (it contains NUL bytes), not a text export")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    body = io.BufferedReader(_Prepend(head, stream))
    for number, read_line in enumerate(body, start=1):
        raw_line = read_line.rstrip(b"\r\n")
        try:
            raw = raw_line.decode("utf-8")
            text: str | None = raw
        except UnicodeDecodeError:
            text = None
            raw = raw_line.decode("utf-8", errors="backslashreplace")
        if text is not None and not text.strip():
            continue  # blank lines carry nothing
        yield SourceLine(source, contract_id, number, text, raw)


class _Prepend(io.RawIOBase):
    """A raw stream that yields ``head`` and then the rest of ``tail``."""

    def __init__(self, head: bytes, tail: IO[bytes]) -> None:
        self._head = head
        self._tail = tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._tail.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _check_member_name(archive: str, name: str) -> None:
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (len(name) > 1 and name[1] == ":"):
        raise FileRefused(
            f"{archive} is refused: member name {name!r} points outside the archive "
            "(path traversal); nothing was read from it"
        )


@dataclass(slots=True)
class _Member:
    source: str
    name: str
    info: zipfile.ZipInfo
    archive: zipfile.ZipFile


def _plan_archive(
    path: Path, archive: zipfile.ZipFile, label: str, depth: int, max_total: int, notes: list[str]
) -> tuple[list[_Member], int]:
    members: list[_Member] = []
    total = 0
    for info in archive.infolist():
        _check_member_name(label, info.filename)
        if info.is_dir():
            continue
        total += info.file_size
        if total > max_total:
            raise FileRefused(
                f"{label} is refused: it expands to more than {max_total:,} bytes "
                "(ELECTION_ZIP_MAX_TOTAL_BYTES); possible zip bomb"
            )
        lower = info.filename.lower()
        source = f"{label}::{info.filename}"
        if lower.endswith(".zip"):
            if depth >= 1:
                raise FileRefused(f"{label} is refused: archive {info.filename!r} is nested more than one level deep")
            inner_bytes = archive.read(info)
            try:
                inner = zipfile.ZipFile(io.BytesIO(inner_bytes))
            except zipfile.BadZipFile as exc:
                raise FileRefused(f"{source} is not a readable zip archive: {exc}") from exc
            sub, sub_total = _plan_archive(path, inner, source, depth + 1, max_total - total, notes)
            members.extend(sub)
            total += sub_total
        elif lower.endswith(".csv"):
            members.append(_Member(source, info.filename, info, archive))
        else:
            notes.append(f"skipped {source}: not a .csv file")
    return members, total


def iter_export_lines(
    path: Path,
    *,
    max_total_bytes: int = 4 * 1024**3,
    max_ratio: int = 200,
    notes: list[str] | None = None,
) -> Iterator[SourceLine]:
    """Yield every non-blank line of a ``.csv`` export or of the ``.csv`` members of a ``.zip``.

    Raises :class:`FileRefused` (before any line of an archive is yielded) for archives that
    must be refused, and for files that are binary or named so that no contract id can be read.
    ``notes`` collects remarks such as skipped non-CSV members.
    """
    notes = notes if notes is not None else []
    suffix = path.suffix.lower()
    if suffix == ".csv":
        contract = contract_id_from_name(path.name)
        with path.open("rb") as fh:
            yield from _lines(fh, path.name, contract)
        return
    if suffix != ".zip":
        raise FileRefused(f"{path.name} is not a .csv or .zip file")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FileRefused(f"{path.name} is not a readable zip archive: {exc}") from exc
    with archive:
        try:
            members, total = _plan_archive(path, archive, path.name, 0, max_total_bytes, notes)
        except READ_ERRORS as exc:
            raise FileRefused(f"{path.name} is damaged and cannot be read: {exc}") from exc
        size = max(path.stat().st_size, 1)
        if total > _RATIO_CHECK_FLOOR and total / size > max_ratio:
            raise FileRefused(
                f"{path.name} is refused: {size:,} bytes expand to {total:,} bytes "
                f"(more than {max_ratio}x, ELECTION_ZIP_MAX_RATIO); possible zip bomb"
            )
        if not members:
            raise FileRefused(f"{path.name} holds no .csv file")
        contracts = [(m, contract_id_from_name(m.name)) for m in members]
        try:
            for member, _ in contracts:  # refuse binary members before any line is yielded
                with member.archive.open(member.info) as fh:
                    if b"\x00" in fh.read(_SNIFF_BYTES):
                        raise FileRefused(
                            f"{member.source} is a binary file (it contains NUL bytes), not a text export"
                        )
        except READ_ERRORS as exc:
            raise FileRefused(f"{path.name} is damaged and cannot be read: {exc}") from exc
        for member, contract in contracts:
            try:
                with member.archive.open(member.info) as fh:
                    yield from _lines(fh, member.source, contract)
            except READ_ERRORS as exc:
                raise FileRefused(f"{member.source} is damaged and cannot be read: {exc}") from exc
