//! How a client authenticates to the token endpoint (RFC 6749 §2.3, RFC 7523 §2.2).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::{AUTHORIZATION, HeaderValue};
use reqwest::Url;
use serde::Serialize;
use tessera_core::jose::{JwsHeader, SigningKey};

use super::RefreshError;

/// The `client_assertion_type` of RFC 7523 §2.2.
const JWT_BEARER_ASSERTION: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long a client assertion is valid: long enough for one request, short enough to be useless later.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Client authentication for token requests. `Debug` never prints a secret or key.
///
/// The built-in grants apply it for you; a custom [`Refresher`](crate::Refresher) (or any other request
/// to the authorization server, such as revocation) applies it with [`ClientAuth::apply`]:
///
/// ```
/// use std::time::SystemTime;
/// use tessera_client::ClientAuth;
///
/// let basic = ClientAuth::secret_basic("reporting-job", "s3cret");
/// assert!(!format!("{basic:?}").contains("s3cret"));
///
/// let endpoint = "https://auth.example/token".parse()?;
/// let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
/// let mut headers = http::HeaderMap::new();
/// basic.apply(&mut form, &mut headers, &endpoint, SystemTime::now())?;
/// assert!(headers["authorization"].to_str()?.starts_with("Basic "));
///
/// let post = ClientAuth::secret_post("reporting-job", "s3cret");
/// post.apply(&mut form, &mut http::HeaderMap::new(), &endpoint, SystemTime::now())?;
/// assert!(form.contains(&("client_secret".to_owned(), "s3cret".to_owned())));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ClientAuth(Method);

#[derive(Clone)]
enum Method {
    None,
    Public { client_id: String },
    SecretBasic { client_id: String, secret: String },
    SecretPost { client_id: String, secret: String },
    PrivateKeyJwt(Box<PrivateKeyJwt>),
}

impl ClientAuth {
    /// No client authentication and no `client_id` (the token endpoint knows the client from the refresh
    /// token).
    pub fn none() -> Self {
        ClientAuth(Method::None)
    }

    /// A public client: sends `client_id` in the form, no secret (RFC 6749 §3.2.1).
    pub fn public(client_id: impl Into<String>) -> Self {
        ClientAuth(Method::Public {
            client_id: client_id.into(),
        })
    }

    /// `client_secret_basic`: HTTP Basic with the form-encoded id and secret (RFC 6749 §2.3.1).
    pub fn secret_basic(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientAuth(Method::SecretBasic {
            client_id: client_id.into(),
            secret: secret.into(),
        })
    }

    /// `client_secret_post`: `client_id` and `client_secret` in the form body (RFC 6749 §2.3.1).
    pub fn secret_post(client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        ClientAuth(Method::SecretPost {
            client_id: client_id.into(),
            secret: secret.into(),
        })
    }

    /// `private_key_jwt`: a freshly signed assertion per token request (RFC 7523 §2.2).
    pub fn private_key_jwt(assertion: PrivateKeyJwt) -> Self {
        ClientAuth(Method::PrivateKeyJwt(Box::new(assertion)))
    }

    /// Adds this authentication to a request for `token_endpoint` (or another endpoint of the same server)
    /// made at wall-clock time `now`: form parameters go into `form` (to be sent
    /// `application/x-www-form-urlencoded`), an `Authorization: Basic` header into `headers`.
    ///
    /// Call it for every request: `private_key_jwt` signs a new single-use assertion each time.
    ///
    /// # Errors
    /// [`RefreshError::ClientAssertion`] if the `private_key_jwt` assertion cannot be signed.
    pub fn apply(
        &self,
        form: &mut Vec<(String, String)>,
        headers: &mut HeaderMap,
        token_endpoint: &Url,
        now: SystemTime,
    ) -> Result<(), RefreshError> {
        let mut push = |name: &str, value: &str| form.push((name.to_owned(), value.to_owned()));
        match &self.0 {
            Method::None => {}
            Method::Public { client_id } => push("client_id", client_id),
            Method::SecretBasic { client_id, secret } => {
                let credentials = format!("{}:{}", form_encode(client_id), form_encode(secret));
                let mut value =
                    HeaderValue::try_from(format!("Basic {}", STANDARD.encode(credentials)))
                        .map_err(|error| RefreshError::Other(Box::new(error)))?;
                value.set_sensitive(true);
                headers.insert(AUTHORIZATION, value);
            }
            Method::SecretPost { client_id, secret } => {
                push("client_id", client_id);
                push("client_secret", secret);
            }
            Method::PrivateKeyJwt(assertion) => {
                let signed = assertion.sign(token_endpoint, now)?;
                push("client_id", &assertion.client_id);
                push("client_assertion_type", JWT_BEARER_ASSERTION);
                push("client_assertion", &signed);
            }
        }
        Ok(())
    }

    /// The `client_id` this authentication names, if any.
    pub fn client_id(&self) -> Option<&str> {
        match &self.0 {
            Method::None => None,
            Method::Public { client_id }
            | Method::SecretBasic { client_id, .. }
            | Method::SecretPost { client_id, .. } => Some(client_id),
            Method::PrivateKeyJwt(assertion) => Some(&assertion.client_id),
        }
    }
}

impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Method::None => f.write_str("ClientAuth::None"),
            Method::Public { client_id } => f
                .debug_struct("ClientAuth::Public")
                .field("client_id", client_id)
                .finish(),
            Method::SecretBasic { client_id, .. } => f
                .debug_struct("ClientAuth::SecretBasic")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Method::SecretPost { client_id, .. } => f
                .debug_struct("ClientAuth::SecretPost")
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Method::PrivateKeyJwt(assertion) => fmt::Debug::fmt(assertion, f),
        }
    }
}

/// The signing half of `private_key_jwt` (RFC 7523 §2.2): each token request carries a new assertion with
/// `iss` = `sub` = the client id, `aud` = the token endpoint (or [`PrivateKeyJwt::audience`]), `iat` now,
/// `exp` 60 s later and a random 128-bit `jti`, so a captured assertion cannot be replayed.
///
/// The assertion's header names the key by its `kid` (see [`SigningKey::from_pem`] and friends to choose
/// it), so the server picks the right registered public key.
#[derive(Clone)]
pub struct PrivateKeyJwt {
    client_id: String,
    key: SigningKey,
    audience: Option<String>,
}

impl PrivateKeyJwt {
    /// Signs with `key`, in its algorithm.
    pub fn new(client_id: impl Into<String>, key: SigningKey) -> Self {
        PrivateKeyJwt {
            client_id: client_id.into(),
            key,
            audience: None,
        }
    }

    /// Uses `audience` as `aud` instead of the token endpoint URL (some servers want their issuer URL).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    fn sign(&self, endpoint: &Url, now: SystemTime) -> Result<String, RefreshError> {
        #[derive(Serialize)]
        struct Assertion<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
            jti: String,
        }
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let claims = Assertion {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: self.audience.as_deref().unwrap_or(endpoint.as_str()),
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            jti: tessera_core::random::id::<16>()
                .map_err(|error| RefreshError::ClientAssertion(Box::new(error)))?,
        };
        self.key
            .sign_jwt(JwsHeader::typed("JWT"), &claims)
            .map_err(|error| RefreshError::ClientAssertion(Box::new(error)))
    }
}

impl fmt::Debug for PrivateKeyJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyJwt")
            .field("client_id", &self.client_id)
            .field("key", &self.key)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

/// `application/x-www-form-urlencoded` encoding of one value, as RFC 6749 §2.3.1 asks for Basic credentials.
fn form_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Url {
        Url::parse("https://auth.example/token").unwrap()
    }

    /// Applies `auth` to an empty client-credentials request: its form and headers.
    fn applied(auth: &ClientAuth, now: SystemTime) -> (Vec<(String, String)>, HeaderMap) {
        let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        let mut headers = HeaderMap::new();
        auth.apply(&mut form, &mut headers, &endpoint(), now)
            .unwrap();
        (form, headers)
    }

    #[test]
    fn basic_credentials_are_form_encoded_first() {
        let (form, headers) = applied(
            &ClientAuth::secret_basic("my client", "p:ss/word"),
            UNIX_EPOCH,
        );
        let header = headers[AUTHORIZATION].clone();
        assert!(header.is_sensitive());
        let encoded = header
            .to_str()
            .unwrap()
            .strip_prefix("Basic ")
            .unwrap()
            .to_owned();
        assert_eq!(
            STANDARD.decode(encoded).unwrap(),
            b"my+client:p%3Ass%2Fword"
        );
        assert_eq!(
            form,
            [("grant_type".to_owned(), "client_credentials".to_owned())]
        );
    }

    #[test]
    fn secret_post_puts_credentials_in_the_form() {
        let auth = ClientAuth::secret_post("c", "s");
        let (form, headers) = applied(&auth, UNIX_EPOCH);
        assert!(headers.is_empty());
        assert!(
            form.contains(&("client_id".into(), "c".into()))
                && form.contains(&("client_secret".into(), "s".into()))
        );
        assert_eq!(auth.client_id(), Some("c"));
        assert_eq!(ClientAuth::none().client_id(), None);
    }

    #[test]
    fn each_assertion_is_fresh() {
        let key = SigningKey::from_hmac_secret("k1", b"0123456789abcdef0123456789abcdef").unwrap();
        let auth = ClientAuth::private_key_jwt(PrivateKeyJwt::new("svc", key.clone()));
        let now = UNIX_EPOCH + Duration::from_secs(1_000);
        let assertion = |(form, _): (Vec<(String, String)>, HeaderMap)| {
            let value = form
                .iter()
                .find(|(name, _)| name == "client_assertion")
                .unwrap()
                .1
                .clone();
            let jws = tessera_core::jose::Jws::parse(&value).unwrap();
            assert_eq!(jws.kid(), Some("k1"));
            let claims: serde_json::Value = jws
                .verify_with(key.verifying_key())
                .unwrap()
                .claims()
                .unwrap();
            claims
        };
        let (first, second) = (
            assertion(applied(&auth, now)),
            assertion(applied(&auth, now)),
        );
        assert_eq!(first["iss"], "svc");
        assert_eq!(first["sub"], "svc");
        assert_eq!(first["aud"], "https://auth.example/token");
        assert_eq!(first["iat"], 1_000);
        assert_eq!(first["exp"], 1_060);
        assert_ne!(first["jti"], second["jti"]);
        assert!(!format!("{auth:?}").contains("0123"));
    }
}
