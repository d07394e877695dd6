//! DPoP (RFC 9449, issue 15) against a token endpoint and an API that verify every proof with
//! `tessera_core::jose` (signature with the embedded key, `typ`, `htm`, `htu`, `iat`, unique `jti`, `ath`,
//! nonce) and bind tokens to the proof key's thumbprint: access tokens carry `cnf.jkt`, refresh tokens are
//! refused with a proof from another key.

#![allow(clippy::unwrap_used)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use futures_util::future::join_all;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware};
use tessera_client::{
    AuthMiddleware, AuthOutcome, ClientAuth, ClientCredentialsGrant, DpopKey, FileTokenStore,
    RefreshTokenGrant, TokenSet,
};
use tessera_core::TokenResponse;
use tessera_core::jose::{Algorithm, Jwk, Jws};

const SECRET: &[u8; 32] = b"tessera-client-dpop-tests-key!!!";

/// What the server checks and remembers.
#[derive(Debug, Default)]
struct Verifier {
    require_nonce: AtomicBool,
    nonce: Mutex<String>,
    seen_jti: Mutex<HashSet<String>>,
    /// Refresh token -> the thumbprint it is bound to.
    refresh_tokens: Mutex<HashMap<String, String>>,
    next: AtomicUsize,
    /// Access-token lifetime for the next tokens, seconds (negative: already expired).
    lifetime: Mutex<i64>,
    token_requests: AtomicUsize,
    api_requests: AtomicUsize,
    /// Every proof accepted at the API: (method, htu, jti, ath).
    api_proofs: Mutex<Vec<serde_json::Value>>,
    /// Every refusal, for the assertion messages.
    refusals: Mutex<Vec<String>>,
}

impl Verifier {
    fn new() -> Arc<Self> {
        let verifier = Verifier::default();
        *verifier.nonce.lock().unwrap() = "n-1".into();
        *verifier.lifetime.lock().unwrap() = 300;
        Arc::new(verifier)
    }

    /// Checks `proof` for a `method` request to `url` (without query), presenting `access_token` if any;
    /// the proof key's thumbprint, or why it is refused.
    fn verify(
        &self,
        proof: Option<&HeaderValue>,
        method: &str,
        url: &str,
        access_token: Option<&str>,
    ) -> Result<String, String> {
        let proof = proof
            .ok_or("no DPoP proof")?
            .to_str()
            .map_err(|_| "proof not text")?;
        let jws = Jws::parse(proof).map_err(|error| error.to_string())?;
        if jws.typ() != Some("dpop+jwt") {
            return Err("typ is not dpop+jwt".into());
        }
        let embedded = jws.header().get("jwk").ok_or("no jwk")?.clone();
        if embedded.get("d").is_some() {
            return Err("a private key in the proof".into());
        }
        let jwk: Jwk = serde_json::from_value(embedded).map_err(|error| error.to_string())?;
        let key = jwk.to_key().map_err(|error| error.to_string())?;
        if key.accepts(Algorithm::Hs256) {
            return Err("symmetric".into());
        }
        let claims: serde_json::Value = jws
            .verify_with(&key)
            .map_err(|error| error.to_string())?
            .claims()
            .map_err(|error| error.to_string())?;
        if claims["htm"] != method || claims["htu"] != url {
            return Err(format!(
                "htm/htu {} {} for {method} {url}",
                claims["htm"], claims["htu"]
            ));
        }
        let iat = claims["iat"].as_i64().ok_or("no iat")?;
        if (iat - tessera_core::unix_seconds(SystemTime::now())).abs() > 60 {
            return Err("iat out of window".into());
        }
        let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
        if !self.seen_jti.lock().unwrap().insert(jti) {
            return Err("jti replayed".into());
        }
        let expected_ath = access_token.map(|token| {
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()),
            )
        });
        if claims
            .get("ath")
            .and_then(|ath| ath.as_str())
            .map(str::to_owned)
            != expected_ath
        {
            return Err("ath".into());
        }
        if self.require_nonce.load(Ordering::SeqCst)
            && claims["nonce"].as_str() != Some(self.nonce.lock().unwrap().as_str())
        {
            return Err(NONCE.into());
        }
        if access_token.is_some() {
            self.api_proofs.lock().unwrap().push(claims);
        }
        jwk.thumbprint().map_err(|error| error.to_string())
    }

    fn refuse(&self, reason: String) {
        self.refusals.lock().unwrap().push(reason);
    }

    fn mint(&self, jkt: &str) -> serde_json::Value {
        let lifetime = *self.lifetime.lock().unwrap();
        let now = tessera_core::unix_seconds(SystemTime::now());
        let access = jsonwebtoken::encode(
            &Header::new(JwtAlgorithm::HS256),
            &serde_json::json!({ "sub": "alice", "exp": now + lifetime, "cnf": { "jkt": jkt } }),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        let refresh = format!("rt-{}", self.next.fetch_add(1, Ordering::SeqCst));
        self.refresh_tokens
            .lock()
            .unwrap()
            .insert(refresh.clone(), jkt.to_owned());
        serde_json::json!({
            "access_token": access, "token_type": "DPoP", "expires_in": lifetime.max(1),
            "refresh_token": refresh,
        })
    }
}

const NONCE: &str = "nonce";

fn with_nonce(mut response: Response, verifier: &Verifier) -> Response {
    let nonce = verifier.nonce.lock().unwrap().clone();
    response
        .headers_mut()
        .insert("dpop-nonce", HeaderValue::from_str(&nonce).unwrap());
    response
}

async fn token(
    State((verifier, base)): State<(Arc<Verifier>, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    verifier.token_requests.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let url = format!("{base}/token");
    let error = |status: StatusCode, code: &str| {
        with_nonce(
            (status, axum::Json(serde_json::json!({ "error": code }))).into_response(),
            &verifier,
        )
    };
    let jkt = match verifier.verify(headers.get("dpop"), "POST", &url, None) {
        Ok(jkt) => jkt,
        Err(reason) if reason == NONCE => return error(StatusCode::BAD_REQUEST, "use_dpop_nonce"),
        Err(reason) => {
            verifier.refuse(reason);
            return error(StatusCode::BAD_REQUEST, "invalid_dpop_proof");
        }
    };
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some("refresh_token") => {
            let presented = form.get("refresh_token").cloned().unwrap_or_default();
            let bound = verifier.refresh_tokens.lock().unwrap().remove(&presented);
            if bound.as_deref() != Some(jkt.as_str()) {
                verifier.refuse(format!("refresh token {presented} bound to {bound:?}"));
                return error(StatusCode::BAD_REQUEST, "invalid_grant");
            }
        }
        _ => return error(StatusCode::BAD_REQUEST, "unsupported_grant_type"),
    }
    with_nonce(axum::Json(verifier.mint(&jkt)).into_response(), &verifier)
}

async fn api(
    State((verifier, base)): State<(Arc<Verifier>, String)>,
    request: Request,
) -> Response {
    verifier.api_requests.fetch_add(1, Ordering::SeqCst);
    let challenge = |error: &str| {
        let mut response = with_nonce(StatusCode::UNAUTHORIZED.into_response(), &verifier);
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_str(&format!(r#"DPoP error="{error}", algs="ES256 EdDSA""#)).unwrap(),
        );
        response
    };
    let Some(token) = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("DPoP "))
    else {
        verifier.refuse("not a DPoP authorization".into());
        return challenge("invalid_token");
    };
    let url = format!("{base}{}", request.uri().path());
    let jkt = match verifier.verify(
        request.headers().get("dpop"),
        request.method().as_str(),
        &url,
        Some(token),
    ) {
        Ok(jkt) => jkt,
        Err(reason) if reason == NONCE => return challenge("use_dpop_nonce"),
        Err(reason) => {
            verifier.refuse(reason);
            return challenge("invalid_dpop_proof");
        }
    };
    let mut validation = Validation::new(JwtAlgorithm::HS256);
    validation.leeway = 0;
    validation.validate_aud = false;
    validation.set_required_spec_claims(&["exp"]);
    match jsonwebtoken::decode::<serde_json::Value>(
        token,
        &DecodingKey::from_secret(SECRET),
        &validation,
    ) {
        Ok(data) if data.claims["cnf"]["jkt"] == jkt => with_nonce(
            format!("hello {}", data.claims["sub"]).into_response(),
            &verifier,
        ),
        Ok(_) => {
            verifier.refuse("cnf.jkt is not the proof key".into());
            challenge("invalid_token")
        }
        Err(error) if *error.kind() == jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
            let mut response = challenge("invalid_token");
            response
                .headers_mut()
                .insert("token-expired", HeaderValue::from_static("true"));
            response
        }
        Err(error) => {
            verifier.refuse(error.to_string());
            challenge("invalid_token")
        }
    }
}

struct Server {
    url: String,
    verifier: Arc<Verifier>,
}

impl Server {
    async fn start() -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let verifier = Verifier::new();
        let state = (Arc::clone(&verifier), url.clone());
        let app = Router::new()
            .route("/token", post(token))
            .route("/api/{*rest}", any(api))
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { url, verifier }
    }

    fn token_url(&self) -> reqwest::Url {
        format!("{}/token", self.url).parse().unwrap()
    }

    fn refusals(&self) -> Vec<String> {
        self.verifier.refusals.lock().unwrap().clone()
    }
}

fn client(auth: &AuthMiddleware) -> ClientWithMiddleware {
    ClientBuilder::new(reqwest::Client::new())
        .with(auth.clone())
        .build()
}

fn outcome(response: &reqwest::Response) -> AuthOutcome {
    *response.extensions().get::<AuthOutcome>().unwrap()
}

fn client_credentials(server: &Server, key: DpopKey) -> AuthMiddleware {
    let grant = ClientCredentialsGrant::new(
        reqwest::Client::new(),
        server.token_url(),
        ClientAuth::secret_basic("svc", "s"),
    );
    AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .dpop(key)
        .build()
        .unwrap()
}

/// Logs in the way an application does: its own token request, signed with the middleware's DPoP key.
async fn log_in(server: &Server, auth: &AuthMiddleware) -> TokenSet {
    let dpop = auth.dpop().expect("DPoP is on");
    let response = reqwest::Client::new()
        .post(server.token_url())
        .header(
            "dpop",
            dpop.token_request_proof(&server.token_url()).unwrap(),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    dpop.remember_nonce(&server.token_url(), response.headers());
    assert_eq!(response.status(), StatusCode::OK, "{:?}", server.refusals());
    let body: TokenResponse = serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
    TokenSet::from_response(body, SystemTime::now())
}

#[tokio::test]
async fn every_api_request_gets_a_fresh_proof_bound_to_the_token() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let server = Server::start().await;
        let key = DpopKey::generate(algorithm).unwrap();
        let auth = client_credentials(&server, key.clone());
        let client = client(&auth);

        for (method, path) in [
            (reqwest::Method::GET, "/api/items?page=2#top"),
            (reqwest::Method::POST, "/api/items"),
            (reqwest::Method::DELETE, "/api/items/7"),
        ] {
            let response = client
                .request(method.clone(), format!("{}{path}", server.url))
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status(),
                StatusCode::OK,
                "{method} {path}: {:?}",
                server.refusals()
            );
            assert!(outcome(&response).attached());
        }
        let tokens = auth.tokens().unwrap();
        assert_eq!(tokens.token_type(), "DPoP");
        assert_eq!(tokens.dpop_key().unwrap().thumbprint(), key.thumbprint());
        assert_eq!(server.verifier.token_requests.load(Ordering::SeqCst), 1);
        let proofs = server.verifier.api_proofs.lock().unwrap().clone();
        assert_eq!(proofs.len(), 3);
        assert_eq!(
            proofs[0]["htu"],
            format!("{}/api/items", server.url),
            "no query, no fragment"
        );
        let jtis: HashSet<_> = proofs.iter().map(|proof| proof["jti"].clone()).collect();
        assert_eq!(jtis.len(), 3, "a fresh jti per request");
    }
}

#[tokio::test]
async fn a_refresh_uses_the_bound_key_and_the_replay_gets_a_new_proof() {
    let server = Server::start().await;
    *server.verifier.lifetime.lock().unwrap() = -5;
    let grant = RefreshTokenGrant::new(reqwest::Client::new(), server.token_url());
    let auth = AuthMiddleware::builder(grant)
        .allow_origin(&server.url)
        .dpop(DpopKey::generate(Algorithm::EdDsa).unwrap())
        .build()
        .unwrap();
    // The login's token has already expired on the server's side; the client does not know.
    let login = log_in(&server, &auth).await;
    auth.set_tokens(login.with_expires_at(SystemTime::now() + Duration::from_secs(300)))
        .await
        .unwrap();
    *server.verifier.lifetime.lock().unwrap() = 300;
    let client = client(&auth);

    let requests = (0..50).map(|_| client.get(format!("{}/api/me", server.url)).send());
    for response in join_all(requests).await {
        let response = response.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{:?}", server.refusals());
        assert!(outcome(&response).replayed());
    }
    assert_eq!(
        server.verifier.token_requests.load(Ordering::SeqCst),
        2,
        "the login and one refresh, whatever the number of requests"
    );
    assert!(server.refusals().is_empty(), "{:?}", server.refusals());
    // 50 rejected attempts and 50 replays, each with its own proof.
    assert_eq!(server.verifier.api_proofs.lock().unwrap().len(), 100);
}

#[tokio::test]
async fn nonces_are_learnt_from_both_ends_and_retried_once() {
    let server = Server::start().await;
    server.verifier.require_nonce.store(true, Ordering::SeqCst);
    let auth = client_credentials(&server, DpopKey::generate(Algorithm::Es256).unwrap());
    let client = client(&auth);

    let response = client
        .get(format!("{}/api/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{:?}", server.refusals());
    assert!(
        !outcome(&response).replayed(),
        "a nonce retry is not a token replay"
    );
    // The token endpoint and the API share an origin here: the nonce the token endpoint handed out serves
    // the API at once.
    assert_eq!(
        server.verifier.token_requests.load(Ordering::SeqCst),
        2,
        "use_dpop_nonce, then the token"
    );
    assert_eq!(server.verifier.api_requests.load(Ordering::SeqCst), 1);

    // The server rotates its nonce: the API asks again, once, and the new one is used from then on.
    *server.verifier.nonce.lock().unwrap() = "n-2".into();
    let response = client
        .get(format!("{}/api/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.verifier.api_requests.load(Ordering::SeqCst), 3);
    let response = client
        .get(format!("{}/api/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(server.verifier.api_requests.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn a_restart_loads_the_key_with_the_tokens_it_bound() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.json");
    let original = DpopKey::generate(Algorithm::EdDsa).unwrap();
    let build = |key: DpopKey| {
        AuthMiddleware::builder(RefreshTokenGrant::new(
            reqwest::Client::new(),
            server.token_url(),
        ))
        .allow_origin(&server.url)
        .store(FileTokenStore::new(&path))
        .dpop(key)
        .build()
        .unwrap()
    };
    {
        // A login whose access token the server will call expired, so the next process must refresh.
        *server.verifier.lifetime.lock().unwrap() = -5;
        let auth = build(original.clone());
        let login = log_in(&server, &auth).await;
        auth.set_tokens(login.with_expires_at(SystemTime::now() + Duration::from_secs(300)))
            .await
            .unwrap();
        *server.verifier.lifetime.lock().unwrap() = 300;
    }

    // The next process generates a new key, but the stored tokens come with the key they are bound to:
    // the refresh token is accepted only with a proof from that key.
    let auth = build(DpopKey::generate(Algorithm::EdDsa).unwrap());
    let response = client(&auth)
        .get(format!("{}/api/me", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{:?}", server.refusals());
    assert!(outcome(&response).replayed());
    assert_eq!(server.verifier.token_requests.load(Ordering::SeqCst), 2);
    assert_eq!(
        auth.tokens().unwrap().dpop_key().unwrap().thumbprint(),
        original.thumbprint()
    );
}

#[tokio::test]
async fn a_dpop_bound_token_without_a_key_is_refused() {
    let server = Server::start().await;
    let auth = AuthMiddleware::builder(RefreshTokenGrant::new(
        reqwest::Client::new(),
        server.token_url(),
    ))
    .allow_origin(&server.url)
    .build()
    .unwrap();
    let error = auth
        .set_tokens(TokenSet::new("a1").with_token_type("DPoP"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, tessera_client::Error::UnusableAccessToken),
        "{error}"
    );
}
