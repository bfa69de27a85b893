// Targets by scrape pool (health, last scrape, its duration and error, labels before and
// after relabeling) and service discovery (discovered labels against target labels,
// dropped targets).

import { useState } from 'preact/hooks';
import { ago, formatSeconds } from '../format.js';
import { Filter, Health, Labels, Loaded, Section, matches, useApi } from '../components.jsx';

function byPool(targets) {
  const pools = new Map();
  for (const t of targets) {
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }
  return [...pools.entries()].sort(([a], [b]) => a.localeCompare(b));
}

const labelText = (labels) => Object.entries(labels || {}).map(([k, v]) => `${k}="${v}"`).join(' ');

export function TargetsPage() {
  const state = useApi('targets', { state: 'active' });
  const [filter, setFilter] = useState('');
  const [health, setHealth] = useState('all');
  return (
    <div class="page">
      <h2>Targets</h2>
      <div class="controls">
        <Filter value={filter} onInput={setFilter} placeholder="Filter by endpoint or labels" />
        <select class="health-filter" value={health} onChange={(e) => setHealth(e.currentTarget.value)}>
          <option value="all">All states</option>
          <option value="up">Up</option>
          <option value="down">Down</option>
          <option value="unknown">Unknown</option>
        </select>
        <button type="button" class="secondary" onClick={state.reload}>
          Refresh
        </button>
      </div>
      <Loaded state={state}>
        {(data) => {
          const pools = byPool(data.activeTargets);
          if (pools.length === 0) return <p class="muted">No targets.</p>;
          return pools.map(([pool, targets]) => {
            const up = targets.filter((t) => t.health === 'up').length;
            const shown = targets.filter((t) => (health === 'all' || t.health === health) && matches(filter, t.scrapeUrl, labelText(t.labels)));
            return (
              <Section
                title={pool}
                extra={
                  <span class={up === targets.length ? 'count ok' : 'count bad'}>
                    ({up}/{targets.length} up)
                  </span>
                }
              >
                <table class="status-table targets" data-pool={pool}>
                  <thead>
                    <tr>
                      <th>Endpoint</th>
                      <th>State</th>
                      <th>Labels</th>
                      <th>Last scrape</th>
                      <th>Duration</th>
                      <th>Error</th>
                    </tr>
                  </thead>
                  <tbody>
                    {shown.map((t) => (
                      <TargetRow target={t} />
                    ))}
                  </tbody>
                </table>
              </Section>
            );
          });
        }}
      </Loaded>
    </div>
  );
}

function TargetRow({ target: t }) {
  const [before, setBefore] = useState(false);
  return (
    <tr class={`target target-${t.health}`} data-url={t.scrapeUrl}>
      <td>
        <a href={t.scrapeUrl} rel="noreferrer" target="_blank">
          {t.scrapeUrl}
        </a>
      </td>
      <td>
        <Health value={t.health} />
      </td>
      <td>
        <Labels labels={before ? t.discoveredLabels : t.labels} />
        <button type="button" class="link small" onClick={() => setBefore(!before)}>
          {before ? 'after relabeling' : 'before relabeling'}
        </button>
      </td>
      <td title={t.lastScrape}>{ago(t.lastScrape)}</td>
      <td>{formatSeconds(t.lastScrapeDuration)}</td>
      <td class="last-error">{t.lastError}</td>
    </tr>
  );
}

export function ServiceDiscoveryPage() {
  const state = useApi('targets');
  const [filter, setFilter] = useState('');
  return (
    <div class="page">
      <h2>Service discovery</h2>
      <div class="controls">
        <Filter value={filter} onInput={setFilter} placeholder="Filter by labels" />
      </div>
      <Loaded state={state}>
        {(data) => {
          const all = [...data.activeTargets.map((t) => ({ ...t, dropped: false })), ...data.droppedTargets.map((t) => ({ ...t, dropped: true }))];
          const pools = byPool(
            all.map((t) => ({ ...t, scrapePool: t.scrapePool ?? t.discoveredLabels?.job ?? '(unknown pool)' })),
          );
          if (pools.length === 0) return <p class="muted">Nothing discovered.</p>;
          return pools.map(([pool, targets]) => {
            const active = targets.filter((t) => !t.dropped).length;
            const dropped = data.droppedTargetCounts?.[pool] ?? targets.length - active;
            return (
              <Section title={pool} extra={<span class="count">({active} active / {dropped} dropped)</span>}>
                <table class="status-table sd" data-pool={pool}>
                  <thead>
                    <tr>
                      <th>Discovered labels</th>
                      <th>Target labels</th>
                    </tr>
                  </thead>
                  <tbody>
                    {targets
                      .filter((t) => matches(filter, labelText(t.discoveredLabels), labelText(t.labels)))
                      .map((t) => (
                        <tr class={t.dropped ? 'dropped' : 'active'}>
                          <td>
                            <Labels labels={t.discoveredLabels} />
                          </td>
                          <td>{t.dropped ? <span class="health health-dropped">DROPPED</span> : <Labels labels={t.labels} />}</td>
                        </tr>
                      ))}
                  </tbody>
                </table>
              </Section>
            );
          });
        }}
      </Loaded>
    </div>
  );
}
