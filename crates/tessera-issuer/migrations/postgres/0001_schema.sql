-- The token service's shared state on PostgreSQL: the same tables and columns as the SQLite schema (the
-- stores decode the same rows), with PostgreSQL's types. Times are seconds since the Unix epoch.

-- One row per refresh-token family (one device session).
CREATE TABLE token_families (
    id                  TEXT    PRIMARY KEY,
    user_id             TEXT    NOT NULL,
    client_id           TEXT    NOT NULL,
    scope               TEXT,
    roles               TEXT    NOT NULL,            -- JSON array of strings
    user_agent          TEXT,
    generation          BIGINT  NOT NULL,
    current_hash        BYTEA   NOT NULL,            -- keyed hash of the current token
    rotation_salt       BYTEA,                       -- salt of the last rotation, to re-derive a retried successor
    created_at          BIGINT  NOT NULL,
    last_used_at        BIGINT  NOT NULL,
    absolute_expires_at BIGINT  NOT NULL,
    idle_expires_at     BIGINT  NOT NULL,            -- never after absolute_expires_at
    revoked_at          BIGINT,
    revoke_reason       TEXT,
    dpop_jkt            TEXT,                        -- the DPoP key thumbprint the refresh tokens are bound to
    rotation_fingerprint BYTEA,                      -- keyed hash of the request that last rotated the family
    retries             BIGINT  NOT NULL DEFAULT 0   -- retries served since the last rotation
);

CREATE INDEX token_families_by_user ON token_families (user_id, client_id, created_at);
CREATE INDEX token_families_by_expiry ON token_families (idle_expires_at);

-- Every token ever issued in a live family, current or consumed: the tombstones that reveal a replay. The
-- statements that issue a token (a family's insert, a rotation's swap) record it in the same statement.
CREATE TABLE refresh_tokens (
    hash       BYTEA  PRIMARY KEY,
    family_id  TEXT   NOT NULL REFERENCES token_families (id),
    generation BIGINT NOT NULL
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Access-token denials, with the sequence number of their last write (readers resume after it).
CREATE TABLE access_denials (
    kind          TEXT   NOT NULL,                   -- 'jti' (one token), 'sid' (a session), 'sub' (a subject)
    key           TEXT   NOT NULL,
    issued_before BIGINT NOT NULL,                   -- 'sub' only; 0 otherwise
    until         BIGINT NOT NULL,
    seq           BIGINT NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE UNIQUE INDEX access_denials_by_seq ON access_denials (seq);
CREATE INDEX access_denials_by_until ON access_denials (until);

-- The last sequence number handed out. Its row lock, held until commit, serializes the writers of
-- denials, so sequence numbers become visible in order: a reader never misses a write behind its cursor.
CREATE TABLE denial_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT  NOT NULL
);

INSERT INTO denial_sequence (id, last) VALUES (1, 0);

-- The login throttle: one row per presented username (its SHA-256).
CREATE TABLE login_throttle (
    key             BYTEA  PRIMARY KEY,
    attempts        BIGINT NOT NULL,
    last_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL,
    forget_at       BIGINT NOT NULL
);

CREATE INDEX login_throttle_by_forget ON login_throttle (forget_at);

-- Values accepted once (client assertion jtis).
CREATE TABLE one_time_values (
    key        BYTEA  PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE INDEX one_time_values_by_expiry ON one_time_values (expires_at);

-- Signing keys every instance signs with and publishes.
CREATE TABLE signing_keys (
    kid         TEXT   PRIMARY KEY,
    algorithm   TEXT   NOT NULL,
    material    BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    active_from BIGINT NOT NULL
);

-- Secrets every instance shares, created once by whichever instance comes first.
CREATE TABLE shared_secrets (
    name  TEXT  PRIMARY KEY,
    value BYTEA NOT NULL
);
