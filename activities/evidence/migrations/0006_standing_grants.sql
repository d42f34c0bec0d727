-- Standing approvals: a bounded grant, by a rule's approvers, for a class of its actions. The grant's
-- acts are a chain of their own (stream 'grant', its workflow's id); this table is its current state,
-- which runs claim uses of. A use is keyed by the run's action, so a retried claim finds its own use
-- and never spends a second; claims lock the grant row, so no cap is exceeded under concurrency.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification', 'grant'));

CREATE TABLE standing_grants (
    grant_id      text PRIMARY KEY,
    task          text NOT NULL,
    task_version  text NOT NULL,
    rule          text NOT NULL,
    match         jsonb NOT NULL,
    max_uses      integer NOT NULL CHECK (max_uses >= 1),
    expires_at    timestamptz NOT NULL,
    status        text NOT NULL CHECK (status IN ('proposed', 'active', 'revoked', 'expired')),
    granted_by    text[] NOT NULL DEFAULT '{}',
    proposed_at   timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    ended_by      text,
    end_reason    text
);
CREATE INDEX standing_grants_live ON standing_grants (task, task_version, rule) WHERE status = 'active';

CREATE TABLE grant_uses (
    run_id      text NOT NULL,
    action_id   text NOT NULL,
    grant_id    text NOT NULL REFERENCES standing_grants (grant_id),
    used_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, action_id)
);
CREATE INDEX grant_uses_grant ON grant_uses (grant_id);
