// Quiver's web UI: a page per path, a navigation bar, light and dark themes.

import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { prefix } from './api.js';
import { QueryPage } from './pages/query.jsx';
import { SqlPage } from './pages/sql.jsx';
import { ServiceDiscoveryPage, TargetsPage } from './pages/targets.jsx';
import { AlertsPage, RulesPage } from './pages/rules.jsx';
import { ConfigPage, FlagsPage, RuntimePage } from './pages/status.jsx';
import { CardinalityPage, TsdbPage } from './pages/tsdb.jsx';
import './style.css';

const PAGES = {
  '/query': ['Query', QueryPage],
  '/sql': ['SQL', SqlPage],
  '/alerts': ['Alerts', AlertsPage],
  '/targets': ['Targets', TargetsPage],
  '/service-discovery': ['Service discovery', ServiceDiscoveryPage],
  '/rules': ['Rules', RulesPage],
  '/tsdb-status': ['TSDB status', TsdbPage],
  '/cardinality': ['Cardinality', CardinalityPage],
  '/config': ['Configuration', ConfigPage],
  '/flags': ['Flags', FlagsPage],
  '/status': ['Runtime & build', RuntimePage],
};
const MAIN = ['/query', '/sql', '/alerts', '/targets', '/rules'];
const STATUS = ['/service-discovery', '/tsdb-status', '/cardinality', '/config', '/flags', '/status'];

function currentPath() {
  const path = window.location.pathname.slice(prefix.length) || '/';
  return PAGES[path] ? path : '/query';
}

function useTheme() {
  const [theme, setTheme] = useState(() => localStorage.getItem('quiver-theme') || 'auto');
  useEffect(() => {
    const dark = theme === 'dark' || (theme === 'auto' && window.matchMedia('(prefers-color-scheme: dark)').matches);
    document.documentElement.dataset.theme = dark ? 'dark' : 'light';
    localStorage.setItem('quiver-theme', theme);
  }, [theme]);
  return [theme, setTheme];
}

function App() {
  const [path, setPath] = useState(currentPath);
  const [theme, setTheme] = useTheme();
  useEffect(() => {
    const onPop = () => setPath(currentPath());
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);
  useEffect(() => {
    document.title = `${PAGES[path][0]} · Quiver`;
  }, [path]);
  const go = (e, to) => {
    if (e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
    e.preventDefault();
    window.history.pushState(null, '', prefix + to);
    setPath(to);
  };
  const link = (to) => (
    <a href={prefix + to} class={path === to ? 'nav-link active' : 'nav-link'} onClick={(e) => go(e, to)}>
      {PAGES[to][0]}
    </a>
  );
  const Page = PAGES[path][1];
  return (
    <>
      <header class="navbar">
        <a class="brand" href={`${prefix}/query`} onClick={(e) => go(e, '/query')}>
          Quiver
        </a>
        <nav>
          {MAIN.map(link)}
          <details class="menu">
            <summary class={STATUS.includes(path) ? 'nav-link active' : 'nav-link'}>Status ▾</summary>
            <div class="menu-items" onClick={(e) => e.currentTarget.parentElement.removeAttribute('open')}>
              {STATUS.map(link)}
            </div>
          </details>
        </nav>
        <select class="theme" title="Theme" value={theme} onChange={(e) => setTheme(e.currentTarget.value)}>
          <option value="auto">Auto theme</option>
          <option value="light">Light</option>
          <option value="dark">Dark</option>
        </select>
      </header>
      <main>
        <Page key={path} />
      </main>
    </>
  );
}

render(<App />, document.getElementById('app'));
