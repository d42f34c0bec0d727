-- Policies as evidence. A seventh kind of chain: one per policy version (stream 'policy', the policy's
-- digest): its text (the canonical JSON the digest is the sha256 of, with the people, roles and public
-- keys in force) once, then the first use by each task version that ran under it.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification', 'grant', 'refused_start', 'reviewer', 'policy'));
