//! Tessera token service: access-token minting, refresh-token rotation with reuse detection, revocation.
