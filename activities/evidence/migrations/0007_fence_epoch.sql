-- The fence's epoch: the rollout's count of stops (pauses and rollbacks). A lease carries the epoch it
-- was granted in; a write checks it against the row it holds, so the lease can be asked before the
-- fence is taken (a stop no longer waits for lease round trips, only for writes in progress) and a lease
-- granted before a stop never writes after it.
ALTER TABLE rollout_fences ADD COLUMN epoch bigint NOT NULL DEFAULT 0;
