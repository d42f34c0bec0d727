-- Evidence store, schema v1.
--
-- evidence_events is the hash chain: one stream per run and one per rollout,
-- each row carrying the previous row's hash and its own. The typed tables
-- (policy_decisions, approval_attempts, touched_records, quality_scores) are
-- projections of chained run events, for querying; `govflow evidence verify`
-- checks that every projection row equals the event it came from.
--
-- Rows are append-only: a trigger refuses UPDATE and DELETE. A superuser can
-- still get past it; the chain is what detects that.

CREATE TABLE runs (
    run_id          text PRIMARY KEY,
    task            text NOT NULL,
    task_version    text NOT NULL,
    policy_digest   text NOT NULL,
    item_key        text NOT NULL,
    requester       text NOT NULL,
    stage           text NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('shadow', 'live')),
    started_at      timestamptz NOT NULL
);

CREATE TABLE evidence_events (
    stream          text NOT NULL CHECK (stream IN ('run', 'rollout')),
    stream_id       text NOT NULL,
    seq             integer NOT NULL CHECK (seq >= 1),
    kind            text NOT NULL,
    occurred_at     timestamptz NOT NULL,
    payload         jsonb NOT NULL,
    prev_hash       text NOT NULL,
    hash            text NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, stream_id, seq)
);

CREATE INDEX evidence_events_kind ON evidence_events (stream, kind, occurred_at);

-- The last link of every stream, so that a deleted tail is detected too.
CREATE TABLE chain_heads (
    stream          text NOT NULL,
    stream_id       text NOT NULL,
    seq             integer NOT NULL,
    hash            text NOT NULL,
    PRIMARY KEY (stream, stream_id)
);

CREATE VIEW run_events AS
    SELECT stream_id AS run_id, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
    FROM evidence_events WHERE stream = 'run';

CREATE VIEW rollout_events AS
    SELECT stream_id AS rollout_id, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
    FROM evidence_events WHERE stream = 'rollout';

CREATE TABLE policy_decisions (
    run_id          text NOT NULL,
    seq             integer NOT NULL,
    action_id       text NOT NULL,
    action_digest   text NOT NULL,
    policy_digest   text NOT NULL,
    decision        text NOT NULL CHECK (decision IN ('allow', 'needs_approval', 'deny')),
    rule            text,
    reason          text NOT NULL,
    gate            jsonb,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE approval_attempts (
    run_id          text NOT NULL,
    seq             integer NOT NULL,
    action_id       text NOT NULL,
    action_digest   text NOT NULL,
    reviewer        text NOT NULL,
    verdict         text NOT NULL CHECK (verdict IN ('approve', 'reject')),
    accepted        boolean NOT NULL,
    reason          text NOT NULL,
    signed          boolean NOT NULL,
    via             text NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE touched_records (
    run_id          text NOT NULL,
    seq             integer NOT NULL,
    action_id       text NOT NULL,
    system          text NOT NULL,
    resource        text NOT NULL,
    record_id       text NOT NULL,
    operation       text NOT NULL,
    mode            text NOT NULL CHECK (mode IN ('shadow', 'live')),
    idempotency_key text NOT NULL,
    before_image    jsonb,
    after_image     jsonb,
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX touched_records_record ON touched_records (system, resource, record_id);

CREATE TABLE quality_scores (
    run_id          text NOT NULL,
    seq             integer NOT NULL,
    metric          text NOT NULL,
    score           double precision NOT NULL,
    passed          boolean,
    PRIMARY KEY (run_id, seq)
);

CREATE FUNCTION govflow_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evidence is append-only: % on % refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER evidence_events_append_only BEFORE UPDATE OR DELETE ON evidence_events
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();
CREATE TRIGGER policy_decisions_append_only BEFORE UPDATE OR DELETE ON policy_decisions
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();
CREATE TRIGGER approval_attempts_append_only BEFORE UPDATE OR DELETE ON approval_attempts
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();
CREATE TRIGGER touched_records_append_only BEFORE UPDATE OR DELETE ON touched_records
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();
CREATE TRIGGER quality_scores_append_only BEFORE UPDATE OR DELETE ON quality_scores
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();
