-- Acts sent from the reviewer console name the session they came from (approval_attempts.session, the
-- 16-hex id of a console session whose start is a signed_in row of the reviewer's chain); acts from any
-- other client leave it empty.
ALTER TABLE approval_attempts ADD COLUMN session text;

-- The console's action page lists earlier runs of the same item.
CREATE INDEX runs_item ON runs (task, item_key);
