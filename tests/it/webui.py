#!/usr/bin/env python3
"""Browser tests of Quiver's web UI in a real headless Chromium, driven by Selenium through
Debian's chromedriver. tests/it/webui.rs starts Quiver and its peers, then runs one scenario:

    webui.py SCENARIO BASE_URL SCREENSHOT_DIR EXPECTED_JSON

Every page a scenario opens must load without a console error or a failed request; each
scenario writes screenshots of what it saw to SCREENSHOT_DIR. Exit status 0 means it passed.
"""

import base64
import csv
import io
import json
import os
import sys
import tempfile
import time
import urllib.parse

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

TIMEOUT = 30


class Failure(Exception):
    pass


class Browser:
    def __init__(self, base, shots):
        self.base = base.rstrip("/")
        self.shots = shots
        self.downloads = tempfile.mkdtemp(prefix="quiver-ui-downloads-")
        profile = tempfile.mkdtemp(prefix="quiver-ui-profile-")
        options = webdriver.ChromeOptions()
        options.binary_location = os.environ.get("QUIVER_CHROMIUM", "/usr/bin/chromium")
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            f"--user-data-dir={profile}",
        ]:
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.add_experimental_option(
            "prefs",
            {"download.default_directory": self.downloads, "download.prompt_for_download": False},
        )
        # A time zone away from UTC, so local and UTC time labels differ.
        service = Service(
            os.environ.get("QUIVER_CHROMEDRIVER", "/usr/bin/chromedriver"),
            env={**os.environ, "TZ": "Asia/Kolkata"},
        )
        self.driver = webdriver.Chrome(service=service, options=options)
        self.driver.set_page_load_timeout(TIMEOUT)
        self.problems = []

    def open(self, path):
        self.driver.get(self.base + path)
        self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, "header.navbar"), f"the page {path} to render")

    def wait(self, check, what, timeout=TIMEOUT):
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                value = check()
                if value:
                    return value
            except (StaleElementReferenceException, WebDriverException) as e:
                last = e
            time.sleep(0.1)
        self.shot(f"timeout-{what[:40]}")
        raise Failure(f"timed out waiting for {what} on {self.driver.current_url}" + (f" ({last})" if last else ""))

    def find(self, css, what=None):
        return self.wait(lambda: self.driver.find_elements(By.CSS_SELECTOR, css), what or css)[0]

    def texts(self, css):
        return [e.text for e in self.driver.find_elements(By.CSS_SELECTOR, css)]

    def shot(self, name):
        """The whole page, beyond the window's height, as a PNG."""
        os.makedirs(self.shots, exist_ok=True)
        image = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        with open(os.path.join(self.shots, f"{name}.png"), "wb") as f:
            f.write(base64.b64decode(image["data"]))

    def check_console(self, page):
        """Console errors and failed requests (Chromium logs both as SEVERE), and requests
        anywhere but this server (the UI needs no CDN or internet access)."""
        for entry in self.driver.get_log("browser"):
            if entry["level"] == "SEVERE":
                self.problems.append(f"{page}: {entry['message']}")
        origin = urllib.parse.urlparse(self.base)
        for name in self.driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)"):
            url = urllib.parse.urlparse(name)
            if url.scheme in ("http", "https") and url.netloc != origin.netloc:
                self.problems.append(f"{page}: a request left the server: {name}")

    def type_into_editor(self, keys, panel=".editor"):
        content = self.find(f"{panel} .cm-content")
        content.click()
        content.send_keys(keys)
        return content

    def close(self):
        self.driver.quit()


def drawn_pixels(b, rgb):
    """Pixels of the colour `rgb` on the graph's canvas: the series' lines, actually drawn."""
    return b.driver.execute_script(
        """
        const c = document.querySelector('.chart-box canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) {
          if (Math.abs(d[i] - arguments[0]) < 8 && Math.abs(d[i + 1] - arguments[1]) < 8 && Math.abs(d[i + 2] - arguments[2]) < 8) n++;
        }
        return n;
        """,
        *rgb,
    )


FIRST_SERIES = (0x1C, 0x7E, 0xD6)
SECOND_SERIES = (0xE8, 0x59, 0x0C)


def expect(condition, message):
    if not condition:
        raise Failure(message)


def query(b, exp):
    metric = exp["metric"]
    b.open("/query")
    # Completion of a metric name from the server's API.
    content = b.type_into_editor(metric[: len(metric) - 4])
    option = b.wait(
        lambda: [e for e in b.driver.find_elements(By.CSS_SELECTOR, ".cm-tooltip-autocomplete li") if metric in e.text],
        f"completion offering {metric}",
    )[0]
    b.shot("query-completion")
    option.click()
    b.wait(lambda: metric in content.text, "the completed metric name in the editor")
    content.send_keys('{job="ui"}')
    content.send_keys(Keys.ENTER)
    b.wait(lambda: len(b.driver.find_elements(By.CSS_SELECTOR, "table.result tr")) == len(exp["table"]), "the result table")
    rows = {}
    for row in b.driver.find_elements(By.CSS_SELECTOR, "table.result tr"):
        series, value = row.find_elements(By.CSS_SELECTOR, "td")
        rows[series.text] = value.text
    expect(rows == exp["table"], f"table rows {rows} != {exp['table']}")
    b.shot("query-table")
    params = urllib.parse.parse_qs(urllib.parse.urlparse(b.driver.current_url).query)
    expect(params.get("g0.expr") == [f'{metric}{{job="ui"}}'], f"the URL keeps the expression: {params}")
    # The graph of the same query over the last hour.
    b.find('button[data-tab="graph"]').click()
    b.find(".chart-box canvas", "a drawn graph")
    legend = b.wait(lambda: [t for t in b.texts(".u-legend .u-series") if metric in t], "the graph legend")
    expect(len(legend) == len(exp["table"]), f"legend {legend}")
    for colour in (FIRST_SERIES, SECOND_SERIES):
        b.wait(lambda: drawn_pixels(b, colour) > 200, f"a line drawn in {colour}")
    b.shot("query-graph")
    # Hover values: the legend shows the time and values under the cursor, in the browser's
    # time zone or, with UTC ticked, in UTC.
    def hovered_time():
        canvas = b.find(".chart-box .u-over")
        ActionChains(b.driver).move_to_element(canvas).move_by_offset(5, 0).perform()
        return b.wait(lambda: [t for t in b.texts(".u-legend .u-series:first-child") if t and "--" not in t], "hover values")[0]
    local = hovered_time()
    b.find("input.utc").click()
    b.find(".chart-box canvas", "the graph redrawn in UTC")
    utc = b.wait(lambda: (lambda t: t if t != local else None)(hovered_time()), "the hovered time in UTC")
    expect(local != utc, f"UTC did not change the time labels: {local}")
    b.find("input.utc").click()
    b.find('button[data-tab="explain"]').click()
    plan = b.find("pre.plan", "the explained plan")
    b.wait(lambda: plan.text.strip(), "plan text")
    b.wait(lambda: b.find("pre.analyze").text.strip(), "analyze output")
    b.shot("query-explain")
    # Analyzed over the graph's range: PromStep runs over many steps instead of one.
    b.find("select.analyze-over").send_keys("the graph")
    b.wait(lambda: "step=0" not in b.find("pre.analyze").text and "step=" in b.find("pre.analyze").text, "a range analysis")
    b.shot("query-explain-range")
    b.check_console("/query")
    # A link made for Prometheus's UI opens the same state here.
    link = "/graph?" + urllib.parse.urlencode(
        {"g0.expr": f"sum({metric})", "g0.tab": "0", "g0.range_input": "30m", "g0.stacked": "1"}
    )
    b.open(link)
    b.find(".chart-box canvas", "the graph of a Prometheus link")
    active = b.find("button.tab.active").get_attribute("data-tab")
    expect(active == "graph", f"the Prometheus link opened the {active} tab")
    expect(b.find(".range-input").get_attribute("value") == "30m", "range_input was not read")
    expect(b.find(".display-mode").get_attribute("value") == "stacked", "stacked was not read")
    b.check_console(link)
    # The query's warnings are shown (series without an "le" label in histogram_quantile).
    b.open("/query?" + urllib.parse.urlencode({"g0.expr": f"histogram_quantile(0.9, {metric})", "g0.tab": "table"}))
    warning = b.find(".notice.warning", "the PromQL warning")
    expect('"le"' in warning.text, f"warning text: {warning.text}")
    b.shot("query-warning")
    b.check_console("/query with a warning")
    # A second panel with an invalid query ("sum()": the editor closes the bracket) shows
    # the server's error.
    b.find("#add-panel").click()
    b.type_into_editor("sum(", '[data-panel="1"] .editor')
    b.driver.find_elements(By.CSS_SELECTOR, '[data-panel="1"] button.execute')[0].click()
    err = b.find('[data-panel="1"] .notice.error', "the parse error")
    expect("bad_data" in err.text, f"error text: {err.text}")
    b.shot("query-two-panels")
    b.driver.get_log("browser")  # the 400 of the invalid query is expected: drop it


def sql(b, exp):
    b.open("/sql")
    # Completion of a table name from information_schema.
    table = exp["table"]
    content = b.type_into_editor(f"SELECT * FROM {table[:-3]}")
    b.wait(
        lambda: [e for e in b.driver.find_elements(By.CSS_SELECTOR, ".cm-tooltip-autocomplete li") if table in e.text],
        f"completion offering the table {table}",
    )
    b.shot("sql-completion")
    content.send_keys(Keys.ESCAPE)
    content.send_keys(Keys.CONTROL, "a")
    content.send_keys(Keys.DELETE)
    content.send_keys(exp["statement"])
    b.shot("sql-typed")
    # Enter would accept an open completion (here a keyword for the last word): close it.
    content.send_keys(Keys.ESCAPE)
    content.send_keys(Keys.ENTER)
    count = b.find(".row-count", "the row count")
    expect(count.text == str(len(exp["rows"])), f"row count {count.text}")
    cells = [[td.text for td in tr.find_elements(By.CSS_SELECTOR, "td")] for tr in b.driver.find_elements(By.CSS_SELECTOR, "table.sql-result tbody tr")]
    expect(cells == exp["rows"], f"rows {cells} != {exp['rows']}")
    b.shot("sql-result")
    b.find("#download-csv").click()
    path = os.path.join(b.downloads, "quiver-result.csv")
    b.wait(lambda: os.path.exists(path) and os.path.getsize(path) > 0, "the CSV download")
    with open(path, newline="") as f:
        downloaded = list(csv.reader(io.StringIO(f.read())))
    expect(downloaded[1:] == exp["rows"], f"CSV {downloaded}")
    # A time series result is drawn.
    b.open("/sql?" + urllib.parse.urlencode({"q": exp["graph_statement"]}))
    b.find("button.execute").click()
    b.find(".chart-box canvas", "the graph of a time series result")
    b.shot("sql-graph")
    b.check_console("/sql")
    # Errors reach the user as the server words them.
    b.open("/sql?" + urllib.parse.urlencode({"q": "SELEC 1"}))
    b.driver.find_elements(By.CSS_SELECTOR, "button.execute")[0].click()
    err = b.find(".notice.error", "the SQL syntax error")
    expect("SELEC" in err.text or "syntax" in err.text.lower(), f"error text: {err.text}")
    b.shot("sql-error")
    # The HTTP SQL endpoint is read-only, and says so.
    b.open("/sql?" + urllib.parse.urlencode({"q": f"DROP TABLE {table}"}))
    b.driver.find_elements(By.CSS_SELECTOR, "button.execute")[0].click()
    err = b.find(".notice.error", "the read-only error")
    expect("read-only" in err.text, f"error text: {err.text}")
    b.shot("sql-read-only")
    b.driver.get_log("browser")  # the 400 of the bad statement is expected: drop it


def targets(b, exp):
    b.open("/targets")
    b.wait(lambda: len(b.driver.find_elements(By.CSS_SELECTOR, "tr.target")) == 2, "two targets")
    up = b.find(f'tr.target-up[data-url="{exp["up"]}"]', "the up target")
    down = b.find(f'tr.target-down[data-url="{exp["down"]}"]', "the down target")
    expect("UP" in up.text, f"up row: {up.text}")
    expect(down.find_element(By.CSS_SELECTOR, ".last-error").text.strip(), "the down target shows no error")
    b.shot("targets")
    # The filter keeps the matching targets only.
    b.find("input.filter").send_keys(exp["down"].split("//")[1].split("/")[0])
    b.wait(lambda: len(b.driver.find_elements(By.CSS_SELECTOR, "tr.target")) == 1, "the filter to leave one target")
    b.check_console("/targets")
    b.open("/service-discovery")
    b.wait(lambda: len(b.driver.find_elements(By.CSS_SELECTOR, "table.sd tr.active")) == 2, "two discovered targets")
    b.wait(lambda: b.driver.find_elements(By.CSS_SELECTOR, "table.sd tr.dropped"), "the dropped target")
    b.shot("service-discovery")
    b.check_console("/service-discovery")


def alerts(b, exp):
    b.open("/alerts")
    state = b.find(f'.alert-state[data-rule="{exp["alert"]}"]', "the alerting rule")
    b.wait(lambda: "FIRING" in state.text, "the alert to fire")
    rows = b.wait(lambda: b.driver.find_elements(By.CSS_SELECTOR, "tr.alert-firing"), "the firing alert")
    expect(exp["label"] in rows[0].text, f"firing alert row: {rows[0].text}")
    expect(exp["annotation"] in rows[0].text, f"annotation missing: {rows[0].text}")
    b.shot("alerts")
    b.check_console("/alerts")
    b.open("/rules")
    b.wait(lambda: len(b.driver.find_elements(By.CSS_SELECTOR, "tr.rule-ok")) >= 2, "healthy rules")
    b.shot("rules")
    b.check_console("/rules")


def pages(b, exp):
    for path, marker in [
        ("/config", "pre.config-yaml"),
        ("/flags", "table.flags tr"),
        ("/status", "table.runtime tr"),
        ("/tsdb-status", "table.head-stats tr"),
        ("/cardinality", ".total-series"),
    ]:
        b.open(path)
        b.find(marker, f"{path} content")
        b.shot(path.strip("/"))
        b.check_console(path)
    b.open("/tsdb-status")
    blocks = b.wait(lambda: b.driver.find_elements(By.CSS_SELECTOR, "table.blocks tbody tr"), "the blocks in the store")
    expect("raw" in blocks[0].text, f"block row: {blocks[0].text}")
    b.open("/config")
    expect(exp["config_fragment"] in b.find("pre.config-yaml").text, "the loaded YAML is not shown")
    # Drill down: select the job, pick the metric, then see its series by instance.
    b.open("/cardinality")
    total = int(b.find(".total-series").text)
    selector = b.find("input.selector")
    selector.send_keys(exp["selector"])
    selector.send_keys(Keys.ENTER)
    b.wait(lambda: int(b.find(".total-series").text) < total, f"fewer series than {total} for {exp['selector']}")
    button = b.wait(
        lambda: [e for e in b.driver.find_elements(By.CSS_SELECTOR, ".top-table button.link") if e.text == exp["metric"]],
        "the metric in the cardinality lists",
    )[0]
    button.click()
    b.wait(lambda: int(b.find(".total-series").text) == exp["metric_series"], f"{exp['metric_series']} series of {exp['metric']} (of {total})")
    focus = b.find(".focus-label")
    focus.send_keys("instance")
    focus.send_keys(Keys.TAB)
    b.wait(lambda: any(t.startswith("Series by value of instance") for t in b.texts(".top-table h3")), "the focus label's values")
    values = b.texts('table[data-list="Series by value of instance"] tbody tr')
    expect([v.split()[0] for v in values] == exp["instances"], f"instances {values}")
    b.shot("cardinality-drilldown")
    b.check_console("/cardinality")
    # The dark theme.
    b.open("/query")
    b.find("select.theme").send_keys("Dark")
    b.wait(lambda: b.driver.execute_script("return document.documentElement.dataset.theme") == "dark", "the dark theme")
    # The theme is kept: a graph opened next is drawn dark.
    b.open("/query?" + urllib.parse.urlencode({"g0.expr": f"rate({exp['metric']}[5m]) + {exp['metric']}", "g0.tab": "graph"}))
    b.find(".chart-box canvas", "the graph in the dark theme")
    expect(b.driver.execute_script("return document.documentElement.dataset.theme") == "dark", "the theme was not kept")
    b.shot("query-dark")
    # Switching back redraws the graph in the light theme's colours (axis text dark again).
    b.find("select.theme").send_keys("Light")
    b.wait(lambda: b.driver.execute_script("return document.documentElement.dataset.theme") == "light", "the light theme")
    b.find(".chart-box canvas", "the graph redrawn")
    b.wait(lambda: drawn_pixels(b, (0x21, 0x25, 0x29)) > 50, "axis labels drawn in the light theme's text colour")
    b.shot("query-light-again")
    b.check_console("/query (dark)")


def prefixed(b, exp):
    b.open("/query?" + urllib.parse.urlencode({"g0.expr": exp["expr"], "g0.tab": "table"}))
    b.wait(lambda: b.driver.find_elements(By.CSS_SELECTOR, "table.result td.value"), "a result under the prefix")
    b.shot("prefixed-query")
    b.check_console("/query under a prefix")
    b.open("/targets")
    b.find("h2")
    b.check_console("/targets under a prefix")


SCENARIOS = {"query": query, "sql": sql, "targets": targets, "alerts": alerts, "pages": pages, "prefixed": prefixed}


def main():
    scenario, base, shots, expected = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    browser = Browser(base, shots)
    try:
        SCENARIOS[scenario](browser, expected)
        if browser.problems:
            raise Failure("console errors or failed requests:\n  " + "\n  ".join(browser.problems))
    except Failure as e:
        print(f"FAILED {scenario}: {e}", file=sys.stderr)
        sys.exit(1)
    finally:
        browser.close()
    print(f"passed {scenario}; screenshots in {shots}")


if __name__ == "__main__":
    main()
