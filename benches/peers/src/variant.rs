//! The servers compared: one tiny axum 0.8 handler behind each library's authentication.

use std::convert::Infallible;
use std::future::{Future, IntoFuture};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use axum::routing::get;
use tessera_server::{AuthStats, JwtAuthLayer};
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder};

use crate::claims::{AUDIENCE, BenchClaims, ISSUER, LEEWAY_SECS};
use crate::keys::{Alg, VerifyKey};
use crate::naive::{NaiveAuth, naive_auth};

/// Who authenticates the request in front of the handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Library {
    /// No authentication: the ceiling.
    Bare,
    /// No authentication, but a pass-through tower layer added with `Router::layer`: what axum charges for
    /// any layer (per-request clones of the boxed route), the floor every layered library stands on.
    PassThrough,
    /// `axum::middleware::from_fn` calling `jsonwebtoken::decode` (jsonwebtoken 11, aws-lc-rs).
    Naive,
    /// Tessera `JwtAuthLayer`, verified-token cache off.
    TesseraNoCache,
    /// Tessera `JwtAuthLayer`, verified-token cache on (the default).
    TesseraCache,
    /// Tessera `JwtAuthLayer`, cache on, and the handler deserializes the claims with `Claims<T>` (the
    /// other libraries deserialize them for every request whether the handler reads them or not).
    TesseraCacheClaims,
    /// The token service's own layer, as `tessera_issuer::Issuer::auth_layer()` builds it (cache on, its
    /// access-token denylist as the revocation check): what a deployment of the whole stack runs.
    TesseraIssuer,
    /// jwt-authorizer 0.15 `AuthorizationLayer` (jsonwebtoken 9, ring).
    JwtAuthorizer,
    /// axum-jwt-auth 0.7 `Claims` extractor with a `LocalDecoder` (jsonwebtoken 10, rust_crypto).
    AxumJwtAuth,
}

impl Library {
    /// The references every table starts with: bare axum (the ceiling ratios are taken against) and the same
    /// router with a pass-through layer (the floor of any layer added with `Router::layer`).
    pub const REFERENCES: [Library; 2] = [Library::Bare, Library::PassThrough];

    /// Whether the library checks tokens (the references answer 200 to any token, expired or not).
    pub fn authenticates(self) -> bool {
        !Library::REFERENCES.contains(&self)
    }

    /// Every authenticating library, in table order.
    pub const AUTHENTICATING: [Library; 7] = [
        Library::Naive,
        Library::JwtAuthorizer,
        Library::AxumJwtAuth,
        Library::TesseraNoCache,
        Library::TesseraCache,
        Library::TesseraCacheClaims,
        Library::TesseraIssuer,
    ];

    /// The variants whose verified-token cache answers a token it saw valid once that token expired: the
    /// extra rows of the 401 tables.
    pub const SEEN_VALID: [Library; 2] = [Library::TesseraCache, Library::TesseraIssuer];

    /// The row label in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Library::Bare => "bare axum",
            Library::PassThrough => "bare axum + pass-through layer",
            Library::Naive => "naive jsonwebtoken middleware",
            Library::TesseraNoCache => "Tessera, cache off",
            Library::TesseraCache => "Tessera, cache on",
            Library::TesseraCacheClaims => "Tessera, cache on, handler takes `Claims<T>`",
            Library::TesseraIssuer => {
                "Tessera, the issuer's `auth_layer()` (cache on, revocation check on)"
            }
            Library::JwtAuthorizer => "jwt-authorizer 0.15",
            Library::AxumJwtAuth => "axum-jwt-auth 0.7",
        }
    }

    /// The row label of the 401 measured with a token this variant saw valid before it expired.
    pub fn seen_valid_label(self) -> String {
        format!("{}, token seen valid before it expired", self.label())
    }

    /// The command-line spelling.
    pub fn slug(self) -> &'static str {
        match self {
            Library::Bare => "bare",
            Library::PassThrough => "pass-through",
            Library::Naive => "naive",
            Library::TesseraNoCache => "tessera-no-cache",
            Library::TesseraCache => "tessera-cache",
            Library::TesseraCacheClaims => "tessera-cache-claims",
            Library::TesseraIssuer => "tessera-issuer",
            Library::JwtAuthorizer => "jwt-authorizer",
            Library::AxumJwtAuth => "axum-jwt-auth",
        }
    }

    /// Whether the library keeps Tessera's counters (printed when the server stops).
    pub fn is_tessera(self) -> bool {
        matches!(
            self,
            Library::TesseraNoCache
                | Library::TesseraCache
                | Library::TesseraCacheClaims
                | Library::TesseraIssuer
        )
    }
}

/// A service that hands every request to `inner` untouched.
#[derive(Clone)]
struct PassThrough<S> {
    inner: S,
}

impl<S: Service<Request>> Service<Request> for PassThrough<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> S::Future {
        self.inner.call(request)
    }
}

/// The handler every variant serves on `GET /`.
pub async fn hello() -> &'static str {
    "hello"
}

/// The same handler for axum-jwt-auth, which authenticates through an extractor rather than a layer.
async fn hello_with_claims(_claims: axum_jwt_auth::Claims<BenchClaims>) -> &'static str {
    "hello"
}

/// The same handler, reading the claims Tessera verified.
async fn hello_with_tessera_claims(_claims: tessera_server::Claims<BenchClaims>) -> &'static str {
    "hello"
}

/// A Tessera layer for `alg` requiring the benchmark issuer and audience.
pub fn tessera_layer(alg: Alg, key: &VerifyKey, cache: bool) -> Result<JwtAuthLayer> {
    let builder = JwtAuthLayer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(Duration::from_secs(LEEWAY_SECS));
    let builder = match alg {
        Alg::Hs256 => builder.hmac_secret(key.as_bytes()),
        Alg::Es256 | Alg::Eddsa | Alg::Rs256 => {
            builder.public_key_pem(alg.tessera(), key.as_bytes())
        }
    };
    let builder = if cache {
        builder
    } else {
        builder.without_cache()
    };
    Ok(builder.build()?)
}

/// The token service's own layer for `alg`, as `tessera_issuer::Issuer::auth_layer_builder()` makes it:
/// strict RFC 9068 checks, the cache on, the issuer's access-token denylist as the revocation check and
/// a `KeyRing` of keys (the issuer's own ring rotates with the keys in its store). The ring holds the
/// benchmark's verification key, as an instance's ring holds the keys of the key set all instances
/// share; the denylist holds revocations of 100 other users, so every request looks its subject up in a
/// populated list.
pub async fn issuer_layer(alg: Alg, key: &VerifyKey) -> Result<JwtAuthLayer> {
    use std::sync::Arc;
    use tessera_issuer::{Algorithm, Issuer, MemoryStore, SigningKeys};
    use tessera_server::{JwtKey, KeyRing, KeySet};

    let issuer = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .keys(SigningKeys::generate(Algorithm::EdDsa)?)
        .public_client("bench-client")
        .start(MemoryStore::new())
        .await?;
    for index in 0..100 {
        issuer.revoke_user(&format!("revoked-{index}")).await?;
    }
    let key = match alg {
        Alg::Hs256 => JwtKey::hmac(key.as_bytes())?,
        Alg::Es256 | Alg::Eddsa | Alg::Rs256 => JwtKey::from_pem(alg.tessera(), key.as_bytes())?,
    };
    let layer = JwtAuthLayer::builder()
        .issuer(issuer.issuer())
        .audience(AUDIENCE)
        .strict_rfc9068(true)
        .revocation(Arc::new(issuer.denylist().clone()))
        .key_ring(KeyRing::new(KeySet::new([key])?))
        .leeway(Duration::from_secs(LEEWAY_SECS))
        .build()?;
    // The issuer's background sync keeps its denylist fresh (else it fails closed after 2 min) for as long
    // as the runtime serves.
    tokio::spawn(async move {
        let _running = issuer;
        std::future::pending::<()>().await;
    });
    Ok(layer)
}

/// What is done with a variant's service: serve it on a socket, or call it in a loop to count instructions.
pub trait Driver {
    /// Runs `service` to completion.
    fn drive<S>(self, service: S) -> impl Future<Output = Result<()>>
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send;
}

/// Builds `library`'s service for `alg` and hands it to `driver`; Tessera variants return their counters.
pub async fn with_service(
    library: Library,
    alg: Alg,
    key: &VerifyKey,
    driver: impl Driver,
) -> Result<Option<AuthStats>> {
    let app = Router::new().route("/", get(hello));
    match library {
        Library::Bare => driver.drive(app).await.map(|()| None),
        Library::PassThrough => driver
            .drive(app.layer(tower::layer::layer_fn(|inner| PassThrough { inner })))
            .await
            .map(|()| None),
        Library::Naive => {
            let auth = NaiveAuth::new(alg, key)?;
            let app = app.layer(axum::middleware::from_fn_with_state(auth, naive_auth));
            driver.drive(app).await.map(|()| None)
        }
        Library::TesseraNoCache | Library::TesseraCache => {
            let layer = tessera_layer(alg, key, library == Library::TesseraCache)?;
            driver.drive(app.layer(layer.clone())).await?;
            Ok(Some(layer.stats()))
        }
        Library::TesseraIssuer => {
            let layer = issuer_layer(alg, key).await?;
            driver.drive(app.layer(layer.clone())).await?;
            Ok(Some(layer.stats()))
        }
        Library::TesseraCacheClaims => {
            let layer = tessera_layer(alg, key, true)?;
            let app = Router::new()
                .route("/", get(hello_with_tessera_claims))
                .layer(layer.clone());
            driver.drive(app).await?;
            Ok(Some(layer.stats()))
        }
        Library::JwtAuthorizer => {
            let service = jwt_authorizer_service(alg, key, app).await?;
            driver.drive(service).await.map(|()| None)
        }
        Library::AxumJwtAuth => {
            let decoder: axum_jwt_auth::Decoder<BenchClaims> =
                Arc::new(axum_jwt_auth_decoder(alg, key)?);
            let app = Router::new()
                .route("/", get(hello_with_claims))
                .with_state(decoder);
            driver.drive(app).await.map(|()| None)
        }
    }
}

/// Serves on a listener with `axum::serve` until a shutdown signal.
#[derive(Debug)]
pub struct Serve<F> {
    /// Where to accept connections.
    pub listener: TcpListener,
    /// Resolves when the server should stop.
    pub shutdown: F,
}

impl<F: Future<Output = ()>> Driver for Serve<F> {
    async fn drive<S>(self, service: S) -> Result<()>
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        let server = axum::serve(
            self.listener,
            axum::ServiceExt::<Request>::into_make_service(service),
        );
        tokio::select! {
            result = server.into_future() => result.context("serving"),
            () = self.shutdown => Ok(()),
        }
    }
}

/// Calls the service `iterations` times in-process with the same bearer token, no sockets: what is left
/// is routing, authentication and the handler, for counting instructions per request (callgrind collects
/// inside [`count_requests`] only).
#[derive(Debug)]
pub struct CallLoop {
    /// Requests to make.
    pub iterations: u64,
    /// The bearer token every request carries.
    pub token: String,
    /// Present the token once while it is still valid, then wait until this time (Unix seconds) when it is
    /// not any more, before counting: the 401 for a token the server saw valid.
    pub seen_valid_until: Option<i64>,
}

impl Driver for CallLoop {
    async fn drive<S>(self, mut service: S) -> Result<()>
    where
        S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
        S::Future: Send,
    {
        let header = http::HeaderValue::try_from(format!("Bearer {}", self.token))?;
        if let Some(until) = self.seen_valid_until {
            let status = call_once(&mut service, &header)?;
            anyhow::ensure!(
                status == http::StatusCode::OK,
                "the token was answered {status} before it expired: start sooner or mint it later"
            );
            tokio::time::sleep(crate::keys::time_until(until)).await;
            let status = call_once(&mut service, &header)?;
            anyhow::ensure!(
                status == http::StatusCode::UNAUTHORIZED,
                "the token was answered {status} after it expired"
            );
        }
        count_requests(&mut service, self.iterations, &header)
    }
}

/// One request outside the measured loop: its status.
fn call_once<S>(service: &mut S, header: &http::HeaderValue) -> Result<http::StatusCode>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    Ok(respond(service, header)?.status())
}

/// The measured loop: every variant completes a request without waiting on I/O, so each call is polled to
/// completion at once, with no executor in between.
#[inline(never)]
pub fn count_requests<S>(service: &mut S, iterations: u64, header: &http::HeaderValue) -> Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    for _ in 0..iterations {
        std::hint::black_box(respond(service, header)?);
    }
    Ok(())
}

/// One `GET /` with `header` as its `Authorization`, polled to completion at once.
#[inline(always)]
fn respond<S>(service: &mut S, header: &http::HeaderValue) -> Result<Response>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    use futures_util::FutureExt as _;

    let request = Request::get("/")
        .header(http::header::AUTHORIZATION, header.clone())
        .body(axum::body::Body::empty())?;
    let ready = std::future::poll_fn(|cx| service.poll_ready(cx)).now_or_never();
    anyhow::ensure!(
        matches!(ready, Some(Ok(()))),
        "the service was not ready at once"
    );
    service
        .call(request)
        .now_or_never()
        .context("the request did not complete without waiting")?
        .map_err(|never| match never {})
}

/// jwt-authorizer's verifier for `alg`, with the same rules as every other variant.
pub async fn jwt_authorizer(
    alg: Alg,
    key: &VerifyKey,
) -> Result<jwt_authorizer::Authorizer<BenchClaims>> {
    use jwt_authorizer::{JwtAuthorizer, Validation};

    let builder = match alg {
        Alg::Hs256 => JwtAuthorizer::<BenchClaims>::from_secret(key.as_str()),
        Alg::Es256 => JwtAuthorizer::from_ec_pem_text(key.as_str()),
        Alg::Eddsa => JwtAuthorizer::from_ed_pem_text(key.as_str()),
        Alg::Rs256 => JwtAuthorizer::from_rsa_pem_text(key.as_str()),
    };
    let validation = Validation::new()
        .iss(&[ISSUER])
        .aud(&[AUDIENCE])
        .nbf(true)
        .leeway(LEEWAY_SECS);
    builder
        .validation(validation)
        .build()
        .await
        .map_err(|error| anyhow::anyhow!("jwt-authorizer: {error}"))
}

/// jwt-authorizer 0.15 is built on axum 0.7, whose responses have a different body type: the axum 0.8
/// router's responses are wrapped into axum 0.7 bodies below the layer and back above it (one boxing each
/// way, the same for the valid and the rejected path).
async fn jwt_authorizer_service(
    alg: Alg,
    key: &VerifyKey,
    app: Router,
) -> Result<
    impl Service<Request, Response = Response, Error = Infallible, Future: Send>
    + Clone
    + Send
    + 'static,
> {
    use jwt_authorizer::IntoLayer as _;

    let authorizer = jwt_authorizer(alg, key).await?;
    let inner = tower::ServiceExt::<Request>::map_response(app, |response: Response| {
        response.map(axum07::body::Body::new)
    });
    Ok(ServiceBuilder::new()
        .map_response(|response: axum07::response::Response| response.map(axum::body::Body::new))
        .layer(authorizer.into_layer())
        .service(inner))
}

/// axum-jwt-auth's decoder for `alg`, with the same rules as every other variant.
pub fn axum_jwt_auth_decoder(alg: Alg, key: &VerifyKey) -> Result<axum_jwt_auth::LocalDecoder> {
    use jsonwebtoken10::{Algorithm, DecodingKey, Validation};

    let bytes = key.as_bytes();
    let (decoding_key, algorithm) = match alg {
        Alg::Hs256 => (DecodingKey::from_secret(bytes), Algorithm::HS256),
        Alg::Es256 => (DecodingKey::from_ec_pem(bytes)?, Algorithm::ES256),
        Alg::Eddsa => (DecodingKey::from_ed_pem(bytes)?, Algorithm::EdDSA),
        Alg::Rs256 => (DecodingKey::from_rsa_pem(bytes)?, Algorithm::RS256),
    };
    let mut validation = Validation::new(algorithm);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[AUDIENCE]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    axum_jwt_auth::LocalDecoder::builder()
        .keys(vec![decoding_key])
        .validation(validation)
        .build()
        .map_err(|error| anyhow::anyhow!("axum-jwt-auth: {error}"))
}
