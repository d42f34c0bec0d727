-- The fence's generation: how many times the rollout has set its fence (at its start, and at every
-- pause, resume and rollback). A run admitted while no rollout of its task version ran carries the
-- generation it read before it asked; when its write finds the same generation, no rollout has started
-- since (a rollout sets its fence before it admits or leases anything), and the write needs no lease.
-- Any other generation: the write asks that rollout for a lease, as before.
ALTER TABLE rollout_fences ADD COLUMN generation bigint NOT NULL DEFAULT 0;
