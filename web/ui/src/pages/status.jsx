// Configuration, flags, and runtime and build information.

import { useState } from 'preact/hooks';
import { Filter, Loaded, matches, useApi } from '../components.jsx';

export function ConfigPage() {
  const state = useApi('status/config');
  const [copied, setCopied] = useState(false);
  return (
    <div class="page">
      <h2>Configuration</h2>
      <Loaded state={state}>
        {(data) => (
          <>
            <button
              type="button"
              class="secondary"
              onClick={() => navigator.clipboard?.writeText(data.yaml).then(() => setCopied(true), () => setCopied(false))}
            >
              {copied ? 'Copied' : 'Copy to clipboard'}
            </button>
            <pre class="config-yaml">{data.yaml}</pre>
          </>
        )}
      </Loaded>
    </div>
  );
}

export function FlagsPage() {
  const state = useApi('status/flags');
  const [filter, setFilter] = useState('');
  return (
    <div class="page">
      <h2>Command-line flags</h2>
      <Filter value={filter} onInput={setFilter} placeholder="Filter by flag name or value" />
      <Loaded state={state}>
        {(data) => (
          <KeyValueTable
            rows={Object.entries(data)
              .filter(([k, v]) => matches(filter, k, v))
              .sort(([a], [b]) => a.localeCompare(b))}
            className="flags"
          />
        )}
      </Loaded>
    </div>
  );
}

function KeyValueTable({ rows, className }) {
  return (
    <table class={`status-table kv ${className}`}>
      <tbody>
        {rows.map(([k, v]) => (
          <tr>
            <th>{k}</th>
            <td>{typeof v === 'object' ? JSON.stringify(v) : String(v)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function RuntimePage() {
  const runtime = useApi('status/runtimeinfo');
  const build = useApi('status/buildinfo');
  const alertmanagers = useApi('alertmanagers');
  return (
    <div class="page">
      <h2>Runtime information</h2>
      <Loaded state={runtime}>{(data) => <KeyValueTable rows={Object.entries(data)} className="runtime" />}</Loaded>
      <h2>Build information</h2>
      <Loaded state={build}>{(data) => <KeyValueTable rows={Object.entries(data)} className="build" />}</Loaded>
      <h2>Alertmanagers</h2>
      <Loaded state={alertmanagers}>
        {(data) =>
          data.activeAlertmanagers.length === 0 && data.droppedAlertmanagers.length === 0 ? (
            <p class="muted">None configured.</p>
          ) : (
            <table class="status-table">
              <tbody>
                {data.activeAlertmanagers.map((a) => (
                  <tr>
                    <td>{a.url}</td>
                    <td>active</td>
                  </tr>
                ))}
                {data.droppedAlertmanagers.map((a) => (
                  <tr>
                    <td>{a.url}</td>
                    <td>dropped</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )
        }
      </Loaded>
    </div>
  );
}
