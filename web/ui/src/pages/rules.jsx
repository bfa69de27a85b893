// Alerts (alerting rules by state, with their active alerts) and rules (groups, health,
// last evaluation, evaluation time, errors).

import { useState } from 'preact/hooks';
import { ago, formatDuration, formatSeconds } from '../format.js';
import { Filter, Health, Labels, Loaded, Section, matches, useApi } from '../components.jsx';
import { pageUrl } from '../api.js';

const STATES = ['firing', 'pending', 'inactive'];

function QueryLink({ expr }) {
  return (
    <a class="expr" href={pageUrl('/query', { 'g0.expr': expr, 'g0.tab': 'table' })}>
      {expr}
    </a>
  );
}

export function AlertsPage() {
  const state = useApi('rules', { type: 'alert' });
  const [shown, setShown] = useState({ firing: true, pending: true, inactive: true });
  const [filter, setFilter] = useState('');
  return (
    <div class="page">
      <h2>Alerts</h2>
      <Loaded state={state}>
        {(data) => {
          const rules = data.groups.flatMap((g) => g.rules.map((r) => ({ ...r, group: g.name, file: g.file })));
          const counts = Object.fromEntries(STATES.map((s) => [s, rules.filter((r) => r.state === s).length]));
          return (
            <>
              <div class="controls">
                {STATES.map((s) => (
                  <label class={`state-toggle state-${s}`}>
                    <input type="checkbox" checked={shown[s]} onChange={() => setShown({ ...shown, [s]: !shown[s] })} />
                    {s[0].toUpperCase() + s.slice(1)} ({counts[s]})
                  </label>
                ))}
                <Filter value={filter} onInput={setFilter} placeholder="Filter by rule name or labels" />
              </div>
              {rules.length === 0 && <p class="muted">No alerting rules.</p>}
              {rules
                .filter((r) => shown[r.state] && matches(filter, r.name, JSON.stringify(r.labels), JSON.stringify(r.alerts)))
                .map((r) => (
                  <Section
                    open={r.state !== 'inactive'}
                    title={r.name}
                    extra={
                      <span class={`alert-state state-${r.state}`} data-rule={r.name}>
                        {r.state.toUpperCase()} ({r.alerts?.length ?? 0})
                      </span>
                    }
                  >
                    <div class="rule-def">
                      <div>
                        <span class="key">group</span> {r.group} <span class="muted">({r.file})</span>
                      </div>
                      <div>
                        <span class="key">expr</span> <QueryLink expr={r.query} />
                      </div>
                      {r.duration > 0 && (
                        <div>
                          <span class="key">for</span> {formatDuration(r.duration * 1000)}
                        </div>
                      )}
                      {r.keepFiringFor > 0 && (
                        <div>
                          <span class="key">keep_firing_for</span> {formatDuration(r.keepFiringFor * 1000)}
                        </div>
                      )}
                      <div>
                        <span class="key">labels</span> <Labels labels={r.labels} />
                      </div>
                      <div>
                        <span class="key">annotations</span> <Labels labels={r.annotations} />
                      </div>
                    </div>
                    {r.alerts?.length > 0 && (
                      <table class="status-table alerts">
                        <thead>
                          <tr>
                            <th>Labels</th>
                            <th>State</th>
                            <th>Active since</th>
                            <th>Value</th>
                            <th>Annotations</th>
                          </tr>
                        </thead>
                        <tbody>
                          {r.alerts.map((a) => (
                            <tr class={`alert alert-${a.state}`}>
                              <td>
                                <Labels labels={a.labels} />
                              </td>
                              <td>
                                <span class={`alert-state state-${a.state}`}>{a.state.toUpperCase()}</span>
                              </td>
                              <td title={a.activeAt}>{ago(a.activeAt)}</td>
                              <td>{a.value}</td>
                              <td>
                                {Object.entries(a.annotations || {}).map(([k, v]) => (
                                  <div>
                                    <span class="key">{k}</span> {v}
                                  </div>
                                ))}
                              </td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    )}
                  </Section>
                ))}
            </>
          );
        }}
      </Loaded>
    </div>
  );
}

export function RulesPage() {
  const state = useApi('rules');
  const [filter, setFilter] = useState('');
  return (
    <div class="page">
      <h2>Rules</h2>
      <div class="controls">
        <Filter value={filter} onInput={setFilter} placeholder="Filter by rule name or expression" />
        <button type="button" class="secondary" onClick={state.reload}>
          Refresh
        </button>
      </div>
      <Loaded state={state}>
        {(data) =>
          data.groups.length === 0 ? (
            <p class="muted">No rule groups.</p>
          ) : (
            data.groups.map((g) => (
              <Section
                title={g.name}
                extra={
                  <span class="muted">
                    {g.file} · every {formatDuration(g.interval * 1000)} · last evaluation {ago(g.lastEvaluation)} took {formatSeconds(g.evaluationTime)}
                  </span>
                }
              >
                <table class="status-table rules" data-group={g.name}>
                  <thead>
                    <tr>
                      <th>Rule</th>
                      <th>Health</th>
                      <th>Last evaluation</th>
                      <th>Evaluation time</th>
                      <th>Error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {g.rules
                      .filter((r) => matches(filter, r.name, r.query))
                      .map((r) => (
                        <tr class={`rule rule-${r.health}`}>
                          <td>
                            <div>
                              <span class="key">{r.type === 'alerting' ? 'alert' : 'record'}</span> <strong>{r.name}</strong>
                            </div>
                            <div>
                              <span class="key">expr</span> <QueryLink expr={r.query} />
                            </div>
                            {r.labels && Object.keys(r.labels).length > 0 && (
                              <div>
                                <span class="key">labels</span> <Labels labels={r.labels} />
                              </div>
                            )}
                          </td>
                          <td>
                            <Health value={r.health} />
                          </td>
                          <td title={r.lastEvaluation}>{ago(r.lastEvaluation)}</td>
                          <td>{formatSeconds(r.evaluationTime)}</td>
                          <td class="last-error">{r.lastError}</td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </Section>
            ))
          )
        }
      </Loaded>
    </div>
  );
}
