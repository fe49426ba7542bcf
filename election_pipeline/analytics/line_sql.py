"""Export lines read and classified by DuckDB (docs/input-format.md#export-line).

The ingest puts every line of a group of files into the temporary table ``_lines``
(``file_id``, ``line_number``, ``line``): DuckDB itself reads the ``.csv`` files
(``read_text``, split at ``\\n``, the byte-order mark and trailing ``\\r`` removed); the lines of
zip members and of files that are not valid UTF-8 are handed over by the Python reader.

:func:`classify` then splits and classifies the lines in one vectorised pass, on every core:
transaction id, type, version, timestamp, sender, operation, the ``FAIL`` rule, rollback,
bulletins per ``blindSigIssue`` and voters per ``addVotersList``, exactly as the Python parser
(:func:`election_pipeline.ingest.export_line.parse_line`) reads them.

DuckDB only ever **accepts** a line. It accepts the lines whose shape leaves no doubt: the
12 fields (split at every ``;``, or, when a JSON string holds a ``;``, at the ``;`` outside
JSON strings), plain ASCII identifiers and numbers, ``params`` and ``diff`` arrays of objects
without repeated keys, no JSON ``null``/``NaN``/``Infinity`` or trailing comma (the places
where DuckDB's JSON reader and Python's differ), at most :data:`MAX_BRACKETS` brackets. Every
other line goes to the Python parser, which either accepts it too or rejects it with its
reason, so every rejection and its wording comes from one place. A differential property
test (``election_pipeline_tests/ingest/test_line_sql_differential.py``) checks that both
read every accepted line alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import duckdb
import pandas as pd

from election_pipeline.vocabulary import Operation

#: Lines with more ``[`` and ``{`` than this go to the Python parser: it reads deep JSON
#: (and rejects JSON nested too deeply to read) where DuckDB's reader has no such limit.
MAX_BRACKETS = 500

#: JSON value positions where DuckDB's reader is more lenient than Python's (``NaN``, ``inf``,
#: trailing commas) or where a ``null`` would hide whether a key is present.
_LENIENT = r",\s*[\]}]|[\[,:]\s*(?:[-+]?(?i:nan|inf)|null)|[0-9]{200}"
#: One of the JSON fields: text with no ``;`` outside JSON strings.
_FIELD = r'(?:[^;"]|"(?:[^"\\]|\\.)*")*'
_REST = rf"^({_FIELD});({_FIELD});({_FIELD});([^;]*)$"
_ID = r"^[\x21-\x7e]{1,128}$"
_SENDER = r"^[\x21-\x7e]{0,255}$"
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


def create_stage(duck: duckdb.DuckDBPyConnection) -> None:
    """(Re)create the empty staging tables of one group of files."""
    duck.execute("CREATE OR REPLACE TEMP TABLE _lines (file_id INTEGER, line_number INTEGER, line VARCHAR)")
    duck.execute(
        "CREATE OR REPLACE TEMP TABLE _classified ("
        "file_id INTEGER, line_number INTEGER, tx_id VARCHAR, tx_type INTEGER, version INTEGER, ts_ms BIGINT, "
        "sender VARCHAR, fee VARCHAR, fee_asset VARCHAR, operation VARCHAR, rejected BOOLEAN, fail_key VARCHAR, "
        "is_rollback BOOLEAN, bulletins INTEGER, voters_added INTEGER)"
    )


_SAFE_PATH = re.compile(r"^[A-Za-z0-9/._+=,@ -]+$")


def readable_by_duckdb(path: str) -> bool:
    """Whether DuckDB's ``read_text`` can be given this path literally: it reads its argument
    as a glob pattern, so a path with ``*``, ``?``, ``[``, quotes or other unusual characters is
    read by the Python reader instead."""
    return bool(_SAFE_PATH.match(path))


def stage_text_files(duck: duckdb.DuckDBPyConnection, files: Iterable[tuple[int, str]]) -> None:
    """Read whole UTF-8 ``.csv`` files (``(file_id, path)``) into ``_lines``, one row per
    non-blank line with its 1-based line number. Blank lines (spaces and tabs only) carry
    nothing and are left out, as the Python reader does."""
    files = list(files)
    if not files:
        return
    for _, path in files:
        if not readable_by_duckdb(path):
            raise ValueError(f"{path!r} cannot be read by read_text (glob characters or quotes in its path)")
    listed = ", ".join(f"'{path}'" for _, path in files)
    duck.register("_text_files", pd.DataFrame(files, columns=["file_id", "path"]))
    try:
        duck.execute(
            f"""
            INSERT INTO _lines
            WITH split AS (
                SELECT f.file_id, string_split(t.content, chr(10)) AS lines
                FROM read_text([{listed}]) t
                JOIN _text_files f ON f.path = t.filename
            ),
            numbered AS (
                SELECT file_id, unnest(lines) AS line, unnest(range(1, len(lines) + 1)) AS line_number FROM split
            ),
            cleaned AS (
                SELECT file_id, line_number,
                       rtrim(CASE WHEN line_number = 1 AND starts_with(line, chr(65279)) THEN line[2:] ELSE line END,
                             chr(13)) AS line
                FROM numbered
            )
            SELECT file_id, line_number, line FROM cleaned
            WHERE NOT regexp_full_match(line, '[ \t\x0b\x0c]*')
            """
        )
    finally:
        duck.unregister("_text_files")


def stage_lines(duck: duckdb.DuckDBPyConnection, rows: list[tuple[int, int, str]]) -> None:
    """Add lines read by Python (``(file_id, line_number, text)``, already without line ending
    and byte-order mark) to ``_lines``."""
    if not rows:
        return
    duck.register("_py_lines", pd.DataFrame(rows, columns=["file_id", "line_number", "line"]))
    try:
        duck.execute("INSERT INTO _lines SELECT file_id, line_number, line FROM _py_lines")
    finally:
        duck.unregister("_py_lines")


CLASSIFY_SQL = rf"""
INSERT INTO _classified
WITH candidates AS (
    SELECT file_id, line_number, string_split(line, ';') AS parts
    FROM _lines
    WHERE NOT contains(line, chr(0)) AND NOT contains(line, '\\u0000')
),
split AS (
    SELECT file_id, line_number, parts[1] AS tx_id, parts[2] AS tx_type, parts[4] AS version, parts[5] AS ts,
           parts[6] AS sender, parts[7] AS fee, parts[8] AS fee_asset,
           CASE WHEN len(parts) = 12
                THEN {{'params': parts[9], 'diff': parts[10], 'extra': parts[11], 'rollback': parts[12]}}
                ELSE regexp_extract(array_to_string(list_slice(parts, 9, len(parts)), ';'), '{_REST}', ['params', 'diff', 'extra', 'rollback'])
           END AS j
    FROM candidates
    WHERE len(parts) = 12 OR (len(parts) > 12 AND regexp_full_match(array_to_string(list_slice(parts, 9, len(parts)), ';'), '{_REST}'))
),
located AS (
    SELECT *, strpos(j.params, '"binaryValue":"') AS blob_at FROM split
),
tails AS (
    SELECT *, CASE WHEN blob_at > 0 THEN substring(j.params, blob_at + 15) END AS tail FROM located
),
-- The first binary value (an encrypted ballot: kilobytes of base64) is replaced by '~' for the
-- structure checks below, which then read a few hundred bytes instead of kilobytes. Only the
-- content of one JSON string is cut (json_valid reads the whole field), so the checks see the
-- same structure.
cut AS (
    SELECT *,
           CASE WHEN tail IS NULL OR contains(left(tail, strpos(tail, '"')), chr(92)) THEN j.params
                ELSE left(j.params, blob_at + 14) || '~' || substring(tail, strpos(tail, '"')) END AS params_cut
    FROM tails
),
shaped AS (
    SELECT * FROM cut
    WHERE regexp_full_match(tx_id, '{_ID}')
      AND tx_type IN ('103', '104')
      AND (version = '' OR regexp_full_match(version, '[0-9]{{1,9}}'))
      AND regexp_full_match(ts, '[0-9]{{12,13}}')
      AND CAST(ts AS BIGINT) >= {_MIN_TS_MS} AND CAST(ts AS BIGINT) < {_MAX_TS_MS}
      AND regexp_full_match(sender, '{_SENDER}')
      AND j.rollback IN ('', '-1')
      AND (j.params = '' OR (starts_with(j.params, '[') AND ends_with(j.params, ']')))
      AND (j.diff = '' OR (starts_with(j.diff, '[') AND ends_with(j.diff, ']')))
      AND (j.extra = '' OR (starts_with(j.extra, '{{') AND ends_with(j.extra, '}}')))
      AND NOT regexp_matches(params_cut || ';' || j.diff || ';' || j.extra, '{_LENIENT}')
      AND length(params_cut || j.diff || j.extra)
          - length(replace(replace(params_cut || j.diff || j.extra, '[', ''), '{{', '')) <= {MAX_BRACKETS}
),
valid AS (
    SELECT * FROM shaped
    WHERE (j.params = '' OR json_valid(j.params))
      AND (j.diff = '' OR json_valid(j.diff))
      AND (j.extra = '' OR json_valid(j.extra))
),
parsed AS (
    SELECT *,
           CASE WHEN j.params = '' THEN [] ELSE from_json(params_cut, '{_PARAMS_SCHEMA}') END AS pe,
           CASE WHEN j.diff = '' THEN [] ELSE from_json(j.diff, '{_DIFF_SCHEMA}') END AS de,
           CASE WHEN j.params = '' THEN TRUE ELSE
               list_bool_and(list_transform(json_type(params_cut, '$[*]'), lambda t: t = 'OBJECT'))
               AND list_bool_and(list_transform(json_keys(params_cut, '$[*]'), lambda k: len(k) = len(list_distinct(k))))
           END AS params_ok,
           CASE WHEN j.diff = '' THEN TRUE ELSE
               list_bool_and(list_transform(json_type(j.diff, '$[*]'), lambda t: t = 'OBJECT'))
               AND list_bool_and(list_transform(json_keys(j.diff, '$[*]'), lambda k: len(k) = len(list_distinct(k))))
           END AS diff_ok
    FROM valid
),
entries AS (
    SELECT *,
           list_transform(list_filter(pe, lambda e: e.key IS NOT NULL), lambda e: e.key) AS keys,
           list_filter(pe, lambda e: e.key = 'operation') AS op_e,
           list_filter(pe, lambda e: e.key = 'data') AS data_e,
           list_filter(pe, lambda e: e.key = 'votersCount') AS count_e,
           list_filter(pe, lambda e: e.key = 'userIdHashes') AS hashes_e,
           list_filter(list_transform(de, lambda e: e.key), lambda k: starts_with(k, 'FAIL')) AS fails
    FROM parsed
    WHERE coalesce(params_ok, TRUE) AND coalesce(diff_ok, TRUE)
),
named AS (
    SELECT *,
           coalesce(op_e[1].stringValue, op_e[1].intValue, op_e[1].boolValue) AS op_raw,
           coalesce(data_e[1].stringValue, data_e[1].intValue, data_e[1].boolValue) AS data_raw,
           coalesce(count_e[1].stringValue, count_e[1].intValue, count_e[1].boolValue) AS count_raw,
           coalesce(hashes_e[1].stringValue, hashes_e[1].intValue, hashes_e[1].boolValue) AS hashes_raw
    FROM entries
    WHERE len(keys) = len(list_distinct(keys))
),
operations AS (
    SELECT *,
           CASE WHEN len(op_e) = 0 AND tx_type = '103' THEN 'createContract'
                WHEN op_raw IS NOT NULL AND regexp_full_match(op_raw, '[A-Za-z]+')
                    THEN {_operations_case("lower(op_raw)")}
           END AS operation
    FROM named
),
counted AS (
    SELECT *,
           CASE WHEN operation = 'blindSigIssue' AND data_raw IS NOT NULL AND NOT regexp_matches(data_raw, '{_LENIENT}')
                     AND json_valid(data_raw)
                THEN (CASE WHEN json_type(data_raw) = 'ARRAY' THEN json_array_length(data_raw) END)
           END AS bulletins_n,
           CASE WHEN operation <> 'addVotersList' THEN NULL
                WHEN len(count_e) > 0 AND count_raw IS NOT NULL
                    THEN (CASE WHEN regexp_full_match(count_raw, '[0-9]{{1,9}}') THEN CAST(count_raw AS INTEGER) END)
                WHEN len(count_e) > 0 THEN NULL
                WHEN hashes_raw IS NOT NULL AND NOT regexp_matches(hashes_raw, '{_LENIENT}') AND json_valid(hashes_raw)
                    THEN (CASE WHEN json_type(hashes_raw) = 'ARRAY' THEN json_array_length(hashes_raw) END)
           END AS voters_n
    FROM operations
    WHERE operation IS NOT NULL
      AND (tx_type = '104' OR operation = 'createContract')
      AND (operation <> 'vote' OR sender <> '')
)
SELECT file_id, line_number, tx_id, CAST(tx_type AS INTEGER), CAST(nullif(version, '') AS INTEGER),
       CAST(ts AS BIGINT), sender, fee, fee_asset, operation, len(fails) > 0, fails[1], j.rollback = '-1',
       CAST(coalesce(bulletins_n, 0) AS INTEGER), CAST(voters_n AS INTEGER)
FROM counted
WHERE (operation <> 'blindSigIssue' OR bulletins_n IS NOT NULL)
  AND (operation <> 'addVotersList' OR voters_n IS NOT NULL)
"""


def classify(duck: duckdb.DuckDBPyConnection) -> None:
    """Classify the staged lines DuckDB can read for certain into ``_classified``."""
    duck.execute(CLASSIFY_SQL)


def unclassified(duck: duckdb.DuckDBPyConnection) -> list[tuple[int, int, str]]:
    """``(file_id, line_number, line)`` of the staged lines left for the Python parser."""
    return duck.execute(
        "SELECT l.file_id, l.line_number, l.line FROM _lines l "
        "ANTI JOIN _classified c ON c.file_id = l.file_id AND c.line_number = l.line_number "
        "ORDER BY 1, 2"
    ).fetchall()


def add_classified(duck: duckdb.DuckDBPyConnection, rows: list[tuple]) -> None:
    """Add lines the Python parser accepted (tuples in :data:`CLASSIFIED_COLUMNS` order)."""
    if not rows:
        return
    duck.register("_py_classified", pd.DataFrame(rows, columns=CLASSIFIED_COLUMNS))
    try:
        duck.execute(f"INSERT INTO _classified SELECT {', '.join(CLASSIFIED_COLUMNS)} FROM _py_classified")
    finally:
        duck.unregister("_py_classified")
