"""Search SQL: one statement per leg, typed filters compiled to bound parameters, rows turned into Hits.

Only our own integers (collection id, dimensions) are written into the SQL text, as literals, because
the planner must see them to use a collection's partial HNSW index; every user value is a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import sql

from rag.store.storage import index_order
from rag.types import Chunk, Collection, Filter, Hit, JsonValue, LegScore

_COLUMNS = """c.id, c.ordinal, c.text, c.start_char, c.end_char, c.language, c.page, c.heading,
              d.uri, d.title"""
# The index scan (``{order}``, by the collection's storage: rag/store/storage.py) returns ``pool`` candidates;
# the k nearest of them by the exact cosine on the full vectors are the result.
DENSE_SEARCH = """
    SELECT {columns}, c.dense <=> %(query)s::vector AS distance
    FROM (SELECT c.* FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
          WHERE c.collection_id = {collection} {filters}
          ORDER BY {order} LIMIT %(pool)s) AS c
    JOIN {schema}.documents d ON d.id = c.document_id
    ORDER BY 11, c.id LIMIT %(k)s
"""
SPARSE_SEARCH = """
    SELECT {columns}, c.sparse::sparsevec({dim}) <#> %(query)s::sparsevec({dim}) AS distance
    FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
    WHERE c.collection_id = {collection} AND c.sparse IS NOT NULL {filters}
    ORDER BY c.sparse::sparsevec({dim}) <#> %(query)s::sparsevec({dim})
    LIMIT %(k)s
"""
EXACT_DENSE_SEARCH = """
    SELECT {columns}, c.dense <=> %(query)s::vector AS distance
    FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
    WHERE c.collection_id = {collection} {filters}
    ORDER BY 11 LIMIT %(k)s
"""
# Both legs and their fusion in one statement: each leg is an index scan with its own LIMIT, ranks
# are numbered after the LIMIT (a window over the scan itself would defeat the index), and RRF is
# summed over a full outer join so a chunk found by one leg only still counts.
HYBRID_SEARCH = """
    WITH dense AS (
        SELECT id, distance, row_number() OVER (ORDER BY distance, id) AS rank FROM (
            SELECT c.id, c.dense <=> %(dense)s::vector AS distance
            FROM (SELECT c.id, c.dense FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
                  WHERE c.collection_id = {collection} {filters}
                  ORDER BY {dense_order} LIMIT %(pool)s) AS c
            ORDER BY 2, 1 LIMIT %(k_dense)s) AS leg
    ), sparse AS (
        SELECT id, language, distance, row_number() OVER (ORDER BY distance) AS rank FROM (
            SELECT c.id, c.language,
                   c.sparse::sparsevec({sparse_dim}) <#> %(sparse)s::sparsevec({sparse_dim}) AS distance
            FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
            WHERE c.collection_id = {collection} AND c.sparse IS NOT NULL {filters}
            ORDER BY c.sparse::sparsevec({sparse_dim}) <#> %(sparse)s::sparsevec({sparse_dim})
            LIMIT %(k_sparse)s) AS leg
        WHERE distance < 0
    ), fused AS (
        SELECT coalesce(dense.id, sparse.id) AS id, dense.rank AS dense_rank, 1 - dense.distance AS dense_score,
               sparse.rank AS sparse_rank, -sparse.distance AS sparse_score,
               coalesce(%(dense_weight)s / (%(rrf_k)s + dense.rank), 0)
               + coalesce(%(sparse_weight)s * CASE WHEN %(language)s::text IS NULL OR sparse.language = %(language)s
                                                   THEN 1 ELSE %(cross_language_weight)s END
                          / (%(rrf_k)s + sparse.rank), 0) AS score
        FROM dense FULL OUTER JOIN sparse ON sparse.id = dense.id
    )
    SELECT {columns}, f.score, f.dense_rank, f.dense_score, f.sparse_rank, f.sparse_score
    FROM fused f
    JOIN {schema}.chunks c ON c.collection_id = {collection} AND c.id = f.id
    JOIN {schema}.documents d ON d.id = c.document_id
    ORDER BY f.score DESC, c.id LIMIT %(k)s
"""
# Language-neutral dense search (rag/centering.py): one scan per language, each returning the products the
# scores are made of (for the chunk's vector and each of its sentences: q'.d, q.d, d.mean and |d|), which
# Python combines; the UNION ALL of LANGUAGE_LEGs is one statement. A language with few chunks is scanned
# exactly (``{order}`` without the index's cast), as an iterative HNSW scan would walk much of the graph
# to collect its k rows; an indexed one takes ``pool`` candidates by its storage's order and keeps the k
# nearest by the exact cosine.
LANGUAGE_STATS = """
    SELECT kind, language, rows, dense_sum FROM {schema}.language_stats WHERE collection_id = {collection}
    UNION ALL
    SELECT 'reference', language, rows, dense_sum FROM {schema}.language_reference
    WHERE collection_id = {collection}
"""
ADD_LANGUAGE_REFERENCE = """
    INSERT INTO {schema}.language_reference (collection_id, language, rows, dense_sum)
    VALUES (%(collection)s, %(language)s, %(rows)s, %(dense_sum)s) ON CONFLICT DO NOTHING
"""
LANGUAGE_LEG = """
    (SELECT {columns}, -(c.dense <#> %(query)s::vector), -(c.dense <#> %(plain)s::vector),
            -(c.dense <#> {centroid}::vector), vector_norm(c.dense),
            s.query_dots, s.plain_dots, s.centroid_dots, s.norms, c.latent
     FROM (SELECT c.* FROM (SELECT c.* FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
                            WHERE c.collection_id = {collection} AND c.language = {language} {filters}
                            ORDER BY {order} LIMIT %(pool)s) AS c
           ORDER BY c.dense <=> %(plain)s::vector, c.id LIMIT %(k)s) AS c
     JOIN {schema}.documents d ON d.id = c.document_id
     LEFT JOIN LATERAL (
         SELECT array_agg(-(s.dense <#> %(query)s::vector)) AS query_dots,
                array_agg(-(s.dense <#> %(plain)s::vector)) AS plain_dots,
                array_agg(-(s.dense <#> {sentence_centroid}::vector)) AS centroid_dots,
                array_agg(vector_norm(s.dense)) AS norms
         FROM {schema}.sentences s WHERE s.collection_id = {collection} AND s.chunk_id = c.id) AS s ON true)
"""
EXACT_ORDER = "c.dense <=> %(plain)s::vector"
SET_EF_SEARCH = "SELECT set_config('hnsw.ef_search', %(ef)s, true)"
# With filters, keep scanning the graph until k rows pass them (pgvector >= 0.8).
SET_ITERATIVE_SCAN = "SELECT set_config('hnsw.iterative_scan', 'strict_order', true)"
TERM_FREQUENCIES = """
    SELECT t.term, (SELECT count(*) FROM {schema}.chunks c
                    WHERE c.collection_id = {collection} AND c.terms @> ARRAY[t.term])
    FROM unnest(%(terms)s::integer[]) AS t(term)
"""
NEIGHBOURS = """
    SELECT c.id, c.ordinal, c.text, c.start_char, c.end_char, c.language, c.page, c.heading, d.uri, d.title
    FROM {schema}.chunks c JOIN {schema}.documents d ON d.id = c.document_id
    WHERE c.collection_id = {collection} AND d.uri = %(uri)s AND c.ordinal BETWEEN %(low)s AND %(high)s
    ORDER BY c.ordinal
"""
CHUNK_COUNT = "SELECT count(*) FROM {schema}.chunks WHERE collection_id = {collection}"


def glob_to_like(pattern: str) -> str:
    """A glob (``*``, ``?``) as a LIKE pattern; without a scheme it matches the end of the URI."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    like = escaped.replace("*", "%").replace("?", "_")
    return like if "://" in pattern else "%" + like


def _nested(path: str, value: JsonValue) -> dict[str, JsonValue]:
    """``a.b`` and 1 as ``{"a": {"b": 1}}``, for jsonb containment."""
    result: JsonValue = value
    for part in reversed(path.split(".")):
        result = {part: result}
    assert isinstance(result, dict)
    return result


def compile_filter(where: Filter | None) -> tuple[sql.Composable, dict[str, Any]]:
    """The filter as ``AND ...`` SQL with its parameters (names are ours, values are bound)."""
    from psycopg.types.json import Jsonb

    if where is None or where.is_empty():
        return sql.SQL(""), {}
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if where.languages:
        clauses.append("c.language = ANY(%(f_languages)s)")
        params["f_languages"] = list(where.languages)
    if where.source:
        clauses.append("d.uri LIKE %(f_source)s ESCAPE '\\'")
        params["f_source"] = glob_to_like(where.source)
    for i, (key, value) in enumerate(where.metadata.items()):
        clauses.append(f"d.metadata @> %(f_meta_{i})s")
        params[f"f_meta_{i}"] = Jsonb(_nested(key, value))
    if where.after:
        clauses.append("d.updated_at >= %(f_after)s")
        params["f_after"] = where.after
    if where.before:
        clauses.append("d.updated_at < %(f_before)s")
        params["f_before"] = where.before
    return sql.SQL(" ".join(f"AND {clause}" for clause in clauses)), params


def search_statement(template: str, schema: str, collection: Collection, dim: int, where: Filter | None
                     ) -> tuple[sql.Composed, dict[str, Any]]:
    """One leg's (or the hybrid) statement for ``collection`` with the filter applied."""
    filters, params = compile_filter(where)
    statement = sql.SQL(template).format(
        columns=sql.SQL(_COLUMNS), schema=sql.Identifier(schema), dim=sql.Literal(int(dim)),
        sparse_dim=sql.Literal(int(collection.sparse_dim)), collection=sql.Literal(int(collection.id)),
        filters=filters, order=index_order(collection.storage, collection.dim, "query"),
        dense_order=index_order(collection.storage, collection.dim, "dense"),
    )
    return statement, params


def language_legs_statement(schema: str, collection: Collection, languages: Sequence[tuple[str, bool]],
                            where: Filter | None) -> tuple[sql.Composed, dict[str, Any]]:
    """LANGUAGE_LEG for each ``(language, exact)`` joined by UNION ALL; the caller binds query, plain, k, pool,
    and each leg's centroid_i and sentence_centroid_i."""
    filters, params = compile_filter(where)
    legs = []
    for i, (language, exact) in enumerate(languages):
        order = sql.SQL(EXACT_ORDER) if exact else index_order(collection.storage, collection.dim, "plain")
        legs.append(sql.SQL(LANGUAGE_LEG).format(
            columns=sql.SQL(_COLUMNS), schema=sql.Identifier(schema), collection=sql.Literal(int(collection.id)),
            centroid=sql.Placeholder(f"centroid_{i}"), sentence_centroid=sql.Placeholder(f"sentence_centroid_{i}"),
            # A literal (a detected language code, quoted by psycopg) so the planner can use the language's
            # own partial HNSW index (rag/store/schema.py, LANGUAGE_INDEX).
            language=sql.Literal(language),
            filters=filters, order=order))
    return sql.SQL(" UNION ALL ").join(legs), params


def fused_row_to_hit(row: tuple[Any, ...], collection: Collection) -> Hit:
    """A HYBRID_SEARCH row as a Hit with its RRF score and each leg's rank and score."""
    hit = row_to_hit(row, collection, "dense", 1, 0.0)
    score, dense_rank, dense_score, sparse_rank, sparse_score = row[10:15]
    legs = [LegScore("dense", int(dense_rank), float(dense_score))] if dense_rank is not None else []
    if sparse_rank is not None:
        legs.append(LegScore("sparse", int(sparse_rank), float(sparse_score)))
    return Hit(hit.chunk, hit.title, float(score), tuple(legs), collection.name)


def collection_statement(template: str, schema: str, collection: Collection) -> sql.Composed:
    """A statement over one collection's rows."""
    return sql.SQL(template).format(
        schema=sql.Identifier(schema), collection=sql.Literal(int(collection.id)))


def row_to_chunk(row: tuple[Any, ...]) -> Chunk:
    """The first ten columns of a chunk row (``_COLUMNS``) as a Chunk."""
    chunk_id, ordinal, text, start, end, language, page, heading, uri, _title = row[:10]
    return Chunk(chunk_id, uri, ordinal, text, start, end, language, page, tuple(heading or ()))


def row_to_hit(row: tuple[Any, ...], collection: Collection, leg: str, rank: int,
               score: float) -> Hit:
    """A result row as a Hit carrying its leg's rank and score."""
    return Hit(row_to_chunk(row), row[9], score, (LegScore(leg, rank, score),), collection.name)
