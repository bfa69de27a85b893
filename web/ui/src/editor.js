// CodeMirror editors: PromQL (Prometheus's own language support, completing metric names,
// labels and functions from this server's API) and SQL (completing tables and columns from
// information_schema). Enter runs the query; Shift+Enter inserts a new line.

import { Compartment, EditorState, Prec } from '@codemirror/state';
import { EditorView, keymap, placeholder as placeholderExt, highlightSpecialChars, drawSelection } from '@codemirror/view';
import { defaultKeymap, history, historyKeymap, insertNewline } from '@codemirror/commands';
import { autocompletion, closeBrackets, closeBracketsKeymap, completionKeymap, completionStatus, startCompletion } from '@codemirror/autocomplete';
import { bracketMatching, syntaxHighlighting, HighlightStyle, indentOnInput } from '@codemirror/language';
import { lintKeymap } from '@codemirror/lint';
import { tags } from '@lezer/highlight';
import { PromQLExtension } from '@prometheus-io/codemirror-promql';
import { sql, PostgreSQL } from '@codemirror/lang-sql';
import { prefix, sql as runSql } from './api.js';

const highlight = HighlightStyle.define([
  { tag: tags.keyword, color: 'var(--hl-keyword)' },
  { tag: tags.function(tags.variableName), color: 'var(--hl-function)' },
  { tag: tags.labelName, color: 'var(--hl-label)' },
  { tag: tags.string, color: 'var(--hl-string)' },
  { tag: tags.number, color: 'var(--hl-number)' },
  { tag: tags.operator, color: 'var(--hl-operator)' },
  { tag: tags.comment, color: 'var(--hl-comment)', fontStyle: 'italic' },
  { tag: tags.invalid, color: 'var(--hl-invalid)' },
]);

const theme = EditorView.theme({
  '&': { fontSize: '14px', border: '1px solid var(--border)', borderRadius: '4px', background: 'var(--input-bg)' },
  '&.cm-focused': { outline: '2px solid var(--accent)' },
  '.cm-content': { fontFamily: 'var(--mono)', padding: '6px 4px', caretColor: 'var(--fg)' },
  '.cm-tooltip': { background: 'var(--panel-bg)', color: 'var(--fg)', border: '1px solid var(--border)' },
  '.cm-tooltip-autocomplete ul li[aria-selected]': { background: 'var(--accent)', color: '#fff' },
  '.cm-completionDetail': { opacity: 0.7, marginLeft: '1em' },
});

function baseExtensions(onRun, onChange, placeholder) {
  return [
    highlightSpecialChars(),
    history(),
    drawSelection(),
    indentOnInput(),
    bracketMatching(),
    closeBrackets(),
    syntaxHighlighting(highlight),
    EditorView.lineWrapping,
    placeholderExt(placeholder),
    theme,
    Prec.highest(
      keymap.of([
        {
          key: 'Enter',
          run: (view) => {
            if (completionStatus(view.state) === 'active') return false;
            onRun(view.state.doc.toString());
            return true;
          },
        },
        {
          key: 'Mod-Enter',
          run: (view) => {
            onRun(view.state.doc.toString());
            return true;
          },
        },
        { key: 'Shift-Enter', run: insertNewline },
      ]),
    ),
    keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...historyKeymap, ...completionKeymap, ...lintKeymap]),
    EditorView.updateListener.of((u) => {
      if (u.docChanged) onChange(u.state.doc.toString());
    }),
  ];
}

let promql;

function promqlExtension() {
  if (!promql) {
    promql = new PromQLExtension().setComplete({
      remote: { url: window.location.origin + prefix, httpMethod: 'GET', cache: { maxAge: 60 * 1000 } },
      maxMetricsMetadata: 10000,
    });
  }
  return promql.asExtension();
}

/** A PromQL editor in `parent`. */
export function promqlEditor(parent, doc, onRun, onChange) {
  return new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [...baseExtensions(onRun, onChange, 'Expression (Enter or Ctrl+Enter runs it, Shift+Enter adds a line)'), promqlExtension(), autocompletion()],
    }),
  });
}

/** Tables and their columns from information_schema, for SQL completion. */
async function sqlSchema() {
  try {
    const result = await runSql(
      "SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY table_schema, table_name, ordinal_position",
      'json',
    );
    const schema = {};
    for (const [tableSchema, table, column] of result.data.rows) {
      const key = tableSchema === 'public' ? table : `${tableSchema}.${table}`;
      (schema[key] ||= []).push(column);
    }
    return schema;
  } catch (e) {
    console.warn('SQL completion: could not read information_schema', e);
    return {};
  }
}

/** A SQL editor in `parent`; table and column completion starts once the schema has
 * arrived (and pops up then if the user is already typing). */
export function sqlEditor(parent, doc, onRun, onChange) {
  const language = new Compartment();
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc,
      extensions: [
        ...baseExtensions(onRun, onChange, 'SQL statement (Enter or Ctrl+Enter runs it, Shift+Enter adds a line)'),
        language.of(sql({ dialect: PostgreSQL, upperCaseKeywords: true })),
        autocompletion(),
      ],
    }),
  });
  sqlSchema().then((schema) => {
    view.dispatch({ effects: language.reconfigure(sql({ dialect: PostgreSQL, schema, upperCaseKeywords: true })) });
    if (view.hasFocus) startCompletion(view);
  });
  return view;
}

