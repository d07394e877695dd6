// The SPA never sees a token: it holds only the proxy's HttpOnly session cookie (sent by the browser) and
// the session's CSRF token, kept in this closure and sent in a header on state-changing requests.
"use strict";

(() => {
  const CSRF_HEADER = "X-CSRF-Token";
  let csrfToken = null;

  const $ = (id) => document.getElementById(id);

  function log(text, ok) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
    item.className = ok ? "ok" : "bad";
    $("activity").prepend(item);
  }

  function showLogin(message) {
    csrfToken = null;
    $("account").hidden = true;
    $("profile").hidden = true;
    $("login").hidden = false;
    $("login-message").textContent = message || "";
    for (const id of ["profile-sub", "profile-scope", "profile-roles", "profile-exp"]) {
      $(id).textContent = "\u2013";
    }
    $("username").focus();
  }

  function showApp(session) {
    csrfToken = session.csrf_token;
    $("account-user").textContent = session.user;
    $("login").hidden = true;
    $("account").hidden = false;
    $("profile").hidden = false;
  }

  async function request(method, path, body) {
    const headers = { Accept: "application/json" };
    if (csrfToken) headers[CSRF_HEADER] = csrfToken;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    return fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return body.error_description || body.error || response.statusText;
    } catch {
      return response.statusText;
    }
  }

  async function resume() {
    const response = await request("GET", "/session");
    if (response.ok) {
      showApp(await response.json());
      log("GET /session \u2192 200 (signed in)", true);
    } else {
      showLogin("");
    }
  }

  async function login(event) {
    event.preventDefault();
    const response = await request("POST", "/session/login", {
      username: $("username").value,
      password: $("password").value,
    });
    $("password").value = "";
    if (response.ok) {
      showApp(await response.json());
      log("POST /session/login \u2192 200", true);
    } else {
      const reason = await errorText(response);
      log(`POST /session/login \u2192 ${response.status}`, false);
      showLogin(reason);
    }
  }

  async function loadProfile() {
    const response = await request("GET", "/api/me");
    if (response.status === 401) {
      log("GET /api/me \u2192 401 (session ended)", false);
      showLogin("Your session ended. Please sign in again.");
      return;
    }
    if (!response.ok) {
      log(`GET /api/me \u2192 ${response.status}: ${await errorText(response)}`, false);
      return;
    }
    const me = await response.json();
    const refreshed = response.headers.get("X-Tessera-Refreshed") === "true";
    $("profile-sub").textContent = me.sub;
    $("profile-scope").textContent = me.scope || "(none)";
    $("profile-roles").textContent = (me.roles || []).join(", ") || "(none)";
    $("profile-exp").textContent = new Date(me.exp * 1000).toLocaleTimeString();
    log(`GET /api/me \u2192 200${refreshed ? " (proxy refreshed the token)" : ""}`, true);
  }

  async function logout() {
    const response = await request("POST", "/session/logout");
    log(`POST /session/logout \u2192 ${response.status}`, response.ok);
    showLogin(response.ok ? "You are signed out." : await errorText(response));
  }

  $("login-form").addEventListener("submit", login);
  $("load-profile").addEventListener("click", loadProfile);
  $("logout").addEventListener("click", logout);
  resume();
})();
