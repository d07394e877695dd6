//! Several token-service instances on one PostgreSQL database, each its own `Issuer` with its own store
//! handle on its own listener, behave as one service: one successor per refresh token, revocations
//! everywhere within 2 s (and in a separate API process through the denials feed), one login throttle, one
//! replay cache, one key set.
#![cfg(feature = "postgres")]

mod instances;
mod postgres;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use instances::*;
use reqwest::Method;
use serde_json::json;
use tessera_core::jose::{Algorithm, JwsHeader, SigningKey};
use tessera_core::{Clock as _, SystemClock};
use tessera_issuer::store::{FamilyId, RefreshStore as _, RevokeReason};
use tessera_issuer::{
    CredentialVerifier, IssuerBuilder, JWT_BEARER_ASSERTION_TYPE, PostgresStore, ThrottlePolicy,
    VerifiedUser, VerifyFuture,
};
use tessera_server::{Claims, JwtAuthLayer, RemoteDenylist, RemoteJwks};

/// Three instances on one fresh schema, started one after the other (the first creates the keys).
async fn three(configure: impl Fn(IssuerBuilder) -> IssuerBuilder) -> Vec<Instance<PostgresStore>> {
    let schema = postgres::schema("three");
    let mut instances = Vec::new();
    for _ in 0..3 {
        let store = postgres::store_in(&schema).await;
        instances.push(serve(store, configure(builder())).await);
    }
    instances
}

/// `count` concurrent presentations of `token`, spread over the instances in turn.
#[cfg(test)]
async fn present_everywhere(
    instances: &[Instance<PostgresStore>],
    client: &Client,
    token: &str,
    count: usize,
) -> Vec<Answer> {
    futures_util::future::join_all((0..count).map(|index| {
        let client = client.clone();
        let url = instances[index % instances.len()].url.clone();
        async move { client.refresh(&url, token).await }
    }))
    .await
}

/// The id of alice's one live family.
#[cfg(test)]
async fn alices_family(store: &PostgresStore) -> FamilyId {
    store
        .live_families("alice", SystemClock.unix_seconds())
        .await
        .unwrap()[0]
        .id
        .clone()
}

/// Why the family `id` was revoked, if it was.
#[cfg(test)]
async fn revocation_reason(store: &PostgresStore, id: &FamilyId) -> Option<RevokeReason> {
    let family = store.find_family(id).await.unwrap().unwrap();
    family.revoked.map(|revocation| revocation.reason)
}

/// The refresh tokens the presentations answered 200 were given; every other answer must be
/// `invalid_grant` (never a 5xx).
#[cfg(test)]
fn successors_served(answers: &[Answer]) -> Vec<String> {
    let mut served = Vec::new();
    for answer in answers {
        match answer.status {
            200 => served.push(answer.field("refresh_token")),
            400 => assert_eq!(answer.field("error"), "invalid_grant", "{}", answer.body),
            status => panic!("a presentation was answered {status}: {}", answer.body),
        }
    }
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_presentations_of_one_token_across_three_instances_install_one_successor() {
    // Retries raised so the grace window serves every presentation (the same client and User-Agent):
    // whichever instance each one reaches, it gets the one successor.
    let instances = three(|builder| builder.grace_retries(64)).await;
    let client = Client::default();
    let login = client.login(&instances[0].url, "alice", "wonderland").await;
    let token = login.field("refresh_token");
    let answers = present_everywhere(&instances, &client, &token, 64).await;
    let mut successors = HashSet::new();
    for answer in &answers {
        assert_eq!(answer.status, 200, "{}", answer.body);
        successors.insert(answer.field("refresh_token"));
    }
    assert_eq!(
        successors.len(),
        1,
        "one successor, served to every presentation within grace"
    );
    let families = instances[1]
        .issuer
        .store()
        .live_families("alice", SystemClock.unix_seconds())
        .await
        .unwrap();
    assert_eq!(families.len(), 1);
    assert_eq!(families[0].generation, 1, "exactly one rotation happened");
    let successor = successors.into_iter().next().unwrap();
    assert_eq!(
        client.refresh(&instances[2].url, &successor).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn past_the_retry_budget_presentations_across_instances_are_reuse_and_never_fork() {
    // The default budget (3 retries per generation, counted in the database, so across instances): the
    // rotation and at most three retries get the one successor, the rest is reuse and ends the family.
    let instances = three(|builder| builder).await;
    let client = Client::default();
    let login = client.login(&instances[0].url, "alice", "wonderland").await;
    let token = login.field("refresh_token");
    let store = instances[0].issuer.store();
    let family = alices_family(store).await;
    let answers = present_everywhere(&instances, &client, &token, 64).await;
    let served = successors_served(&answers);
    let successors: HashSet<_> = served.iter().collect();
    let served = served.len();
    assert_eq!(successors.len(), 1, "one successor, never two");
    assert!(
        (1..=4).contains(&served),
        "the rotation and at most three retries are served, not {served}"
    );
    assert_eq!(
        revocation_reason(store, &family).await,
        Some(RevokeReason::ReuseDetected),
        "the fifth presentation of one generation is reuse"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_grace_concurrent_presentations_across_instances_end_the_family() {
    let instances = three(|builder| builder.grace(Duration::ZERO)).await;
    let client = Client::default();
    let login = client.login(&instances[0].url, "alice", "wonderland").await;
    let token = login.field("refresh_token");
    let store = instances[0].issuer.store();
    let family = alices_family(store).await;
    let answers = present_everywhere(&instances, &client, &token, 64).await;
    let successors: HashSet<_> = successors_served(&answers).into_iter().collect();
    assert!(successors.len() <= 1, "never two successors");
    assert_eq!(
        revocation_reason(store, &family).await,
        Some(RevokeReason::ReuseDetected),
        "the presentations that lost were replays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn logout_everywhere_reaches_every_instance_and_an_api_process() {
    let instances = three(|builder| builder).await;
    let client = Client::default();
    let login = client.login(&instances[1].url, "alice", "wonderland").await;
    let access = login.field("access_token");

    // A separate API process: the issuer's JWKS and its denials feed, polled every second.
    let poll = Duration::from_secs(1);
    let denylist = RemoteDenylist::builder(format!("{}/auth/denials", instances[0].url))
        .bearer_token(FEED_TOKEN)
        .poll_interval(poll)
        .spawn()
        .unwrap();
    denylist.refresh().await.unwrap();
    let api_auth = JwtAuthLayer::builder()
        .remote_jwks(
            RemoteJwks::new(format!("{}/.well-known/jwks.json", instances[0].url)).unwrap(),
        )
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .revocation(Arc::new(denylist.clone()))
        .build()
        .unwrap();
    let api = Router::new()
        .route(
            "/api/me",
            get(|Claims(claims): Claims| async move { claims.sub }),
        )
        .layer(api_auth);
    let (api_url, _api) = listen(api).await;

    let sessions = |instance: &Instance<PostgresStore>| format!("{}/auth/sessions", instance.url);
    for instance in &instances {
        assert_eq!(
            client
                .bearer(Method::GET, &sessions(instance), &access)
                .await
                .status,
            200
        );
    }
    let me = format!("{api_url}/api/me");
    assert_eq!(client.bearer(Method::GET, &me, &access).await.status, 200);

    let logout = client
        .bearer(
            Method::POST,
            &format!("{}/auth/logout-all", instances[0].url),
            &access,
        )
        .await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    assert_eq!(
        client
            .bearer(Method::GET, &sessions(&instances[0]), &access)
            .await
            .status,
        401,
        "refused at once where it was revoked"
    );
    let started = std::time::Instant::now();
    for instance in &instances[1..] {
        let url = sessions(instance);
        let refused = within(Duration::from_secs(2), || async {
            client.bearer(Method::GET, &url, &access).await.status == 401
        })
        .await;
        assert!(
            refused.is_some(),
            "{} still accepts the token after 2 s",
            instance.url
        );
    }
    let instances_took = started.elapsed();
    let api_refused = within(poll + Duration::from_millis(500), || async {
        client.bearer(Method::GET, &me, &access).await.status == 401
    })
    .await;
    assert!(
        api_refused.is_some(),
        "the API process still accepts the token one poll interval after the other instances refused it"
    );
    assert!(
        started.elapsed() <= Duration::from_secs(2) + poll,
        "instances refused in {instances_took:?}, the API process in {:?}",
        started.elapsed()
    );
}

/// A verifier that counts the passwords it checks and takes its time, like a real hash.
struct Counting(Calls);

impl CredentialVerifier for Counting {
    fn verify<'a>(&'a self, username: &'a str, password: &'a str) -> VerifyFuture<'a> {
        Box::pin(async move {
            self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Ok(
                (username == "alice" && password == "wonderland").then(|| VerifiedUser {
                    subject: "alice".into(),
                    roles: Vec::new(),
                }),
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_across_instances_is_throttled_as_one() {
    let calls = Calls::default();
    let schema = postgres::schema("flood");
    let mut instances = Vec::new();
    for _ in 0..3 {
        let store = postgres::store_in(&schema).await;
        let builder = IssuerBuilder::default()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .public_client("demo")
            // The first lockout outlasts the flood: with the default 1 s, a flood slower than a second
            // (a loaded machine) rightly gets a sixth attempt when the lockout ends, as sequential guesses
            // would.
            .login_throttle(ThrottlePolicy {
                base_delay: Duration::from_secs(600),
                ..ThrottlePolicy::default()
            })
            .credential_verifier(Counting(Arc::clone(&calls)));
        instances.push(serve(store, builder).await);
    }
    let client = Client::default();
    let answers = futures_util::future::join_all((0..20).map(|index| {
        let (client, url) = (client.clone(), instances[index % 3].url.clone());
        async move { client.login(&url, "alice", "guess").await }
    }))
    .await;
    let statuses: Vec<u16> = answers.iter().map(|answer| answer.status).collect();
    let checked = calls.load(Ordering::SeqCst);
    assert!(checked <= 5, "{checked} guesses were checked: {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|&&status| status == 400).count(),
        checked
    );
    assert_eq!(
        statuses.iter().filter(|&&status| status == 429).count(),
        20 - checked,
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_client_assertion_is_refused_by_another_instance() {
    let instances = three(|builder| builder).await;
    let now = SystemClock.unix_seconds();
    let assertion = client_key()
        .sign_jwt(
            JwsHeader::typed("JWT"),
            &json!({
                "iss": "jwt-svc", "sub": "jwt-svc", "aud": format!("{ISSUER}/auth/token"),
                "jti": "once", "iat": now, "exp": now + 60,
            }),
        )
        .unwrap();
    let form = format!(
        "grant_type=client_credentials&client_assertion_type={JWT_BEARER_ASSERTION_TYPE}&client_assertion={assertion}"
    );
    let client = Client::default();
    let first = client
        .post_form(&format!("{}/auth/token", instances[0].url), &form)
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    for instance in &instances[1..] {
        let replay = client
            .post_form(&format!("{}/auth/token", instance.url), &form)
            .await;
        assert_eq!(replay.status, 401, "{}", replay.body);
        assert_eq!(replay.field("error"), "invalid_client");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replayed_dpop_proof_is_refused_by_another_instance() {
    let instances = three(|builder| builder).await;
    let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let proof = key
        .sign_jwt(
            JwsHeader {
                typ: Some("dpop+jwt"),
                embed_jwk: true,
            },
            &json!({
                "jti": "once", "htm": "POST", "htu": format!("{ISSUER}/auth/token"),
                "iat": SystemClock.unix_seconds(),
            }),
        )
        .unwrap();
    let login = "grant_type=password&client_id=demo&username=alice&password=wonderland";
    let client = Client::default();
    let first = client
        .post_form_with(
            &format!("{}/auth/token", instances[0].url),
            login,
            &[("DPoP", &proof)],
        )
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.field("token_type"), "DPoP");
    for instance in &instances[1..] {
        let replay = client
            .post_form_with(
                &format!("{}/auth/token", instance.url),
                login,
                &[("DPoP", &proof)],
            )
            .await;
        assert_eq!(replay.status, 400, "{}", replay.body);
        assert_eq!(replay.field("error"), "invalid_dpop_proof");
        assert!(replay.body.contains("already used"), "{}", replay.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_started_together_on_an_empty_database_publish_one_key_set() {
    let schema = postgres::schema("keys");
    let (a, b, c) = tokio::join!(
        postgres::store_in(&schema),
        postgres::store_in(&schema),
        postgres::store_in(&schema)
    );
    let (a, b, c) = tokio::join!(
        serve(a, builder()),
        serve(b, builder()),
        serve(c, builder())
    );
    let client = Client::default();
    let jwks = |instance: &Instance<PostgresStore>| {
        let (client, url) = (
            client.clone(),
            format!("{}/.well-known/jwks.json", instance.url),
        );
        async move { client.get(&url).await.json() }
    };
    let published = [jwks(&a).await, jwks(&b).await, jwks(&c).await];
    assert_eq!(published[0]["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(published[0], published[1]);
    assert_eq!(published[0], published[2]);

    // A token minted by one verifies on the others.
    let access = client
        .login(&a.url, "alice", "wonderland")
        .await
        .field("access_token");
    for instance in [&b, &c] {
        let url = format!("{}/auth/sessions", instance.url);
        assert_eq!(client.bearer(Method::GET, &url, &access).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_rotation_reaches_every_instance() {
    let instances =
        three(|builder| builder.revocation_sync_interval(Duration::from_millis(100))).await;
    let client = Client::default();
    let before = client.login(&instances[0].url, "alice", "wonderland").await;
    let old_kid = instances[0].issuer.keys().signer().kid().to_owned();
    let rotated = instances[0]
        .issuer
        .rotate_signing_key(Duration::from_secs(2))
        .await
        .unwrap();
    // Published everywhere before it signs anywhere.
    for instance in &instances {
        let url = format!("{}/.well-known/jwks.json", instance.url);
        let published = within(Duration::from_secs(2), || async {
            client.get(&url).await.body.contains(&rotated.kid)
        })
        .await;
        assert!(
            published.is_some(),
            "{} does not publish the new key",
            instance.url
        );
        assert_eq!(
            instance.issuer.keys().signer().kid(),
            old_kid,
            "it does not sign yet"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    for instance in &instances {
        let switched = within(Duration::from_secs(1), || async {
            instance.issuer.keys().signer().kid() == rotated.kid
        })
        .await;
        assert!(
            switched.is_some(),
            "{} still signs with the old key",
            instance.url
        );
        let url = format!("{}/auth/sessions", instance.url);
        let old_token = before.field("access_token");
        assert_eq!(
            client.bearer(Method::GET, &url, &old_token).await.status,
            200,
            "tokens of the retiring key still verify"
        );
    }
    let statuses = instances[2].issuer.signing_keys();
    assert_eq!(statuses.len(), 2);
}
