"""The counting rules of docs/input-format.md#counting-rules as DuckDB SQL over the raw store.

* ``transaction_count``: standing transactions (not rolled back) of the hour, rejected included.
* ``bulletins_issued``: bulletins (elements of ``data``) of accepted ``blindSigIssue`` transactions.
* ``votes_cast``: voter keys whose first accepted vote falls in the hour.
* ``revote_count``: accepted votes of the hour that are not a key's first.
* ``rejected_count``: standing transactions the contract rejected (``FAIL`` in ``diff``).

Hours are UTC: ``[h, h+1)``. ``LIVE_HOURLY_SQL`` and ``LIVE_TOTALS_SQL`` take the standing
transactions they count as ``{source}``; the stored figures
(:mod:`election_pipeline.analytics.figure_cache`), the figures read from them
(:mod:`election_pipeline.analytics.aggregation`) and the frozen figures of retired
constituencies (:mod:`election_pipeline.stages.retention`) are all computed with them.
"""

from __future__ import annotations

#: Standing transactions of the constituencies whose transactions are still kept (the
#: retention job freezes the figures of the others in ``retired_hourly``/``retired_totals``).
LIVE = (
    "(SELECT * FROM standing_transactions WHERE constituency_id NOT IN "
    "(SELECT constituency_id FROM retired_constituencies))"
)

LIVE_HOURLY_SQL = """
WITH s AS (
    SELECT *, date_trunc('hour', ts) AS hour FROM {source}
),
accepted_votes AS (
    SELECT constituency_id, sender, ts, hour,
           row_number() OVER (PARTITION BY constituency_id, sender ORDER BY ts, tx_id) AS nth
    FROM s WHERE operation = 'vote' AND NOT rejected
),
vote_hours AS (
    SELECT constituency_id, hour,
           count(*) FILTER (WHERE nth = 1) AS votes_cast,
           count(*) FILTER (WHERE nth > 1) AS revote_count
    FROM accepted_votes GROUP BY ALL
),
tx_hours AS (
    SELECT constituency_id, hour,
           count(*) AS transaction_count,
           coalesce(sum(bulletins) FILTER (WHERE operation = 'blindSigIssue' AND NOT rejected), 0)
               AS bulletins_issued,
           count(*) FILTER (WHERE rejected) AS rejected_count,
           max(ts) AS last_ts
    FROM s GROUP BY ALL
)
SELECT t.constituency_id, t.hour,
       CAST(t.bulletins_issued AS BIGINT) AS bulletins_issued,
       CAST(coalesce(v.votes_cast, 0) AS BIGINT) AS votes_cast,
       CAST(coalesce(v.revote_count, 0) AS BIGINT) AS revote_count,
       CAST(t.rejected_count AS BIGINT) AS rejected_count,
       CAST(t.transaction_count AS BIGINT) AS transaction_count,
       CAST(sum(t.bulletins_issued) OVER w AS BIGINT) AS cumulative_bulletins,
       CAST(sum(coalesce(v.votes_cast, 0)) OVER w AS BIGINT) AS cumulative_votes,
       t.last_ts AS timestamp
FROM tx_hours t
LEFT JOIN vote_hours v USING (constituency_id, hour)
WINDOW w AS (PARTITION BY t.constituency_id ORDER BY t.hour
             ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
"""

HOURLY_SQL = (
    "SELECT * FROM (" + LIVE_HOURLY_SQL.format(source=LIVE) + ") live\n"
    "UNION ALL SELECT * FROM retired_hourly\n"
    "ORDER BY constituency_id, hour"
)

LIVE_TOTALS_SQL = """
WITH s AS (SELECT * FROM {source})
SELECT constituency_id,
       CAST(count(*) AS BIGINT) AS transaction_count,
       CAST(coalesce(sum(bulletins) FILTER (WHERE operation = 'blindSigIssue' AND NOT rejected), 0) AS BIGINT)
           AS bulletins_issued,
       CAST(count(DISTINCT sender) FILTER (WHERE operation = 'vote' AND NOT rejected) AS BIGINT) AS votes_cast,
       CAST(count(*) FILTER (WHERE operation = 'vote' AND NOT rejected) AS BIGINT) AS accepted_votes,
       CAST(count(*) FILTER (WHERE rejected) AS BIGINT) AS rejected_count,
       CAST(coalesce(sum(voters_added) FILTER (WHERE operation = 'addVotersList' AND NOT rejected), 0) AS BIGINT)
           AS voters_registered_on_chain,
       min(ts) FILTER (WHERE operation = 'startVoting' AND NOT rejected) AS voting_started,
       max(ts) FILTER (WHERE operation = 'finishVoting' AND NOT rejected) AS voting_finished,
       min(ts) AS first_ts,
       max(ts) AS last_ts
FROM s GROUP BY constituency_id
"""

TOTALS_SQL = (
    "SELECT * FROM (" + LIVE_TOTALS_SQL.format(source=LIVE) + ") live\n"
    "UNION ALL SELECT * FROM retired_totals\n"
    "ORDER BY constituency_id"
)
