// Small pieces the pages share.

import { useEffect, useState } from 'preact/hooks';
import { apiGet } from './api.js';

export function ErrorBox({ error }) {
  return (
    <div class="notice error" role="alert">
      <strong>Error{error.type && error.type !== 'http' ? ` (${error.type})` : ''}:</strong> {error.message}
    </div>
  );
}

export function Notices({ warnings, infos }) {
  return (
    <>
      {(warnings || []).map((w) => (
        <div class="notice warning">Warning: {w}</div>
      ))}
      {(infos || []).map((i) => (
        <div class="notice info">Info: {i}</div>
      ))}
    </>
  );
}

/** GETs `/api/v1/<path>`; `{data, error, loading, reload}`. */
export function useApi(path, params) {
  const key = JSON.stringify(params ?? {});
  const [tick, setTick] = useState(0);
  const [state, setState] = useState({ loading: true });
  useEffect(() => {
    const abort = new AbortController();
    setState((s) => ({ ...s, loading: true }));
    apiGet(path, params, abort.signal).then(
      (body) => setState({ loading: false, data: body.data }),
      (error) => error.name !== 'AbortError' && setState({ loading: false, error }),
    );
    return () => abort.abort();
  }, [path, key, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

/** Renders `children(data)` once `state` has data; errors and loading otherwise. */
export function Loaded({ state, children }) {
  if (state.error) return <ErrorBox error={state.error} />;
  if (!state.data) return <p class="muted">Loading…</p>;
  return children(state.data);
}

export function Labels({ labels }) {
  const entries = Object.entries(labels || {});
  if (entries.length === 0) return <span class="muted">none</span>;
  return (
    <span class="labels">
      {entries.map(([k, v]) => (
        <span class="label-badge">
          {k}="{v}"
        </span>
      ))}
    </span>
  );
}

export function Health({ value }) {
  const v = String(value || 'unknown').toLowerCase();
  return <span class={`health health-${v}`}>{v.toUpperCase()}</span>;
}

export function Filter({ value, onInput, placeholder }) {
  return <input class="filter" type="search" placeholder={placeholder} value={value} onInput={(e) => onInput(e.currentTarget.value)} />;
}

/** Whether any of `texts` contains `filter` (case-insensitive). */
export function matches(filter, ...texts) {
  const f = filter.trim().toLowerCase();
  return !f || texts.some((t) => String(t).toLowerCase().includes(f));
}

export function Section({ title, children, open = true, extra }) {
  return (
    <details class="section" open={open}>
      <summary>
        <span class="section-title">{title}</span> {extra}
      </summary>
      <div class="section-body">{children}</div>
    </details>
  );
}
