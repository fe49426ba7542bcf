"""Reading input files: ``.csv`` exports, block dumps (``.jsonl``, ``.jsonl.gz``, ``.json.gz``)
and ``.zip`` archives of either (docs/input-format.md#file-types).

Nothing is ever extracted to a path: archive members are streamed, so a member name is never
used as a path (an inner archive is copied into an anonymous spooled temporary file, in
memory up to 16 MiB). Archives with path-like member names (``../``, absolute paths),
archives nested deeper than one level, and archives that expand far beyond their size are
refused whole with :class:`FileRefused`, before anything large is read.

Whatever the input, the readers raise nothing but :class:`FileRefused`: symbolic links are
refused, never followed; a file that cannot be opened or read is refused with the reason.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import gzip
import hashlib
import io
import os
import re
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from election_pipeline.ingest.block_dump import DumpItem, is_block_dump_member, is_block_dump_name, read_blocks

IGNORED_SUFFIXES = (".tmp", ".part")
_CONTRACT_ID = re.compile(r"^[A-Za-z0-9]+$")
_SNIFF_BYTES = 8192
_RATIO_CHECK_FLOOR = 64 * 1024 * 1024  # small archives may compress very well; only large ones are bombs
_READ_CHUNK = 1024 * 1024
_SPOOL_MEMORY_BYTES = 16 * 1024 * 1024  # an inner archive larger than this is spooled to a temporary file
_MAX_REASON_CHARS = 300
#: What a file of another kind is told.
NOT_AN_INPUT = "not a .csv, .zip, .jsonl, .jsonl.gz or .json.gz file"
# Only these are read: zipfile's bzip2 and LZMA readers decompress a whole read at once,
# whatever the member's declared size, so a few kilobytes could become gigabytes in memory.
_READABLE_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}
_METHOD_NAMES = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "LZMA", 9: "deflate64", 99: "AES encryption"}
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


#: What a damaged archive or a truncated file raises while it is read.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError)
# What zipfile.ZipFile() raises for bytes that are not a readable archive (a lying end record,
# a member name that is not UTF-8 although flagged so, a "zip file version" from the future).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, ValueError, EOFError, struct.error, NotImplementedError)
# What reading a damaged member raises (a local header that contradicts the central directory, ...).
_MEMBER_ERRORS = (*READ_ERRORS, ValueError, struct.error, RuntimeError)


class FileRefused(Exception):
    """The whole file cannot be processed; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _FileVanished(FileRefused, FileNotFoundError):
    """The file is gone (taken by a concurrent run, say): a refusal that callers may still
    catch as :class:`FileNotFoundError`."""


@dataclass(slots=True)
class SourceLine:
    """One physical line of an export, with where it came from.

    ``source`` names the file, and for archives the member (``archive.zip::member.csv``).
    ``text`` is ``None`` when the bytes are not valid UTF-8; ``raw`` then keeps them readable.
    ``raw`` never holds a NUL character (the database refuses it in text): each is written as
    the four characters ``\\x00``. ``text`` keeps it, so the line parser rejects the line.
    """

    source: str
    contract_id: str
    line_number: int
    text: str | None
    raw: str


def is_candidate(path: Path) -> bool:
    """True for entries the pipeline should look at: regular files and symbolic links (which
    :func:`file_sha256` and :func:`iter_export_lines` refuse with a reason, without following
    them), unless hidden or a partial copy (``*.tmp``, ``*.part``). Folders, FIFOs, sockets and
    devices are not candidates (see :func:`unread_entries`)."""
    name = path.name
    if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
        return False
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) or stat.S_ISLNK(mode)


def unread_entries(input_dir: Path) -> list[tuple[Path, str]]:
    """The entries of ``input_dir``'s top level that are never read, in name order, each with
    why: folders, FIFOs, sockets and devices (hidden names excluded). Nothing is opened (opening
    a FIFO would block). A missing folder has none."""
    try:
        with os.scandir(input_dir) as scan:
            entries = sorted(scan, key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out: list[tuple[Path, str]] = []
    for entry in entries:
        name = entry.name
        if name.startswith("."):
            continue
        try:
            mode = entry.stat(follow_symlinks=False).st_mode
        except FileNotFoundError:
            continue  # gone since the folder was listed
        if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
            continue
        if stat.S_ISDIR(mode):
            reason = f"{name} is a folder: sub-folders are not read; it is left where it is"
        else:
            reason = f"{name} is not a regular file (a FIFO, socket or device); it is left where it is"
        out.append((input_dir / name, reason))
    return out


def _symlink_refused(path: Path) -> FileRefused:
    try:
        target = os.readlink(path)
    except OSError:
        target = "a target that cannot be read"
    return FileRefused(
        f"{path.name} is a symbolic link (to {target}); links are not followed: "
        "copy the file itself into the drop folder"
    )


def _unreadable(name: str, err: OSError) -> FileRefused:
    if isinstance(err, PermissionError) or err.errno == errno.EACCES:
        return FileRefused(f"{name} cannot be read: permission denied")
    reason = f"{name} cannot be read: {err.strerror or err}"
    return _FileVanished(reason) if isinstance(err, FileNotFoundError) else FileRefused(reason)


def _not_regular(name: str, mode: int) -> FileRefused:
    if stat.S_ISDIR(mode):
        return FileRefused(f"{name} cannot be read: it is a folder, not a file")
    return FileRefused(f"{name} cannot be read: it is not a regular file (a FIFO, socket or device)")


def _open_regular(path: Path) -> IO[bytes]:
    """Open a regular file for reading without following a symbolic link, and without
    blocking on a FIFO put in its place; anything else is refused."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as err:
        raise _unreadable(path.name, err) from err
    if stat.S_ISLNK(mode):
        raise _symlink_refused(path)
    if not stat.S_ISREG(mode):
        raise _not_regular(path.name, mode)
    try:
        fd = os.open(path, _OPEN_FLAGS)  # O_NOFOLLOW: a link swapped in since the check fails with ELOOP
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise _symlink_refused(path) from err
        raise _unreadable(path.name, err) from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _not_regular(path.name, mode)
        os.set_blocking(fd, True)
        return open(fd, "rb", closefd=True)  # the caller closes it
    except BaseException:
        os.close(fd)
        raise


def file_sha256(path: Path) -> str:
    """Content hash used by the file ledger: the same bytes are never counted twice.

    Raises :class:`FileRefused` for a symbolic link (never followed), a file that cannot be
    opened or read, or an entry that is not a regular file."""
    digest = hashlib.sha256()
    with _open_regular(path) as fh:
        try:
            for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
                digest.update(chunk)
        except OSError as err:
            raise _unreadable(path.name, err) from err
    return digest.hexdigest()


@dataclass(slots=True)
class FileDigest:
    """What one read of a file tells before it is parsed: its SHA-256 (the ledger's key), its
    size, and whether it is plain UTF-8 text with no NUL byte (DuckDB can then read it itself)."""

    sha256: str
    size: int
    utf8_text: bool
    #: The file's modification time when it was opened (``st_mtime_ns``): a file read again
    #: later (by DuckDB) is checked to be the one that was hashed.
    mtime_ns: int = 0


def file_digest(path: Path) -> FileDigest:
    """:func:`file_sha256`, the size, and whether the whole content is valid UTF-8 without NUL
    bytes, in one pass. Raises :class:`FileRefused` as :func:`file_sha256` does."""
    digest = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    size = 0
    text = True
    with _open_regular(path) as fh:
        mtime_ns = os.fstat(fh.fileno()).st_mtime_ns
        try:
            for chunk in iter(lambda: fh.read(_READ_CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                if text:
                    if b"\x00" in chunk:
                        text = False
                    elif not chunk.isascii():
                        try:
                            decoder.decode(chunk)
                        except UnicodeDecodeError:
                            text = False
            if text:
                decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            text = False
        except OSError as err:
            raise _unreadable(path.name, err) from err
    return FileDigest(digest.hexdigest(), size, text, mtime_ns)


def contract_id_from_name(name: str) -> str:
    """The contract (constituency) id: the file name up to its first ``_`` (docs/input-format.md#file-names)."""
    base = PurePosixPath(name).name
    stem = _name_stem(base)
    if not _CONTRACT_ID.match(stem):
        raise FileRefused(
            f"cannot tell the contract id from the file name {base!r}: expected "
            "'<contractId>_<date>_<hours>.csv' with a base58 contract id"
        )
    return stem


def _name_stem(base: str) -> str:
    """The part of a file name that names its contract: up to the first ``_``, else up to
    the extension."""
    return base.split("_", 1)[0] if "_" in base else base.rsplit(".", 1)[0]


#: A contract id as the chain writes it: base58 (no 0, O, I or l), 32 characters or more.
_BASE58_ID = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{32,}$")


def whole_voting_contract(archive_name: str) -> str | None:
    """The contract of a whole-voting archive, ``<contractId>.zip`` or
    ``<contractId>_dump.zip`` (docs/input-format.md#other-sources), or ``None`` for
    any other archive name (whose members' names then give their contracts)."""
    base = PurePosixPath(archive_name).name
    if not base.lower().endswith(".zip"):
        return None
    stem = base[: -len(".zip")]
    if stem.lower().endswith("_dump"):
        stem = stem[: -len("_dump")]
    return stem if _BASE58_ID.match(stem) else None


def _member_contract(member_name: str, archive_contract: str | None, source: str) -> str:
    """The contract of an archive member's lines: the archive's for a whole-voting archive
    (a member named for another contract is refused), else the member name's."""
    if archive_contract is None:
        return contract_id_from_name(member_name)
    stem = _name_stem(PurePosixPath(member_name).name)
    if _BASE58_ID.match(stem) and stem != archive_contract:
        raise FileRefused(
            f"{source} is refused: the archive holds the whole voting of contract {archive_contract} "
            f"(by its name), but this member is named for contract {stem}"
        )
    return archive_contract


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
        if b"\x00" in raw_line:
            raw = raw.replace("\x00", "\\x00")  # text keeps it: the line parser rejects the line
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


def _check_readable_member(source: str, info: zipfile.ZipInfo) -> None:
    if info.flag_bits & 0x41:  # bit 0: encrypted, bit 6: strong encryption
        raise FileRefused(f"{source} is encrypted (password-protected); it cannot be read")
    if info.flag_bits & 0x20:
        raise FileRefused(f"{source} holds compressed patched data (zip flag bit 5), which cannot be read")
    if info.compress_type not in _READABLE_METHODS:
        method = _METHOD_NAMES.get(info.compress_type, "unknown")
        raise FileRefused(
            f"{source} is compressed with method {info.compress_type} ({method}); "
            "only stored or deflated members are read"
        )


@dataclass(slots=True)
class _Member:
    source: str
    name: str
    info: zipfile.ZipInfo
    archive: zipfile.ZipFile


@dataclass(slots=True)
class _Budget:
    """The declared sizes of everything an archive expands to, checked as they are added."""

    archive: str
    size: int  # of the file on disk
    max_total: int
    max_ratio: int
    total: int = 0

    def add(self, declared: int) -> None:
        self.total += declared
        if self.total > self.max_total:
            raise FileRefused(
                f"{self.archive} is refused: it expands to more than {self.max_total:,} bytes "
                "(ELECTION_ZIP_MAX_TOTAL_BYTES); possible zip bomb"
            )
        if self.total > _RATIO_CHECK_FLOOR and self.total / self.size > self.max_ratio:
            raise FileRefused(
                f"{self.archive} is refused: {self.size:,} bytes expand to {self.total:,} bytes "
                f"(more than {self.max_ratio}x, ELECTION_ZIP_MAX_RATIO); possible zip bomb"
            )


def _open_inner_archive(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, source: str, keep: contextlib.ExitStack
) -> zipfile.ZipFile:
    """Copy an inner archive (its size already checked) into a spooled temporary file and open it."""
    spool = keep.enter_context(tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY_BYTES))  # noqa: SIM115
    copied = 0
    with archive.open(info) as member:
        while chunk := member.read(_READ_CHUNK):
            copied += len(chunk)
            if copied > info.file_size:
                raise FileRefused(
                    f"{source} is refused: it holds more than the {info.file_size:,} bytes its header "
                    "declares; possible zip bomb"
                )
            spool.write(chunk)
    spool.seek(0)
    try:
        inner = zipfile.ZipFile(spool)
    except _ARCHIVE_ERRORS as exc:
        raise FileRefused(f"{source} is not a readable zip archive: {exc}") from exc
    return keep.enter_context(inner)


def _plan_archive(
    archive: zipfile.ZipFile,
    label: str,
    depth: int,
    budget: _Budget,
    notes: list[str],
    keep: contextlib.ExitStack,
) -> list[_Member]:
    infos = archive.infolist()
    # First every name and declared size of this level, so a refusal comes before any read.
    for info in infos:
        _check_member_name(label, info.filename)
        if info.filename.endswith("/"):  # a folder; not is_dir(), which fails on an empty name
            continue
        budget.add(info.file_size)
        lower = info.filename.lower()
        if lower.endswith(".zip") and depth >= 1:
            raise FileRefused(f"{label} is refused: archive {info.filename!r} is nested more than one level deep")
        if lower.endswith((".zip", ".csv")) or is_block_dump_member(lower):
            _check_readable_member(f"{label}::{info.filename}", info)
    members: list[_Member] = []
    for info in infos:
        if info.filename.endswith("/"):
            continue
        lower = info.filename.lower()
        source = f"{label}::{info.filename}"
        if lower.endswith(".zip"):
            inner = _open_inner_archive(archive, info, source, keep)
            members.extend(_plan_archive(inner, source, depth + 1, budget, notes, keep))
        elif lower.endswith(".csv") or is_block_dump_member(lower):
            members.append(_Member(source, info.filename, info, archive))
        else:
            notes.append(f"skipped {source}: not a .csv file or a block dump (.jsonl, .json)")
    return members


def iter_export_lines(
    path: Path,
    *,
    max_total_bytes: int = 4 * 1024**3,
    max_ratio: int = 200,
    notes: list[str] | None = None,
) -> Iterator[SourceLine]:
    """Yield every non-blank line of a ``.csv`` export or of the ``.csv`` members of a ``.zip``
    (the export lines of :func:`iter_input`, without the items of block dumps)."""
    for item in iter_input(path, max_total_bytes=max_total_bytes, max_ratio=max_ratio, notes=notes):
        if isinstance(item, SourceLine):
            yield item


def iter_input(
    path: Path,
    *,
    max_total_bytes: int = 4 * 1024**3,
    max_ratio: int = 200,
    notes: list[str] | None = None,
) -> Iterator[SourceLine | DumpItem]:
    """Yield every non-blank line of a ``.csv`` export, every item of a block dump (its
    transactions, problems and blocks: :mod:`election_pipeline.ingest.block_dump`), and the
    same for each ``.csv`` or block-dump member of a ``.zip``.

    Raises :class:`FileRefused` (before any line of an archive is yielded) for archives that
    must be refused, for files that are binary or named so that no contract id can be read,
    for symbolic links (never followed) and for files that cannot be read; and, whatever the
    input, nothing else. ``notes`` collects remarks such as skipped members.
    """
    try:
        yield from _export_lines(path, max_total_bytes, max_ratio, notes if notes is not None else [])
    except FileRefused:
        raise
    except Exception as exc:  # hostile input must end as a refused file, never as a crash
        reason = f"{path.name} cannot be read: {type(exc).__name__}: {exc}"
        raise FileRefused(reason.replace("\x00", "\\x00")[:_MAX_REASON_CHARS]) from exc


class _RatioGuard(io.RawIOBase):
    """A raw stream over a decompressing one that refuses, as a likely bomb, to expand past
    64 MiB and ``max_ratio`` times the compressed size."""

    def __init__(self, inner: io.BufferedIOBase, name: str, size: int, max_ratio: int) -> None:
        self._inner = inner
        self._name = name
        self._size = max(size, 1)
        self._max_ratio = max_ratio
        self.total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        self.total += len(data)
        if self.total > _RATIO_CHECK_FLOOR and self.total / self._size > self._max_ratio:
            raise FileRefused(
                f"{self._name} is refused: {self._size:,} bytes expand to more than {self.total:,} bytes "
                f"(more than {self._max_ratio}x, ELECTION_ZIP_MAX_RATIO); possible gzip bomb"
            )
        return len(data)


def _dump_items(path: Path, max_ratio: int) -> Iterator[DumpItem]:
    """The items of a block dump file, decompressed as it is read when it is gzipped."""
    with _open_regular(path) as fh:
        try:
            if path.name.lower().endswith(".gz"):
                with gzip.GzipFile(fileobj=fh, mode="rb") as unzipped:
                    guard = _RatioGuard(unzipped, path.name, os.fstat(fh.fileno()).st_size, max_ratio)
                    yield from read_blocks(io.BufferedReader(guard, _READ_CHUNK), path.name)
            else:
                yield from read_blocks(fh, path.name)
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise FileRefused(f"{path.name} is damaged and cannot be read: {err}") from err
        except OSError as err:
            raise _unreadable(path.name, err) from err


def _export_lines(
    path: Path, max_total_bytes: int, max_ratio: int, notes: list[str]
) -> Iterator[SourceLine | DumpItem]:
    suffix = path.suffix.lower()
    if is_block_dump_name(path.name):
        yield from _dump_items(path, max_ratio)
        return
    if suffix == ".csv":
        contract = contract_id_from_name(path.name)
        with _open_regular(path) as fh:
            try:
                yield from _lines(fh, path.name, contract)
            except OSError as err:
                raise _unreadable(path.name, err) from err
        return
    if suffix != ".zip":
        raise FileRefused(f"{path.name} is {NOT_AN_INPUT}")
    with contextlib.ExitStack() as keep:
        fh = keep.enter_context(_open_regular(path))
        try:
            size = max(os.fstat(fh.fileno()).st_size, 1)
            archive = keep.enter_context(zipfile.ZipFile(fh))
        except OSError as err:
            if isinstance(err, PermissionError) or err.errno == errno.EIO:
                raise _unreadable(path.name, err) from err
            # e.g. a seek before the start of the file, for an end record that lies
            raise FileRefused(f"{path.name} is not a readable zip archive: {err}") from err
        except _ARCHIVE_ERRORS as exc:
            raise FileRefused(f"{path.name} is not a readable zip archive: {exc}") from exc
        budget = _Budget(path.name, size, max_total_bytes, max_ratio)
        try:
            members = _plan_archive(archive, path.name, 0, budget, notes, keep)
        except _MEMBER_ERRORS as exc:
            raise FileRefused(f"{path.name} is damaged and cannot be read: {exc}") from exc
        if not members:
            raise FileRefused(f"{path.name} holds no .csv file (nor a block dump: .jsonl, .json)")
        archive_contract = whole_voting_contract(path.name)
        contracts = [
            (m, None if is_block_dump_member(m.name) else _member_contract(m.name, archive_contract, m.source))
            for m in members
        ]
        try:
            for member, _ in contracts:  # refuse binary members before any line is yielded
                with member.archive.open(member.info) as stream:
                    if b"\x00" in stream.read(_SNIFF_BYTES):
                        raise FileRefused(
                            f"{member.source} is a binary file (it contains NUL bytes), not a text export"
                        )
        except _MEMBER_ERRORS as exc:
            raise FileRefused(f"{path.name} is damaged and cannot be read: {exc}") from exc
        for member, member_contract in contracts:
            try:
                with member.archive.open(member.info) as stream:
                    if member_contract is None:
                        yield from read_blocks(stream, member.source)
                    else:
                        yield from _lines(stream, member.source, member_contract)
            except _MEMBER_ERRORS as exc:
                raise FileRefused(f"{member.source} is damaged and cannot be read: {exc}") from exc
