-- A third kind of chain: one per announcement of a pending approval (its delivery workflow's id),
-- holding what was sent, to which target, and every delivery attempt.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification'));

CREATE VIEW notification_events AS
    SELECT stream_id AS notification_id, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
    FROM evidence_events WHERE stream = 'notification';
