-- Named queries of the evidence store. Each block starts with `-- name: NAME`.

-- name: get_run
SELECT run_id, task, task_version, policy_digest, item_key, requester, stage, mode, started_at, rollout_id
FROM runs WHERE run_id = $1;

-- name: rollout_runs
SELECT run_id FROM runs WHERE rollout_id = $1 ORDER BY started_at, run_id;

-- name: run_notifications
-- The announcements of a run's pending approvals, each with its chain's last event (its delivery so far).
SELECT r.stream_id AS notification_id, r.payload->>'target' AS target, r.payload->>'transition' AS transition,
       last.kind AS last_kind, last.payload AS last_payload
FROM evidence_events r
JOIN chain_heads h ON h.stream = 'notification' AND h.stream_id = r.stream_id
JOIN evidence_events last ON last.stream = 'notification' AND last.stream_id = r.stream_id AND last.seq = h.seq
WHERE r.stream = 'notification' AND r.kind = 'notification_requested' AND r.payload->>'run_id' = $1
ORDER BY r.occurred_at, r.stream_id;

-- name: decided_at
-- When the policy decided an action of a run (the latest decision, if it was decided again).
SELECT occurred_at FROM evidence_events
WHERE stream = 'run' AND stream_id = $1 AND kind = 'policy_decision' AND payload->>'action_id' = $2
ORDER BY seq DESC LIMIT 1;

-- name: approval_tally
SELECT reviewer, accepted, count(*) AS n FROM approval_attempts WHERE run_id = ANY($1::text[])
GROUP BY reviewer, accepted ORDER BY reviewer, accepted DESC;

-- name: rollout_live_writes
-- Live writes of a rollout's runs since $2 (NULL: all), newest first.
SELECT t.run_id, t.action_id, t.system, t.resource, t.record_id, t.operation, t.before_image, t.after_image,
       e.occurred_at
FROM touched_records t
JOIN runs r ON r.run_id = t.run_id
JOIN evidence_events e ON e.stream = 'run' AND e.stream_id = t.run_id AND e.seq = t.seq
WHERE r.rollout_id = $1 AND t.mode = 'live' AND ($2::timestamptz IS NULL OR e.occurred_at >= $2)
ORDER BY e.occurred_at DESC, t.run_id, t.seq DESC;

-- name: event_hash_at
SELECT hash FROM evidence_events WHERE stream = $1 AND stream_id = $2 AND seq = $3;

-- name: stream_events
SELECT stream, stream_id, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
FROM evidence_events WHERE stream = $1 AND stream_id = $2 ORDER BY seq;

-- name: chain_head
SELECT seq, hash FROM chain_heads WHERE stream = $1 AND stream_id = $2;

-- name: projection_mismatches
-- Projection rows that differ from, or have no, chained event; and chained
-- events of a projected kind whose projection row is missing. $1 = run id.
WITH ev AS (
    SELECT seq, kind, payload || jsonb_build_object('run_id', stream_id, 'seq', seq) AS doc
    FROM evidence_events WHERE stream = 'run' AND stream_id = $1
)
SELECT p.seq, 'policy_decisions' AS tbl, 'differs from its event' AS problem
FROM policy_decisions p LEFT JOIN ev ON ev.seq = p.seq AND ev.kind = 'policy_decision'
WHERE p.run_id = $1 AND (ev.seq IS NULL
    OR p IS DISTINCT FROM jsonb_populate_record(NULL::policy_decisions, ev.doc))
UNION ALL
SELECT p.seq, 'approval_attempts', 'differs from its event'
FROM approval_attempts p LEFT JOIN ev ON ev.seq = p.seq AND ev.kind = 'approval_attempt'
WHERE p.run_id = $1 AND (ev.seq IS NULL
    OR p IS DISTINCT FROM jsonb_populate_record(NULL::approval_attempts, ev.doc))
UNION ALL
SELECT p.seq, 'touched_records', 'differs from its event'
FROM touched_records p LEFT JOIN ev ON ev.seq = p.seq AND ev.kind = 'touched_record'
WHERE p.run_id = $1 AND (ev.seq IS NULL
    OR p IS DISTINCT FROM jsonb_populate_record(NULL::touched_records, ev.doc))
UNION ALL
SELECT p.seq, 'quality_scores', 'differs from its event'
FROM quality_scores p LEFT JOIN ev ON ev.seq = p.seq AND ev.kind = 'quality_score'
WHERE p.run_id = $1 AND (ev.seq IS NULL
    OR p IS DISTINCT FROM jsonb_populate_record(NULL::quality_scores, ev.doc))
UNION ALL
SELECT ev.seq, ev.kind || ' projection', 'is missing'
FROM ev
WHERE (ev.kind = 'policy_decision' AND NOT EXISTS (SELECT 1 FROM policy_decisions p WHERE p.run_id = $1 AND p.seq = ev.seq))
   OR (ev.kind = 'approval_attempt' AND NOT EXISTS (SELECT 1 FROM approval_attempts p WHERE p.run_id = $1 AND p.seq = ev.seq))
   OR (ev.kind = 'touched_record' AND NOT EXISTS (SELECT 1 FROM touched_records p WHERE p.run_id = $1 AND p.seq = ev.seq))
   OR (ev.kind = 'quality_score' AND NOT EXISTS (SELECT 1 FROM quality_scores p WHERE p.run_id = $1 AND p.seq = ev.seq))
ORDER BY 1;

-- name: last_event_of_kind
SELECT payload FROM evidence_events
WHERE stream = 'run' AND stream_id = $1 AND kind = $2
ORDER BY seq DESC LIMIT 1;

-- name: all_heads
-- The newest row of every stream, from the events themselves (not chain_heads, which a
-- superuser could rewind along with the rows).
SELECT DISTINCT ON (stream, stream_id) stream, stream_id, seq, hash
FROM evidence_events ORDER BY stream, stream_id, seq DESC;

-- name: append
-- A chained batch, its projections, the chain head and the run's row in one statement (migration 0009).
SELECT govflow_append($1, $2, $3::integer[], $4::text[], $5::timestamptz[], $6::jsonb[], $7::text[], $8::text[],
                      $9::jsonb, $10::jsonb);

-- name: set_fence
-- $3: the rollout's stop epoch; NULL (a rollout from before epochs) leaves it as it is.
INSERT INTO rollout_fences (rollout_id, paused, epoch, generation) VALUES ($1, $2, coalesce($3, 0), 1)
ON CONFLICT (rollout_id) DO UPDATE
SET paused = EXCLUDED.paused, epoch = coalesce($3, rollout_fences.epoch), changed_at = now(),
    generation = rollout_fences.generation + 1;

-- name: fence_generation_of
SELECT generation FROM rollout_fences WHERE rollout_id = $1;

-- name: ensure_fences
-- A fence row for every listed rollout, unpaused where it is new: a write needs a row to hold, or the
-- first pause of a rollout (which creates the row) would not wait for the writes in progress.
INSERT INTO rollout_fences (rollout_id, paused) SELECT unnest($1::text[]), false ON CONFLICT (rollout_id) DO NOTHING;

-- name: hold_fences
-- Every listed row, paused or not, so that a pause coming next waits for the holder.
SELECT rollout_id, paused, epoch, generation FROM rollout_fences WHERE rollout_id = ANY($1::text[]) FOR SHARE;

-- name: task_runs
-- The runs of a task (a version, or every version), newest first; $3 the earliest start, $4 how many.
SELECT run_id, task, task_version, policy_digest, item_key, requester, stage, mode, started_at, rollout_id
FROM runs
WHERE task = $1 AND ($2::text IS NULL OR task_version = $2) AND ($3::timestamptz IS NULL OR started_at >= $3)
ORDER BY started_at DESC, run_id DESC
LIMIT $4;

-- name: streams_events
-- Every row of several streams, for reading them in bulk (what-if); ordered by stream, then seq.
SELECT stream_id, seq, kind, occurred_at, payload, prev_hash, hash
FROM evidence_events WHERE stream = $1 AND stream_id = ANY($2::text[]) ORDER BY stream_id, seq;

-- name: streams_heads
SELECT stream_id, seq, hash FROM chain_heads WHERE stream = $1 AND stream_id = ANY($2::text[]);

-- name: grant_propose
INSERT INTO standing_grants (grant_id, task, task_version, rule, match, max_uses, expires_at, status)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, 'proposed') ON CONFLICT (grant_id) DO NOTHING;

-- name: grant_activate
UPDATE standing_grants SET status = 'active', granted_by = $2 WHERE grant_id = $1 AND status = 'proposed';

-- name: grant_end
-- Revoked or expired: from then on no claim finds it, and no publish that starts after it writes on it.
UPDATE standing_grants SET status = $2, ended_at = now(), ended_by = $3, end_reason = $4
WHERE grant_id = $1 AND status IN ('proposed', 'active');

-- name: grant_candidates
-- The live grants a run's action might use, locked: claims of one grant take turns, so its cap holds.
SELECT grant_id, match, max_uses, granted_by FROM standing_grants
WHERE task = $1 AND task_version = $2 AND rule = $3 AND status = 'active' AND expires_at > $4
ORDER BY expires_at, grant_id FOR UPDATE;

-- name: grant_use_of
SELECT grant_id FROM grant_uses WHERE run_id = $1 AND action_id = $2;

-- name: grant_uses_count
SELECT count(*) FROM grant_uses WHERE grant_id = $1;

-- name: grant_use_insert
INSERT INTO grant_uses (run_id, action_id, grant_id) VALUES ($1, $2, $3);

-- name: grants_list
SELECT g.*, (SELECT count(*) FROM grant_uses u WHERE u.grant_id = g.grant_id) AS uses
FROM standing_grants g WHERE ($1::text IS NULL OR g.task = $1) ORDER BY g.proposed_at, g.grant_id;

-- name: hold_grants
-- The grants a write is approved by, held FOR SHARE with the fence: a revocation waits for the write,
-- and a write that starts after it sees it.
SELECT grant_id, status FROM standing_grants WHERE grant_id = ANY($1::text[]) FOR SHARE;

-- name: refused_starts
SELECT stream_id FROM evidence_events
WHERE stream = 'refused_start' AND starts_with(stream_id, $1 || '@') AND seq = 1 ORDER BY occurred_at, stream_id;
