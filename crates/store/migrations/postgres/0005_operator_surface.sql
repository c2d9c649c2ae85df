-- The operator surface: a role per user, the refresh tokens the API issues (only their hashes),
-- and the per-namespace kill switch, which the risk manager reads.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer';

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    revoked BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE kill_switches (
    broker TEXT PRIMARY KEY,
    engaged BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);
