//! [`IssuerBuilder`]: every setting of the token service, validated once at build time, and the two ways
//! to get a running [`Issuer`]: [`IssuerBuilder::start`] (loads keys, secret and revocations from the store;
//! what a deployment uses) and [`IssuerBuilder::build`] (synchronous, keys from the builder or a directory).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tessera_core::Audience;

use tessera_core::jose::{Algorithm, KeyError};
use tessera_core::random;
use tessera_core::{Clock, SystemClock};

use crate::clients::ClientRegistration;
use crate::credentials::{CredentialVerifier, UserTable};
use crate::denylist::DEFAULT_STALE_AFTER;
use crate::dpop::{DEFAULT_DPOP_ALGORITHMS, DEFAULT_DPOP_PROOF_WINDOW, DpopSettings, Nonces};
use crate::endpoints::{DEFAULT_ROUTER_PATH, Endpoints, UrlError};
use crate::events::AuthEventHook;
use crate::issuer::Issuer;
use crate::keys::{
    KEY_ENCRYPTION_SECRET_LEN, KeyVault, LiveKeys, Sealer, SigningKeys, StoredKeyError, StoredKeys,
    load_or_create_secret,
};
use crate::maintenance::MaintenancePolicy;
use crate::minting::{ClaimsHook, Minter};
use crate::password::{PasswordError, PasswordHashing};
use crate::refresh::{FamilyPolicy, RefreshSecret, TOKEN_LEN};
use crate::sessions::DenialPolicy;
use crate::store::{RefreshStore, StoreError};
use crate::throttle::ThrottlePolicy;

/// The longest grace window accepted.
pub const MAX_GRACE: Duration = Duration::from_secs(300);

/// The default grace window: 15 s. Long enough for a client whose refresh answer got lost to notice (a
/// 5 s timeout) and retry once (another 5 s) inside it, with room for the service counting whole seconds
/// and for latency; every second beyond that is a second in which a stolen previous token still buys the
/// live successor (when the thief also matches the rotating request's client and user agent).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(15);

/// The default number of retries of one refresh-token generation served within the grace window: a
/// lost answer retried, plus two concurrent duplicates (say, two tabs). One more is treated as reuse.
pub const DEFAULT_GRACE_RETRIES: u32 = 3;

/// The file in the key directory holding the refresh-token secret.
pub const REFRESH_SECRET_FILE: &str = "refresh-token.secret";

/// The default of [`IssuerBuilder::max_leeway`]: denials outlive the tokens they deny by 5 minutes.
pub const DEFAULT_MAX_LEEWAY: Duration = Duration::from_secs(300);

/// The shortest denials-feed bearer token accepted ([`IssuerBuilder::denials_feed_token`]).
pub const MIN_FEED_TOKEN_LEN: usize = 32;

/// A setting is missing or out of range. Each message names the setting and the accepted values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No issuer identifier.
    #[error("the issuer (`iss`) is not set; call .issuer(\"https://auth.example\")")]
    MissingIssuer,
    /// The issuer, the public URL or the router path cannot identify the service (RFC 8414 §2).
    #[error(transparent)]
    Url(#[from] UrlError),
    /// A symmetric algorithm was allowed for DPoP proofs, which need a public key.
    #[error(
        "DPoP proofs are signed with asymmetric keys; {0} cannot be among .dpop_algorithms(...)"
    )]
    SymmetricDpopAlgorithm(Algorithm),
    /// No algorithm is allowed for DPoP proofs.
    #[error(
        "allow at least one algorithm for DPoP proofs, e.g. .dpop_algorithms([Algorithm::EdDsa, Algorithm::Es256])"
    )]
    NoDpopAlgorithms,
    /// A DPoP setting of zero.
    #[error("the {0} must be at least one second")]
    ZeroDpopSetting(&'static str),
    /// No audience.
    #[error("no audience (`aud`) is set; call .audience(\"api\")")]
    MissingAudience,
    /// A lifetime is zero.
    #[error("the {0} must be longer than zero")]
    ZeroLifetime(&'static str),
    /// The idle lifetime exceeds the absolute one.
    #[error("the refresh idle lifetime ({idle:?}) exceeds the absolute lifetime ({absolute:?})")]
    IdleExceedsAbsolute {
        /// The idle lifetime.
        idle: Duration,
        /// The absolute lifetime.
        absolute: Duration,
    },
    /// The grace window is outside 0–300 s.
    #[error("the grace window ({0:?}) must be between 0 and 300 s")]
    GraceOutOfRange(Duration),
    /// The family cap is zero.
    #[error("the session cap per user and client must be at least 1")]
    ZeroFamilyCap,
    /// No credential check may run.
    #[error(
        "at least one credential check must be allowed to run; call .credential_checks(1, ...) or more"
    )]
    ZeroCredentialChecks,
    /// No client is registered, so no request could ever succeed.
    #[error("no client is registered; call .public_client(\"my-app\") or .client(...)")]
    NoClients,
    /// Two clients share an id.
    #[error("the client `{0}` is registered twice")]
    DuplicateClient(String),
    /// Both built-in users and a custom verifier were configured.
    #[error(
        "both built-in users (.user/.users) and a custom .credential_verifier were set; use one"
    )]
    ConflictingCredentialSources,
    /// Keys could not be loaded or generated.
    #[error(transparent)]
    Keys(#[from] KeyError),
    /// A password could not be hashed.
    #[error(transparent)]
    Password(#[from] PasswordError),
    /// A denials-feed token is too short to be a secret.
    #[error(
        "a denials-feed token must be at least {MIN_FEED_TOKEN_LEN} characters (generate 32 random bytes, base64url)"
    )]
    WeakFeedToken,
}

/// Why [`IssuerBuilder::start`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is wrong.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The keys or the refresh-token secret could not be loaded from the store or created there.
    #[error(transparent)]
    Keys(#[from] StoredKeyError),
    /// The revocations could not be loaded from the store.
    #[error("loading the revocations from the store failed: {0}")]
    Revocations(#[source] StoreError),
}

/// Builds an [`Issuer`]: the token service.
///
/// Defaults: access tokens 15 min, refresh families 30 days absolute and 14 days idle, 15 s grace (3
/// retries), 50
/// sessions per user and client, EdDSA, login throttling per [`ThrottlePolicy::default`], 16 KiB bodies,
/// a purge every 10 min in batches of 500.
///
/// See the [crate documentation](crate) for a complete example.
#[must_use]
pub struct IssuerBuilder {
    issuer: Option<String>,
    audience: Vec<String>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    idle_ttl: Duration,
    grace: Duration,
    grace_retries: u32,
    family_cap: usize,
    algorithm: Algorithm,
    keys: Option<SigningKeys>,
    key_dir: Option<PathBuf>,
    refresh_secret: Option<[u8; TOKEN_LEN]>,
    users: Vec<(String, String, Vec<String>)>,
    user_table: Option<UserTable>,
    verifier: Option<Arc<dyn CredentialVerifier>>,
    hashing: PasswordHashing,
    clients: Vec<ClientRegistration>,
    public_url: Option<String>,
    router_path: String,
    dpop_algorithms: Vec<Algorithm>,
    dpop_proof_window: Duration,
    dpop_nonce_period: Option<Duration>,
    throttle: ThrottlePolicy,
    credential_checks: (usize, usize),
    max_body_bytes: usize,
    purge_interval: Duration,
    purge_batch: usize,
    max_leeway: Duration,
    sync_interval: Duration,
    stale_after: Option<Duration>,
    feed_tokens: Vec<String>,
    key_encryption_secret: Option<[u8; KEY_ENCRYPTION_SECRET_LEN]>,
    events: Option<Arc<dyn AuthEventHook>>,
    claims: Option<Arc<dyn ClaimsHook>>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for IssuerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerBuilder")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .field("idle_ttl", &self.idle_ttl)
            .field("grace", &self.grace)
            .field("grace_retries", &self.grace_retries)
            .field("algorithm", &self.algorithm)
            .field("key_dir", &self.key_dir)
            .field("users", &self.users.len())
            .field("clients", &self.clients)
            .finish_non_exhaustive()
    }
}

impl Default for IssuerBuilder {
    fn default() -> Self {
        IssuerBuilder {
            issuer: None,
            audience: Vec::new(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 86_400),
            idle_ttl: Duration::from_secs(14 * 86_400),
            grace: DEFAULT_GRACE,
            grace_retries: DEFAULT_GRACE_RETRIES,
            family_cap: 50,
            algorithm: Algorithm::EdDsa,
            keys: None,
            key_dir: None,
            refresh_secret: None,
            users: Vec::new(),
            user_table: None,
            verifier: None,
            hashing: PasswordHashing::default(),
            clients: Vec::new(),
            public_url: None,
            router_path: DEFAULT_ROUTER_PATH.to_owned(),
            dpop_algorithms: DEFAULT_DPOP_ALGORITHMS.to_vec(),
            dpop_proof_window: DEFAULT_DPOP_PROOF_WINDOW,
            dpop_nonce_period: None,
            throttle: ThrottlePolicy::default(),
            credential_checks: {
                let cpus = std::thread::available_parallelism().map_or(2, usize::from);
                (2 * cpus, 32 * cpus)
            },
            max_body_bytes: 16 * 1024,
            purge_interval: Duration::from_secs(600),
            purge_batch: 500,
            max_leeway: DEFAULT_MAX_LEEWAY,
            sync_interval: Duration::from_secs(1),
            stale_after: Some(DEFAULT_STALE_AFTER),
            feed_tokens: Vec::new(),
            key_encryption_secret: None,
            events: None,
            claims: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl IssuerBuilder {
    /// The issuer identifier: the `iss` of every access token and the `issuer` of the RFC 8414 metadata,
    /// exactly as given. A URL: `https` (plain `http` only on `127.0.0.1`, `[::1]` or `localhost`), with
    /// no query or fragment, e.g. `https://auth.example`; clients find the metadata by inserting
    /// `/.well-known/oauth-authorization-server` after its host.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Adds an `aud` value: a resource server the tokens are for. Several make `aud` an array.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience.push(audience.into());
        self
    }

    /// Access-token lifetime (default 15 min).
    pub fn access_ttl(mut self, ttl: Duration) -> Self {
        self.access_ttl = ttl;
        self
    }

    /// Absolute refresh-family lifetime, fixed at login (default 30 days).
    pub fn refresh_ttl(mut self, ttl: Duration) -> Self {
        self.refresh_ttl = ttl;
        self
    }

    /// Idle refresh-family lifetime, slid by each rotation (default 14 days).
    pub fn idle_ttl(mut self, ttl: Duration) -> Self {
        self.idle_ttl = ttl;
        self
    }

    /// How long after a rotation the previous refresh token still gets the same successor back (default
    /// [`DEFAULT_GRACE`], 15 s; at most 300 s; zero turns retries off). Whole seconds. Only the request
    /// that rotated (the same client, `User-Agent` and DPoP key) gets it, and at most
    /// [`grace_retries`](Self::grace_retries) times; anything else presenting the previous token is reuse.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How many retries of one refresh-token generation the grace window serves (default
    /// [`DEFAULT_GRACE_RETRIES`], 3); the next one is reuse and revokes the family.
    pub fn grace_retries(mut self, retries: u32) -> Self {
        self.grace_retries = retries;
        self
    }

    /// Live sessions allowed per user and client before the oldest is evicted (default 50).
    pub fn family_cap(mut self, cap: usize) -> Self {
        self.family_cap = cap;
        self
    }

    /// The algorithm of keys generated in the key directory (default EdDSA). Ignored with [`Self::keys`].
    pub fn signing_algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Signing keys to use as they are (nothing is persisted for them).
    pub fn keys(mut self, keys: SigningKeys) -> Self {
        self.keys = Some(keys);
        self
    }

    /// A directory holding the signing keys and the refresh-token secret, created and filled on first
    /// start (see [`SigningKeys::load_or_generate`]), so restarts keep every token valid; processes starting
    /// together on it agree on one key. Without it (and without [`Self::keys`]), [`Self::start`] keeps keys
    /// and secret in the store, shared by every instance, and [`Self::build`] in memory, dying with the
    /// process.
    pub fn key_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.key_dir = Some(dir.into());
        self
    }

    /// Seals the signing keys and the refresh-token secret that [`Self::start`] keeps in the store
    /// (AES-256-GCM), so that a copy of the database alone cannot mint tokens. Every instance needs the same
    /// secret; keep it where the database password is kept (an environment variable, a secret manager).
    pub fn key_encryption_secret(mut self, secret: [u8; KEY_ENCRYPTION_SECRET_LEN]) -> Self {
        self.key_encryption_secret = Some(secret);
        self
    }

    /// The 32-byte secret behind refresh-token hashes and successors, when it is managed elsewhere.
    pub fn refresh_secret(mut self, secret: [u8; TOKEN_LEN]) -> Self {
        self.refresh_secret = Some(secret);
        self
    }

    /// Adds a user to the built-in argon2id user table.
    pub fn user(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.users.push((
            username.into(),
            password.into(),
            roles.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// Uses a prepared user table (users added with [`Self::user`] join it).
    pub fn users(mut self, users: UserTable) -> Self {
        self.user_table = Some(users);
        self
    }

    /// Argon2id parameters for the built-in user table.
    pub fn password_hashing(mut self, hashing: PasswordHashing) -> Self {
        self.hashing = hashing;
        self
    }

    /// Checks passwords with your own backend instead of the built-in table.
    pub fn credential_verifier(mut self, verifier: impl CredentialVerifier) -> Self {
        self.verifier = Some(Arc::new(verifier));
        self
    }

    /// Registers a public client (identified by `client_id` alone) with no scopes.
    pub fn public_client(self, client_id: impl Into<String>) -> Self {
        self.client(ClientRegistration::public(client_id))
    }

    /// Registers a client.
    pub fn client(mut self, client: ClientRegistration) -> Self {
        self.clients.push(client);
        self
    }

    /// The URL clients reach this service at, where [`Issuer::well_known_router`] is merged and
    /// [`Issuer::router`] nested (default: the issuer). Set it when the service sits behind a proxy under
    /// another origin or path. The endpoints' public URLs follow from it: the token endpoint is
    /// `{public_url}{router_path}/token` (what DPoP proofs' `htu` and `private_key_jwt` assertions' `aud`
    /// must name), then `/revoke` and `/introspect`, and the JWKS `{public_url}/.well-known/jwks.json`.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }

    /// Where [`Issuer::router`] is nested under the public URL (default `/auth`; empty when merged at
    /// the root).
    pub fn router_path(mut self, path: impl Into<String>) -> Self {
        self.router_path = path.into();
        self
    }

    /// The algorithms DPoP proofs may be signed with (default [`DEFAULT_DPOP_ALGORITHMS`]: EdDSA, ES256,
    /// ES384, PS256, RS256); published as the metadata's `dpop_signing_alg_values_supported`.
    pub fn dpop_algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        self.dpop_algorithms = algorithms.into_iter().collect();
        self
    }

    /// How far a DPoP proof's `iat` may be from this service's clock, either way (default 60 s, whole
    /// seconds). Each proof's `jti` is remembered for this long so that it is accepted once.
    pub fn dpop_proof_window(mut self, window: Duration) -> Self {
        self.dpop_proof_window = window;
        self
    }

    /// Requires server-provided nonces in DPoP proofs (RFC 9449 §8), a new one every `period` (each is
    /// accepted for one to two periods). A proof without the current nonce is answered `400
    /// use_dpop_nonce`, and every token endpoint answer carries the nonce in `DPoP-Nonce`. Nonces derive
    /// from the refresh-token secret, so instances sharing it agree on them without talking. Off by
    /// default.
    pub fn dpop_nonces(mut self, period: Duration) -> Self {
        self.dpop_nonce_period = Some(period);
        self
    }

    /// How many credential checks (password-grant logins with the [`CredentialVerifier`], client
    /// secrets) run at once, and how many more may wait their turn (default: twice the CPUs, and 16
    /// times that waiting). A request beyond both is answered at once with `503 temporarily_unavailable`
    /// and `Retry-After: 1` instead of queueing without bound.
    pub fn credential_checks(mut self, concurrent: usize, queued: usize) -> Self {
        self.credential_checks = (concurrent, queued);
        self
    }

    /// How repeated failed logins are slowed down.
    pub fn login_throttle(mut self, policy: ThrottlePolicy) -> Self {
        self.throttle = policy;
        self
    }

    /// The largest request body accepted (default 16 KiB); larger ones get 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// How often the background work purges, and how many records per batch (default every 10 min,
    /// 500).
    pub fn purge(mut self, interval: Duration, batch: usize) -> Self {
        self.purge_interval = interval;
        self.purge_batch = batch.max(1);
        self
    }

    /// The largest clock leeway any verifier of these tokens allows (default [`DEFAULT_MAX_LEEWAY`], 5
    /// min): a verifier accepts a token until `exp` plus its leeway, so every denial is kept that much past
    /// the `exp` of what it denies. Set it at least as large as the largest `leeway` of your APIs.
    pub fn max_leeway(mut self, leeway: Duration) -> Self {
        self.max_leeway = leeway;
        self
    }

    /// How often the background work reads the store for revocations (and key changes) made by other
    /// instances, besides the store's own notifications (default 1 s, at least 10 ms): a revocation reaches
    /// every instance within it.
    pub fn revocation_sync_interval(mut self, interval: Duration) -> Self {
        self.sync_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// How long the denylist may go without reading the store before the service's `JwtAuthLayer` refuses
    /// every token with 503, since revocations made elsewhere meanwhile would be missed (default 2 min);
    /// `None` keeps it answering from what it has.
    pub fn revocations_stale_after(mut self, limit: Option<Duration>) -> Self {
        self.stale_after = limit;
        self
    }

    /// Accepts `token` as `Authorization: Bearer` on the denials feed (`GET /denials`), which API
    /// processes read with `tessera_server::RemoteDenylist`. At least [`MIN_FEED_TOKEN_LEN`] characters;
    /// several may be set, to change the token without downtime. Without any, the feed answers 404.
    pub fn denials_feed_token(mut self, token: impl Into<String>) -> Self {
        self.feed_tokens.push(token.into());
        self
    }

    /// Receives every [`AuthEvent`](crate::AuthEvent).
    pub fn event_hook(mut self, hook: impl AuthEventHook) -> Self {
        self.events = Some(Arc::new(hook));
        self
    }

    /// Adds claims to access tokens.
    pub fn claims_hook(mut self, hook: impl ClaimsHook) -> Self {
        self.claims = Some(Arc::new(hook));
        self
    }

    /// The clock (default: the system clock); tests inject a [`ManualClock`](tessera_core::ManualClock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Validates the settings, loads or generates keys, hashes the users' passwords and returns the
    /// service running on `store`, synchronously: keys and refresh secret come from [`Self::keys`] and
    /// [`Self::refresh_secret`], the key directory, or are generated in memory.
    ///
    /// Nothing runs in the background yet, and the denylist is not loaded: the service's `JwtAuthLayer`
    /// answers 503 until [`Issuer::load_denylist`] (or the first round of [`Issuer::spawn_purge_task`]) has
    /// read the revocations in the store. [`Self::start`] does all of it.
    ///
    /// # Errors
    /// A [`BuildError`] naming the setting to fix.
    pub fn build<S: RefreshStore>(self, store: S) -> Result<Issuer<S>, BuildError> {
        let (validated, sources) = self.validate()?;
        let keys = match sources.keys {
            KeySource::Fixed(keys) => *keys,
            KeySource::Dir(dir) => SigningKeys::load_or_generate(dir, sources.algorithm)?,
            KeySource::Store => {
                tracing::warn!(
                    "no key directory: signing keys live in memory and tokens die with the process"
                );
                SigningKeys::generate(sources.algorithm)?
            }
        };
        let secret = match sources.secret {
            SecretSource::Fixed(secret) => secret,
            SecretSource::File(path) => load_or_create_secret::<TOKEN_LEN>(&path)?,
            SecretSource::Store => random::bytes().map_err(KeyError::from)?,
        };
        Ok(Issuer::assemble(
            store,
            validated.settings(keys.into(), secret, None),
        ))
    }

    /// Starts the token service on `store`: validates the settings, loads the signing keys and the
    /// refresh-token secret, loads every revocation in force, and spawns the background work (revocations
    /// and keys kept in step with the store, expired records purged); the returned service is ready to
    /// answer. Call it inside the Tokio runtime that will serve it.
    ///
    /// Unless [`Self::keys`] or [`Self::key_dir`] say otherwise, keys and secret live in the store, so
    /// every instance on one database signs with the same keys: the first instance to start creates them
    /// (sealed with [`Self::key_encryption_secret`] if set), and [`Issuer::rotate_signing_key`] rotates them
    /// for all. [`Issuer::close`] stops the background work.
    ///
    /// # Errors
    /// A [`StartError`]: a setting to fix, keys that cannot be loaded (or unsealed), or a store that does
    /// not answer.
    pub async fn start<S: RefreshStore>(self, store: S) -> Result<Issuer<S>, StartError> {
        let (validated, sources) = self.validate()?;
        let store = Arc::new(store);
        let now = validated.clock.unix_seconds();
        let vault = KeyVault::new(
            Sealer::new(sources.key_encryption_secret.as_ref()),
            sources.algorithm,
            validated.denial_policy.deny_access_for,
        );
        let (keys, stored) = match sources.keys {
            KeySource::Fixed(keys) => (*keys, None),
            KeySource::Dir(dir) => (
                SigningKeys::load_or_generate(dir, sources.algorithm).map_err(BuildError::from)?,
                None,
            ),
            KeySource::Store => {
                let stored = vault.load_or_create(&*store, now).await?;
                let keys = stored
                    .at(now, vault.horizon())
                    .map_err(StoredKeyError::from)?
                    .ok_or(StoredKeyError::Store(StoreError::Corrupt(
                        "the store holds no signing key right after creating one".into(),
                    )))?;
                (keys, Some(stored))
            }
        };
        let secret = match sources.secret {
            SecretSource::Fixed(secret) => secret,
            SecretSource::File(path) => {
                load_or_create_secret::<TOKEN_LEN>(&path).map_err(BuildError::from)?
            }
            SecretSource::Store => vault.refresh_secret::<S, TOKEN_LEN>(&store).await?,
        };
        let live = LiveKeys::from(keys);
        let stored = stored.map(|stored| StoredVault {
            vault,
            stored,
            live: live.clone(),
        });
        let issuer = Issuer::assemble_shared(store, validated.settings(live, secret, stored));
        issuer
            .load_denylist()
            .await
            .map_err(StartError::Revocations)?;
        issuer.start_background();
        Ok(issuer)
    }

    /// Checks every setting and hashes the users' passwords; what is left to load is in [`Sources`].
    fn validate(self) -> Result<(Validated, Sources), BuildError> {
        let issuer = self.issuer.ok_or(BuildError::MissingIssuer)?;
        let endpoints = Endpoints::new(&issuer, self.public_url.as_deref(), &self.router_path)?;
        if let Some(symmetric) = self
            .dpop_algorithms
            .iter()
            .find(|algorithm| algorithm.is_symmetric())
        {
            return Err(BuildError::SymmetricDpopAlgorithm(*symmetric));
        }
        if self.dpop_algorithms.is_empty() {
            return Err(BuildError::NoDpopAlgorithms);
        }
        let dpop_window = positive(self.dpop_proof_window, "DPoP proof window")
            .map_err(|_| BuildError::ZeroDpopSetting("DPoP proof window"))?;
        let nonce_period = self
            .dpop_nonce_period
            .map(|period| {
                positive(period, "DPoP nonce period")
                    .map_err(|_| BuildError::ZeroDpopSetting("DPoP nonce period"))
            })
            .transpose()?;
        let audience = match self.audience.len() {
            0 => return Err(BuildError::MissingAudience),
            1 => Audience::One(self.audience[0].clone()),
            _ => Audience::Many(self.audience),
        };
        let access_ttl = positive(self.access_ttl, "access-token lifetime")?;
        let absolute_ttl = positive(self.refresh_ttl, "refresh absolute lifetime")?;
        let idle_ttl = positive(self.idle_ttl, "refresh idle lifetime")?;
        if self.idle_ttl > self.refresh_ttl {
            return Err(BuildError::IdleExceedsAbsolute {
                idle: self.idle_ttl,
                absolute: self.refresh_ttl,
            });
        }
        if self.grace > MAX_GRACE {
            return Err(BuildError::GraceOutOfRange(self.grace));
        }
        if self.family_cap == 0 {
            return Err(BuildError::ZeroFamilyCap);
        }
        if self.clients.is_empty() {
            return Err(BuildError::NoClients);
        }
        if self.credential_checks.0 == 0 {
            return Err(BuildError::ZeroCredentialChecks);
        }
        if self
            .feed_tokens
            .iter()
            .any(|token| token.len() < MIN_FEED_TOKEN_LEN)
        {
            return Err(BuildError::WeakFeedToken);
        }
        let mut clients = HashMap::new();
        for client in self.clients {
            let id = client.id().to_owned();
            if clients.insert(id.clone(), Arc::new(client)).is_some() {
                return Err(BuildError::DuplicateClient(id));
            }
        }
        let verifier: Arc<dyn CredentialVerifier> = match self.verifier {
            Some(_) if !self.users.is_empty() || self.user_table.is_some() => {
                return Err(BuildError::ConflictingCredentialSources);
            }
            Some(verifier) => verifier,
            None => {
                let mut table = match self.user_table {
                    Some(table) => table,
                    None => UserTable::with_hashing(self.hashing)?,
                };
                for (username, password, roles) in self.users {
                    table.add_user(username, &password, roles)?;
                }
                Arc::new(table)
            }
        };
        let keys = match (self.keys, &self.key_dir) {
            (Some(keys), _) => KeySource::Fixed(Box::new(keys)),
            (None, Some(dir)) => KeySource::Dir(dir.clone()),
            (None, None) => KeySource::Store,
        };
        let secret = match (self.refresh_secret, &self.key_dir) {
            (Some(secret), _) => SecretSource::Fixed(secret),
            (None, Some(dir)) => SecretSource::File(dir.join(REFRESH_SECRET_FILE)),
            (None, None) => SecretSource::Store,
        };
        let leeway = i64::try_from(self.max_leeway.as_secs()).unwrap_or(i64::MAX);
        let validated = Validated {
            issuer: issuer.clone(),
            audience,
            access_ttl,
            claims: self.claims,
            clients,
            assertion_audiences: vec![endpoints.token.clone(), issuer],
            dpop_algorithms: self.dpop_algorithms,
            dpop_window,
            nonce_period,
            endpoints,
            verifier,
            credential_checks: self.credential_checks,
            throttle: self.throttle,
            families: FamilyPolicy {
                absolute_ttl,
                idle_ttl,
                grace: i64::try_from(self.grace.as_secs()).unwrap_or(0),
                max_retries: self.grace_retries,
                cap: self.family_cap,
                deny_access_for: access_ttl.saturating_add(leeway),
            },
            denial_policy: DenialPolicy {
                deny_access_for: access_ttl.saturating_add(leeway),
                leeway,
            },
            maintenance: MaintenancePolicy {
                purge_interval: self.purge_interval,
                purge_batch: self.purge_batch,
                sync_interval: self.sync_interval,
            },
            stale_after: self.stale_after,
            feed_tokens: self.feed_tokens,
            events: self.events,
            clock: self.clock,
            max_body_bytes: self.max_body_bytes,
        };
        let sources = Sources {
            algorithm: self.algorithm,
            keys,
            secret,
            key_encryption_secret: self.key_encryption_secret,
        };
        Ok((validated, sources))
    }
}

/// Where the signing keys come from.
enum KeySource {
    Fixed(Box<SigningKeys>),
    Dir(PathBuf),
    /// The store with [`IssuerBuilder::start`]; memory with [`IssuerBuilder::build`].
    Store,
}

/// Where the refresh-token secret comes from.
enum SecretSource {
    Fixed([u8; TOKEN_LEN]),
    File(PathBuf),
    /// The store with [`IssuerBuilder::start`]; memory with [`IssuerBuilder::build`].
    Store,
}

/// What remains to be loaded once the settings are valid.
struct Sources {
    algorithm: Algorithm,
    keys: KeySource,
    secret: SecretSource,
    key_encryption_secret: Option<[u8; KEY_ENCRYPTION_SECRET_LEN]>,
}

/// Every setting, validated, before keys and secret are loaded.
struct Validated {
    issuer: String,
    audience: Audience,
    access_ttl: i64,
    claims: Option<Arc<dyn ClaimsHook>>,
    clients: HashMap<String, Arc<ClientRegistration>>,
    assertion_audiences: Vec<String>,
    dpop_algorithms: Vec<Algorithm>,
    dpop_window: i64,
    nonce_period: Option<i64>,
    endpoints: Endpoints,
    verifier: Arc<dyn CredentialVerifier>,
    credential_checks: (usize, usize),
    throttle: ThrottlePolicy,
    families: FamilyPolicy,
    denial_policy: DenialPolicy,
    maintenance: MaintenancePolicy,
    stale_after: Option<Duration>,
    feed_tokens: Vec<String>,
    events: Option<Arc<dyn AuthEventHook>>,
    clock: Arc<dyn Clock>,
    max_body_bytes: usize,
}

impl Validated {
    fn settings(
        self,
        keys: LiveKeys,
        master: [u8; TOKEN_LEN],
        stored_keys: Option<StoredVault>,
    ) -> Settings {
        Settings {
            minter: Minter::new(
                keys,
                self.issuer,
                self.audience,
                self.access_ttl,
                self.claims,
            ),
            clients: self.clients,
            assertion_audiences: self.assertion_audiences,
            dpop: DpopSettings {
                algorithms: self.dpop_algorithms,
                window: self.dpop_window,
                nonces: self.nonce_period.map(|period| Nonces::new(&master, period)),
            },
            endpoints: self.endpoints,
            verifier: self.verifier,
            credential_checks: self.credential_checks,
            throttle: self.throttle,
            secret: RefreshSecret::from_master(&master),
            families: self.families,
            denials: self.denial_policy,
            maintenance: self.maintenance,
            stale_after: self.stale_after,
            feed_tokens: self.feed_tokens,
            stored_keys,
            events: self.events,
            clock: self.clock,
            max_body_bytes: self.max_body_bytes,
        }
    }
}

/// The keys kept in the store, as loaded at start.
pub(crate) struct StoredVault {
    pub(crate) vault: KeyVault,
    pub(crate) stored: StoredKeys,
    pub(crate) live: LiveKeys,
}

/// Everything the builder validated and loaded, for [`Issuer`] to assemble its parts from.
pub(crate) struct Settings {
    pub(crate) minter: Minter,
    pub(crate) clients: HashMap<String, Arc<ClientRegistration>>,
    /// The audiences a client assertion may name: the token endpoint URL and the issuer.
    pub(crate) assertion_audiences: Vec<String>,
    /// The issuer identifier and the endpoints' public URLs.
    pub(crate) endpoints: Endpoints,
    pub(crate) dpop: DpopSettings,
    pub(crate) verifier: Arc<dyn CredentialVerifier>,
    /// How many credential checks run at once, and how many wait.
    pub(crate) credential_checks: (usize, usize),
    pub(crate) throttle: ThrottlePolicy,
    pub(crate) secret: RefreshSecret,
    pub(crate) families: FamilyPolicy,
    pub(crate) denials: DenialPolicy,
    pub(crate) maintenance: MaintenancePolicy,
    pub(crate) stale_after: Option<Duration>,
    pub(crate) feed_tokens: Vec<String>,
    pub(crate) stored_keys: Option<StoredVault>,
    pub(crate) events: Option<Arc<dyn AuthEventHook>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_body_bytes: usize,
}

fn positive(duration: Duration, what: &'static str) -> Result<i64, BuildError> {
    match i64::try_from(duration.as_secs()) {
        Ok(0) | Err(_) => Err(BuildError::ZeroLifetime(what)),
        Ok(seconds) => Ok(seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use crate::credentials::{VerifiedUser, VerifyFuture};

    struct Nobody;

    impl CredentialVerifier for Nobody {
        fn verify<'a>(&'a self, _: &'a str, _: &'a str) -> VerifyFuture<'a> {
            Box::pin(async { Ok(None::<VerifiedUser>) })
        }
    }

    fn valid() -> IssuerBuilder {
        Issuer::builder()
            .issuer("https://auth.test")
            .audience("api")
            .public_client("demo")
            .password_hashing(PasswordHashing::new(64, 1).unwrap())
    }

    fn error(builder: IssuerBuilder) -> String {
        builder.build(MemoryStore::new()).unwrap_err().to_string()
    }

    #[test]
    fn every_setting_is_validated_with_a_message_naming_it() {
        assert!(valid().build(MemoryStore::new()).is_ok());
        let cheap = || Issuer::builder().password_hashing(PasswordHashing::new(64, 1).unwrap());
        assert!(error(cheap().audience("api").public_client("d")).contains(".issuer("));
        assert!(error(cheap().issuer("https://i.test").public_client("d")).contains(".audience("));
        assert!(error(cheap().issuer("https://i.test").audience("a")).contains(".public_client("));
        assert!(error(valid().issuer("tessera-demo")).contains("absolute URL"));
        assert!(error(valid().issuer("http://auth.test")).contains("must use https"));
        assert!(error(valid().public_url("https://edge.test/?x")).contains("no query"));
        assert!(error(valid().router_path("auth")).contains("router path"));
        assert!(error(valid().dpop_algorithms([Algorithm::Hs256])).contains("asymmetric"));
        assert!(error(valid().dpop_algorithms([])).contains("at least one algorithm"));
        assert!(
            error(valid().dpop_nonces(Duration::from_millis(10))).contains("DPoP nonce period")
        );
        assert!(error(valid().dpop_proof_window(Duration::ZERO)).contains("DPoP proof window"));
        assert!(
            error(valid().access_ttl(Duration::from_millis(500))).contains("access-token lifetime")
        );
        assert!(error(valid().grace(Duration::from_secs(301))).contains("between 0 and 300 s"));
        assert!(valid().grace(MAX_GRACE).build(MemoryStore::new()).is_ok());
        let idle = valid()
            .idle_ttl(Duration::from_secs(100))
            .refresh_ttl(Duration::from_secs(99));
        assert!(error(idle).contains("exceeds the absolute lifetime"));
        assert!(error(valid().family_cap(0)).contains("at least 1"));
        assert!(error(valid().public_client("demo")).contains("registered twice"));
        let both = valid().user("a", "b", ["r"]).credential_verifier(Nobody);
        assert!(error(both).contains("use one"));
        assert!(
            valid()
                .credential_verifier(Nobody)
                .build(MemoryStore::new())
                .is_ok()
        );
    }

    #[test]
    fn the_grace_window_defaults_to_15_seconds_and_3_retries() {
        let builder = IssuerBuilder::default();
        assert_eq!(
            (builder.grace, builder.grace_retries),
            (Duration::from_secs(15), 3)
        );
    }

    #[test]
    fn several_audiences_make_an_array() {
        let issuer = valid()
            .audience("billing")
            .build(MemoryStore::new())
            .unwrap();
        assert_eq!(issuer.audiences().collect::<Vec<_>>(), ["api", "billing"]);
    }
}
