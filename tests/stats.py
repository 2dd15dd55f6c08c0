"""The language statistics (migration 3) checked against a recount from the rows they summarise."""

from __future__ import annotations

# Rows where the stored count or vector sum of a (collection, kind, language) differs from a recount of the
# chunks and sentences; empty when the triggers kept them right. float4 sums drift a little
# as rows come and go, hence the tolerances, relative to the row count.
STATS_DRIFT = """
    WITH truth AS (
        SELECT collection_id, 'chunk' AS kind, language, count(*) AS rows, sum(dense) AS dense_sum
        FROM {s}.chunks GROUP BY collection_id, language
        UNION ALL
        SELECT collection_id, 'sentence', language, count(*), sum(dense)
        FROM {s}.sentences GROUP BY collection_id, language
    )
    SELECT coalesce(t.kind, l.kind), coalesce(t.language, l.language), t.rows, l.rows
    FROM truth t FULL OUTER JOIN {s}.language_stats l
        ON l.collection_id = t.collection_id AND l.kind = t.kind AND l.language = t.language
    WHERE t.rows IS DISTINCT FROM l.rows OR (t.dense_sum <-> l.dense_sum) > 1e-4 * t.rows
"""
