-- The reviewer console. A sixth kind of chain: a reviewer's passkeys (stream 'reviewer', the reviewer's
-- id): each enrollment link issued, each passkey enrolled, each revoked. The tables below are the
-- console's working state, shared by every replica: one-time enrollment links, passkeys, single-use
-- WebAuthn challenges and sessions. Secrets (link tokens, session tokens) are stored as their sha256.
ALTER TABLE evidence_events DROP CONSTRAINT evidence_events_stream_check;
ALTER TABLE evidence_events ADD CONSTRAINT evidence_events_stream_check
    CHECK (stream IN ('run', 'rollout', 'notification', 'grant', 'refused_start', 'reviewer'));

CREATE VIEW reviewer_events AS
    SELECT stream_id AS reviewer, seq, kind, occurred_at, payload, prev_hash, hash, recorded_at
    FROM evidence_events WHERE stream = 'reviewer';

CREATE TABLE console_enrollments (
    token_sha256  text PRIMARY KEY,
    reviewer      text NOT NULL,
    issued_by     text NOT NULL,
    issued_at     timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

CREATE TABLE console_credentials (
    credential_id  text PRIMARY KEY,          -- base64url, as WebAuthn names it
    reviewer       text NOT NULL,
    public_key     bytea NOT NULL,             -- COSE
    sign_count     bigint NOT NULL DEFAULT 0,
    enrolled_at    timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX console_credentials_reviewer ON console_credentials (reviewer);

CREATE TABLE console_challenges (
    ceremony      text PRIMARY KEY,           -- the ceremony cookie's value: a challenge answers one browser
    purpose       text NOT NULL CHECK (purpose IN ('enroll', 'signin')),
    challenge     bytea NOT NULL,
    enrollment    text,                        -- token_sha256 of the link, for an enrollment
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);

CREATE TABLE console_sessions (
    token_sha256  text PRIMARY KEY,
    reviewer      text NOT NULL,
    credential_id text NOT NULL,
    csrf          text NOT NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    ended_at      timestamptz
);
