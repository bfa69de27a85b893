// The query page: panels of PromQL with a table, a graph and the plan the query runs as.

import { useEffect, useRef, useState } from 'preact/hooks';
import { apiGet } from '../api.js';
import { promqlEditor } from '../editor.js';
import { Chart } from '../chart.jsx';
import { formatDuration, formatSeries, formatUtc, formatValue, parseDuration, parseUtc } from '../format.js';
import { decodePanels, effectiveStep, encodePanels, newPanel } from '../url.js';
import { ErrorBox, Notices } from '../components.jsx';

const MAX_ROWS = 10000;
const RANGE_STEPS = ['1m', '5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '1w', '2w', '4w'].map(parseDuration);

export function QueryPage() {
  const [panels, setPanels] = useState(() => {
    const fromUrl = decodePanels(window.location.search);
    return fromUrl.length ? fromUrl : [newPanel()];
  });
  useEffect(() => {
    const url = `${window.location.pathname}?${encodePanels(panels)}`;
    window.history.replaceState(null, '', url);
  }, [panels]);
  const update = (i, change) => setPanels((ps) => ps.map((p, j) => (j === i ? { ...p, ...change } : p)));
  return (
    <div class="page">
      {panels.map((p, i) => (
        <PanelView
          key={p.key ?? i}
          index={i}
          panel={p}
          onChange={(change) => update(i, change)}
          onRemove={panels.length > 1 ? () => setPanels((ps) => ps.filter((_, j) => j !== i)) : null}
        />
      ))}
      <button type="button" class="secondary" id="add-panel" onClick={() => setPanels((ps) => [...ps, { ...newPanel(), key: Date.now() }])}>
        Add query
      </button>
    </div>
  );
}

function PanelView({ index, panel, onChange, onRemove }) {
  const host = useRef(null);
  const editor = useRef(null);
  const [submitted, setSubmitted] = useState(panel.expr);
  const [runs, setRuns] = useState(0);
  const run = (expr) => {
    onChange({ expr });
    setSubmitted(expr);
    setRuns((n) => n + 1);
  };
  const runRef = useRef(run);
  runRef.current = run;
  useEffect(() => {
    editor.current = promqlEditor(host.current, panel.expr, (expr) => runRef.current(expr), () => {});
    return () => editor.current.destroy();
  }, []);
  const tabs = [
    ['table', 'Table'],
    ['graph', 'Graph'],
    ['explain', 'Explain'],
  ];
  return (
    <section class="panel" data-panel={index}>
      <div class="editor-row">
        <div class="editor" ref={host} />
        <button type="button" class="primary execute" onClick={() => run(editor.current.state.doc.toString())}>
          Execute
        </button>
        {onRemove && (
          <button type="button" class="secondary" title="Remove this query" onClick={onRemove}>
            ✕
          </button>
        )}
      </div>
      <div class="tabs" role="tablist">
        {tabs.map(([id, label]) => (
          <button type="button" role="tab" class={panel.tab === id ? 'tab active' : 'tab'} data-tab={id} onClick={() => onChange({ tab: id })}>
            {label}
          </button>
        ))}
      </div>
      {panel.tab === 'table' && <TableTab panel={panel} expr={submitted} runs={runs} onChange={onChange} />}
      {panel.tab === 'graph' && <GraphTab panel={panel} expr={submitted} runs={runs} onChange={onChange} />}
      {panel.tab === 'explain' && <ExplainTab panel={panel} expr={submitted} runs={runs} />}
    </section>
  );
}

/** Runs `fetcher(signal)` whenever `deps` change and `expr` is set; returns {loading, error, data, took}. */
function useQuery(expr, fetcher, deps) {
  const [state, setState] = useState({ loading: false });
  useEffect(() => {
    if (!expr.trim()) {
      setState({ loading: false });
      return undefined;
    }
    const abort = new AbortController();
    const began = performance.now();
    setState((s) => ({ ...s, loading: true }));
    fetcher(abort.signal).then(
      (data) => setState({ loading: false, data, took: performance.now() - began }),
      (error) => {
        if (error.name !== 'AbortError') setState({ loading: false, error });
      },
    );
    return () => abort.abort();
  }, deps);
  return state;
}

function TimeInput({ label, value, onChange, id }) {
  const [text, setText] = useState(value === null ? '' : formatUtc(value));
  useEffect(() => setText(value === null ? '' : formatUtc(value)), [value]);
  const commit = () => {
    const t = text.trim() === '' ? null : parseUtc(text);
    if (text.trim() === '' || t !== null) onChange(t);
  };
  return (
    <label class="control">
      {label}
      <input
        id={id}
        class="time-input"
        placeholder="now (UTC: YYYY-MM-DD HH:MM:SS)"
        value={text}
        onInput={(e) => setText(e.currentTarget.value)}
        onBlur={commit}
        onKeyDown={(e) => e.key === 'Enter' && commit()}
      />
    </label>
  );
}

function TableTab({ panel, expr, runs, onChange }) {
  const result = useQuery(
    expr,
    (signal) => {
      const params = { query: expr };
      if (panel.endTime !== null) params.time = panel.endTime / 1000;
      return apiGet('query', params, signal);
    },
    [expr, runs, panel.endTime],
  );
  return (
    <div class="tab-body">
      <div class="controls">
        <TimeInput label="Evaluation time" value={panel.endTime} onChange={(endTime) => onChange({ endTime })} />
      </div>
      <Outcome result={result}>{result.data && <ResultTable data={result.data.data} />}</Outcome>
    </div>
  );
}

function Outcome({ result, children, count }) {
  if (result.error) return <ErrorBox error={result.error} />;
  if (!result.data) return result.loading ? <p class="muted">Loading…</p> : <p class="muted">No query run yet.</p>;
  const data = result.data.data;
  const series = Array.isArray(data?.result) ? data.result.length : data?.result ? 1 : 0;
  return (
    <>
      <Notices warnings={result.data.warnings} infos={result.data.infos} />
      <p class="stats">
        Load time: {Math.round(result.took)} ms · Result series: <span class="series-count">{count ?? series}</span>
        {result.loading && ' · refreshing…'}
      </p>
      {children}
    </>
  );
}

function ResultTable({ data }) {
  const { resultType, result } = data;
  if (resultType === 'scalar' || resultType === 'string') {
    return (
      <table class="result">
        <tbody>
          <tr>
            <td>{resultType}</td>
            <td class="value">{formatValue(result[1])}</td>
          </tr>
        </tbody>
      </table>
    );
  }
  if (result.length === 0) return <p class="muted">Empty query result.</p>;
  const rows = result.slice(0, MAX_ROWS);
  return (
    <>
      {result.length > MAX_ROWS && <p class="notice warning">Showing the first {MAX_ROWS} of {result.length} series.</p>}
      <table class="result">
        <tbody>
          {rows.map((s) => (
            <tr>
              <td class="series">{formatSeries(s.metric)}</td>
              <td class="value">
                {resultType === 'vector'
                  ? formatValue(s.value[1])
                  : s.values.map(([t, v]) => (
                      <div>
                        {formatValue(v)} @{t}
                      </div>
                    ))}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

/** Whether graphs label time in UTC, kept across pages and visits. */
function useUtc() {
  const [utc, setUtc] = useState(() => localStorage.getItem('quiver-utc') === '1');
  useEffect(() => localStorage.setItem('quiver-utc', utc ? '1' : '0'), [utc]);
  return [utc, setUtc];
}

function GraphTab({ panel, expr, runs, onChange }) {
  const step = effectiveStep(panel);
  const [utc, setUtc] = useUtc();
  const [now, setNow] = useState(Date.now());
  useEffect(() => setNow(Date.now()), [runs, expr]);
  const end = panel.endTime ?? now;
  const result = useQuery(
    expr,
    (signal) => apiGet('query_range', { query: expr, start: (end - panel.range) / 1000, end: end / 1000, step: step / 1000 }, signal),
    [expr, runs, panel.range, panel.endTime, step, now],
  );
  const series = (result.data?.data?.result ?? []).map((s) => ({
    label: formatSeries(s.metric),
    points: s.values.map(([t, v]) => [t, Number.parseFloat(v)]),
  }));
  const shift = (dir) => {
    const i = RANGE_STEPS.findIndex((r) => r >= panel.range);
    const next = RANGE_STEPS[Math.min(RANGE_STEPS.length - 1, Math.max(0, (i < 0 ? RANGE_STEPS.length : i) + dir))];
    onChange({ range: next });
  };
  return (
    <div class="tab-body">
      <div class="controls">
        <span class="control">
          Range
          <button type="button" class="secondary small" onClick={() => shift(-1)}>
            −
          </button>
          <RangeInput value={panel.range} onChange={(range) => onChange({ range })} />
          <button type="button" class="secondary small" onClick={() => shift(1)}>
            +
          </button>
        </span>
        <TimeInput label="End" value={panel.endTime} onChange={(endTime) => onChange({ endTime })} />
        <label class="control">
          Resolution
          <select
            class="resolution"
            value={panel.resolution.type === 'auto' ? panel.resolution.density : 'custom'}
            onChange={(e) => {
              const v = e.currentTarget.value;
              onChange({ resolution: v === 'custom' ? { type: 'custom', step } : { type: 'auto', density: v } });
            }}
          >
            <option value="low">auto (low)</option>
            <option value="medium">auto (medium)</option>
            <option value="high">auto (high)</option>
            <option value="custom">step…</option>
          </select>
          {panel.resolution.type === 'custom' && <RangeInput value={panel.resolution.step} onChange={(s) => onChange({ resolution: { type: 'custom', step: s } })} />}
          <span class="muted">{formatDuration(step)}</span>
        </label>
        <label class="control">
          <input type="checkbox" class="utc" checked={utc} onChange={(e) => setUtc(e.currentTarget.checked)} />
          UTC
        </label>
        <label class="control">
          <select class="display-mode" value={panel.displayMode} onChange={(e) => onChange({ displayMode: e.currentTarget.value })}>
            <option value="lines">Unstacked</option>
            <option value="stacked">Stacked</option>
          </select>
        </label>
      </div>
      <Outcome result={result}>
        {result.data && (series.length ? <Chart series={series} stacked={panel.displayMode === 'stacked'} utc={utc} /> : <p class="muted">Empty query result.</p>)}
      </Outcome>
    </div>
  );
}

function RangeInput({ value, onChange }) {
  const [text, setText] = useState(formatDuration(value));
  useEffect(() => setText(formatDuration(value)), [value]);
  const commit = () => {
    const ms = parseDuration(text);
    if (ms) onChange(ms);
    else setText(formatDuration(value));
  };
  return (
    <input
      class="range-input"
      size="6"
      value={text}
      onInput={(e) => setText(e.currentTarget.value)}
      onBlur={commit}
      onKeyDown={(e) => e.key === 'Enter' && commit()}
    />
  );
}

function ExplainTab({ panel, expr, runs }) {
  // Analyzed as an instant query at the evaluation time, or over the graph's range and step.
  const [over, setOver] = useState('instant');
  const step = effectiveStep(panel);
  const result = useQuery(
    expr,
    (signal) => {
      const params = { query: expr, analyze: 'true' };
      const end = panel.endTime ?? Date.now();
      if (over === 'range') {
        Object.assign(params, { start: (end - panel.range) / 1000, end: end / 1000, step: step / 1000 });
      } else if (panel.endTime !== null) {
        params.time = panel.endTime / 1000;
      }
      return apiGet('explain', params, signal);
    },
    [expr, runs, panel.endTime, over, panel.range, step],
  );
  const choice = (
    <div class="controls">
      <label class="control">
        Analyze as
        <select class="analyze-over" value={over} onChange={(e) => setOver(e.currentTarget.value)}>
          <option value="instant">an instant query</option>
          <option value="range">
            the graph's range ({formatDuration(panel.range)} at {formatDuration(step)})
          </option>
        </select>
      </label>
    </div>
  );
  if (result.error)
    return (
      <div class="tab-body explain">
        {choice}
        <ErrorBox error={result.error} />
      </div>
    );
  if (!result.data) return <p class="muted">{result.loading ? 'Loading…' : 'No query run yet.'}</p>;
  const d = result.data.data;
  return (
    <div class="tab-body explain">
      {choice}
      <h3>DataFusion plan (as an instant query, optimized)</h3>
      <pre class="plan">{d.plan}</pre>
      <h3>Equivalent SQL (at the evaluation time)</h3>
      {d.sql ? <pre class="sql">{d.sql}</pre> : <p class="muted">{d.sqlUnavailable || 'None.'}</p>}
      <h3>Analyze ({over === 'range' ? 'over the graph\'s range' : 'an instant query'}): time spent, and the physical plan with each operator's rows and time</h3>
      <pre class="analyze">{d.analyzed}</pre>
    </div>
  );
}
