//! Resource-server side of Tessera: `JwtAuthLayer`, a tower layer that validates bearer JWTs.
