-- Alpha Panda initial schema (SQLite). Keep equivalent to migrations/postgres/0001_initial_schema.sql:
-- same tables, columns and index names. Money is TEXT holding a decimal string (exact; never REAL or
-- NUMERIC affinity, which would round); instants are RFC 3339 UTC text with microseconds (fixed width, so
-- they sort); JSON is TEXT; booleans are 0/1.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE trading_sessions (
    api_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    access_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE strategy_configurations (
    id TEXT PRIMARY KEY,
    strategy_type TEXT NOT NULL,
    instruments TEXT NOT NULL,
    parameters TEXT NOT NULL,
    is_active INTEGER NOT NULL,
    zerodha_trading_enabled INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE instruments (
    exchange TEXT NOT NULL,
    tradingsymbol TEXT NOT NULL,
    instrument_token INTEGER NOT NULL,
    exchange_token INTEGER NOT NULL,
    name TEXT NOT NULL,
    last_price TEXT NOT NULL,
    expiry TEXT,
    strike TEXT,
    tick_size TEXT NOT NULL,
    lot_size INTEGER NOT NULL,
    instrument_type TEXT NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY (exchange, tradingsymbol)
);
CREATE INDEX instruments_token_idx ON instruments (instrument_token);

CREATE TABLE orders (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    broker TEXT NOT NULL,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    instrument_token INTEGER NOT NULL,
    side TEXT,
    quantity INTEGER,
    order_type TEXT,
    limit_price TEXT,
    broker_order_id TEXT,
    reason TEXT,
    retryable INTEGER,
    execution_mode TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
CREATE INDEX orders_broker_idx ON orders (broker, seq);
CREATE INDEX orders_order_id_idx ON orders (order_id);

CREATE TABLE fills (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    broker TEXT NOT NULL,
    portfolio_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    broker_order_id TEXT,
    strategy_id TEXT NOT NULL,
    instrument_token INTEGER NOT NULL,
    tradingsymbol TEXT,
    side TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    fill_price TEXT NOT NULL,
    brokerage TEXT NOT NULL,
    stt TEXT NOT NULL,
    exchange_charges TEXT NOT NULL,
    sebi_charges TEXT NOT NULL,
    gst TEXT NOT NULL,
    stamp_duty TEXT NOT NULL,
    fees_total TEXT NOT NULL,
    execution_mode TEXT NOT NULL,
    filled_at TEXT NOT NULL
);
CREATE INDEX fills_broker_idx ON fills (broker, seq);
CREATE INDEX fills_portfolio_idx ON fills (portfolio_id, seq);

CREATE TABLE pnl_snapshots (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    portfolio_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    broker TEXT NOT NULL,
    as_of TEXT NOT NULL,
    realized_pnl TEXT NOT NULL,
    unrealized_pnl TEXT NOT NULL,
    fees TEXT NOT NULL,
    total_pnl TEXT NOT NULL,
    cash TEXT NOT NULL,
    positions TEXT NOT NULL,
    snapshot_type TEXT NOT NULL,
    checksum TEXT NOT NULL,
    validation_status TEXT NOT NULL
);
CREATE INDEX pnl_snapshots_portfolio_as_of_idx ON pnl_snapshots (portfolio_id, as_of);
CREATE INDEX pnl_snapshots_broker_idx ON pnl_snapshots (broker);

CREATE TABLE service_checkpoints (
    service_key TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    offsets TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
