-- Tamper guards inside the database, and what the approval record lacked.
--
-- Row triggers do not fire on TRUNCATE: a statement trigger refuses it on every evidence table.
-- chain_heads may only move forward, and only to a hash that a stored event has at that seq:
-- rewinding a head (to hide a removed tail) or pointing it at a forged hash is refused. A database
-- superuser can still disable triggers; the anchors outside the database (the run's chain head in its
-- Temporal workflow result, signed checkpoints) are what catch that.

CREATE FUNCTION govflow_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'evidence is append-only: TRUNCATE on % refused', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER evidence_events_no_truncate BEFORE TRUNCATE ON evidence_events
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER chain_heads_no_truncate BEFORE TRUNCATE ON chain_heads
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER runs_no_truncate BEFORE TRUNCATE ON runs
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER policy_decisions_no_truncate BEFORE TRUNCATE ON policy_decisions
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER approval_attempts_no_truncate BEFORE TRUNCATE ON approval_attempts
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER touched_records_no_truncate BEFORE TRUNCATE ON touched_records
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();
CREATE TRIGGER quality_scores_no_truncate BEFORE TRUNCATE ON quality_scores
    FOR EACH STATEMENT EXECUTE FUNCTION govflow_refuse_truncate();

CREATE TRIGGER runs_append_only BEFORE UPDATE OR DELETE ON runs
    FOR EACH ROW EXECUTE FUNCTION govflow_refuse_change();

CREATE FUNCTION govflow_guard_head() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'chain heads only move forward: DELETE of % % refused', OLD.stream, OLD.stream_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.seq <= OLD.seq THEN
        RAISE EXCEPTION 'chain heads only move forward: % % from % to % refused', OLD.stream, OLD.stream_id,
            OLD.seq, NEW.seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM evidence_events e WHERE e.stream = NEW.stream AND e.stream_id = NEW.stream_id
                   AND e.seq = NEW.seq AND e.hash = NEW.hash) THEN
        RAISE EXCEPTION 'chain head % % at % names no stored event with that hash', NEW.stream, NEW.stream_id,
            NEW.seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER chain_heads_forward_only BEFORE INSERT OR UPDATE OR DELETE ON chain_heads
    FOR EACH ROW EXECUTE FUNCTION govflow_guard_head();

-- The reviewer's own words and the signature itself (NULL on rows from before this migration).
ALTER TABLE approval_attempts ADD COLUMN note text, ADD COLUMN signature text;
