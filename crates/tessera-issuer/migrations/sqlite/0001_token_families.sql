-- One row per refresh-token family (one device session). Times are seconds since the Unix epoch.
CREATE TABLE token_families (
    id                  TEXT    PRIMARY KEY NOT NULL,
    user_id             TEXT    NOT NULL,
    client_id           TEXT    NOT NULL,
    scope               TEXT,
    roles               TEXT    NOT NULL,            -- JSON array of strings
    user_agent          TEXT,
    generation          INTEGER NOT NULL,
    current_hash        BLOB    NOT NULL,            -- keyed hash of the current token
    rotation_salt       BLOB,                        -- salt of the last rotation, to re-derive a retried successor
    created_at          INTEGER NOT NULL,
    last_used_at        INTEGER NOT NULL,
    absolute_expires_at INTEGER NOT NULL,
    idle_expires_at     INTEGER NOT NULL,            -- never after absolute_expires_at
    revoked_at          INTEGER,
    revoke_reason       TEXT
) STRICT;

CREATE INDEX token_families_by_user ON token_families (user_id, client_id, created_at);
CREATE INDEX token_families_by_expiry ON token_families (idle_expires_at);

-- Every token ever issued in a live family, current or consumed: the tombstones that reveal a replay.
CREATE TABLE refresh_tokens (
    hash       BLOB    PRIMARY KEY NOT NULL,
    family_id  TEXT    NOT NULL REFERENCES token_families (id),
    generation INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

-- Every token a family issues is recorded by the same statement that issues it: the family's INSERT
-- (generation 0) and each rotation's UPDATE of the generation. A rotation is thus one atomic statement.
CREATE TRIGGER refresh_tokens_record_first AFTER INSERT ON token_families
BEGIN
    INSERT INTO refresh_tokens (hash, family_id, generation) VALUES (NEW.current_hash, NEW.id, NEW.generation);
END;

CREATE TRIGGER refresh_tokens_record_rotation AFTER UPDATE OF generation ON token_families
BEGIN
    INSERT INTO refresh_tokens (hash, family_id, generation) VALUES (NEW.current_hash, NEW.id, NEW.generation);
END;
