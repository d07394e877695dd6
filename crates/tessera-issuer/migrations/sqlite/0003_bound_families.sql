-- What binds a family's refresh tokens to the client that holds them.
-- dpop_jkt: the RFC 7638 thumbprint of the DPoP key a public client's family is bound to (RFC 9449 §5);
--   every rotation and retry must prove possession of that key.
-- rotation_fingerprint: keyed hash of the request that last rotated the family (client, User-Agent, DPoP
--   key); a retry within the grace window is served only to the same fingerprint. NULL before the first
--   rotation, and in rows rotated before this migration (their next retry keeps the old rule).
-- retries: retries served since the last rotation; one more than the issuer allows is reuse.
ALTER TABLE token_families ADD COLUMN dpop_jkt TEXT;
ALTER TABLE token_families ADD COLUMN rotation_fingerprint BLOB;
ALTER TABLE token_families ADD COLUMN retries INTEGER NOT NULL DEFAULT 0;
