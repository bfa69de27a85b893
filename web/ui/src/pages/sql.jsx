// The SQL page: a statement over the same data as PromQL, its rows, a graph when the rows
// are a time series, and downloads as CSV or Arrow.

import { useEffect, useRef, useState } from 'preact/hooks';
import { sql } from '../api.js';
import { sqlEditor } from '../editor.js';
import { Chart } from '../chart.jsx';
import { ErrorBox } from '../components.jsx';

const MAX_ROWS = 5000;
const NUMERIC = /^(Float|Int|UInt|Decimal)/;

export function SqlPage() {
  const initial = new URLSearchParams(window.location.search).get('q') ?? '';
  const host = useRef(null);
  const editor = useRef(null);
  const [statement, setStatement] = useState(initial);
  const [runs, setRuns] = useState(0);
  const [state, setState] = useState({});
  const run = (text) => {
    setStatement(text);
    setRuns((n) => n + 1);
    window.history.replaceState(null, '', `${window.location.pathname}?${new URLSearchParams({ q: text })}`);
  };
  const runRef = useRef(run);
  runRef.current = run;
  useEffect(() => {
    editor.current = sqlEditor(host.current, initial, (text) => runRef.current(text), () => {});
    return () => editor.current.destroy();
  }, []);
  useEffect(() => {
    if (!statement.trim()) return undefined;
    const abort = new AbortController();
    const began = performance.now();
    setState((s) => ({ ...s, loading: true }));
    sql(statement, 'json', abort.signal).then(
      (body) => setState({ data: body.data, took: performance.now() - began }),
      (error) => error.name !== 'AbortError' && setState({ error }),
    );
    return () => abort.abort();
  }, [statement, runs]);
  const download = async (format) => {
    try {
      const blob = await sql(statement, format);
      const a = document.createElement('a');
      a.href = URL.createObjectURL(blob);
      a.download = format === 'csv' ? 'quiver-result.csv' : 'quiver-result.arrow';
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (error) {
      setState((s) => ({ ...s, error }));
    }
  };
  return (
    <div class="page">
      <section class="panel">
        <div class="editor-row">
          <div class="editor" ref={host} />
          <button type="button" class="primary execute" onClick={() => run(editor.current.state.doc.toString())}>
            Run
          </button>
        </div>
        {state.error && <ErrorBox error={state.error} />}
        {state.data && !state.error && (
          <>
            <p class="stats">
              <span class="row-count">{state.data.rows.length}</span> rows in {Math.round(state.took)} ms
              <button type="button" class="secondary small" id="download-csv" onClick={() => download('csv')}>
                Download CSV
              </button>
              <button type="button" class="secondary small" id="download-arrow" onClick={() => download('arrow')}>
                Download Arrow
              </button>
            </p>
            <SqlGraph data={state.data} />
            <SqlTable data={state.data} />
          </>
        )}
        {state.loading && <p class="muted">Running…</p>}
      </section>
    </div>
  );
}

function SqlTable({ data }) {
  const rows = data.rows.slice(0, MAX_ROWS);
  return (
    <>
      {data.rows.length > MAX_ROWS && <p class="notice warning">Showing the first {MAX_ROWS} of {data.rows.length} rows.</p>}
      <div class="table-scroll">
        <table class="result sql-result">
          <thead>
            <tr>
              {data.columns.map((c) => (
                <th title={c.type}>
                  {c.name}
                  <span class="col-type">{c.type}</span>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr>
                {row.map((v) => (
                  <td class={typeof v === 'number' ? 'value' : ''}>{v === null ? <span class="muted">NULL</span> : typeof v === 'object' ? JSON.stringify(v) : String(v)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </>
  );
}

/** A graph when the result has a timestamp column and numeric columns: one line per numeric
 * column and combination of the text columns' values. */
function SqlGraph({ data }) {
  const time = data.columns.findIndex((c) => c.type.startsWith('Timestamp'));
  const numeric = data.columns.map((c, i) => (NUMERIC.test(c.type) ? i : -1)).filter((i) => i >= 0);
  if (time < 0 || numeric.length === 0 || data.rows.length === 0) return null;
  const keys = data.columns.map((c, i) => i).filter((i) => i !== time && !numeric.includes(i) && data.columns[i].type.includes('Utf8'));
  const bySeries = new Map();
  for (const row of data.rows) {
    const t = Date.parse(row[time]) / 1000;
    if (Number.isNaN(t)) continue;
    const key = keys.map((k) => `${data.columns[k].name}=${row[k]}`).join(', ');
    for (const n of numeric) {
      const label = key ? `${data.columns[n].name} {${key}}` : data.columns[n].name;
      if (!bySeries.has(label)) bySeries.set(label, []);
      const v = row[n];
      bySeries.get(label).push([t, v === null ? null : Number(v)]);
    }
  }
  const series = [...bySeries.entries()].slice(0, 200).map(([label, points]) => ({ label, points }));
  return <Chart series={series} stacked={false} height={300} />;
}
