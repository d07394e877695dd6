-- Revoked access tokens, kept until they expire so a restart does not bring them back to life.
CREATE TABLE revoked_access_tokens (
    jti        TEXT    PRIMARY KEY NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX revoked_access_tokens_by_expiry ON revoked_access_tokens (expires_at);

-- Every access token of a user issued before `issued_before` is revoked, until `until`.
CREATE TABLE revoked_user_tokens (
    user_id       TEXT    PRIMARY KEY NOT NULL,
    issued_before INTEGER NOT NULL,
    until         INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX revoked_user_tokens_by_expiry ON revoked_user_tokens (until);
