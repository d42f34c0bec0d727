-- Which rollout a run went through (NULL for runs started outside a rollout), for data rollback.
ALTER TABLE runs ADD COLUMN rollout_id text;
CREATE INDEX runs_rollout ON runs (rollout_id) WHERE rollout_id IS NOT NULL;
