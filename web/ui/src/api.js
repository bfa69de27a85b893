// The UI's one HTTP client: every request goes to Quiver's public API under the path prefix
// of --web.external-url, which the server writes into the page.

export const prefix = (() => {
  const meta = document.querySelector('meta[name="quiver-path-prefix"]');
  const value = meta ? meta.getAttribute('content') : '';
  return value && !value.startsWith('__') ? value.replace(/\/+$/, '') : '';
})();

export function pageUrl(path, params) {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  return `${prefix}${path}${query}`;
}

/** An API failure: the envelope's `error` (and `errorType`) or the HTTP status. */
export class ApiError extends Error {
  constructor(message, type, status) {
    super(message);
    this.type = type;
    this.status = status;
  }
}

async function envelope(response) {
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ApiError(text.trim() || `HTTP ${response.status}`, 'http', response.status);
  }
  if (body.status !== 'success') {
    throw new ApiError(body.error || `HTTP ${response.status}`, body.errorType, response.status);
  }
  return body;
}

/** GET `/api/v1/<path>` with `params` (an object or URLSearchParams); the whole envelope. */
export async function apiGet(path, params, signal) {
  const query = params ? `?${new URLSearchParams(params)}` : '';
  const response = await fetch(`${prefix}/api/v1/${path}${query}`, { signal });
  return envelope(response);
}

/** POST a form to `/api/v1/<path>`; the whole envelope. */
export async function apiPost(path, params, signal) {
  const response = await fetch(`${prefix}/api/v1/${path}`, {
    method: 'POST',
    body: new URLSearchParams(params),
    signal,
  });
  return envelope(response);
}

/** Runs SQL: JSON rows, or raw bytes for downloads (`format` csv or arrow). */
export async function sql(statement, format, signal) {
  const response = await fetch(`${prefix}/api/v1/sql`, {
    method: 'POST',
    body: new URLSearchParams({ query: statement, format }),
    signal,
  });
  if (format === 'json') return envelope(response);
  if (!response.ok) await envelope(response);
  return response.blob();
}
