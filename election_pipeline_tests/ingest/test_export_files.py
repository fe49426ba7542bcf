"""iter_export_lines / FileRefused: reading .csv and .zip exports (docs/input-format.md#file-types, #bad-input).

Real files in tmp_path; expectations worked out by hand in the comments.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from election_pipeline.ingest.export_files import (
    FileRefused,
    contract_id_from_name,
    file_sha256,
    is_candidate,
    iter_export_lines,
)

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
    with pytest.raises(FileRefused, match=r"C1_x.txt is not a .csv or .zip file"):
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
    assert notes == ["skipped batch.zip::readme.txt: not a .csv file"]


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
