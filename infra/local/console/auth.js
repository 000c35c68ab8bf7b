// Signing in: the hosted UI (config.json's `auth`: Cognito's in AWS, the local stack's stand-in
// under /local, same paths), by the authorization code flow with PKCE (RFC 7636, S256): a
// public client, no secret in the page. The result is an ID token whose claims name the user
// (`sub`), their organisation (`custom:org`) and role (`cognito:groups`), sent to the API as
// `Authorization: Bearer` and to the live connection as its credential. It is refreshed with the
// refresh token five minutes before it expires; if that fails the person signs in again.
// Tokens live in sessionStorage (this tab only), never in localStorage or a cookie.

const enc = new TextEncoder();

export function base64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

/** The S256 code challenge of a PKCE code verifier (RFC 7636 §4.2). */
export async function codeChallenge(verifier) {
  return base64url(new Uint8Array(await crypto.subtle.digest('SHA-256', enc.encode(verifier))));
}

/** The claims of a JWT, read without verifying it: the API and the broker verify it. */
export function claims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(part), (c) => c.charCodeAt(0))));
  } catch (_) {
    return {};
  }
}

const KEY = 'anpr-session';
const REFRESH_EARLY_MS = 5 * 60 * 1000;

export class Session {
  constructor(cfg) {
    this.cfg = cfg;
    this.token = null;
    this.refreshToken = null;
    this.timer = null;
    this.onToken = () => {};
  }

  get claims() { return claims(this.token || ''); }

  get user() { return this.claims.sub; }

  get org() { return this.claims['custom:org']; }

  /** Signs in (possibly leaving the page for the hosted UI); resolves once there is a token. */
  async signIn() {
    await this.signInHosted();
    this.schedule();
  }

  // ---- Cognito hosted UI
  redirectUri() { return `${location.origin}${location.pathname}`; }

  async signInHosted() {
    const a = this.cfg.auth;
    const params = new URLSearchParams(location.search);
    if (params.get('code')) {
      const expected = sessionStorage.getItem('anpr-pkce-state');
      const verifier = sessionStorage.getItem('anpr-pkce-verifier');
      sessionStorage.removeItem('anpr-pkce-state');
      sessionStorage.removeItem('anpr-pkce-verifier');
      history.replaceState(null, '', this.redirectUri());
      if (!expected || params.get('state') !== expected || !verifier) {
        throw new Error('sign-in answer does not match the request made (state): sign in again');
      }
      await this.tokenRequest({
        grant_type: 'authorization_code', client_id: a.client_id, code: params.get('code'),
        redirect_uri: this.redirectUri(), code_verifier: verifier,
      });
      return;
    }
    const saved = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (saved && saved.refresh_token) {
      this.refreshToken = saved.refresh_token;
      const exp = (claims(saved.id_token).exp || 0) * 1000;
      if (exp - Date.now() > REFRESH_EARLY_MS) {
        this.setToken(saved.id_token);
        return;
      }
      try {
        await this.refreshHosted();
        return;
      } catch (_) { /* sign in again below */ }
    }
    const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
    const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
    sessionStorage.setItem('anpr-pkce-verifier', verifier);
    sessionStorage.setItem('anpr-pkce-state', state);
    const q = new URLSearchParams({
      response_type: 'code', client_id: a.client_id, redirect_uri: this.redirectUri(),
      scope: 'openid email', state, code_challenge_method: 'S256',
      code_challenge: await codeChallenge(verifier),
    });
    location.assign(`${a.domain_url}/oauth2/authorize?${q}`);
    await new Promise(() => {}); // the page is leaving
  }

  async refreshHosted() {
    await this.tokenRequest({
      grant_type: 'refresh_token', client_id: this.cfg.auth.client_id,
      refresh_token: this.refreshToken,
    });
  }

  async tokenRequest(form) {
    const resp = await fetch(`${this.cfg.auth.domain_url}/oauth2/token`, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form),
    });
    if (!resp.ok) throw new Error(`sign-in: HTTP ${resp.status}`);
    const t = await resp.json();
    if (t.refresh_token) this.refreshToken = t.refresh_token;
    sessionStorage.setItem(KEY, JSON.stringify({ id_token: t.id_token, refresh_token: this.refreshToken }));
    this.setToken(t.id_token);
  }

  /** Forgets the tokens and leaves for the hosted UI's sign-out, which comes back here. */
  signOut() {
    const a = this.cfg.auth;
    sessionStorage.removeItem(KEY);
    location.assign(`${a.domain_url}/logout?${new URLSearchParams({ client_id: a.client_id, logout_uri: this.redirectUri() })}`);
  }

  // ---- both
  setToken(token) {
    this.token = token;
    this.onToken(token);
  }

  /** Refreshes the token five minutes before it expires (at once if it already has). */
  schedule() {
    clearTimeout(this.timer);
    const exp = (this.claims.exp || 0) * 1000;
    const wait = Math.max(0, exp - Date.now() - REFRESH_EARLY_MS);
    this.timer = setTimeout(async () => {
      try {
        await this.refreshHosted();
        this.schedule();
      } catch (e) {
        console.warn('token refresh failed; signing in again', e);
        sessionStorage.removeItem(KEY);
        location.reload();
      }
    }, wait);
  }
}
