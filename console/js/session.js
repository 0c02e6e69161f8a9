// The access token lives in this tab's sessionStorage: never in a cookie (so no request is ever
// authenticated without the page asking, and no CSRF defence is needed), gone when the tab closes.

const TOKEN_KEY = "imageproc.accessToken";

export function savedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function saveToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}
