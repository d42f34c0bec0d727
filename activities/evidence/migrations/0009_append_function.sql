-- One round trip per append: the run's row, the chained events, their projection rows and the chain
-- head in one statement (before: one statement each, in a transaction of their own). Hashes are still
-- computed by the caller, over RFC 8785 JSON; the function only stores them. A batch whose seqs are
-- taken by other events (another hash) is refused whole (SQLSTATE GF001) and nothing of it stays;
-- rows already there with the same hash (a retried append) are left as they are and not projected
-- again. Projections: {"<table>": [rows with run_id and seq], ...} for the four projection tables.
CREATE FUNCTION govflow_append(
    p_stream text, p_stream_id text, p_seqs integer[], p_kinds text[], p_at timestamptz[], p_payloads jsonb[],
    p_prevs text[], p_hashes text[], p_run jsonb, p_projections jsonb
) RETURNS integer[] LANGUAGE plpgsql AS $$
DECLARE
    stored integer[];
    clash record;
    n integer := cardinality(p_seqs);
BEGIN
    IF p_run IS NOT NULL THEN
        INSERT INTO runs SELECT * FROM jsonb_populate_record(NULL::runs, p_run) ON CONFLICT (run_id) DO NOTHING;
    END IF;
    WITH ins AS (
        INSERT INTO evidence_events (stream, stream_id, seq, kind, occurred_at, payload, prev_hash, hash)
        SELECT p_stream, p_stream_id, e.seq, e.kind, e.occurred_at, e.payload, e.prev_hash, e.hash
        FROM unnest(p_seqs, p_kinds, p_at, p_payloads, p_prevs, p_hashes)
            AS e (seq, kind, occurred_at, payload, prev_hash, hash)
        ON CONFLICT (stream, stream_id, seq) DO NOTHING
        RETURNING seq
    )
    SELECT coalesce(array_agg(ins.seq), '{}') INTO stored FROM ins;
    IF cardinality(stored) < n THEN
        -- The seqs are consecutive (the caller checks): one range of the primary key.
        SELECT e.seq, e.kind, e.hash, p_hashes[e.seq - p_seqs[1] + 1] AS own_hash,
               p_kinds[e.seq - p_seqs[1] + 1] AS own_kind INTO clash
        FROM evidence_events e
        WHERE e.stream = p_stream AND e.stream_id = p_stream_id AND e.seq BETWEEN p_seqs[1] AND p_seqs[n]
          AND NOT (e.seq = ANY (stored)) AND e.hash <> p_hashes[e.seq - p_seqs[1] + 1]
        ORDER BY e.seq LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION '% %: seq % already holds a different event (%, hash %); refusing to overwrite it with % (hash %)',
                p_stream, p_stream_id, clash.seq, clash.kind, left(clash.hash, 12), clash.own_kind,
                left(clash.own_hash, 12)
                USING ERRCODE = 'GF001';
        END IF;
    END IF;
    IF p_projections IS NOT NULL AND cardinality(stored) > 0 THEN
        INSERT INTO policy_decisions SELECT r.* FROM
            jsonb_populate_recordset(NULL::policy_decisions, p_projections -> 'policy_decisions') r
            WHERE r.seq = ANY (stored);
        INSERT INTO approval_attempts SELECT r.* FROM
            jsonb_populate_recordset(NULL::approval_attempts, p_projections -> 'approval_attempts') r
            WHERE r.seq = ANY (stored);
        INSERT INTO touched_records SELECT r.* FROM
            jsonb_populate_recordset(NULL::touched_records, p_projections -> 'touched_records') r
            WHERE r.seq = ANY (stored);
        INSERT INTO quality_scores SELECT r.* FROM
            jsonb_populate_recordset(NULL::quality_scores, p_projections -> 'quality_scores') r
            WHERE r.seq = ANY (stored);
    END IF;
    INSERT INTO chain_heads (stream, stream_id, seq, hash) VALUES (p_stream, p_stream_id, p_seqs[n], p_hashes[n])
    ON CONFLICT (stream, stream_id) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash
    WHERE chain_heads.seq < EXCLUDED.seq;
    RETURN stored;
END;
$$;
