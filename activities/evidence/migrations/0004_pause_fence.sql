-- The pause fence: one row per rollout that has ever paused. A live write holds FOR SHARE on its
-- rollouts' rows from its last check until the write returns; a pause sets `paused` (an UPDATE, so it
-- waits for every write in progress) before the pause is recorded. So every write that started
-- before the recorded pause has finished by then, and none starts after it.
CREATE TABLE rollout_fences (
    rollout_id  text PRIMARY KEY,
    paused      boolean NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);
