-- A fifth kind of chain: a run started again under a run id that already has evidence (anyone who can
-- start workflows can replay a finished run's input under its id). The start is refused before it is
-- admitted or reads anything, and recorded here, one chain per refused execution
-- ('<run id>@<Temporal run id>'): the original run's chain, and its anchor in Temporal, stay as they were.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification', 'grant', 'refused_start'));

CREATE VIEW refused_start_events AS
    SELECT stream_id AS refused_start_id, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
    FROM evidence_events WHERE stream = 'refused_start';
