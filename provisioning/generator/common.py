"""Shared building blocks: datasource variables, query targets and panels with one look.

Every panel refers to its datasource through a dashboard variable (`${datasource}` for
PromQL, `${sql_datasource}` for SQL), never by name, so a dashboard works against any
Quiver a user points the variable at; the variables default to the uids that
provisioning/datasources/quiver.yml gives Quiver's two datasources.
"""

from grafana_foundation_sdk.builders import dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

# The dashboard schema version Grafana 12 writes; the SDK's models date from Grafana 10.1,
# whose panel and target fields are unchanged since, and Grafana migrates nothing on load.
SCHEMA_VERSION = 41

PROM = DataSourceRef(type_val="prometheus", uid="${datasource}")
SQL = DataSourceRef(type_val="grafana-postgresql-datasource", uid="${sql_datasource}")


def datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("datasource")
        .label("PromQL data source")
        .type("prometheus")
        .current(VariableOption(selected=True, text="Quiver (PromQL)", value="quiver-prom"))
    )


def sql_datasource_variable() -> dashboard.DatasourceVariable:
    return (
        dashboard.DatasourceVariable("sql_datasource")
        .label("SQL data source")
        .type("grafana-postgresql-datasource")
        .current(VariableOption(selected=True, text="Quiver (SQL)", value="quiver-sql"))
    )


def label_variable(name: str, label: str, query: str, multi: bool = True) -> dashboard.QueryVariable:
    """A variable of a label's values (`label_values(<selector>, <label>)`), multi-valued
    with All (Grafana then sends `(a|b|c)`), refreshed when the time range changes."""
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(PROM)
        .query(query)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
    )
    if multi:
        variable = variable.multi(True).include_all(True)
    return variable


def prom(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(expr)
        .legend_format(legend or "__auto")
        .range()
        .ref_id(ref)
        .datasource(PROM)
    )


class SqlTarget(cogvariants.Dataquery):
    """A raw-SQL target of Grafana's PostgreSQL datasource (the SDK has no builder for it)."""

    def __init__(self, raw_sql: str, fmt: str, ref: str) -> None:
        self.raw_sql = raw_sql
        self.fmt = fmt
        self.ref = ref

    def to_json(self) -> dict:
        return {
            "datasource": SQL.to_json(),
            "editorMode": "code",
            "format": self.fmt,
            "rawQuery": True,
            "rawSql": self.raw_sql,
            "refId": self.ref,
        }


class SqlQuery(cogbuilder.Builder[SqlTarget]):
    def __init__(self, raw_sql: str, fmt: str = "table", ref: str = "A") -> None:
        self._target = SqlTarget(raw_sql, fmt, ref)

    def build(self) -> SqlTarget:
        return self._target


def sql(raw_sql: str, fmt: str = "table", ref: str = "A") -> SqlQuery:
    return SqlQuery(" ".join(raw_sql.split()), fmt, ref)


def graph(title: str, unit: str, *targets, description: str = "", width: int = 12) -> timeseries.Panel:
    panel = timeseries.Panel().title(title).unit(unit).span(width).height(8)
    if description:
        panel = panel.description(description)
    for target in targets:
        panel = panel.with_target(target)
    return panel.datasource(_datasource_of(targets))


def single(title: str, unit: str, target, description: str = "", width: int = 4) -> stat.Panel:
    panel = stat.Panel().title(title).unit(unit).span(width).height(4).with_target(target)
    if description:
        panel = panel.description(description)
    return panel.datasource(_datasource_of([target]))


def grid(title: str, target, description: str = "", width: int = 12) -> table.Panel:
    panel = table.Panel().title(title).span(width).height(8).show_header(True).with_target(target)
    if description:
        panel = panel.description(description)
    return panel.datasource(_datasource_of([target]))


def _datasource_of(targets) -> DataSourceRef:
    return SQL if any(isinstance(t, SqlQuery) for t in targets) else PROM


def new_dashboard(uid: str, title: str, tags: list[str], description: str) -> dashboard.Dashboard:
    return (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["quiver", *tags])
        .description(description)
        .time("now-6h", "now")
        .refresh("1m")
        .timezone("browser")
        .readonly()
        .with_variable(datasource_variable())
    )
