// OIDC login, when the service names an issuer and a public client (OIDC_ISSUER, OIDC_CLIENT_ID):
// the authorization code flow with PKCE, the redirect URI being this page (<origin>/gallery).
// The protocol is oauth4webapi's (vendored, loaded only then): discovery, the S256 challenge,
// checking the response's state and issuer, the code exchange. What is kept here: the login in
// progress (state, code verifier, the gallery's address) and then the access token, in
// sessionStorage: this tab only, gone when it closes.

const PENDING = "gallery.login.pending";
const TOKEN = "gallery.login.token";
const REDIRECT_URI = `${location.origin}/gallery`;

export class LoginError extends Error {}

function config() {
  try {
    return JSON.parse(document.getElementById("gallery-config").textContent).login ?? null;
  } catch {
    return null;
  }
}

export const login = config();

async function library() {
  return import(login.library);
}

// A plain-http issuer only on this machine (a test's or a developer's): anywhere else the
// library's refusal of http stands.
function options(oauth) {
  const issuer = new URL(login.issuer);
  const loopback = ["127.0.0.1", "localhost", "[::1]"].includes(issuer.hostname);
  return issuer.protocol === "http:" && loopback ? { [oauth.allowInsecureRequests]: true } : {};
}

async function discover(oauth) {
  const issuer = new URL(login.issuer);
  const response = await oauth.discoveryRequest(issuer, options(oauth));
  return oauth.processDiscoveryResponse(issuer, response);
}

// Off to the issuer; the gallery's address (filter, view, sort) comes back afterwards.
export async function startLogin() {
  const oauth = await library();
  const server = await discover(oauth);
  const verifier = oauth.generateRandomCodeVerifier();
  const state = oauth.generateRandomState();
  const url = new URL(server.authorization_endpoint);
  url.search = new URLSearchParams({
    client_id: login.clientId,
    redirect_uri: REDIRECT_URI,
    response_type: "code",
    scope: login.scopes,
    state,
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: "S256",
  }).toString();
  sessionStorage.setItem(PENDING, JSON.stringify({ state, verifier, search: location.search }));
  location.assign(url.href);
}

// On the way back (?code&state, or ?error&state): the token, and the address to show again.
// Whatever the outcome the query leaves the address bar, so a reload never replays it.
async function finishLogin(returned) {
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", `${location.pathname}${pending?.search ?? ""}`);
  if (!pending) throw new LoginError("Login refused: this tab started no login.");
  const oauth = await library();
  const server = await discover(oauth);
  const client = { client_id: login.clientId };
  let parameters;
  try {
    parameters = oauth.validateAuthResponse(server, client, returned, pending.state);
  } catch (error) {
    const said = error.cause instanceof URLSearchParams ? error.cause.get("error_description") || error.cause.get("error") : null;
    throw new LoginError(`Login refused: ${said || error.message}.`);
  }
  const response = await oauth.authorizationCodeGrantRequest(
    server,
    client,
    oauth.None(),
    parameters,
    REDIRECT_URI,
    pending.verifier,
    options(oauth),
  );
  let result;
  try {
    result = await oauth.processAuthorizationCodeResponse(server, client, response);
  } catch (error) {
    throw new LoginError(`Login refused by the token endpoint: ${error.message}.`);
  }
  return result.access_token;
}

// At start-up: finish a login coming back, else the token this tab already has (or none).
export async function currentToken() {
  if (!login) return null;
  const returned = new URLSearchParams(location.search);
  if (returned.has("state") && (returned.has("code") || returned.has("error"))) {
    const token = await finishLogin(returned);
    sessionStorage.setItem(TOKEN, token);
    return token;
  }
  return sessionStorage.getItem(TOKEN);
}

export function logOut() {
  sessionStorage.removeItem(TOKEN);
}

// Who the token says it is, to show: read from its payload, not verified (the service verifies
// it on every request). An opaque token shows as "Logged in".
export function userOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
    return claims.preferred_username || claims.name || claims.email || claims.sub || "Logged in";
  } catch {
    return "Logged in";
  }
}
