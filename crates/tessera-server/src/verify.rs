//! Checking one compact JWS: structure, key, signature, then claims, in an order that keeps "expired"
//! honest.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tessera_core::jose::Selection;
use tessera_core::{ACCESS_TOKEN_JWT_TYPE, NumericDate};

use crate::rejection::Responder;
use crate::token::{Scopes, Text, TokenParts};
use crate::{Algorithm, AuthRejection, JwtKey, KeySet, VerifiedToken};

/// Largest decoded JOSE header accepted; real headers are under 200 bytes.
const MAX_HEADER_LEN: usize = 1024;
/// Largest decoded signature: RSA-4096.
const MAX_SIGNATURE_LEN: usize = 512;

/// The claim checks of one layer.
#[derive(Debug)]
pub(crate) struct Validator {
    /// Accepted `iss` values; empty means any issuer (only when explicitly allowed).
    pub(crate) issuers: Box<[Box<str>]>,
    /// Accepted `aud` values; empty means any audience (only when explicitly allowed).
    pub(crate) audiences: Box<[Box<str>]>,
    pub(crate) lifetime: Lifetime,
    pub(crate) strict_rfc9068: bool,
    /// The `alg`s accepted at all, whatever the keys would verify; `None`: every one a key accepts.
    pub(crate) algorithms: Option<Box<[Algorithm]>>,
    pub(crate) roles: RoleClaims,
}

/// Where the subject's roles are read from.
#[derive(Debug)]
pub(crate) enum RoleClaims {
    /// The top-level `roles` array (RFC 9068 §7.2.1.1, Entra ID), read without parsing the claims twice.
    Roles,
    /// JSON pointers (RFC 6901) into the claims, e.g. Keycloak's `/realm_access/roles`: each names an
    /// array of strings or one string; the roles are all of them, in order.
    Pointers(Box<[Box<str>]>),
}

/// When a token is within its lifetime: `nbf` to `exp`, each widened by the leeway (clock skew). A full
/// verification and a verified-token cache hit check it alike, so both give the same answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lifetime {
    /// The clock-skew allowance, in seconds.
    pub(crate) leeway: i64,
}

impl Lifetime {
    /// `Ok` while `nbf - leeway <= now < exp + leeway`; [`AuthRejection::NotYetValid`] before, and
    /// [`AuthRejection::Expired`] from [`Lifetime::end`] on (RFC 7519 §4.1.4, §4.1.5).
    pub(crate) fn check(
        self,
        not_before: Option<i64>,
        expires_at: i64,
        now: i64,
    ) -> Result<(), AuthRejection> {
        if not_before.is_some_and(|not_before| now.saturating_add(self.leeway) < not_before) {
            return Err(AuthRejection::NotYetValid);
        }
        if self.end(expires_at) <= now {
            return Err(AuthRejection::Expired);
        }
        Ok(())
    }

    /// The first second at which a token with this `exp` is expired.
    pub(crate) fn end(self, expires_at: i64) -> i64 {
        expires_at.saturating_add(self.leeway)
    }
}

#[derive(Deserialize)]
struct JoseHeader<'a> {
    #[serde(borrow)]
    alg: JsonStr<'a>,
    #[serde(borrow, default)]
    kid: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    typ: Option<JsonStr<'a>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct RegisteredClaims<'a> {
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(borrow, default)]
    iss: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    sub: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    aud: Option<StringOrList<'a>>,
    #[serde(borrow, default)]
    jti: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    sid: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    client_id: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    scope: Option<JsonStr<'a>>,
    #[serde(borrow, default)]
    scp: Option<StringOrList<'a>>,
    #[serde(borrow, default)]
    roles: Option<Vec<JsonStr<'a>>>,
    #[serde(borrow, default)]
    cnf: Option<Confirmation<'a>>,
}

/// `cnf` (RFC 7800): of its confirmation methods, only the key thumbprint `jkt` (RFC 9449 §6.1) is read.
#[derive(Deserialize)]
struct Confirmation<'a> {
    #[serde(borrow, default)]
    jkt: Option<JsonStr<'a>>,
}

impl Validator {
    /// Verifies `token` against `keys`, for the layer `responder` answers for.
    ///
    /// The order is deliberate: structure, algorithm, key selection, signature, then `iss`, `aud` and the
    /// RFC 9068 requirements. The lifetime (`nbf`, `exp`) is left to the caller, who checks it last (with
    /// [`Lifetime::check`]), so [`AuthRejection::Expired`] always means "genuine, ours, and only too old".
    pub(crate) fn verify(
        &self,
        token: &str,
        keys: &KeySet,
        responder: &Responder,
    ) -> Result<VerifiedToken, AuthRejection> {
        let (signing_input, signature) = token.rsplit_once('.').ok_or(
            AuthRejection::MalformedToken("a JWS has three dot-separated parts"),
        )?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, payload)| !payload.contains('.'))
            .ok_or(AuthRejection::MalformedToken(
                "a JWS has three dot-separated parts",
            ))?;

        let mut header_bytes = [0; MAX_HEADER_LEN];
        let header_len = decode_into(header, &mut header_bytes).ok_or(
            AuthRejection::MalformedToken("the header is not base64url of at most 1 KiB"),
        )?;
        let header: JoseHeader<'_> =
            serde_json::from_slice(&header_bytes[..header_len]).map_err(|_| {
                AuthRejection::MalformedToken("the header is not a JSON object with a string alg")
            })?;
        if header.crit.is_some() {
            return Err(AuthRejection::MalformedToken(
                "critical header extensions are not supported",
            ));
        }
        let algorithm = Algorithm::from_name(&header.alg)
            .filter(|algorithm| {
                self.algorithms
                    .as_deref()
                    .is_none_or(|allowed| allowed.contains(algorithm))
            })
            .ok_or(AuthRejection::AlgorithmMismatch)?;

        let mut signature_bytes = [0; MAX_SIGNATURE_LEN];
        let signature_len =
            decode_into(signature, &mut signature_bytes).ok_or(AuthRejection::InvalidSignature)?;
        let signature = &signature_bytes[..signature_len];
        let message = signing_input.as_bytes();
        let key = match keys.select(header.kid.as_deref(), algorithm) {
            Selection::One(key) if key.verify(algorithm, message, signature) => key,
            Selection::One(_) => return Err(AuthRejection::InvalidSignature),
            Selection::Candidates => keys
                .candidates(algorithm)
                .find(|key| key.verify(algorithm, message, signature))
                .ok_or(AuthRejection::InvalidSignature)?,
            Selection::UnknownKid => return Err(AuthRejection::UnknownKey),
            Selection::AlgorithmMismatch => return Err(AuthRejection::AlgorithmMismatch),
        };

        if self.strict_rfc9068 && !header.typ.as_deref().is_some_and(is_access_token_type) {
            return Err(AuthRejection::WrongTokenType);
        }
        let payload = decode_payload(payload)?;
        self.check_claims(payload, Arc::clone(key), algorithm, responder)
    }

    fn check_claims(
        &self,
        payload: String,
        key: Arc<JwtKey>,
        algorithm: Algorithm,
        responder: &Responder,
    ) -> Result<VerifiedToken, AuthRejection> {
        let claims: RegisteredClaims<'_> = serde_json::from_str(&payload).map_err(|_| {
            AuthRejection::MalformedToken(
                "the claims are not a JSON object with registered claims of the right types",
            )
        })?;
        let RegisteredClaims {
            exp,
            nbf,
            iat,
            iss,
            sub,
            aud,
            jti,
            sid,
            client_id,
            scope,
            scp,
            roles,
            cnf,
        } = claims;
        if !self.issuers.is_empty() {
            let issuer = iss.as_deref().ok_or(AuthRejection::MissingClaim("iss"))?;
            if !self.issuers.iter().any(|trusted| **trusted == *issuer) {
                return Err(AuthRejection::InvalidIssuer);
            }
        }
        if !self.audiences.is_empty() {
            let audience = aud.as_ref().ok_or(AuthRejection::MissingClaim("aud"))?;
            if !self.audiences.iter().any(|ours| audience.contains(ours)) {
                return Err(AuthRejection::InvalidAudience);
            }
        }
        if self.strict_rfc9068 {
            let required = [
                ("iss", iss.is_some()),
                ("aud", aud.is_some()),
                ("sub", sub.is_some()),
                ("client_id", client_id.is_some()),
                ("iat", iat.is_some()),
                ("jti", jti.is_some()),
            ];
            if let Some((name, _)) = required.into_iter().find(|(_, present)| !present) {
                return Err(AuthRejection::MissingClaim(name));
            }
        }
        drop(aud);
        let NumericDate(expires_at) = exp.ok_or(AuthRejection::MissingClaim("exp"))?;

        let text =
            |value: Option<JsonStr<'_>>| value.map(|value| Text::from_claim(&payload, value.0));
        let list = |values: Vec<JsonStr<'_>>| {
            values
                .into_iter()
                .map(|value| Text::from_claim(&payload, value.0))
                .collect::<Vec<_>>()
        };
        // RFC 9068's `scope`; otherwise `scp`, a string (Entra ID) or an array (Okta).
        let scopes = match (scope, scp) {
            (Some(scope), _) | (None, Some(StringOrList::One(scope))) => {
                Scopes::Spaced(text(Some(scope)))
            }
            (None, Some(StringOrList::Many(scopes))) => Scopes::Listed(list(scopes)),
            (None, None) => Scopes::Spaced(None),
        };
        let roles = match &self.roles {
            RoleClaims::Roles => list(roles.unwrap_or_default()),
            RoleClaims::Pointers(pointers) => roles_at(&payload, pointers)?,
        };
        let (issuer, subject, jti, session_id, client_id, jkt) = (
            text(iss),
            text(sub),
            text(jti),
            text(sid),
            text(client_id),
            text(cnf.and_then(|cnf| cnf.jkt)),
        );
        Ok(VerifiedToken::new(TokenParts {
            responder: responder.clone(),
            payload: payload.into_boxed_str(),
            key,
            algorithm,
            expires_at,
            not_before: nbf.map(|date| date.0),
            issued_at: iat.map(|date| date.0),
            issuer,
            subject,
            jti,
            session_id,
            client_id,
            scopes,
            roles,
            jkt,
        }))
    }
}

/// The roles the `pointers` name in the claims `payload`: every string of the arrays (or the string) they
/// point to. A pointer to nothing adds nothing; to anything else, the token is malformed.
fn roles_at(payload: &str, pointers: &[Box<str>]) -> Result<Vec<Text>, AuthRejection> {
    let malformed = || AuthRejection::MalformedToken("a roles claim is not an array of strings");
    let claims: serde_json::Value = serde_json::from_str(payload).map_err(|_| malformed())?;
    let mut roles = Vec::new();
    for pointer in pointers {
        match claims.pointer(pointer) {
            None => {}
            Some(serde_json::Value::String(role)) => roles.push(Text::Owned(role.as_str().into())),
            Some(serde_json::Value::Array(values)) => {
                for value in values {
                    let role = value.as_str().ok_or_else(malformed)?;
                    roles.push(Text::Owned(role.into()));
                }
            }
            Some(_) => return Err(malformed()),
        }
    }
    Ok(roles)
}

fn is_access_token_type(typ: &str) -> bool {
    let typ = typ.strip_prefix("application/").unwrap_or(typ);
    typ.eq_ignore_ascii_case(ACCESS_TOKEN_JWT_TYPE)
}

/// Decodes unpadded base64url into `out`, or `None` when it is not canonical base64url or does not fit.
fn decode_into(encoded: &str, out: &mut [u8]) -> Option<usize> {
    if decoded_len(encoded.len())? > out.len() {
        return None;
    }
    URL_SAFE_NO_PAD.decode_slice(encoded, out).ok()
}

fn decode_payload(encoded: &str) -> Result<String, AuthRejection> {
    let malformed = AuthRejection::MalformedToken("the claims are not base64url of UTF-8 JSON");
    let mut payload = vec![0; decoded_len(encoded.len()).ok_or(malformed.clone())?];
    let len = URL_SAFE_NO_PAD
        .decode_slice(encoded, &mut payload)
        .map_err(|_| malformed.clone())?;
    payload.truncate(len);
    String::from_utf8(payload).map_err(|_| malformed)
}

/// The exact decoded length of `len` unpadded base64url characters; `None` for an impossible length.
fn decoded_len(len: usize) -> Option<usize> {
    let tail = match len % 4 {
        0 => 0,
        2 => 1,
        3 => 2,
        _ => return None,
    };
    Some(len / 4 * 3 + tail)
}

/// A JSON string, borrowed from the input when it has no escapes and copied otherwise. (serde's own
/// `Cow<str>` impl always copies unless it is the direct type of a `#[serde(borrow)]` field, which an
/// `Option` or `Vec` element is not.)
struct JsonStr<'a>(Cow<'a, str>);

impl std::ops::Deref for JsonStr<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for JsonStr<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonStrVisitor;
        impl<'de> Visitor<'de> for JsonStrVisitor {
            type Value = JsonStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
                Ok(JsonStr(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(JsonStrVisitor)
    }
}

/// One string or an array of strings, borrowed from the claims where possible: `aud` (RFC 7519 §4.1.3) and
/// `scp`.
enum StringOrList<'a> {
    One(JsonStr<'a>),
    Many(Vec<JsonStr<'a>>),
}

impl StringOrList<'_> {
    fn contains(&self, wanted: &str) -> bool {
        match self {
            StringOrList::One(one) => **one == *wanted,
            StringOrList::Many(many) => many.iter().any(|value| **value == *wanted),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for StringOrList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrListVisitor;
        impl<'de> Visitor<'de> for StringOrListVisitor {
            type Value = StringOrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
                Ok(StringOrList::One(JsonStr(Cow::Borrowed(value))))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                Ok(StringOrList::One(JsonStr(Cow::Owned(value.to_owned()))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(1).min(16));
                while let Some(value) = seq.next_element::<JsonStr<'de>>()? {
                    values.push(value);
                }
                Ok(StringOrList::Many(values))
            }
        }
        deserializer.deserialize_any(StringOrListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_len_matches_the_base64_crate() {
        for len in 0..64 {
            let encoded = URL_SAFE_NO_PAD.encode(vec![0xA5; len]);
            assert_eq!(decoded_len(encoded.len()), Some(len));
        }
        assert_eq!(decoded_len(5), None);
    }

    #[test]
    fn lifetime_edges_with_leeway() {
        let lifetime = Lifetime { leeway: 30 };
        assert_eq!(lifetime.check(None, 100, 129), Ok(()));
        assert_eq!(lifetime.check(None, 100, 130), Err(AuthRejection::Expired));
        assert_eq!(
            Lifetime { leeway: 0 }.check(None, 100, 100),
            Err(AuthRejection::Expired)
        );
        assert_eq!(lifetime.check(None, i64::MAX, 0), Ok(()));
        assert_eq!(lifetime.check(Some(100), 200, 70), Ok(()));
        assert_eq!(
            lifetime.check(Some(100), 200, 69),
            Err(AuthRejection::NotYetValid)
        );
        assert_eq!(
            lifetime.check(Some(100), 0, 69),
            Err(AuthRejection::NotYetValid),
            "not yet valid is reported before expired, as the claims are checked"
        );
    }

    #[test]
    fn access_token_type_accepts_both_spellings() {
        assert!(is_access_token_type("at+jwt"));
        assert!(is_access_token_type("application/AT+JWT"));
        assert!(!is_access_token_type("JWT"));
    }
}
