-- The operator surface: a role per user, the refresh tokens the API issues (only their hashes),
-- and the per-namespace kill switch, which the risk manager reads.
ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'viewer';

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE kill_switches (
    broker TEXT PRIMARY KEY,
    engaged INTEGER NOT NULL,
    reason TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
