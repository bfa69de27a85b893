"""Real PostgreSQL drivers against Quiver's wire protocol, run by tests/it/postgres.rs.

Usage: python3 pg_clients.py PORT USER PASSWORD METRIC

psycopg2 (libpq, simple protocol), psycopg 3 (extended protocol with parameters, binary and
text results), and a replay of what Grafana's PostgreSQL datasource sends (section B of
shared/grafana-contract.md). Prints one line per check and exits non-zero on the first
failure, with the reason.
"""

import datetime
import sys
import threading

import psycopg
import psycopg2

PORT, USER, PASSWORD, METRIC = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
DSN = f"host=127.0.0.1 port={PORT} user={USER} password={PASSWORD} dbname=quiver sslmode=disable"


def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}")
        sys.exit(1)
    print(f"ok {name}")


def psycopg2_simple():
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f'SELECT count(*) AS n, max(value) AS top FROM "{METRIC}"')
    n, top = cur.fetchone()
    check("psycopg2 aggregate", n == 20 and top == 19.0, (n, top))
    check("psycopg2 int8 oid", cur.description[0].type_code == 20, cur.description)
    check("psycopg2 float8 oid", cur.description[1].type_code == 701, cur.description)
    cur.execute(f'SELECT timestamp, value FROM "{METRIC}" ORDER BY timestamp LIMIT 1')
    ts, value = cur.fetchone()
    check("psycopg2 timestamptz", isinstance(ts, datetime.datetime) and ts.utcoffset() == datetime.timedelta(0), ts)
    check("psycopg2 timestamptz oid", cur.description[0].type_code == 1184, cur.description)
    cur.execute(f"SELECT host FROM \"{METRIC}\" WHERE value > 1000")
    check("psycopg2 zero rows keep columns", cur.fetchall() == [] and cur.description[0].name == "host")
    try:
        cur.execute("SELECT * FROM no_such_metric")
        check("psycopg2 error", False, "no error")
    except psycopg2.Error as e:
        check("psycopg2 undefined table sqlstate", e.pgcode == "42P01", e.pgcode)
    try:
        cur.execute(f'DELETE FROM "{METRIC}"')
        check("psycopg2 read-only", False, "no error")
    except psycopg2.Error as e:
        check("psycopg2 read-only sqlstate", e.pgcode == "25006", e.pgcode)
    # The connection is still usable after errors.
    cur.execute("SELECT 1 AS one")
    check("psycopg2 usable after errors", cur.fetchone() == (1,))
    conn.close()


def psycopg3_extended():
    with psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute(
            f'SELECT host, value FROM "{METRIC}" WHERE value >= %s AND host = %s ORDER BY value',
            (15.0, "a"),
        ).fetchall()
        check("psycopg3 parameters", [r[1] for r in rows] == [16.0, 18.0], rows)
        rows = conn.execute(
            f'SELECT count(*) FROM "{METRIC}" WHERE timestamp >= %s',
            (datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),),
        ).fetchall()
        check("psycopg3 timestamp parameter", rows == [(20,)], rows)
        cur = conn.cursor(binary=True)
        cur.execute(f'SELECT value, timestamp FROM "{METRIC}" ORDER BY timestamp LIMIT 2')
        rows = cur.fetchall()
        check("psycopg3 binary results", rows[0][0] == 0.0 and isinstance(rows[0][1], datetime.datetime), rows)
        stmt_rows = []
        for limit in (3, 5):
            stmt_rows.append(
                len(conn.execute(f'SELECT value FROM "{METRIC}" ORDER BY value LIMIT %s', (limit,), prepare=True).fetchall())
            )
        check("psycopg3 prepared statement reused", stmt_rows == [3, 5], stmt_rows)
        try:
            conn.execute("SELECT * FROM %s", ("x",))
            check("psycopg3 error", False, "no error")
        except psycopg.Error as e:
            check("psycopg3 error has sqlstate", e.sqlstate is not None, e)
        check("psycopg3 usable after error", conn.execute("SELECT 2").fetchone() == (2,))
    # A CancelRequest on a second socket stops a long query; the statement timeout is the
    # backstop, and its message differs, so a cancel that did not work cannot pass.
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 20000")
        timer = threading.Timer(1.0, conn.cancel)
        timer.start()
        try:
            conn.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
            check("cancel request", False, "the query finished")
        except psycopg.errors.QueryCanceled as e:
            check("cancel request", "user request" in str(e), e)
        finally:
            timer.cancel()
        check("usable after cancel", conn.execute("SELECT 3").fetchone() == (3,))
        conn.execute("SET statement_timeout = 500")
        try:
            conn.execute("SELECT count(*) FROM generate_series(1, 100000000000)")
            check("statement timeout", False, "the query finished")
        except psycopg.errors.QueryCanceled as e:
            check("statement timeout", "statement timeout" in str(e), e)


def grafana_session():
    """What Grafana's PostgreSQL datasource sends, over the simple protocol (psycopg2)."""
    conn = psycopg2.connect(DSN)
    conn.autocommit = True
    cur = conn.cursor()
    # Health check: lib/pq sends ';', pgx sends '-- ping'.
    # psycopg2 turns the server's EmptyQueryResponse into this client-side error; an
    # ErrorResponse from the server would carry a pgcode.
    for ping in (";", "-- ping"):
        try:
            cur.execute(ping)
            check(f"health check {ping!r}", cur.description is None)
        except psycopg2.ProgrammingError as e:
            check(f"health check {ping!r}", e.pgcode is None and "empty query" in str(e), e)
    cur.execute("SELECT current_setting('server_version_num')::int/100 as version")
    check("server version", cur.fetchone()[0] >= 1000)
    cur.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    check("no timescaledb", cur.fetchall() == [])
    tables_query = (
        "SELECT\n    CASE WHEN \n          quote_ident(table_schema) IN (\n          SELECT\n"
        "            CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END\n"
        "          FROM\n            generate_series(\n"
        "              array_lower(string_to_array(current_setting('search_path'),','),1),\n"
        "              array_upper(string_to_array(current_setting('search_path'),','),1)\n"
        "            ) as i,\n            string_to_array(current_setting('search_path'),',') s\n          )\n"
        "      THEN quote_ident(table_name)\n"
        "      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)\n    END AS \"table\"\n"
        "    FROM information_schema.tables\n"
        "    WHERE quote_ident(table_schema) NOT IN ('information_schema',\n"
        "                             'pg_catalog',\n                             '_timescaledb_cache',\n"
        "                             '_timescaledb_catalog',\n                             '_timescaledb_internal',\n"
        "                             '_timescaledb_config',\n                             'timescaledb_information',\n"
        "                             'timescaledb_experimental')\n"
        "    ORDER BY CASE WHEN \n          quote_ident(table_schema) IN (\n          SELECT\n"
        "            CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END\n"
        "          FROM\n            generate_series(\n"
        "              array_lower(string_to_array(current_setting('search_path'),','),1),\n"
        "              array_upper(string_to_array(current_setting('search_path'),','),1)\n"
        "            ) as i,\n            string_to_array(current_setting('search_path'),',') s\n"
        "          ) THEN 0 ELSE 1 END, 1"
    )
    cur.execute(tables_query)
    tables = [r[0] for r in cur.fetchall()]
    check("editor table list", any(t.endswith(METRIC) for t in tables) and any(t.endswith("samples") for t in tables), tables[:10])
    table = next(t for t in tables if t.endswith(METRIC))
    columns_query = (
        "SELECT quote_ident(column_name) AS \"column\", data_type AS \"type\"\n"
        "    FROM information_schema.columns\n    WHERE\n"
        f"      CASE WHEN array_length(parse_ident('{table}'),1) = 2\n"
        f"        THEN quote_ident(table_schema) = (parse_ident('{table}'))[1]\n"
        f"          AND quote_ident(table_name) = (parse_ident('{table}'))[2]\n"
        f"        ELSE quote_ident(table_name) = '{table}'\n          AND \n"
        "          quote_ident(table_schema) IN (\n          SELECT\n"
        "            CASE WHEN trim(s[i]) = '\"$user\"' THEN user ELSE trim(s[i]) END\n"
        "          FROM\n            generate_series(\n"
        "              array_lower(string_to_array(current_setting('search_path'),','),1),\n"
        "              array_upper(string_to_array(current_setting('search_path'),','),1)\n"
        "            ) as i,\n            string_to_array(current_setting('search_path'),',') s\n          )\n"
        "      END"
    )
    cur.execute(columns_query)
    columns = dict(cur.fetchall())
    check(
        "editor columns with PostgreSQL types",
        columns.get("timestamp") == "timestamp with time zone"
        and columns.get("value") == "double precision"
        and columns.get("host") == "text",
        columns,
    )
    # Dashboard queries as Grafana's macros expand them (time range 2024-06-01 00:00-01:00).
    frm, to = "'2024-06-01T00:00:00Z'", "'2024-06-01T01:00:00.123Z'"
    macro_queries = {
        "$__timeGroupAlias + $__timeFilter": f'SELECT floor(extract(epoch from timestamp)/60)*60 AS "time", host AS metric, avg(value) AS "value" FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} GROUP BY 1,2 ORDER BY 1',
        "$__time": f'SELECT timestamp AS "time", value FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} ORDER BY 1',
        "$__timeEpoch": f'SELECT extract(epoch from timestamp) as "time", value FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} ORDER BY 1',
        "$__unixEpochFilter": f'SELECT timestamp AS "time", value FROM "{METRIC}" WHERE extract(epoch from timestamp) >= 1717200000 AND extract(epoch from timestamp) <= 1717203600 ORDER BY 1',
        "$__timeGroup 500ms": f'SELECT floor(extract(epoch from timestamp)/0.5)*0.5 AS "time", max(value) FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} GROUP BY 1 ORDER BY 1',
        "time_bucket": f'SELECT time_bucket(\'300.000s\',timestamp) AS "time", sum(value) FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} GROUP BY 1 ORDER BY 1',
        "date_trunc": f'SELECT date_trunc(\'minute\', timestamp) AS "time", count(*) FROM "{METRIC}" GROUP BY 1 ORDER BY 1',
        "to_timestamp": f'SELECT to_timestamp(1717200000) AS "time", count(*) FROM "{METRIC}" WHERE timestamp >= to_timestamp(1717200000)',
        "builder output": f'SELECT floor(extract(epoch from timestamp)/60)*60 AS "time", AVG(value) AS avg_value FROM "{METRIC}" WHERE timestamp BETWEEN {frm} AND {to} AND host IN (\'a\', \'b\') GROUP BY 1 ORDER BY 1 DESC LIMIT 50 ',
    }
    for name, sql in macro_queries.items():
        cur.execute(sql)
        rows = cur.fetchall()
        check(f"macro {name} returns rows", len(rows) > 0, sql)
        check(f"macro {name} has a time column", cur.description[0].name == "time", cur.description)
    cur.execute(macro_queries["$__timeGroupAlias + $__timeFilter"])
    rows = cur.fetchall()
    times = [float(r[0]) for r in rows]
    check("time series sorted by time", times == sorted(times), times)
    check("epoch seconds", all(1717200000 <= t <= 1717203600 for t in times), times)
    # Several statements in one Query: psycopg2 keeps the last result.
    cur.execute(f'SELECT 1; SELECT count(*) FROM "{METRIC}";')
    check("several statements", cur.fetchone() == (20,))
    conn.close()


def main():
    psycopg2_simple()
    psycopg3_extended()
    grafana_session()
    print("all client checks passed")


if __name__ == "__main__":
    main()
