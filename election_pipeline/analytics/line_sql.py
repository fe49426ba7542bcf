"""Export lines read and classified by DuckDB (docs/input-format.md#export-line).

The ingest stages every line of a group of files in ``_lines`` (``file_id``, ``line_number``,
``line``): DuckDB itself reads the ``.csv`` files (``read_text``, split at ``\\n``, the byte-order
mark and trailing ``\\r`` removed, blank lines left out as the Python reader does); the lines of
zip members and of files that are not valid UTF-8 are handed over by the Python reader.
``_lines`` is a view: the Python reader's lines are kept in the table ``_py_lines``, and the
text files are only listed (``_text_files``) and read once, by :func:`classify`. The
ingest hands the Python reader's lines to an :class:`ApartClassifier` instead, which
classifies them a few hundred thousand at a time in a DuckDB of its own and keeps only the
verdicts (the lines it leaves go to ``_py_left``), so a file of millions of lines never has
its text staged whole; the ingest parses a line longer than :data:`SQL_LINE_MAX_CHARS` itself,
as it is read.

:func:`classify` then splits and classifies the lines in one vectorised pass, on every core:
transaction id, type, version, timestamp, sender, operation, the ``FAIL`` rule, rollback,
bulletins per ``blindSigIssue`` and voters per ``addVotersList``, exactly as the Python parser
(:func:`election_pipeline.ingest.export_line.parse_line`) reads them. Its verdict on every
line is kept in ``_verdict``, with the text of the lines it left, so that :func:`unclassified`
does not read the files again.

DuckDB only ever **accepts** a line. It accepts the lines whose shape leaves no doubt: the
12 fields (split at every ``;``, or, when a JSON string holds a ``;``, at the ``;`` outside
JSON strings), plain ASCII identifiers and numbers, ``params`` and ``diff`` arrays of objects
without repeated keys, no JSON ``null``/``NaN``/``Infinity``, trailing comma or number with an
exponent (the places where DuckDB's JSON reader and Python's differ: DuckDB reads ``1e400``
where Python refuses the infinity it overflows to), no ``\\u0000`` or surrogate escape (which
Python refuses to store), at most :data:`MAX_BRACKETS` brackets in the line (once the ballot
is cut out, see below) and in the ``data``/``userIdHashes`` array read from a string, every
``params`` and ``diff`` element an object with a ``key``. Every other line goes to the Python
parser, which either accepts it too or rejects it with its reason, so every rejection and its
wording comes from one place. A differential property test
(``election_pipeline_tests/ingest/test_line_sql_differential.py``) checks that both read every
accepted line alike.

Speed: a ``vote`` line carries kilobytes of base64 ballot in a ``binaryValue``, and nearly all
the time goes into reading such long strings, so each is read as few times as possible, and
only by functions that go through it at memory speed. ``_lines`` is a ``UNION ALL`` of a
few branches (the text files dealt among them by size), so that the files are read and classified in parallel (``read_text`` of a
list of files yields them in one chunk, which one thread works through). The line is split at
``"binaryValue":`` (``string_split``, no character-indexed ``substr`` of a long string: DuckDB
walks those one character at a time), and when the text after the first or second one starts
with a JSON string directly followed by ``}`` (after the line's eighth ``;``), whose content
holds no backslash and passes ``json_valid`` (no control character), that content is replaced
by ``~``. That ``json_valid`` is the one pass over the ballot; every other check reads the
short line that remains. In a valid field, ``"binaryValue":"`` always opens a string value,
so the replacement changes the content of one string and nothing else; in a field that is not
valid JSON, the quote after ``binaryValue`` cannot end a string, and the field stays invalid.
The JSON of ``params`` and ``diff`` is read by one ``from_json`` and one ``json_keys`` each
(every element an object with a ``"key"``, no name of ``key``/``stringValue``/``intValue``/
``boolValue`` repeated in an object: the names ``json_keys`` lists add up to those
``from_json`` found), without a lambda per object.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable

import duckdb
import pandas as pd

from election_pipeline.analytics.duck_frames import registered
from election_pipeline.vocabulary import Operation

#: Lines with more ``[`` and ``{`` than this (or a ``data`` or
#: ``userIdHashes`` array read from a string) go to the Python parser: it reads deep JSON (and
#: rejects JSON nested too deeply to read) where DuckDB's reader has no such limit.
MAX_BRACKETS = 500

#: JSON value positions where DuckDB's reader is more lenient than Python's (``NaN``, ``inf``,
#: trailing commas, ``1e400`` read as a number where Python gets an infinity it refuses), where
#: a ``null`` would hide whether a key is present, and integers too long for Python's ``int()``.
_LENIENT = r",\s*[\]}]|[\[,:]\s*(?:[-+]?(?i:nan|inf)|null|-?[0-9][0-9.]*[eE])|[0-9]{200}"
#: The escapes Python decodes to what it refuses to store (a NUL, an unpaired surrogate).
_STORE_ESCAPE = r"\\u(?:0000|[dD][89abcdefABCDEF])"
#: One of the JSON fields: text with no ``;`` outside JSON strings.
_FIELD = r'(?:[^;"]|"(?:[^"\\]|\\.)*")*'
_REST = rf"^({_FIELD});({_FIELD});({_FIELD});([^;]*)$"
_ID = r"^[\x21-\x7e]{1,128}$"
_SENDER = r"^[\x21-\x7e]{0,255}$"
#: A blank line: nothing but what Python's ``str.strip()`` removes.
_BLANK = "[" + "".join(f"\\x{{{c:x}}}" for c in range(0x110000) if chr(c).isspace() and c != 10) + "]*"
_BLOB_SEP = '"binaryValue":'
_MIN_TS_MS = 946_684_800_000
_MAX_TS_MS = 4_102_444_800_000
_PARAMS_SCHEMA = '[{"key": "VARCHAR", "stringValue": "VARCHAR", "intValue": "VARCHAR", "boolValue": "VARCHAR"}]'
_DIFF_SCHEMA = '[{"key": "VARCHAR"}]'

#: Columns of ``_classified`` (one row per accepted line).
CLASSIFIED_COLUMNS = [
    "file_id",
    "line_number",
    "tx_id",
    "tx_type",
    "version",
    "ts_ms",
    "sender",
    "fee",
    "fee_asset",
    "operation",
    "rejected",
    "fail_key",
    "is_rollback",
    "bulletins",
    "voters_added",
]


def _operations_case(column: str) -> str:
    """SQL: the canonical spelling of the operation named in ``column`` (lower case), else NULL."""
    whens = " ".join(f"WHEN '{op.value.lower()}' THEN '{op.value}'" for op in Operation)
    return f"CASE {column} {whens} END"


def _brackets(text: str) -> str:
    """SQL: the number of ``[`` and ``{`` in ``text``."""
    return f"(length({text}) - length(replace(replace({text}, '[', ''), '{{', '')))"


def _count(char: str, text: str) -> str:
    """SQL: the number of ``char`` in ``text``."""
    return f"(strlen({text}) - strlen(replace({text}, '{char}', '')))"


def _masked(split: str, head: str, piece: str) -> str:
    """SQL: the text after a ``"binaryValue":`` (``piece``; ``split`` is it split at ``}``,
    ``head`` the part before the first ``}``) with the content of its string replaced by ``~``,
    when it starts with a whole JSON string directly followed by ``}`` whose content holds no
    backslash and nothing JSON refuses (``json_valid``); else ``piece`` unchanged."""
    return (
        f"CASE WHEN len({split}) >= 2 AND strlen({head}) >= 2 AND starts_with({head}, '\"') "
        f"AND ends_with({head}, '\"') AND NOT contains({head}, chr(92)) "
        f"AND json_valid({head}) THEN '\"~\"}}' || array_to_string({split}[2:], '}}') ELSE {piece} END"
    )


def create_stage(duck: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the empty staging tables of one group of files."""
    duck.execute("CREATE OR REPLACE TEMP TABLE _py_lines (file_id INTEGER, line_number INTEGER, line VARCHAR)")
    duck.execute("CREATE OR REPLACE TEMP TABLE _text_files (file_id INTEGER, path VARCHAR)")
    # Lines of the Python reader classified while their file was read, left to the parser.
    duck.execute("CREATE OR REPLACE TEMP TABLE _py_left (file_id INTEGER, line_number INTEGER, line VARCHAR)")
    # Where each staged transaction of a block dump comes from: its block line and height
    # (a block holds many transactions, so each is staged under a number of its own).
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE _dump_lines (file_id INTEGER, line_number INTEGER, block_line INTEGER, "
        "block_height BIGINT, tx_index INTEGER)"
    )
    duck.execute("CREATE OR REPLACE TEMP TABLE _stage_state (classified BOOLEAN)")
    duck.execute("INSERT INTO _stage_state VALUES (FALSE)")
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE _verdict (file_id INTEGER, line_number INTEGER, accepted BOOLEAN, "
        "left_line VARCHAR)"
    )
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE _classified ("
        "file_id INTEGER, line_number INTEGER, tx_id VARCHAR, tx_type INTEGER, version INTEGER, ts_ms BIGINT, "
        "sender VARCHAR, fee VARCHAR, fee_asset VARCHAR, operation VARCHAR, rejected BOOLEAN, fail_key VARCHAR, "
        "is_rollback BOOLEAN, bulletins INTEGER, voters_added INTEGER)"
    )
    _define_lines(duck)


_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._+=,@ -]+$")


def readable_by_duckdb(path: str) -> bool:
    """Whether DuckDB's ``read_text`` can be given this path literally: it reads its argument
    as a glob pattern, so a path with ``*``, ``?``, ``[``, quotes or other unusual characters is
    read by the Python reader instead."""
    return bool(_SAFE_PATH.match(path))


def _text_lines_sql(files: list[tuple[int, str]]) -> str:
    """SQL: ``(file_id, line_number, line)`` of the non-blank lines of the listed text files
    (no path listed twice)."""
    listed = ", ".join(f"'{path}'" for _, path in files)
    ids = ", ".join(str(int(file_id)) for file_id, _ in files)
    return rf"""
        SELECT file_id, line_number, line FROM (
            SELECT file_id, line_number,
                   CASE WHEN ends_with(bare, chr(13)) THEN rtrim(bare, chr(13)) ELSE bare END AS line
            FROM (
                SELECT file_id, line_number,
                       CASE WHEN line_number = 1 AND starts_with(raw, chr(65279)) THEN substr(raw, 2) ELSE raw END
                           AS bare
                FROM (
                    SELECT file_id, unnest(lines) AS raw, unnest(range(1, len(lines) + 1)) AS line_number
                    FROM (
                        -- '\r\n' ends become '\n' in one pass over the file (only when it has
                        -- any), so that no line has to be trimmed one character at a time.
                        SELECT [{ids}][list_position([{listed}], filename)] AS file_id,
                               string_split(
                                   CASE WHEN contains(content, chr(13) || chr(10))
                                        THEN replace(content, chr(13) || chr(10), chr(10)) ELSE content END,
                                   chr(10)) AS lines
                        FROM read_text([{listed}])
                    )
                )
            )
        )
        WHERE NOT regexp_full_match(line, '{_BLANK}')
    """


def _branches(files: list[tuple[int, str]], count: int) -> list[list[tuple[int, str]]]:
    """``files`` dealt into at most ``count`` groups of about the same size in bytes, the
    largest first, no path twice in a group."""

    def size(path: str) -> int:
        try:
            return os.stat(path).st_size
        except OSError:
            return 0

    groups: list[list[tuple[int, str]]] = [[] for _ in range(max(1, min(count, len(files))))]
    paths: list[set[str]] = [set() for _ in groups]
    totals = [0] * len(groups)
    for (file_id, path), n in sorted(((f, size(f[1])) for f in files), key=lambda item: (-item[1], item[0])):
        free = [i for i, listed in enumerate(paths) if path not in listed]
        if not free:
            groups.append([])
            paths.append(set())
            totals.append(0)
            free = [len(groups) - 1]
        target = min(free, key=lambda i: totals[i])
        groups[target].append((file_id, path))
        paths[target].add(path)
        totals[target] += n
    return [group for group in groups if group]


def _define_lines(duck: duckdb.DuckDBPyConnection) -> None:
    """(Re)define the view ``_lines``: the Python reader's lines, then those of the files listed
    in ``_text_files``. The files are dealt into a few branches of a ``UNION ALL`` (twice as
    many as DuckDB has threads), so that DuckDB reads and classifies them in parallel:
    ``read_text`` of a list of files yields them in one chunk, which one thread works through."""
    files = duck.execute("SELECT file_id, path FROM _text_files ORDER BY path, file_id").fetchall()
    row = duck.execute("SELECT current_setting('threads')").fetchone()
    threads = int(row[0]) if row else 1
    text_part = "".join(f" UNION ALL ({_text_lines_sql(group)})" for group in _branches(files, 2 * threads))
    duck.execute(f"CREATE OR REPLACE TEMP VIEW _lines AS SELECT file_id, line_number, line FROM _py_lines{text_part}")


def drop_files(duck: duckdb.DuckDBPyConnection, file_ids: Iterable[int]) -> None:
    """Forget every staged line (and verdict) of these files: a file refused while its group
    is staged contributes nothing."""
    ids = sorted({int(i) for i in file_ids})
    if not ids:
        return
    marks = ", ".join(str(i) for i in ids)
    for table in ("_py_lines", "_py_left", "_text_files", "_verdict", "_classified", "_dump_lines"):
        duck.execute(f"DELETE FROM {table} WHERE file_id IN ({marks})")
    _define_lines(duck)


def _staged(duck: duckdb.DuckDBPyConnection) -> None:
    duck.execute("UPDATE _stage_state SET classified = FALSE")


def stage_text_files(duck: duckdb.DuckDBPyConnection, files: Iterable[tuple[int, str]]) -> None:
    """Add whole UTF-8 ``.csv`` files (``(file_id, path)``) to ``_lines``, one row per
    non-blank line with its 1-based line number. Blank lines (nothing but whitespace, as
    ``str.strip()`` sees it) carry nothing and are left out, as the Python reader does.

    The files are listed here and read by :func:`classify` (once): they must stay in place,
    unchanged, until it has run."""
    files = list(files)
    if not files:
        return
    for _, path in files:
        if not readable_by_duckdb(path):
            raise ValueError(f"{path!r} cannot be read by read_text (glob characters or quotes in its path)")
    frame = pd.DataFrame(files, columns=["file_id", "path"])
    with registered(duck, "_text_files_frame", frame):
        duck.execute("INSERT INTO _text_files SELECT file_id, path FROM _text_files_frame")
    _define_lines(duck)
    _staged(duck)


#: A line read by Python that is longer than this (characters) is parsed by the Python parser
#: as it is read and never staged (``stages/ingest_files.py``): the SQL classification of a
#: few hundred lines of hundreds of kilobytes (the ``addVotersList`` of a large
#: constituency) needs more memory than a million votes do.
SQL_LINE_MAX_CHARS = 32_768


def stage_lines(duck: duckdb.DuckDBPyConnection, rows: list[tuple[int, int, str]]) -> None:
    """Add lines read by Python (``(file_id, line_number, text)``, already without line ending
    and byte-order mark) to ``_lines``."""
    if not rows:
        return
    with registered(duck, "_py_lines_frame", pd.DataFrame(rows, columns=["file_id", "line_number", "line"])):
        duck.execute("INSERT INTO _py_lines SELECT file_id, line_number, line FROM _py_lines_frame")
    _staged(duck)


def stage_dump_lines(duck: duckdb.DuckDBPyConnection, rows: list[tuple[int, int, int, int, int]]) -> None:
    """Record where staged block-dump transactions come from
    (``(file_id, line_number, block_line, block_height, tx_index)``)."""
    if not rows:
        return
    columns = ["file_id", "line_number", "block_line", "block_height", "tx_index"]
    with registered(duck, "_dump_lines_frame", pd.DataFrame(rows, columns=columns)):
        duck.execute(f"INSERT INTO _dump_lines SELECT {', '.join(columns)} FROM _dump_lines_frame")


def dump_positions(
    duck: duckdb.DuckDBPyConnection, keys: list[tuple[int, int]]
) -> dict[tuple[int, int], tuple[int, int, int]]:
    """``(block_line, block_height, tx_index)`` of the staged block-dump transactions ``keys``
    (``(file_id, line_number)``)."""
    if not keys:
        return {}
    frame = pd.DataFrame(keys, columns=["file_id", "line_number"])
    with registered(duck, "_dump_keys", frame):
        rows = duck.execute(
            "SELECT d.file_id, d.line_number, d.block_line, d.block_height, d.tx_index FROM _dump_lines d "
            "JOIN _dump_keys k ON k.file_id = d.file_id AND k.line_number = d.line_number"
        ).fetchall()
    return {(r[0], r[1]): (r[2], r[3], r[4]) for r in rows}


CLASSIFY_SQL = rf"""
CREATE OR REPLACE TEMP TABLE _verdict AS
WITH pieces AS (
    SELECT file_id, line_number, line,
           CASE WHEN contains(line, '{_BLOB_SEP}') THEN string_split(line, '{_BLOB_SEP}') END AS s
    FROM _lines
),
-- The text after each of the first two "binaryValue": of the line, split at the first '}}', when
-- the first eight fields (and their eight ';') come before it. (Each list element is taken out
-- once: every s[i] copies the string.)
blobs AS (
    SELECT file_id, line_number, line, s, s1,
           CASE WHEN tail THEN string_split(s[2], '}}') END AS b2,
           CASE WHEN tail AND len(s) >= 3 THEN string_split(s[3], '}}') END AS b3
    FROM (SELECT *, s[1] AS s1, len(s) >= 2 AND {_count(";", "s[1]")} >= 8 AS tail FROM pieces)
),
heads AS (
    SELECT *, b2[1] AS h2, b3[1] AS h3 FROM blobs
),
cut AS (
    SELECT file_id, line_number, line,
           CASE WHEN b2 IS NULL THEN line
                ELSE s1 || '{_BLOB_SEP}' || {_masked("b2", "h2", "s[2]")}
                     || CASE WHEN len(s) >= 3 THEN '{_BLOB_SEP}' || {_masked("b3", "h3", "s[3]")} ELSE '' END
                     || CASE WHEN len(s) >= 4 THEN '{_BLOB_SEP}' || array_to_string(s[4:], '{_BLOB_SEP}') ELSE '' END
           END AS cut_line
    FROM heads
),
split AS (
    SELECT *, string_split(cut_line, ';') AS parts FROM cut
),
fields AS (
    SELECT *, parts[1] AS tx_id, parts[2] AS tx_type, parts[4] AS version, parts[5] AS ts, parts[6] AS sender,
           parts[7] AS fee, parts[8] AS fee_asset,
           CASE WHEN len(parts) > 12 THEN array_to_string(parts[9:], ';') END AS rest
    FROM split
),
head AS (
    SELECT *,
           coalesce(
               len(parts) >= 12
               AND regexp_full_match(tx_id, '{_ID}')
               AND tx_type IN ('103', '104')
               AND (version = '' OR regexp_full_match(version, '[0-9]{{1,9}}'))
               AND regexp_full_match(ts, '[0-9]{{12,13}}')
               AND TRY_CAST(ts AS BIGINT) >= {_MIN_TS_MS} AND TRY_CAST(ts AS BIGINT) < {_MAX_TS_MS}
               AND regexp_full_match(sender, '{_SENDER}')
               AND NOT contains(cut_line, chr(0))
               AND NOT (contains(cut_line, chr(92)) AND regexp_matches(cut_line, '{_STORE_ESCAPE}'))
               AND (len(parts) = 12 OR regexp_full_match(rest, '{_REST}')),
               FALSE) AS head_ok
    FROM fields
),
located AS (
    SELECT *,
           CASE WHEN head_ok THEN (
               CASE WHEN len(parts) = 12
                    THEN {{'params': parts[9], 'diff': parts[10], 'extra': parts[11], 'rollback': parts[12]}}
                    ELSE regexp_extract(rest, '{_REST}', ['params', 'diff', 'extra', 'rollback'])
               END)
           END AS j
    FROM head
),
shaped AS (
    SELECT *,
           coalesce(
               head_ok
               AND j.rollback IN ('', '-1')
               AND (j.params = '' OR (starts_with(j.params, '[') AND ends_with(j.params, ']')))
               AND (j.diff = '' OR (starts_with(j.diff, '[') AND ends_with(j.diff, ']')))
               AND (j.extra = '' OR (starts_with(j.extra, '{{') AND ends_with(j.extra, '}}')))
               AND NOT regexp_matches(j.params || ';' || j.diff || ';' || j.extra, '{_LENIENT}')
               AND {_brackets("cut_line")} <= {MAX_BRACKETS}
               AND (j.params = '' OR json_valid(j.params))
               AND (j.diff = '' OR json_valid(j.diff))
               AND (j.extra = '' OR json_valid(j.extra)),
               FALSE) AS json_ok
    FROM located
),
-- Each params (diff) element must be an object with a "key": from_json reads a NULL key from
-- anything else. A key name repeated inside one object (where Python keeps the last value and
-- from_json the first) shows as more of the names read than from_json found: every object has
-- each name it holds at least once among its keys (json_keys), so the totals are equal only
-- when no object repeats one.
parsed AS (
    SELECT *,
           CASE WHEN json_ok THEN (CASE WHEN j.params = '' THEN [] ELSE from_json(j.params, '{_PARAMS_SCHEMA}') END)
           END AS pe,
           CASE WHEN json_ok THEN (CASE WHEN j.diff = '' THEN [] ELSE from_json(j.diff, '{_DIFF_SCHEMA}') END)
           END AS de,
           CASE WHEN json_ok THEN (CASE WHEN j.params = '' THEN [] ELSE flatten(json_keys(j.params, '$[*]')) END)
           END AS pk,
           CASE WHEN json_ok THEN (CASE WHEN j.diff = '' THEN [] ELSE flatten(json_keys(j.diff, '$[*]')) END)
           END AS dk
    FROM shaped
),
entries AS (
    SELECT *,
           list_transform(pe, lambda e: e.key) AS keys,
           list_transform(pe, lambda e: coalesce(e.stringValue, e.intValue, e.boolValue)) AS vals,
           list_transform(de, lambda e: e.key) AS diff_keys,
           len(list_filter(pk, lambda k: k IN ('key', 'stringValue', 'intValue', 'boolValue'))) AS pk_named,
           coalesce(list_sum(list_transform(pe, lambda e: (e.key IS NOT NULL)::INTEGER
                                                          + (e.stringValue IS NOT NULL)::INTEGER
                                                          + (e.intValue IS NOT NULL)::INTEGER
                                                          + (e.boolValue IS NOT NULL)::INTEGER)), 0) AS pe_named,
           len(list_filter(dk, lambda k: k = 'key')) AS dk_named
    FROM parsed
),
-- The params keys are all there and all different (list_unique counts the distinct non-NULL
-- ones), so each name is found at one place or none.
named AS (
    SELECT *,
           coalesce(json_ok AND list_unique(keys) = len(pe) AND pk_named = pe_named
                    AND list_aggr(diff_keys, 'count') = len(de) AND dk_named = len(de), FALSE) AS entries_ok,
           list_filter(diff_keys, lambda k: starts_with(k, 'FAIL')) AS fails,
           list_position(keys, 'operation') AS op_i,
           list_position(keys, 'votersCount') AS count_i,
           vals[list_position(keys, 'operation')] AS op_raw,
           vals[list_position(keys, 'data')] AS data_raw,
           vals[list_position(keys, 'votersCount')] AS count_raw,
           vals[list_position(keys, 'userIdHashes')] AS hashes_raw
    FROM entries
),
operations AS (
    SELECT *,
           CASE WHEN NOT entries_ok THEN NULL
                WHEN op_i IS NULL AND tx_type = '103' THEN 'createContract'
                WHEN op_raw IS NOT NULL AND regexp_full_match(op_raw, '[A-Za-z]+')
                    THEN {_operations_case("lower(op_raw)")}
           END AS operation
    FROM named
),
-- A JSON array read from a string parameter (the bulletins of a blindSigIssue, the hashes of
-- an addVotersList): read by DuckDB only when Python's json.loads reads it alike.
arrays AS (
    SELECT *,
           CASE WHEN operation = 'blindSigIssue' AND data_raw IS NOT NULL
                     AND NOT regexp_matches(data_raw, '{_LENIENT}') AND {_brackets("data_raw")} <= {MAX_BRACKETS}
                THEN json_valid(data_raw) END AS data_ok,
           CASE WHEN operation = 'addVotersList' AND count_i IS NULL AND hashes_raw IS NOT NULL
                     AND NOT regexp_matches(hashes_raw, '{_LENIENT}') AND {_brackets("hashes_raw")} <= {MAX_BRACKETS}
                THEN json_valid(hashes_raw) END AS hashes_ok
    FROM operations
),
counted AS (
    SELECT *,
           CASE WHEN data_ok THEN (CASE WHEN json_type(data_raw) = 'ARRAY' THEN json_array_length(data_raw) END)
           END AS bulletins_n,
           CASE WHEN operation <> 'addVotersList' THEN NULL
                WHEN count_i IS NOT NULL AND count_raw IS NOT NULL AND regexp_full_match(count_raw, '[0-9]{{1,9}}')
                    THEN TRY_CAST(count_raw AS INTEGER)
                WHEN count_i IS NOT NULL THEN NULL
                WHEN hashes_ok THEN (CASE WHEN json_type(hashes_raw) = 'ARRAY' THEN json_array_length(hashes_raw) END)
           END AS voters_n
    FROM arrays
),
judged AS (
    SELECT *,
           coalesce(
               operation IS NOT NULL
               AND (tx_type = '104' OR operation = 'createContract')
               AND (operation <> 'vote' OR sender <> '')
               AND (operation <> 'blindSigIssue' OR bulletins_n IS NOT NULL)
               AND (operation <> 'addVotersList' OR voters_n IS NOT NULL),
               FALSE) AS accepted
    FROM counted
)
SELECT file_id, line_number, accepted,
       CASE WHEN NOT accepted THEN line END AS left_line,
       CASE WHEN accepted THEN tx_id END AS tx_id,
       CASE WHEN accepted THEN TRY_CAST(tx_type AS INTEGER) END AS tx_type,
       CASE WHEN accepted THEN TRY_CAST(nullif(version, '') AS INTEGER) END AS version,
       CASE WHEN accepted THEN TRY_CAST(ts AS BIGINT) END AS ts_ms,
       CASE WHEN accepted THEN sender END AS sender,
       CASE WHEN accepted THEN fee END AS fee,
       CASE WHEN accepted THEN fee_asset END AS fee_asset,
       CASE WHEN accepted THEN operation END AS operation,
       CASE WHEN accepted THEN len(fails) > 0 END AS rejected,
       CASE WHEN accepted THEN fails[1] END AS fail_key,
       CASE WHEN accepted THEN j.rollback = '-1' END AS is_rollback,
       CASE WHEN accepted THEN CAST(coalesce(bulletins_n, 0) AS INTEGER) END AS bulletins,
       CASE WHEN accepted THEN CAST(voters_n AS INTEGER) END AS voters_added
FROM judged
"""


def _run_unordered(duck: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Run ``sql`` with ``preserve_insertion_order`` off: DuckDB then writes the verdicts from
    every thread at once, where keeping the order has one thread wait for the other."""
    row = duck.execute("SELECT current_setting('preserve_insertion_order')").fetchone()
    keep_order = bool(row[0]) if row else True
    duck.execute("SET preserve_insertion_order = false")
    restore = f"SET preserve_insertion_order = {'true' if keep_order else 'false'}"
    try:
        duck.execute(sql)
    except BaseException:
        # the error of the statement is the one that propagates (the SET may fail on the
        # transaction it aborted, and must not hide it)
        with contextlib.suppress(duckdb.Error):
            duck.execute(restore)
        raise
    duck.execute(restore)


class ApartClassifier:
    """Classifies the lines the Python reader hands over in a DuckDB of its own, in memory,
    a few hundred thousand at a time, and adds only the verdicts to the group's stage: the
    accepted lines to ``_classified``, the text of the others to ``_py_left`` (for the Python
    parser). A file of millions of lines (a block dump, a whole-voting archive) then never
    has its text staged whole: only its verdicts (some 200 bytes a line) are kept until the
    group is written. The scratch database has the store's memory limit and threads."""

    def __init__(self, duck: duckdb.DuckDBPyConnection) -> None:
        [(limit, threads)] = duck.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchall()
        self._config: dict[str, str | bool | int | float | list[str]] = {
            "memory_limit": str(limit),
            "threads": int(threads),
        }
        self.scratch = duckdb.connect(config=self._config)
        create_stage(self.scratch)
        self.staged = 0
        self.staged_chars = 0

    def add(self, rows: list[tuple[int, int, str]]) -> None:
        stage_lines(self.scratch, rows)
        self.staged += len(rows)
        self.staged_chars += sum(len(r[2]) for r in rows)

    def flush(self, duck: duckdb.DuckDBPyConnection) -> None:
        """Classify what was added since the last flush and add the verdicts to ``duck``."""
        if not self.staged:
            return
        classify(self.scratch)
        accepted = self.scratch.execute(f"SELECT {', '.join(CLASSIFIED_COLUMNS)} FROM _classified").df()
        left = self.scratch.execute(
            "SELECT file_id, line_number, left_line AS line FROM _verdict WHERE NOT accepted "
            "UNION ALL SELECT file_id, line_number, line FROM _py_left"
        ).df()
        self.forget()
        if len(accepted):
            with registered(duck, "_apart_classified", accepted):
                duck.execute(
                    f"INSERT INTO _classified SELECT {', '.join(CLASSIFIED_COLUMNS)} FROM _apart_classified "
                    "ORDER BY file_id, line_number"
                )
        if len(left):
            with registered(duck, "_apart_left", left):
                duck.execute("INSERT INTO _py_left SELECT file_id, line_number, line FROM _apart_left")
        _staged(duck)

    def forget(self) -> None:
        """Drop what was added since the last flush (its file was refused): a new scratch
        database, so that all the memory of the old one is given back."""
        self.scratch.close()
        self.scratch = duckdb.connect(config=self._config)
        create_stage(self.scratch)
        self.staged = 0
        self.staged_chars = 0

    def close(self) -> None:
        self.scratch.close()


def classify(duck: duckdb.DuckDBPyConnection) -> None:
    """Classify the staged lines DuckDB can read for certain into ``_classified`` (reading the
    staged text files, once); its verdict on every staged line stays in ``_verdict`` (and in
    ``_py_left``, for the lines :class:`ApartClassifier` classified already).

    ``_verdict`` is written without keeping the order of ``_lines``; ``_classified`` gets
    them in line order."""
    _run_unordered(duck, CLASSIFY_SQL)
    duck.execute(
        f"INSERT INTO _classified SELECT {', '.join(CLASSIFIED_COLUMNS)} FROM _verdict WHERE accepted "
        "ORDER BY file_id, line_number"
    )
    duck.execute("UPDATE _stage_state SET classified = TRUE")


def unclassified(duck: duckdb.DuckDBPyConnection) -> list[tuple[int, int, str]]:
    """``(file_id, line_number, line)`` of the staged lines left for the Python parser."""
    row = duck.execute("SELECT classified FROM _stage_state").fetchone()
    if row is not None and row[0]:  # every staged line has its verdict: no file is read again
        source = (
            "(SELECT file_id, line_number, left_line AS line FROM _verdict WHERE NOT accepted "
            "UNION ALL SELECT file_id, line_number, line FROM _py_left)"
        )
    else:
        source = "(SELECT file_id, line_number, line FROM _lines UNION ALL SELECT * FROM _py_left)"
    return duck.execute(
        f"SELECT l.file_id, l.line_number, l.line FROM {source} l "
        "ANTI JOIN _classified c ON c.file_id = l.file_id AND c.line_number = l.line_number "
        "ORDER BY 1, 2"
    ).fetchall()


def add_classified(duck: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Add lines the Python parser accepted (tuples in :data:`CLASSIFIED_COLUMNS` order)."""
    if not rows:
        return
    with registered(duck, "_py_classified", pd.DataFrame(rows, columns=CLASSIFIED_COLUMNS)):
        duck.execute(f"INSERT INTO _classified SELECT {', '.join(CLASSIFIED_COLUMNS)} FROM _py_classified")
