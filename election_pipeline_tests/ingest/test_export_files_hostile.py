"""Hostile input to the file readers: nothing but FileRefused ever comes out.

Damaged archives are made by flipping bytes of small real ones (every position, and every
prefix); the other inputs are built by hand. A test fails on any exception other than
FileRefused, and on any line whose stored text holds a NUL.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from election_pipeline.ingest.export_files import FileRefused, file_sha256, iter_export_lines

GOOD = b'Tx1;104;SIG;4;1725609600000;Key1;0;;[{"key":"operation","stringValue":"startVoting"}];[];{};\n'


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def read_all(path: Path) -> None:
    """Read ``path`` the way the ingest does; FileRefused is the only accepted failure."""
    try:
        for line in iter_export_lines(path, max_total_bytes=10_000_000, max_ratio=200):
            assert "\x00" not in line.raw
    except FileRefused as err:
        assert err.reason
        assert "\x00" not in err.reason


SEEDS = {
    "deflated": zip_bytes([("C1_a.csv", GOOD * 3), ("notes.txt", b"n")]),
    "nested-stored": zip_bytes(
        [("C1_a.csv", GOOD), ("inner.zip", zip_bytes([("C2_b.csv", GOOD * 2)], zipfile.ZIP_STORED))],
        zipfile.ZIP_STORED,
    ),
}


@pytest.mark.parametrize("seed", SEEDS.values(), ids=SEEDS.keys())
def test_every_byte_flip_of_a_small_archive(tmp_path, seed):
    path = tmp_path / "batch.zip"
    for pos in range(len(seed)):
        for flip in (0xFF, 0x01):
            damaged = bytearray(seed)
            damaged[pos] ^= flip
            path.write_bytes(bytes(damaged))
            read_all(path)


@pytest.mark.parametrize("seed", SEEDS.values(), ids=SEEDS.keys())
def test_every_prefix_of_a_small_archive(tmp_path, seed):
    path = tmp_path / "batch.zip"
    for cut in range(len(seed)):
        path.write_bytes(seed[:cut])
        read_all(path)


def _utf8_flagged_bad_name() -> bytes:
    data = bytearray(zip_bytes([("C1_a.csv", GOOD)]))
    central = data.find(b"PK\x01\x02")
    data[central + 8] |= 0x08  # bit 11 of the flags (byte 9, bit 3): the name is UTF-8 ...
    data[central + 9] |= 0x08
    data[central + 46] = 0xFF  # ... and it is not
    return bytes(data)


def _end_record_pointing_past_the_file() -> bytes:
    data = bytearray(zip_bytes([("C1_a.csv", GOOD)]))
    end = data.rfind(b"PK\x05\x06")
    data[end + 16 : end + 20] = (2**32 - 2).to_bytes(4, "little")  # central directory offset
    return bytes(data)


def _many_empty_members() -> bytes:
    return zip_bytes([(f"C{n}_x.csv", b"") for n in range(500)])


FILE_CONTENTS: dict[str, tuple[str, bytes]] = {
    "empty zip file": ("batch.zip", b""),
    "random bytes": ("batch.zip", bytes(range(256)) * 8),
    "end record only": ("batch.zip", b"PK\x05\x06" + b"\x00" * 18),
    "end record with garbage counts": ("batch.zip", b"PK\x05\x06" + b"\xff" * 18),
    "utf-8 flagged name that is not utf-8": ("batch.zip", _utf8_flagged_bad_name()),
    "central directory past the end": ("batch.zip", _end_record_pointing_past_the_file()),
    "only empty members": ("batch.zip", _many_empty_members()),
    "empty archive": ("batch.zip", zip_bytes([])),
    "folder members only": ("batch.zip", zip_bytes([("dir/", b""), ("dir/sub/", b"")])),
    "inner archive is garbage": ("batch.zip", zip_bytes([("inner.zip", b"PK\x03\x04garbage")])),
    "inner archive is empty": ("batch.zip", zip_bytes([("inner.zip", b"")])),
    "member named like a drive": ("batch.zip", zip_bytes([("C:\\x.csv", GOOD)])),
    "csv of NUL bytes": ("C1_x.csv", b"\x00" * 100),
    "csv of one NUL after 8 KiB": ("C1_x.csv", GOOD * 100 + b"\x00\n"),
    "csv of a lone BOM": ("C1_x.csv", b"\xef\xbb\xbf"),
    "csv of line ends": ("C1_x.csv", b"\r\n" * 1000 + b"\r"),
    "csv of invalid utf-8": ("C1_x.csv", bytes(range(128, 256)) * 100),
    "csv without a line end": ("C1_x.csv", GOOD.rstrip(b"\n") * 50),
    "csv with a bad name": ("-_x.csv", GOOD),
    "no suffix": ("C1_x", GOOD),
}


@pytest.mark.parametrize("name,content", FILE_CONTENTS.values(), ids=FILE_CONTENTS.keys())
def test_hostile_file_contents(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    read_all(path)
    assert len(file_sha256(path)) == 64  # a regular file can always be hashed


def _make_folder(path: Path) -> None:
    path.mkdir()


def _make_fifo(path: Path) -> None:
    os.mkfifo(path)


def _make_link_loop(path: Path) -> None:
    path.symlink_to(path.name)  # a link to itself


def _make_link_chain(path: Path) -> None:
    real = path.with_name("real.csv")
    real.write_bytes(GOOD)
    middle = path.with_name("middle.csv")
    middle.symlink_to(real)
    path.symlink_to(middle)


def _make_dangling_link(path: Path) -> None:
    path.symlink_to("/nonexistent/C1_x.csv")


ENTRIES: dict[str, Callable[[Path], None]] = {
    "folder": _make_folder,
    "fifo": _make_fifo,
    "link to itself": _make_link_loop,
    "chain of links": _make_link_chain,
    "dangling link": _make_dangling_link,
    "nothing there": lambda path: None,
}


@pytest.mark.parametrize("make", ENTRIES.values(), ids=ENTRIES.keys())
@pytest.mark.parametrize("name", ["C1_x.csv", "C1_x.zip"])
def test_hostile_entries(tmp_path, make, name):
    path = tmp_path / name
    make(path)
    read_all(path)
    with pytest.raises(FileRefused):
        file_sha256(path)
