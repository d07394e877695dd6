//! What the issuer's integration tests share: a token service on a manual clock with a fixed cast of
//! users and clients, and helpers to call its router and read its answers.

// Test code (unwraps allowed, see clippy.toml) although it sits outside `#[test]` functions.
#![cfg(test)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test target uses a different part of the support module"
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, Request, StatusCode};
use serde_json::Value;
use tessera_core::ManualClock;
use tessera_issuer::jose::{Jws, SigningKey};
use tessera_issuer::store::RefreshStore;
use tessera_issuer::{Algorithm, AuthEvent, ClientRegistration, Issuer, PasswordHashing};
use tower::ServiceExt as _;

pub const START: i64 = 1_800_000_000;
pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "api";
pub const CLIENT_SECRET: &str = "s3cret with spaces";

/// Cheap argon2 parameters: the tests exercise logic, not password-hash cost.
pub fn cheap_hashing() -> PasswordHashing {
    PasswordHashing::new(64, 1).unwrap()
}

#[derive(Clone)]
pub struct Harness<S> {
    pub issuer: Issuer<S>,
    pub app: Router,
    pub clock: ManualClock,
    pub events: Arc<Mutex<Vec<AuthEvent>>>,
    /// The private key of the `jwt-svc` client, to sign its assertions.
    pub client_key: SigningKey,
}

/// The token service on `store`, its clock at [`START`], with every user and client below.
pub async fn harness<S: RefreshStore>(store: S) -> Harness<S> {
    harness_with(store, |builder| builder).await
}

/// [`harness`], with settings changed by `configure`.
pub async fn harness_with<S: RefreshStore>(
    store: S,
    configure: impl FnOnce(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
) -> Harness<S> {
    harness_on(store, ManualClock::at_unix(START), configure).await
}

/// [`harness_with`] on `clock`: users `alice:wonderland` (role `admin`) and `bob:builder`; public clients
/// `demo` (scopes `profile email`) and `other`; confidential `svc` (secret [`CLIENT_SECRET`], scope
/// `reports`) and `jwt-svc` (`private_key_jwt` with [`Harness::client_key`]). Mounted as in the examples:
/// the token service under `/auth`, the JWKS at the root. Started as a deployment starts it
/// ([`IssuerBuilder::start`](tessera_issuer::IssuerBuilder::start)).
pub async fn harness_on<S: RefreshStore>(
    store: S,
    clock: ManualClock,
    configure: impl FnOnce(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
) -> Harness<S> {
    assemble(store, clock, |builder| {
        configure(builder.user("alice", "wonderland", ["admin"]).user(
            "bob",
            "builder",
            Vec::<String>::new(),
        ))
    })
    .await
}

/// [`harness_with`], checking passwords with `verifier` instead of the built-in users.
pub async fn harness_with_verifier<S: RefreshStore>(
    store: S,
    verifier: impl tessera_issuer::CredentialVerifier,
    configure: impl FnOnce(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
) -> Harness<S> {
    assemble(store, ManualClock::at_unix(START), |builder| {
        configure(builder.credential_verifier(verifier))
    })
    .await
}

/// The token service with the clients of [`harness_on`], its users left to `configure`.
async fn assemble<S: RefreshStore>(
    store: S,
    clock: ManualClock,
    configure: impl FnOnce(tessera_issuer::IssuerBuilder) -> tessera_issuer::IssuerBuilder,
) -> Harness<S> {
    let events = Arc::new(Mutex::new(Vec::new()));
    let client_key = SigningKey::generate(Algorithm::Es256).unwrap();
    let secret_hash = cheap_hashing().hash(CLIENT_SECRET).unwrap();
    let seen = events.clone();
    let builder = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .grace(Duration::from_secs(30))
        .clock(clock.clone())
        .password_hashing(cheap_hashing())
        .client(ClientRegistration::public("demo").scopes(["profile", "email"]))
        .client(ClientRegistration::public("other"))
        .client(
            ClientRegistration::with_secret_hash("svc", secret_hash)
                .unwrap()
                .scopes(["reports"]),
        )
        .client(ClientRegistration::with_private_key_jwt(
            "jwt-svc",
            client_key.verifying_key().clone(),
        ))
        .event_hook(move |event: &AuthEvent| seen.lock().unwrap().push(event.clone()));
    let issuer = configure(builder).start(store).await.unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = Router::new()
        .nest("/auth", issuer.router(&auth))
        .merge(issuer.well_known_router());
    Harness {
        issuer,
        app,
        clock,
        events,
        client_key,
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes)
            .unwrap_or_else(|_| panic!("not JSON: {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }

    pub fn error(&self) -> String {
        self.json()["error"].as_str().unwrap().to_owned()
    }

    pub fn refresh_token(&self) -> String {
        self.json()["refresh_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no refresh token: {}", self.text()))
            .to_owned()
    }

    pub fn access_token(&self) -> String {
        self.json()["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {}", self.text()))
            .to_owned()
    }
}

impl<S> Harness<S> {
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        Answer {
            status,
            headers,
            bytes,
        }
    }

    pub async fn post_form(&self, path: &str, form: &str) -> Answer {
        self.post_form_with(path, form, &[]).await
    }

    /// [`Harness::post_form`] with extra request headers.
    pub async fn post_form_with(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request =
            Request::post(path).header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> Answer {
        self.post_form(
            "/auth/token",
            &format!("grant_type=password&client_id=demo&username={username}&password={password}"),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post_form(
            "/auth/token",
            &format!("grant_type=refresh_token&client_id=demo&refresh_token={refresh_token}"),
        )
        .await
    }

    pub async fn bearer(&self, method: &str, path: &str, access_token: &str) -> Answer {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {access_token}"))
            .body(Body::empty())
            .unwrap();
        self.send(request).await
    }

    /// `GET /auth/sessions` with `access_token`: the session list, if the token is accepted.
    pub async fn sessions(&self, access_token: &str) -> Answer {
        self.bearer("GET", "/auth/sessions", access_token).await
    }

    pub fn events(&self) -> Vec<AuthEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// The claims of a JWT, unverified (the tests check what was signed, the layer checks signatures).
pub fn claims_of(token: &str) -> Value {
    Jws::parse(token).unwrap().unverified_claims().unwrap()
}

impl<S: RefreshStore + Clone> Harness<S> {
    /// `count` refreshes of `refresh_token` at once, each on its own task; the answers in spawn order.
    pub async fn refresh_in_parallel(&self, refresh_token: &str, count: usize) -> Vec<Answer> {
        let tasks: Vec<_> = (0..count)
            .map(|_| {
                let h = self.clone();
                let token = refresh_token.to_owned();
                tokio::spawn(async move { h.refresh(&token).await })
            })
            .collect();
        let mut answers = Vec::with_capacity(count);
        for task in tasks {
            answers.push(task.await.unwrap());
        }
        answers
    }
}

/// The public URL of the harness's token endpoint: what DPoP proofs name in `htu`.
pub const TOKEN_ENDPOINT: &str = "https://auth.test/auth/token";

/// A DPoP key of a client, signing proofs (RFC 9449 §4.2) for the token endpoint.
pub struct DpopKey {
    pub key: SigningKey,
    counter: std::sync::atomic::AtomicUsize,
}

impl DpopKey {
    pub fn new(algorithm: Algorithm) -> DpopKey {
        DpopKey {
            key: SigningKey::generate(algorithm).unwrap(),
            counter: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The RFC 7638 thumbprint tokens bound to this key carry in `cnf.jkt`.
    pub fn jkt(&self) -> String {
        self.key.public_jwk().unwrap().thumbprint().unwrap()
    }

    /// A proof with these claims.
    pub fn sign(&self, claims: &Value) -> String {
        let header = tessera_issuer::jose::JwsHeader {
            typ: Some("dpop+jwt"),
            embed_jwk: true,
        };
        self.key.sign_jwt(header, claims).unwrap()
    }

    /// A fresh proof for `POST` to the token endpoint at `iat`, with `nonce` if given.
    pub fn proof(&self, iat: i64, nonce: Option<&str>) -> String {
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut claims = serde_json::json!({
            "jti": format!("proof-{n}-{}", self.jkt()), "htm": "POST", "htu": TOKEN_ENDPOINT, "iat": iat,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = Value::from(nonce);
        }
        self.sign(&claims)
    }
}
