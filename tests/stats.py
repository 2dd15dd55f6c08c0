"""The language statistics (migrations 3 and 6) checked against a recount from the rows they summarise."""

from __future__ import annotations

# Rows where the stored count or vector sum of a (collection, kind, language) differs from a recount of the
# chunks and sentences, or a stored latent-term total of a (collection, language, term) differs from a
# recount of the chunks' latent terms; empty when the triggers kept them right. float4 sums drift a little
# as rows come and go, hence the tolerances, relative to the row count.
STATS_DRIFT = """
    WITH truth AS (
        SELECT collection_id, 'chunk' AS kind, language, count(*) AS rows, sum(dense) AS dense_sum
        FROM {s}.chunks GROUP BY collection_id, language
        UNION ALL
        SELECT collection_id, 'sentence', language, count(*), sum(dense)
        FROM {s}.sentences GROUP BY collection_id, language
    ), latent_truth AS (
        SELECT collection_id, language, t.term, sum(t.weight) AS total
        FROM {s}.chunks, {s}.latent_terms_of(latent) AS t WHERE latent IS NOT NULL GROUP BY 1, 2, 3
    )
    SELECT coalesce(t.kind, l.kind), coalesce(t.language, l.language), t.rows, l.rows
    FROM truth t FULL OUTER JOIN {s}.language_stats l
        ON l.collection_id = t.collection_id AND l.kind = t.kind AND l.language = t.language
    WHERE t.rows IS DISTINCT FROM l.rows OR (t.dense_sum <-> l.dense_sum) > 1e-4 * t.rows
    UNION ALL
    SELECT 'latent ' || coalesce(t.term, l.term), coalesce(t.language, l.language), t.total, l.total
    FROM latent_truth t FULL OUTER JOIN {s}.latent_stats l
        ON l.collection_id = t.collection_id AND l.language = t.language AND l.term = t.term
    WHERE abs(coalesce(t.total, 0) - coalesce(l.total, 0)) > 1e-4
       OR NOT EXISTS (SELECT 1 FROM {s}.language_stats k WHERE k.kind = 'chunk'
                      AND k.collection_id = coalesce(t.collection_id, l.collection_id)
                      AND k.language = coalesce(t.language, l.language))
"""
