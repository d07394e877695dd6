//! The SPA proxy in a real browser: Debian's Chromium, headless, driven through chromedriver.
//!
//! The API server (token service + `/api/me` behind `JwtAuthLayer`) and the proxy run in-process on
//! loopback ports; the access token lives 2 s and the API allows no leeway, so waiting 3 s is enough to make
//! the proxy refresh. This test fails (never skips) when chromium or chromedriver is missing.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use tessera_examples::app::RunningApp;

use crate::support::browser::{self, Browser};
use crate::support::{TestApi, logout_everywhere, spawn_proxy};

const ACCESS_TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spa_never_sees_a_token_and_survives_expiry_and_logout() -> anyhow::Result<()> {
    let api = TestApi::start(ACCESS_TTL).await?;
    // Zero skew: the proxy refreshes when the token is past its expiry, not a minute before.
    let proxy = spawn_proxy(&api.base_url, |_| {}).await?;
    let browser = Browser::launch().await?;
    let result = drive(&browser.client, &api, &proxy).await;
    browser.close().await?;
    result
}

async fn drive(page: &Client, api: &RunningApp, proxy: &str) -> anyhow::Result<()> {
    // Signed out at first: the page asks /session, gets 401, and shows the login form.
    page.goto(proxy).await?;
    wait_for(page, "the login form", LOGIN_SHOWN).await?;
    sign_in(page).await?;

    click(page, "load-profile").await?;
    wait_for(
        page,
        "the loaded profile",
        "document.getElementById('profile-sub').textContent === 'alice'",
    )
    .await?;
    assert_eq!(text(page, "profile-roles").await?, "admin");
    let screenshot = browser::target_path("spa-logged-in.png");
    std::fs::write(&screenshot, page.screenshot().await?)
        .with_context(|| format!("writing {}", screenshot.display()))?;

    // Past the access token's expiry the same click still works: the proxy refreshed, once.
    let refreshes_before = api.events.snapshot().refreshed;
    tokio::time::sleep(ACCESS_TTL + Duration::from_millis(1_200)).await;
    click(page, "load-profile").await?;
    wait_for(
        page,
        "a profile load the proxy refreshed for",
        "document.getElementById('activity').firstElementChild.textContent.includes('proxy refreshed')",
    )
    .await?;
    assert_eq!(
        api.events.snapshot().refreshed,
        refreshes_before + 1,
        "exactly one refresh"
    );
    assert_eq!(text(page, "profile-sub").await?, "alice");

    // No token is readable from scripts: no readable cookie, nothing in either storage, no JWT in the page.
    let exposed = page
        .execute(
            "return { cookie: document.cookie, local: localStorage.length, session: sessionStorage.length, \
             jwt: /eyJ[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\./.test(document.documentElement.outerHTML) };",
            vec![],
        )
        .await?;
    assert_eq!(
        exposed,
        json!({ "cookie": "", "local": 0, "session": 0, "jwt": false })
    );

    // Logging out revokes the token family server-side and shows the login form.
    let revoked_before = api.events.snapshot().revoked;
    click(page, "logout").await?;
    wait_for(page, "the login form after logout", LOGIN_SHOWN).await?;
    assert_eq!(
        api.events.snapshot().revoked,
        revoked_before + 1,
        "logout revoked the family"
    );

    // Loading again: the session is gone, the API answers 401 and the page shows the login form.
    page.goto(proxy).await?;
    wait_for(page, "the login form after reload", LOGIN_SHOWN).await?;
    let status = page
        .execute_async(
            "const done = arguments[0]; fetch('/api/me').then(r => done(r.status));",
            vec![],
        )
        .await?;
    assert_eq!(status, json!(401));

    // A session that ends elsewhere (alice signs out everywhere from another device): once the access token
    // expires the proxy's refresh is refused, its 401 reaches the page, and the page asks to sign in.
    sign_in(page).await?;
    logout_everywhere(api, "alice", "wonderland").await?;
    tokio::time::sleep(ACCESS_TTL + Duration::from_millis(1_200)).await;
    click(page, "load-profile").await?;
    wait_for(page, "the login form after the session ended", LOGIN_SHOWN).await?;
    assert_eq!(
        text(page, "login-message").await?,
        "Your session ended. Please sign in again."
    );
    Ok(())
}

const LOGIN_SHOWN: &str = "!document.getElementById('login').hidden";

async fn sign_in(page: &Client) -> anyhow::Result<()> {
    page.find(Locator::Id("username"))
        .await?
        .send_keys("alice")
        .await?;
    page.find(Locator::Id("password"))
        .await?
        .send_keys("wonderland")
        .await?;
    click(page, "login-button").await?;
    wait_for(
        page,
        "the profile panel",
        "!document.getElementById('profile').hidden",
    )
    .await?;
    assert_eq!(text(page, "account-user").await?, "alice");
    Ok(())
}

async fn click(page: &Client, id: &str) -> anyhow::Result<()> {
    Ok(page.find(Locator::Id(id)).await?.click().await?)
}

async fn text(page: &Client, id: &str) -> anyhow::Result<String> {
    Ok(page.find(Locator::Id(id)).await?.text().await?)
}

/// Polls the page until `condition` (a JavaScript expression) is true, for at most 10 s.
async fn wait_for(page: &Client, what: &str, condition: &str) -> anyhow::Result<()> {
    let script = format!("return Boolean({condition});");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if page.execute(&script, vec![]).await? == Value::Bool(true) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let activity = page.find(Locator::Id("activity")).await?.text().await?;
            bail!("timed out waiting for {what}; the page's activity log says:\n{activity}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
