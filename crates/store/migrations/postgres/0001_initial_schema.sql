-- Alpha Panda initial schema (PostgreSQL). Keep equivalent to migrations/sqlite/0001_initial_schema.sql:
-- same tables, columns and index names. Money is NUMERIC (exact); instants are TIMESTAMPTZ.

CREATE TABLE users (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE trading_sessions (
    api_key TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    access_token TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE strategy_configurations (
    id TEXT PRIMARY KEY,
    strategy_type TEXT NOT NULL,
    instruments JSONB NOT NULL,
    parameters JSONB NOT NULL,
    is_active BOOLEAN NOT NULL,
    zerodha_trading_enabled BOOLEAN NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE instruments (
    exchange TEXT NOT NULL,
    tradingsymbol TEXT NOT NULL,
    instrument_token BIGINT NOT NULL,
    exchange_token BIGINT NOT NULL,
    name TEXT NOT NULL,
    last_price NUMERIC NOT NULL,
    expiry DATE,
    strike NUMERIC,
    tick_size NUMERIC NOT NULL,
    lot_size BIGINT NOT NULL,
    instrument_type TEXT NOT NULL,
    segment TEXT NOT NULL,
    PRIMARY KEY (exchange, tradingsymbol)
);
CREATE INDEX instruments_token_idx ON instruments (instrument_token);

CREATE TABLE orders (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    broker TEXT NOT NULL,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    instrument_token BIGINT NOT NULL,
    side TEXT,
    quantity BIGINT,
    order_type TEXT,
    limit_price NUMERIC,
    broker_order_id TEXT,
    reason TEXT,
    retryable BOOLEAN,
    execution_mode TEXT NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX orders_broker_idx ON orders (broker, seq);
CREATE INDEX orders_order_id_idx ON orders (order_id);

CREATE TABLE fills (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    broker TEXT NOT NULL,
    portfolio_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    broker_order_id TEXT,
    strategy_id TEXT NOT NULL,
    instrument_token BIGINT NOT NULL,
    tradingsymbol TEXT,
    side TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    fill_price NUMERIC NOT NULL,
    brokerage NUMERIC NOT NULL,
    stt NUMERIC NOT NULL,
    exchange_charges NUMERIC NOT NULL,
    sebi_charges NUMERIC NOT NULL,
    gst NUMERIC NOT NULL,
    stamp_duty NUMERIC NOT NULL,
    fees_total NUMERIC NOT NULL,
    execution_mode TEXT NOT NULL,
    filled_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX fills_broker_idx ON fills (broker, seq);
CREATE INDEX fills_portfolio_idx ON fills (portfolio_id, seq);

CREATE TABLE pnl_snapshots (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    portfolio_id TEXT NOT NULL,
    strategy_id TEXT NOT NULL,
    broker TEXT NOT NULL,
    as_of TIMESTAMPTZ NOT NULL,
    realized_pnl NUMERIC NOT NULL,
    unrealized_pnl NUMERIC NOT NULL,
    fees NUMERIC NOT NULL,
    total_pnl NUMERIC NOT NULL,
    cash NUMERIC NOT NULL,
    positions JSONB NOT NULL,
    snapshot_type TEXT NOT NULL,
    checksum TEXT NOT NULL,
    validation_status TEXT NOT NULL
);
CREATE INDEX pnl_snapshots_portfolio_as_of_idx ON pnl_snapshots (portfolio_id, as_of);
CREATE INDEX pnl_snapshots_broker_idx ON pnl_snapshots (broker);

CREATE TABLE service_checkpoints (
    service_key TEXT PRIMARY KEY,
    state JSONB NOT NULL,
    offsets JSONB NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
