//! RFC 7662 token introspection, so that an API not written in Rust can ask whether a Tessera access
//! token is active instead of verifying it itself.
//!
//! - The caller must be a confidential client and authenticate (`client_secret_basic`, `_post`,
//!   `private_key_jwt`): §2.1 asks for authorization, and it keeps the endpoint from being a free oracle.
//! - A client learns about tokens issued to itself; one registered with
//!   [`allow_introspection`](crate::ClientRegistration::allow_introspection) (an API) about any token.
//!   Everything else is answered `{"active": false}`, as §2.2 allows.
//! - An access token is active when this service signed it for one of its audiences, it is within its
//!   `nbf`..`exp` (no leeway), and the denylist (loaded and current) does not hold it (RFC 7009
//!   revocation, its session ended, logout-all, user revocation).
//! - Refresh tokens are always answered `{"active": false}`: resource servers never see them, and
//!   answering them would give whoever holds a stolen one a way to test it that, unlike presenting it,
//!   never trips reuse detection.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;
use tessera_core::{Audience, BEARER, Clock, DPOP};
use tessera_server::{Availability, Denylist};

use crate::clients::ClientDirectory;
use crate::error::TokenError;
use crate::minting::Minter;
use crate::params::Params;

/// The introspection endpoint's part of the service.
pub(crate) struct Introspection {
    clients: Arc<ClientDirectory>,
    minter: Arc<Minter>,
    denylist: Denylist,
    clock: Arc<dyn Clock>,
}

/// An introspection answer (RFC 7662 §2.2): `active`, and for an active token what it says.
#[derive(Debug, Serialize)]
pub(crate) struct Answer {
    active: bool,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    token: Option<ActiveToken>,
}

/// What an active access token says.
#[derive(Debug, Serialize)]
struct ActiveToken {
    /// `Bearer`, or `DPoP` for a token bound to a key.
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    client_id: String,
    sub: String,
    exp: i64,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<i64>,
    iss: String,
    aud: Audience,
    jti: String,
    /// The key a DPoP-bound token is bound to (`{"jkt": ...}`, RFC 9449 §6.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Value>,
}

impl Answer {
    const INACTIVE: Answer = Answer {
        active: false,
        token: None,
    };
}

impl Introspection {
    pub(crate) fn new(
        clients: Arc<ClientDirectory>,
        minter: Arc<Minter>,
        denylist: Denylist,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Introspection {
            clients,
            minter,
            denylist,
            clock,
        }
    }

    /// `POST /introspect`: the state of the `token` parameter, for the authenticated client.
    pub(crate) async fn introspect(
        &self,
        params: &Params,
        basic: Option<&str>,
    ) -> Result<Answer, TokenError> {
        let token = params.require("token")?;
        // RFC 7662 §2.1: the hint only helps finding the token; there is one kind to find.
        params.token_type_hint()?;
        let now = self.clock.unix_seconds();
        let client = self.clients.identify(params, basic, None, now).await?;
        let client = client
            .filter(|client| client.is_confidential())
            .ok_or_else(|| {
                TokenError::InvalidClient(
                    "introspection requires the authentication of a confidential client".into(),
                )
            })?;
        let Some(claims) = self.minter.recognise(token) else {
            return Ok(Answer::INACTIVE);
        };
        let live = now < claims.exp && claims.nbf.is_none_or(|nbf| nbf <= now);
        // Not yet loaded (or out of date): a revoked token could look active, so nothing is.
        let sid = claims.extra.get("sid").and_then(Value::as_str);
        let revoked = self.denylist.availability() != Availability::Available
            || self
                .denylist
                .denies(Some(&claims.jti), sid, Some(&claims.sub), Some(claims.iat));
        let entitled = client.may_introspect() || client.id() == claims.client_id;
        if !live || revoked || !entitled {
            return Ok(Answer::INACTIVE);
        }
        let mut extra = claims.extra;
        let cnf = extra.remove("cnf");
        Ok(Answer {
            active: true,
            token: Some(ActiveToken {
                token_type: if cnf.is_some() { DPOP } else { BEARER },
                scope: claims.scope,
                client_id: claims.client_id,
                sub: claims.sub,
                exp: claims.exp,
                iat: claims.iat,
                nbf: claims.nbf,
                iss: claims.iss,
                aud: claims.aud,
                jti: claims.jti,
                cnf,
            }),
        })
    }
}
