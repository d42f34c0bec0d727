-- Acts sent from the reviewer console name the session they came from (approval_attempts.session, the
-- 16-hex id of a console session whose start is a signed_in row of the reviewer's chain); acts from any
-- other client leave it empty.
ALTER TABLE approval_attempts ADD COLUMN session text;

-- The console's action page lists earlier runs of the same item.
CREATE INDEX runs_item ON runs (task, item_key);

-- Passkey-signed acts (a WebAuthn assertion whose challenge is the act): the assertion and the credential
-- the run read, on each vote that carried one; the passkey's counter moves forward only, and the assertion
-- that moved it last may claim it again (one touch signing a bulk decision, one act per run).
ALTER TABLE approval_attempts ADD COLUMN passkey jsonb;
ALTER TABLE console_credentials ADD COLUMN last_assertion text;
