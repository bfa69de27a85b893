// TSDB status (head statistics, the top of each cardinality list, the blocks in the store)
// and the cardinality explorer (which metrics and labels hold the most series, with
// drill-down by selector and by label).

import { useEffect, useState } from 'preact/hooks';
import { formatBytes, formatUtc } from '../format.js';
import { Loaded, useApi } from '../components.jsx';
import { pageUrl } from '../api.js';

function TopTable({ title, rows, total, onPick, nameHeader = 'Name' }) {
  return (
    <div class="top-table">
      <h3>{title}</h3>
      <table class="status-table" data-list={title}>
        <thead>
          <tr>
            <th>{nameHeader}</th>
            <th class="num">Count</th>
            {total ? <th class="num">Share</th> : null}
          </tr>
        </thead>
        <tbody>
          {rows.length === 0 && (
            <tr>
              <td colSpan="3" class="muted">
                none
              </td>
            </tr>
          )}
          {rows.map((r) => (
            <tr>
              <td>
                {onPick ? (
                  <button type="button" class="link" onClick={() => onPick(r.name)}>
                    {r.name}
                  </button>
                ) : (
                  r.name
                )}
              </td>
              <td class="num">{r.value}</td>
              {total ? (
                <td class="num">
                  <span class="bar" style={{ width: `${Math.max(1, (100 * r.value) / total)}px` }} />
                  {((100 * r.value) / total).toFixed(1)}%
                </td>
              ) : null}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

const time = (ms) => (ms ? `${formatUtc(ms)} UTC` : '—');

export function TsdbPage() {
  const tsdb = useApi('status/tsdb');
  const blocks = useApi('status/blocks');
  return (
    <div class="page">
      <h2>TSDB status</h2>
      <Loaded state={tsdb}>
        {(data) => (
          <>
            <h3>Head</h3>
            <table class="status-table kv head-stats">
              <tbody>
                <tr>
                  <th>Series</th>
                  <td>{data.headStats.numSeries}</td>
                </tr>
                <tr>
                  <th>Chunks</th>
                  <td>{data.headStats.chunkCount}</td>
                </tr>
                <tr>
                  <th>Label pairs</th>
                  <td>{data.headStats.numLabelPairs}</td>
                </tr>
                <tr>
                  <th>Time range</th>
                  <td>
                    {time(data.headStats.minTime)} – {time(data.headStats.maxTime)}
                  </td>
                </tr>
              </tbody>
            </table>
            <div class="top-grid">
              <TopTable title="Series count by metric name" rows={data.seriesCountByMetricName} />
              <TopTable title="Label value count by label name" rows={data.labelValueCountByLabelName} />
              <TopTable title="Memory used by label name (bytes)" rows={data.memoryInBytesByLabelName} />
              <TopTable title="Series count by label value pair" rows={data.seriesCountByLabelValuePair} />
            </div>
            <p>
              <a href={pageUrl('/cardinality')}>Explore cardinality →</a>
            </p>
          </>
        )}
      </Loaded>
      <h3>Blocks</h3>
      <Loaded state={blocks}>
        {(data) =>
          data.blocks.length === 0 ? (
            <p class="muted">No blocks yet: every sample is still in the head.</p>
          ) : (
            <table class="status-table blocks">
              <thead>
                <tr>
                  <th>Block</th>
                  <th>From</th>
                  <th>To</th>
                  <th class="num">Series</th>
                  <th class="num">Samples</th>
                  <th class="num">Size</th>
                  <th class="num">Level</th>
                  <th>Resolution</th>
                </tr>
              </thead>
              <tbody>
                {data.blocks.map((b) => (
                  <tr>
                    <td class="mono">{b.id}</td>
                    <td>{time(b.minTime)}</td>
                    <td>{time(b.maxTime)}</td>
                    <td class="num">{b.numSeries}</td>
                    <td class="num">{b.numSamples}</td>
                    <td class="num">{formatBytes(b.bytes)}</td>
                    <td class="num">{b.level}</td>
                    <td>{b.resolution ? `${b.resolution / 60000}m` : 'raw'}</td>
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

function readParams() {
  const p = new URLSearchParams(window.location.search);
  return { match: p.get('match') ?? '', focusLabel: p.get('focusLabel') ?? '', limit: p.get('limit') ?? '20' };
}

export function CardinalityPage() {
  const [view, setView] = useState(readParams);
  const [input, setInput] = useState(view.match);
  useEffect(() => {
    const p = new URLSearchParams();
    if (view.match) p.set('match', view.match);
    if (view.focusLabel) p.set('focusLabel', view.focusLabel);
    if (view.limit !== '20') p.set('limit', view.limit);
    window.history.replaceState(null, '', `${window.location.pathname}${p.size ? `?${p}` : ''}`);
    setInput(view.match);
  }, [view]);
  const params = new URLSearchParams({ limit: view.limit });
  if (view.match) params.append('match[]', view.match);
  if (view.focusLabel) params.set('focusLabel', view.focusLabel);
  const state = useApi('status/cardinality', params.toString());
  const drill = (change) => setView((v) => ({ ...v, ...change }));
  return (
    <div class="page">
      <h2>Cardinality explorer</h2>
      <p class="muted">Series in the head (the most recent samples, where memory goes), by metric and by label.</p>
      <form
        class="controls"
        onSubmit={(e) => {
          e.preventDefault();
          drill({ match: input.trim() });
        }}
      >
        <input class="selector mono" size="50" placeholder='Series selector, e.g. {job="node"}' value={input} onInput={(e) => setInput(e.currentTarget.value)} />
        <input class="focus-label mono" size="16" placeholder="Focus label" value={view.focusLabel} onChange={(e) => drill({ focusLabel: e.currentTarget.value.trim() })} />
        <select value={view.limit} onChange={(e) => drill({ limit: e.currentTarget.value })}>
          {['10', '20', '50', '100', '500'].map((n) => (
            <option value={n}>top {n}</option>
          ))}
        </select>
        <button type="submit" class="primary">
          Show
        </button>
        {(view.match || view.focusLabel) && (
          <button type="button" class="secondary" onClick={() => setView({ match: '', focusLabel: '', limit: view.limit })}>
            Reset
          </button>
        )}
      </form>
      <Loaded state={state}>
        {(data) => (
          <>
            <p class="stats">
              <span class="total-series">{data.totalSeries}</span> series{view.match ? ` matching ${view.match}` : ''}, {data.totalLabelValuePairs} label pairs
            </p>
            <div class="top-grid">
              {view.focusLabel && (
                <TopTable
                  title={`Series by value of ${view.focusLabel}`}
                  nameHeader={view.focusLabel}
                  rows={data.seriesCountByFocusLabelValue || []}
                  total={data.totalSeries}
                  onPick={(value) => drill({ match: addMatcher(view.match, view.focusLabel, value), focusLabel: '' })}
                />
              )}
              <TopTable
                title="Series by metric name"
                nameHeader="Metric"
                rows={data.seriesCountByMetricName}
                total={data.totalSeries}
                onPick={(name) => drill({ match: addMatcher(view.match, '__name__', name) })}
              />
              <TopTable
                title="Series by label name"
                nameHeader="Label"
                rows={data.seriesCountByLabelName}
                total={data.totalSeries}
                onPick={(label) => drill({ focusLabel: label })}
              />
              <TopTable title="Distinct values by label name" nameHeader="Label" rows={data.labelValueCountByLabelName} onPick={(label) => drill({ focusLabel: label })} />
              <TopTable
                title="Series by label pair"
                nameHeader="Pair"
                rows={data.seriesCountByLabelValuePair}
                total={data.totalSeries}
                onPick={(pair) => {
                  const at = pair.indexOf('=');
                  drill({ match: addMatcher(view.match, pair.slice(0, at), pair.slice(at + 1)) });
                }}
              />
            </div>
          </>
        )}
      </Loaded>
    </div>
  );
}

/** Adds `name="value"` to the selector `match` (`{...}` form). */
export function addMatcher(match, name, value) {
  const matcher = `${name}=${JSON.stringify(value)}`;
  const m = match.trim();
  if (!m) return `{${matcher}}`;
  if (m.endsWith('}')) {
    const inner = m.slice(m.indexOf('{') + 1, -1).trim();
    return `${m.slice(0, m.indexOf('{') + 1)}${inner ? `${inner}, ` : ''}${matcher}}`;
  }
  return `${m}{${matcher}}`;
}
