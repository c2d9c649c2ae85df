-- One writer per state (ARCHITECTURE §4 rule 6): the instance of a stateful service that holds the
-- lease of its service key is the only one that may checkpoint it; a second instance waits until the
-- lease expires (its holder died) and then takes over.
CREATE TABLE service_leases (
    service_key TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
