-- Everything the instances of a token service share besides families: one table of access-token denials
-- with the order of their writes (readers resume after the last sequence number they saw), the login
-- throttle, one-time values, signing keys and secrets. Times are seconds since the Unix epoch.

CREATE TABLE access_denials (
    kind          TEXT    NOT NULL,            -- 'jti' (one token), 'sid' (a session), 'sub' (a subject)
    key           TEXT    NOT NULL,
    issued_before INTEGER NOT NULL,            -- 'sub' only: tokens with an earlier iat are denied; 0 otherwise
    until         INTEGER NOT NULL,            -- the denial ends: its tokens expired, plus the verifiers' leeway
    seq           INTEGER NOT NULL,            -- the sequence number of the last write
    PRIMARY KEY (kind, key)
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX access_denials_by_seq ON access_denials (seq);
CREATE INDEX access_denials_by_until ON access_denials (until);

-- The last sequence number handed out; it never goes back, even when the denial holding it is purged.
CREATE TABLE denial_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last INTEGER NOT NULL
) STRICT;

INSERT INTO access_denials (kind, key, issued_before, until, seq)
    SELECT 'jti', jti, 0, expires_at, ROW_NUMBER() OVER (ORDER BY jti) FROM revoked_access_tokens;
INSERT INTO access_denials (kind, key, issued_before, until, seq)
    SELECT 'sub', user_id, issued_before, until,
           (SELECT COUNT(*) FROM revoked_access_tokens) + ROW_NUMBER() OVER (ORDER BY user_id)
    FROM revoked_user_tokens;
INSERT INTO denial_sequence (id, last) SELECT 1, COALESCE(MAX(seq), 0) FROM access_denials;

DROP TABLE revoked_access_tokens;
DROP TABLE revoked_user_tokens;

-- The login throttle: one row per presented username (its SHA-256), counted before the password is checked.
CREATE TABLE login_throttle (
    key             BLOB    PRIMARY KEY NOT NULL,
    attempts        INTEGER NOT NULL,
    last_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL,
    forget_at       INTEGER NOT NULL           -- past its window and lockout: the purge deletes it
) STRICT, WITHOUT ROWID;

CREATE INDEX login_throttle_by_forget ON login_throttle (forget_at);

-- Values accepted once (client assertion jtis), by the SHA-256 of their purpose and parts.
CREATE TABLE one_time_values (
    key        BLOB    PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX one_time_values_by_expiry ON one_time_values (expires_at);

-- Signing keys every instance signs with and publishes; the signer is the latest active_from not in the future.
CREATE TABLE signing_keys (
    kid         TEXT    PRIMARY KEY NOT NULL,
    algorithm   TEXT    NOT NULL,
    material    BLOB    NOT NULL,              -- sealed by the token service when it has a key-encryption secret
    created_at  INTEGER NOT NULL,
    active_from INTEGER NOT NULL
) STRICT;

-- Secrets every instance shares (the refresh-token secret), created once by whichever instance comes first.
CREATE TABLE shared_secrets (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) STRICT, WITHOUT ROWID;
