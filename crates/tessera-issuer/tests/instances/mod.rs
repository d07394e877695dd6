//! Token-service instances on real listeners, as a deployment runs them (each its own `Issuer` and store
//! handle, started with `IssuerBuilder::start`), and an HTTP client for them.

// Test code (unwraps allowed, see clippy.toml) although it sits outside `#[test]` functions.
#![cfg(test)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test target uses a different part of the module"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use serde_json::Value;
use tessera_issuer::jose::{Algorithm, SigningKey};
use tessera_issuer::store::RefreshStore;
use tessera_issuer::{ClientRegistration, Issuer, IssuerBuilder, PasswordHashing};
use tokio::task::JoinHandle;

pub const ISSUER: &str = "https://auth.test";
pub const AUDIENCE: &str = "api";
/// The bearer token of the denials feed.
pub const FEED_TOKEN: &str = "feed-token-of-at-least-thirty-two-characters";

/// The `private_key_jwt` client's key, the same on every instance.
pub fn client_key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate_with_kid("jwt-svc-key", Algorithm::Es256).unwrap())
}

/// The settings every instance shares: alice (`wonderland`), the public client `demo`, the
/// `private_key_jwt` client `jwt-svc`, the denials feed, cheap password hashing.
pub fn builder() -> IssuerBuilder {
    Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .password_hashing(PasswordHashing::new(64, 1).unwrap())
        .user("alice", "wonderland", ["admin"])
        .client(ClientRegistration::public("demo"))
        .client(ClientRegistration::with_private_key_jwt(
            "jwt-svc",
            client_key().verifying_key().clone(),
        ))
        .denials_feed_token(FEED_TOKEN)
        .family_cap(1_000)
}

/// One instance: an issuer served on a loopback port.
pub struct Instance<S> {
    pub issuer: Issuer<S>,
    pub url: String,
    server: JoinHandle<()>,
}

impl<S> Drop for Instance<S> {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts the token service on `store` with `builder` and serves it (token service under `/auth`, JWKS,
/// health) on a free loopback port.
pub async fn serve<S: RefreshStore>(store: S, builder: IssuerBuilder) -> Instance<S> {
    let issuer = builder.start(store).await.unwrap();
    let auth = issuer.auth_layer().unwrap();
    let app = Router::new()
        .nest("/auth", issuer.router(&auth))
        .merge(issuer.jwks_router())
        .merge(issuer.health_router());
    let (url, server) = listen(app).await;
    Instance {
        issuer,
        url,
        server,
    }
}

/// Serves `app` on a free loopback port: its base URL and the server task.
pub async fn listen(app: Router) -> (String, JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, server)
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|_| panic!("not JSON: {}", self.body))
    }

    pub fn field(&self, name: &str) -> String {
        self.json()[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            .to_owned()
    }
}

/// A client of the instances.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }
}

impl Client {
    /// `POST url` with a form body; a transport failure is status 0.
    pub async fn post_form(&self, url: &str, form: &str) -> Answer {
        self.post_form_with(url, form, &[]).await
    }

    /// [`Client::post_form`] with extra request headers.
    pub async fn post_form_with(&self, url: &str, form: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.body(form.to_owned()).send().await).await
    }

    /// `method url` with a bearer token.
    pub async fn bearer(&self, method: reqwest::Method, url: &str, token: &str) -> Answer {
        answer(
            self.http
                .request(method, url)
                .bearer_auth(token)
                .send()
                .await,
        )
        .await
    }

    pub async fn get(&self, url: &str) -> Answer {
        answer(self.http.get(url).send().await).await
    }

    pub async fn login(&self, base: &str, username: &str, password: &str) -> Answer {
        self.post_form(
            &format!("{base}/auth/token"),
            &format!("grant_type=password&client_id=demo&username={username}&password={password}"),
        )
        .await
    }

    pub async fn refresh(&self, base: &str, refresh_token: &str) -> Answer {
        self.post_form(
            &format!("{base}/auth/token"),
            &format!("grant_type=refresh_token&client_id=demo&refresh_token={refresh_token}"),
        )
        .await
    }
}

async fn answer(sent: Result<reqwest::Response, reqwest::Error>) -> Answer {
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            Answer { status, body }
        }
        Err(error) => Answer {
            status: 0,
            body: error.to_string(),
        },
    }
}

/// Polls `check` every 20 ms until it holds or `limit` passes; how long it took, or `None`.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// The shared handle of a counter of password verifications.
pub type Calls = Arc<std::sync::atomic::AtomicUsize>;
