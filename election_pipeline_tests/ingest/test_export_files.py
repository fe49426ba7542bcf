"""iter_export_lines / FileRefused: reading .csv and .zip exports (docs/input-format.md#file-types, #bad-input).

Real files in tmp_path; expectations worked out by hand in the comments.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import tracemalloc
import zipfile
from collections.abc import Generator
from pathlib import Path
from typing import IO, Any, cast

import pytest

from election_pipeline.ingest import export_files
from election_pipeline.ingest.export_files import (
    FileRefused,
    SourceLine,
    contract_id_from_name,
    file_sha256,
    is_candidate,
    iter_export_lines,
    unread_entries,
)
from election_pipeline.ingest.export_line import LineError, parse_line

GOOD = 'Tx{n};104;SIG;4;1725609600000;Key{n};0;;[{{"key":"operation","stringValue":"startVoting"}}];[];{{}};'


def good(n: int) -> str:
    return GOOD.format(n=n)


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def lines_of(path: Path, **kwargs) -> list[tuple[str, str, int, str | None, str]]:
    return [(l.source, l.contract_id, l.line_number, l.text, l.raw) for l in iter_export_lines(path, **kwargs)]


# --------------------------------------------------------------------------------------
# Names and candidates
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,expected",
    [
        (
            "AsrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHpM_2024-09-06_0800-0900.csv",
            "AsrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHpM",
        ),  # the part before the first '_'
        ("C1_anything_at_all.zip", "C1"),
        ("C1.csv", "C1"),  # no '_': the name without its extension
        ("outer.zip::dir/C7_x.csv", "C7"),  # only the last path component counts
    ],
)
def test_contract_id_from_name(name, expected):
    assert contract_id_from_name(name) == expected


@pytest.mark.parametrize("name", ["export-2024_09.csv", "_x.csv", "C 1_x.csv", "Ц1_x.csv"])
def test_contract_id_refused(name):
    with pytest.raises(FileRefused, match="cannot tell the contract id from the file name"):
        contract_id_from_name(name)


def test_is_candidate(tmp_path):
    names = ["C1_a.csv", "C1_b.csv.tmp", "C1_c.csv.part", ".C1_d.csv", "C1_e.zip"]
    for name in names:
        (tmp_path / name).write_text("x")
    (tmp_path / "subdir.csv").mkdir()
    kept = sorted(p.name for p in tmp_path.iterdir() if is_candidate(p))
    assert kept == ["C1_a.csv", "C1_e.zip"]  # .tmp/.part/hidden and directories are not candidates


def test_file_sha256(tmp_path):
    path = tmp_path / "C1_a.csv"
    data = b"abc\n" * 1_000_000  # 4 MB: more than one 1 MB read chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------
# .csv
# --------------------------------------------------------------------------------------


def test_csv_lines_numbers_blank_lines_bom_and_crlf(tmp_path):
    path = tmp_path / "C1_2024-09-06_0800-0900.csv"
    # BOM, CRLF endings, a blank line 2 and a whitespace-only line 4 (both skipped, numbers kept)
    path.write_bytes(b"\xef\xbb\xbf" + f"{good(1)}\r\n\r\n{good(3)}\r\n  \r\n{good(5)}".encode())
    assert lines_of(path) == [
        ("C1_2024-09-06_0800-0900.csv", "C1", 1, good(1), good(1)),
        ("C1_2024-09-06_0800-0900.csv", "C1", 3, good(3), good(3)),
        ("C1_2024-09-06_0800-0900.csv", "C1", 5, good(5), good(5)),
    ]


def test_csv_non_utf8_line_keeps_raw_bytes_readable(tmp_path):
    path = tmp_path / "C1_x.csv"
    path.write_bytes(good(1).encode() + b"\n" + "Tx2;104;Округ".encode("cp1251") + b"\n")
    out = lines_of(path)
    assert len(out) == 2
    assert out[1][2] == 2 and out[1][3] is None  # line 2 is not UTF-8: no text
    # cp1251 'Округ' = CE EA F0 F3 E3
    assert out[1][4] == "Tx2;104;\\xce\\xea\\xf0\\xf3\\xe3"


def test_empty_csv_yields_nothing(tmp_path):
    path = tmp_path / "C1_x.csv"
    path.write_bytes(b"")
    assert lines_of(path) == []


def test_binary_csv_refused(tmp_path):
    path = tmp_path / "C1_x.csv"
    path.write_bytes(good(1).encode() + b"\n\x00\x01\x02\x00")
    with pytest.raises(FileRefused, match=r"C1_x.csv is a binary file \(it contains NUL bytes\)"):
        lines_of(path)


def test_other_suffix_refused(tmp_path):
    path = tmp_path / "C1_x.txt"
    path.write_text(good(1))
    with pytest.raises(FileRefused, match=r"C1_x.txt is not a .csv, .zip, .jsonl, .jsonl.gz or .json.gz file"):
        lines_of(path)


# --------------------------------------------------------------------------------------
# .zip
# --------------------------------------------------------------------------------------


def test_zip_members_nested_one_level_and_notes(tmp_path):
    inner = zip_bytes([("C3_c.csv", f"{good(5)}\n".encode())])
    path = tmp_path / "batch.zip"
    path.write_bytes(
        zip_bytes(
            [
                ("C1_a.csv", f"{good(1)}\n{good(2)}\n".encode()),
                ("readme.txt", b"hello"),
                ("inner.zip", inner),
                ("dir/C2_b.csv", f"{good(4)}\n".encode()),
            ]
        )
    )
    notes: list[str] = []
    out = [(s, c, n, t) for s, c, n, t, _ in lines_of(path, notes=notes)]
    # archive order: C1_a (2 lines), then inner.zip's member, then dir/C2_b
    assert out == [
        ("batch.zip::C1_a.csv", "C1", 1, good(1)),
        ("batch.zip::C1_a.csv", "C1", 2, good(2)),
        ("batch.zip::inner.zip::C3_c.csv", "C3", 1, good(5)),
        ("batch.zip::dir/C2_b.csv", "C2", 1, good(4)),
    ]
    assert notes == ["skipped batch.zip::readme.txt: not a .csv file or a block dump (.jsonl, .json)"]


def test_zip_nested_two_levels_refused(tmp_path):
    deepest = zip_bytes([("C1_a.csv", f"{good(1)}\n".encode())])
    middle = zip_bytes([("level2.zip", deepest)])
    path = tmp_path / "outer.zip"
    path.write_bytes(zip_bytes([("level1.zip", middle)]))
    with pytest.raises(FileRefused, match=r"archive 'level2.zip' is nested more than one level deep"):
        lines_of(path)


@pytest.mark.parametrize("member", ["../evil.csv", "a/../../evil.csv", "/etc/evil.csv", "..\\evil.csv", "C:evil.csv"])
def test_zip_path_traversal_refused_before_any_line(tmp_path, member):
    path = tmp_path / "C1_x.zip"
    path.write_bytes(zip_bytes([("C1_good.csv", f"{good(1)}\n".encode()), (member, f"{good(2)}\n".encode())]))
    gen = iter_export_lines(path)
    with pytest.raises(FileRefused, match=r"points outside the archive \(path traversal\)"):
        next(gen)  # refused before the good member's first line is yielded


def test_zip_declared_expansion_over_limit_refused(tmp_path):
    path = tmp_path / "C1_bomb.zip"
    path.write_bytes(zip_bytes([("C1_bomb.csv", b"0" * 5_000_000)]))  # 5 MB of '0' -> a few KB
    assert path.stat().st_size < 50_000
    with pytest.raises(FileRefused, match=r"expands to more than 1,000,000 bytes"):
        lines_of(path, max_total_bytes=1_000_000)


def test_zip_nested_expansion_counts_toward_the_limit(tmp_path):
    # outer member 600_000 bytes + inner.zip (a few KB) + inner member 600_000 bytes > 1_000_000
    inner = zip_bytes([("C2_b.csv", b"1" * 600_000)])
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("C1_a.csv", b"1" * 600_000), ("inner.zip", inner)]))
    with pytest.raises(FileRefused, match="possible zip bomb"):
        lines_of(path, max_total_bytes=1_000_000)


def test_zip_without_csv_refused(tmp_path):
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("notes.txt", b"x")]))
    with pytest.raises(FileRefused, match="batch.zip holds no .csv file"):
        lines_of(path)


def test_not_a_zip_refused(tmp_path):
    path = tmp_path / "batch.zip"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(FileRefused, match="batch.zip is not a readable zip archive"):
        lines_of(path)


def test_binary_member_refused_before_any_line(tmp_path):
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode()), ("C2_b.csv", b"\x00\x00bin")]))
    gen = iter_export_lines(path)
    with pytest.raises(FileRefused, match=r"batch.zip::C2_b.csv is a binary file"):
        next(gen)


def _corrupt_member_data(data: bytes, offsets: range) -> bytes:
    """Flip bytes inside the first member's compressed data (local header untouched)."""
    info = zipfile.ZipFile(io.BytesIO(data)).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    for i in offsets:
        damaged[start + i] ^= 0xFF
    return bytes(damaged)


def test_damage_late_in_a_large_member_is_refused(tmp_path):
    # 20_000 lines (~1 MB): the damage near the end is seen while reading, after the sniff
    body = "".join(good(n) + "\n" for n in range(20_000)).encode()
    packed = zip_bytes([("C1_a.csv", body)])
    size = zipfile.ZipFile(io.BytesIO(packed)).infolist()[0].compress_size
    path = tmp_path / "batch.zip"
    path.write_bytes(_corrupt_member_data(packed, range(size - 60, size - 50)))
    with pytest.raises(FileRefused, match=r"batch.zip::C1_a.csv is damaged"):
        lines_of(path)


def test_damaged_small_zip_member_refused(tmp_path):
    body = "".join(good(n) + "\n" for n in range(50)).encode()  # ~5 KB: read whole by the 8 KB sniff
    path = tmp_path / "batch.zip"
    # stored (not deflated): flipping data bytes leaves a readable stream with a wrong CRC-32
    stored = zip_bytes([("C1_a.csv", body)], compression=zipfile.ZIP_STORED)
    path.write_bytes(_corrupt_member_data(stored, range(5, 15)))
    with pytest.raises(FileRefused):
        lines_of(path)


def test_broken_deflate_stream_refused(tmp_path):
    body = "".join(good(n) + "\n" for n in range(20_000)).encode()
    path = tmp_path / "batch.zip"
    path.write_bytes(_corrupt_member_data(zip_bytes([("C1_a.csv", body)]), range(0, 1)))  # deflate block header
    with pytest.raises(FileRefused):
        lines_of(path)


# --------------------------------------------------------------------------------------
# Symbolic links: never followed
# --------------------------------------------------------------------------------------


def _link_reason(link: Path, target: str) -> str:
    return (
        f"{link.name} is a symbolic link (to {target}); links are not followed: "
        "copy the file itself into the drop folder"
    )


def test_symlinks_are_candidates_so_that_they_are_refused(tmp_path):
    (tmp_path / "C1_real.csv").write_text(good(1))
    (tmp_path / "folder").mkdir()
    (tmp_path / "C1_to_file.csv").symlink_to(tmp_path / "C1_real.csv")
    (tmp_path / "C1_broken.csv").symlink_to(tmp_path / "nowhere.csv")
    (tmp_path / "C1_to_dir.zip").symlink_to(tmp_path / "folder")
    (tmp_path / ".C1_hidden.csv").symlink_to(tmp_path / "C1_real.csv")
    (tmp_path / "C1_copy.csv.part").symlink_to(tmp_path / "C1_real.csv")
    kept = sorted(p.name for p in tmp_path.iterdir() if is_candidate(p))
    # every link counts, whatever it points at (or not); hidden and partial names stay ignored
    assert kept == ["C1_broken.csv", "C1_real.csv", "C1_to_dir.zip", "C1_to_file.csv"]


@pytest.mark.parametrize("kind", ["file", "broken", "folder"])
@pytest.mark.parametrize("suffix", [".csv", ".zip"])
def test_symlink_refused_by_hash_and_reader(tmp_path, kind, suffix):
    real = tmp_path / f"C1_real{suffix}"
    real.write_bytes(zip_bytes([("C1_a.csv", good(1).encode())]) if suffix == ".zip" else good(1).encode())
    (tmp_path / "folder").mkdir()
    target = {"file": real, "broken": tmp_path / "gone.csv", "folder": tmp_path / "folder"}[kind]
    link = tmp_path / f"C1_link{suffix}"
    link.symlink_to(target)
    with pytest.raises(FileRefused) as info:
        file_sha256(link)
    assert info.value.reason == _link_reason(link, str(target))
    with pytest.raises(FileRefused) as info:
        lines_of(link)
    assert info.value.reason == _link_reason(link, str(target))


def test_symlink_to_a_fifo_is_not_opened(tmp_path):
    # opening a FIFO for reading blocks until a writer comes: a reader that followed the link would hang
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "C1_x.csv"
    link.symlink_to(fifo)
    outcome: list[BaseException | str] = []

    def read() -> None:
        try:
            outcome.append(file_sha256(link))
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=read, daemon=True)
    worker.start()
    worker.join(timeout=5)
    if worker.is_alive():  # unblock the stuck reader before failing
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=5)
        pytest.fail("file_sha256 opened the link's target")
    assert isinstance(outcome[0], FileRefused)
    assert outcome[0].reason == _link_reason(link, str(fifo))


def test_file_swapped_for_a_link_after_the_check_is_refused(tmp_path, monkeypatch):
    # the entry looks like a regular file when checked, and is a link when opened: O_NOFOLLOW refuses it
    real = tmp_path / "C1_real.csv"
    real.write_text(good(1))
    link = tmp_path / "C1_x.csv"
    link.symlink_to(real)
    true_lstat = os.lstat

    def stale_lstat(path, *args, **kwargs):
        return true_lstat(real if Path(path) == link else path, *args, **kwargs)

    monkeypatch.setattr(export_files.os, "lstat", stale_lstat)
    with pytest.raises(FileRefused) as info:
        file_sha256(link)
    assert info.value.reason == _link_reason(link, str(real))
    with pytest.raises(FileRefused) as info:
        lines_of(link)
    assert info.value.reason == _link_reason(link, str(real))


# --------------------------------------------------------------------------------------
# Files that cannot be opened or read
# --------------------------------------------------------------------------------------

_AS_NOBODY = """
import sys
sys.path.insert(0, sys.argv[1])
from export_files import FileRefused, file_sha256, iter_export_lines
from pathlib import Path
for name in sys.argv[2:]:
    for call in (file_sha256, lambda p: list(iter_export_lines(p))):
        try:
            call(Path(sys.argv[1]) / name)
            print("read")
        except FileRefused as err:
            print(err.reason)
"""


def test_unreadable_file_refused_with_permission_denied():
    names = ["C1_locked.csv", "C1_locked.zip"]
    folder = Path(tempfile.mkdtemp(prefix="ingest-perm-"))
    try:
        folder.chmod(0o755)
        shutil.copy(export_files.__file__, folder / "export_files.py")  # standard library only
        (folder / names[0]).write_text(good(1))
        (folder / names[1]).write_bytes(zip_bytes([("C1_a.csv", good(1).encode())]))
        for name in names:
            (folder / name).chmod(0o000)
        expected = [f"{name} cannot be read: permission denied" for name in names for _ in range(2)]
        if os.geteuid() != 0:  # an ordinary user cannot read a mode-000 file: test in this process
            for name in names:
                for call in (file_sha256, lines_of):
                    with pytest.raises(FileRefused) as info:
                        call(folder / name)
                    assert info.value.reason == f"{name} cannot be read: permission denied"
            return
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            print("skipped: running as root and setpriv is missing, so no unprivileged reader can be started")
            pytest.skip("running as root and setpriv is missing")
        done = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", _AS_NOBODY]
            + [str(folder), *names],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == expected
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_folder_named_like_an_export_refused(tmp_path):
    for name in ["C1_x.csv", "C1_x.zip"]:
        folder = tmp_path / name
        folder.mkdir()
        for call in (file_sha256, lines_of):
            with pytest.raises(FileRefused) as info:
                call(folder)
            assert info.value.reason == f"{name} cannot be read: it is a folder, not a file"


def test_fifo_named_like_an_export_refused_without_blocking(tmp_path):
    fifo = tmp_path / "C1_x.csv"
    os.mkfifo(fifo)
    assert not is_candidate(fifo)
    for call in (file_sha256, lines_of):
        with pytest.raises(FileRefused) as info:
            call(fifo)
        assert info.value.reason == "C1_x.csv cannot be read: it is not a regular file (a FIFO, socket or device)"


def test_vanished_file_refused_and_still_a_file_not_found_error(tmp_path):
    gone = tmp_path / "C1_gone.csv"
    for call in (file_sha256, lines_of):
        with pytest.raises(FileRefused) as info:
            call(gone)
        assert info.value.reason == "C1_gone.csv cannot be read: No such file or directory"
        assert isinstance(info.value, FileNotFoundError)  # callers that skip vanished files still can


def test_read_error_while_hashing_or_reading_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "C1_x.csv"
    path.write_text(good(1) + "\n")

    class FailingReads(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer):
            raise OSError(errno.EIO, "Input/output error")

    true_open = export_files._open_regular

    def failing_open(p: Path) -> IO[bytes]:
        true_open(p).close()  # the file is there and opens ...
        return io.BufferedReader(FailingReads())  # ... but every read fails

    monkeypatch.setattr(export_files, "_open_regular", failing_open)
    for call in (file_sha256, lines_of):
        with pytest.raises(FileRefused) as info:
            call(path)
        assert info.value.reason == "C1_x.csv cannot be read: Input/output error"


# --------------------------------------------------------------------------------------
# Entries that are not read: folders, FIFOs
# --------------------------------------------------------------------------------------


def test_unread_entries(tmp_path):
    (tmp_path / "C1_a.csv").write_text(good(1))
    (tmp_path / "sub").mkdir()
    (tmp_path / "archive.zip").mkdir()  # a folder whatever its name
    (tmp_path / ".hidden").mkdir()
    os.mkfifo(tmp_path / "pipe.csv")
    (tmp_path / "C1_link.csv").symlink_to(tmp_path / "sub")  # a link is a candidate, not listed here
    assert unread_entries(tmp_path) == [
        (tmp_path / "archive.zip", "archive.zip is a folder: sub-folders are not read; it is left where it is"),
        (tmp_path / "pipe.csv", "pipe.csv is not a regular file (a FIFO, socket or device); it is left where it is"),
        (tmp_path / "sub", "sub is a folder: sub-folders are not read; it is left where it is"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir() if is_candidate(p)) == ["C1_a.csv", "C1_link.csv"]


def test_unread_entries_of_a_missing_folder(tmp_path):
    assert unread_entries(tmp_path / "nowhere") == []


# --------------------------------------------------------------------------------------
# NUL characters after the first 8 KiB
# --------------------------------------------------------------------------------------


def _nul_export() -> tuple[bytes, str]:
    filler = "".join(f"{good(n)}\n" for n in range(100))  # ~9.8 KB: the NUL comes after the 8 KiB sniff
    bad = good(100).replace("Key100", "Key\x00100")
    assert len(filler) > 8192
    return (filler + bad + "\n" + good(101) + "\n").encode(), bad


def test_nul_after_the_first_8_kib_reaches_the_line_parser(tmp_path):
    data, bad = _nul_export()
    path = tmp_path / "C1_x.csv"
    path.write_bytes(data)
    out = list(iter_export_lines(path))
    assert len(out) == 102
    line = out[100]
    assert line.line_number == 101
    assert line.text == bad  # the NUL is kept for the parser ...
    assert line.raw == bad.replace("\x00", "\\x00")  # ... and written as \x00 in what is stored
    assert "\x00" not in line.raw
    with pytest.raises(LineError, match="NUL character"):
        parse_line(line.text)
    assert out[101].text == good(101)


def test_nul_after_the_first_8_kib_of_a_zip_member(tmp_path):
    data, bad = _nul_export()
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("C1_a.csv", data)]))
    out = list(iter_export_lines(path))
    assert out[100].text == bad and out[100].raw == bad.replace("\x00", "\\x00")


def test_nul_in_a_line_that_is_not_utf8(tmp_path):
    path = tmp_path / "C1_x.csv"
    filler = "".join(f"{good(n)}\n" for n in range(100)).encode()
    path.write_bytes(filler + b"Tx;104;\xff\x00;end\n")
    last = list(iter_export_lines(path))[-1]
    assert last.text is None
    assert last.raw == "Tx;104;\\xff\\x00;end"  # the bad byte escaped as before, the NUL as \x00


# --------------------------------------------------------------------------------------
# Nested archives: sizes checked before anything large is read
# --------------------------------------------------------------------------------------


def _inner_zip_member(outer: Path, inner_name: str, member: str, size: int, inner_method: int) -> None:
    """Write ``outer`` holding ``inner_name``, an archive holding ``member`` of ``size`` bytes of b"0",
    streamed so that the test never holds either in memory."""
    chunk = b"0" * (1 << 20)
    with (
        zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as out_zip,
        out_zip.open(inner_name, "w") as stream,
        zipfile.ZipFile(stream, "w", inner_method) as in_zip,
        in_zip.open(member, "w") as fh,
    ):
        for _ in range(size // len(chunk)):
            fh.write(chunk)


def _peak_bytes_while(call) -> int:
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_large_inner_archive_refused_before_it_is_read(tmp_path):
    # inner.zip stores 300 MiB of b"0" uncompressed, so inner.zip itself is 300 MiB; the outer
    # archive deflates it to ~300 KB. Reading inner.zip into memory would take 300 MiB.
    path = tmp_path / "batch.zip"
    _inner_zip_member(path, "inner.zip", "C1_big.csv", 300 * 1024**2, zipfile.ZIP_STORED)
    assert path.stat().st_size < 1_000_000

    def read() -> None:
        with pytest.raises(FileRefused, match=r"more than 200x, ELECTION_ZIP_MAX_RATIO\); possible zip bomb"):
            lines_of(path, max_total_bytes=4 * 1024**3, max_ratio=200)

    assert _peak_bytes_while(read) < 50 * 1024**2


def test_large_inner_archive_over_the_total_refused_before_it_is_read(tmp_path):
    path = tmp_path / "batch.zip"
    _inner_zip_member(path, "inner.zip", "C1_big.csv", 100 * 1024**2, zipfile.ZIP_STORED)

    def read() -> None:
        with pytest.raises(FileRefused, match=r"batch.zip is refused: it expands to more than 50,000,000 bytes"):
            lines_of(path, max_total_bytes=50_000_000, max_ratio=10**9)

    assert _peak_bytes_while(read) < 20 * 1024**2


def test_large_member_of_a_small_inner_archive_refused_before_it_is_read(tmp_path):
    # 300 MiB of b"0" deflated: the inner archive is ~300 KB, its member declares 300 MiB
    path = tmp_path / "batch.zip"
    _inner_zip_member(path, "inner.zip", "C1_big.csv", 300 * 1024**2, zipfile.ZIP_DEFLATED)

    def read() -> None:
        with pytest.raises(FileRefused, match="possible zip bomb"):
            lines_of(path, max_total_bytes=100_000_000, max_ratio=200)

    assert _peak_bytes_while(read) < 20 * 1024**2


def test_declared_sizes_of_a_level_are_checked_before_an_inner_archive_is_opened(tmp_path, monkeypatch):
    inner = zip_bytes([("C2_b.csv", f"{good(2)}\n".encode())])
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("inner.zip", inner), ("C1_a.csv", b"1" * 2_000_000)]))

    def must_not_open(*args, **kwargs):
        raise AssertionError("the inner archive was opened before the sizes were checked")

    monkeypatch.setattr(export_files, "_open_inner_archive", must_not_open)
    with pytest.raises(FileRefused, match="expands to more than 1,000,000 bytes"):
        lines_of(path, max_total_bytes=1_000_000)


def test_inner_archive_larger_than_the_memory_spool_is_read(tmp_path):
    # 17 MiB of lines in a stored inner archive: the copy rolls over from memory to a temporary file
    body = "".join(f"{good(n)}\n" for n in range(175_000)).encode()
    assert len(body) > 16 * 1024**2
    path = tmp_path / "batch.zip"
    inner = zip_bytes([("C3_c.csv", body)], compression=zipfile.ZIP_STORED)
    path.write_bytes(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode()), ("inner.zip", inner)]))
    count = 0
    last = None
    for line in iter_export_lines(path):
        count += 1
        last = line
    assert count == 1 + 175_000
    assert last is not None
    assert (last.source, last.contract_id, last.line_number, last.text) == (
        "batch.zip::inner.zip::C3_c.csv",
        "C3",
        175_000,
        good(174_999),
    )


def test_inner_archive_is_closed_when_reading_stops_early(tmp_path, monkeypatch):
    spools: list[Any] = []
    true_spool = tempfile.SpooledTemporaryFile

    def recorded_spool(*args: Any, **kwargs: Any) -> Any:
        spools.append(true_spool(*args, **kwargs))
        return spools[-1]

    monkeypatch.setattr(export_files.tempfile, "SpooledTemporaryFile", recorded_spool)
    inner = zip_bytes([("C3_c.csv", f"{good(1)}\n{good(2)}\n".encode())])
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("inner.zip", inner)]))
    lines = iter_export_lines(path)
    assert next(lines).text == good(1)
    assert len(spools) == 1 and not spools[0].closed  # kept open while its lines are read
    cast(Generator[SourceLine, None, None], lines).close()  # the consumer stops after one line
    assert spools[0].closed


def _set_declared_size(data: bytes, member: str, size: int) -> bytes:
    """Rewrite the uncompressed size ``member`` declares in the central directory."""
    damaged = bytearray(data)
    pos = damaged.find(b"PK\x01\x02")  # central directory file header
    while pos >= 0:
        name_len = int.from_bytes(damaged[pos + 28 : pos + 30], "little")
        if damaged[pos + 46 : pos + 46 + name_len] == member.encode():
            damaged[pos + 24 : pos + 28] = size.to_bytes(4, "little")  # uncompressed size
            return bytes(damaged)
        pos = damaged.find(b"PK\x01\x02", pos + 4)
    raise AssertionError(f"{member} is not in the archive")


def test_inner_archive_with_a_lying_size_refused(tmp_path):
    inner = zip_bytes([("C3_c.csv", "".join(f"{good(n)}\n" for n in range(2_000)).encode())])
    path = tmp_path / "batch.zip"
    path.write_bytes(_set_declared_size(zip_bytes([("inner.zip", inner)]), "inner.zip", len(inner) // 2))
    with pytest.raises(FileRefused, match="batch.zip"):
        lines_of(path)


def test_encrypted_member_refused(tmp_path):
    data = bytearray(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode())]))
    pos = data.find(b"PK\x01\x02")
    data[pos + 8] |= 0x01  # general purpose flag, bit 0: encrypted
    path = tmp_path / "batch.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(FileRefused) as info:
        lines_of(path)
    assert info.value.reason == "batch.zip::C1_a.csv is encrypted (password-protected); it cannot be read"


@pytest.mark.parametrize(
    "method,name", [(zipfile.ZIP_BZIP2, "bzip2"), (zipfile.ZIP_LZMA, "LZMA")], ids=["bzip2", "lzma"]
)
def test_members_compressed_other_than_stored_or_deflated_refused(tmp_path, method, name):
    # zipfile decompresses a whole bzip2/LZMA read at once: 81 bytes of bzip2 can be 50 MB
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode())], compression=method))
    with pytest.raises(FileRefused) as info:
        lines_of(path)
    assert info.value.reason == (
        f"batch.zip::C1_a.csv is compressed with method {method} ({name}); only stored or deflated members are read"
    )


def test_copy_of_an_inner_archive_stops_at_its_declared_size():
    # zipfile itself never returns more than the declared size; the copy does not rely on it
    class LyingArchive:
        def open(self, info: zipfile.ZipInfo) -> IO[bytes]:
            return io.BytesIO(b"x" * 3_000_000)

    info = zipfile.ZipInfo("inner.zip")
    info.file_size = 1_000_000
    with contextlib.ExitStack() as keep, pytest.raises(FileRefused) as err:
        export_files._open_inner_archive(cast(zipfile.ZipFile, LyingArchive()), info, "batch.zip::inner.zip", keep)
    assert err.value.reason == (
        "batch.zip::inner.zip is refused: it holds more than the 1,000,000 bytes its header declares; possible zip bomb"
    )


def test_inner_member_that_is_not_an_archive_refused(tmp_path):
    path = tmp_path / "batch.zip"
    path.write_bytes(zip_bytes([("inner.zip", b"not an archive at all")]))
    with pytest.raises(FileRefused, match=r"^batch.zip::inner.zip is not a readable zip archive: "):
        lines_of(path)


@pytest.mark.parametrize(
    "bit,reason",
    [
        (0x40, "batch.zip::C1_a.csv is encrypted (password-protected); it cannot be read"),
        (0x20, "batch.zip::C1_a.csv holds compressed patched data (zip flag bit 5), which cannot be read"),
    ],
)
def test_members_with_unreadable_zip_features_refused(tmp_path, bit, reason):
    data = bytearray(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode())]))
    pos = data.find(b"PK\x01\x02")
    data[pos + 8] |= bit
    path = tmp_path / "batch.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(FileRefused) as info:
        lines_of(path)
    assert info.value.reason == reason


def test_member_with_an_empty_name_is_skipped(tmp_path):
    # zipfile cuts a name at its first NUL byte: "\x00x.csv" becomes ""
    data = bytearray(zip_bytes([("C1_a.csv", f"{good(1)}\n".encode()), ("Zx.txt", b"t")]))
    for header in (b"PK\x03\x04", b"PK\x01\x02"):
        pos = data.find(header, data.find(header) + 4)  # the second member's headers
        name_at = pos + (30 if header == b"PK\x03\x04" else 46)
        assert data[name_at : name_at + 6] == b"Zx.txt"
        data[name_at] = 0
    path = tmp_path / "batch.zip"
    path.write_bytes(bytes(data))
    notes: list[str] = []
    assert [t for _, _, _, t, _ in lines_of(path, notes=notes)] == [good(1)]
    assert notes == ["skipped batch.zip::: not a .csv file or a block dump (.jsonl, .json)"]
