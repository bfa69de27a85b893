//! `information_schema` in PostgreSQL's shape (`tables`, `columns`, `schemata`, `views`), so
//! psql, drivers and Grafana's SQL editor read PostgreSQL type names (`double precision`,
//! `timestamp with time zone`, `udt_name` `float8`, ...). DataFusion's own
//! `information_schema` speaks Arrow type names; Quiver replaces it with this one for HTTP
//! and the wire protocol alike.

use std::sync::{Arc, Weak};

use arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{CatalogProviderList, SchemaProvider, TableProvider};
use datafusion::datasource::MemTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::TableType;

pub const INFORMATION_SCHEMA: &str = "information_schema";
const TABLES: [&str; 4] = ["tables", "columns", "schemata", "views"];

/// Builds its tables from the session's catalogs each time one is read.
#[derive(Debug)]
pub struct PgInformationSchema {
    /// Weak: the catalogs contain this schema.
    catalogs: Weak<dyn CatalogProviderList>,
}

impl PgInformationSchema {
    pub fn new(catalogs: &Arc<dyn CatalogProviderList>) -> Self {
        PgInformationSchema {
            catalogs: Arc::downgrade(catalogs),
        }
    }

    fn catalogs(&self) -> DfResult<Arc<dyn CatalogProviderList>> {
        self.catalogs
            .upgrade()
            .ok_or_else(|| DataFusionError::Internal("the session is gone".to_string()))
    }
}

/// One relation as listed.
struct Relation {
    catalog: String,
    schema: String,
    name: String,
    provider: Arc<dyn TableProvider>,
}

/// PostgreSQL's `data_type`, `udt_name`, numeric precision, radix and scale for an Arrow type.
pub fn pg_type(
    data_type: &DataType,
) -> (
    &'static str,
    &'static str,
    Option<i32>,
    Option<i32>,
    Option<i32>,
) {
    match data_type {
        DataType::Boolean => ("boolean", "bool", None, None, None),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => {
            ("smallint", "int2", Some(16), Some(2), Some(0))
        }
        DataType::Int32 | DataType::UInt16 => ("integer", "int4", Some(32), Some(2), Some(0)),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => {
            ("bigint", "int8", Some(64), Some(2), Some(0))
        }
        DataType::Float16 | DataType::Float32 => ("real", "float4", Some(24), Some(2), None),
        DataType::Float64 => ("double precision", "float8", Some(53), Some(2), None),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => (
            "numeric",
            "numeric",
            Some(i32::from(*p)),
            Some(10),
            Some(i32::from(*s)),
        ),
        DataType::Timestamp(_, Some(_)) => {
            ("timestamp with time zone", "timestamptz", None, None, None)
        }
        DataType::Timestamp(_, None) => {
            ("timestamp without time zone", "timestamp", None, None, None)
        }
        DataType::Date32 | DataType::Date64 => ("date", "date", None, None, None),
        DataType::Time32(_) | DataType::Time64(_) => {
            ("time without time zone", "time", None, None, None)
        }
        DataType::Interval(_) | DataType::Duration(_) => ("interval", "interval", None, None, None),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("bytea", "bytea", None, None, None),
        DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(_, _) => {
            ("ARRAY", "_text", None, None, None)
        }
        _ => ("text", "text", None, None, None),
    }
}

impl PgInformationSchema {
    /// Every relation of every schema except `pg_catalog` and this one (PostgreSQL lists
    /// those too, but no client asks this schema about them and they are costly to build).
    async fn relations(&self) -> DfResult<Vec<Relation>> {
        let catalogs = self.catalogs()?;
        let mut out = Vec::new();
        for catalog_name in catalogs.catalog_names() {
            let Some(catalog) = catalogs.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                if schema_name == INFORMATION_SCHEMA || schema_name == "pg_catalog" {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                let mut names = schema.table_names();
                names.sort();
                for name in names {
                    if let Some(provider) = schema.table(&name).await? {
                        out.push(Relation {
                            catalog: catalog_name.clone(),
                            schema: schema_name.clone(),
                            name,
                            provider,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    fn schemata(&self) -> DfResult<RecordBatch> {
        let catalogs = self.catalogs()?;
        let mut rows: Vec<(String, String)> = Vec::new();
        for catalog_name in catalogs.catalog_names() {
            if let Some(catalog) = catalogs.catalog(&catalog_name) {
                let mut names = catalog.schema_names();
                if !names.iter().any(|n| n == INFORMATION_SCHEMA) {
                    names.push(INFORMATION_SCHEMA.to_string());
                }
                names.sort();
                rows.extend(names.into_iter().map(|s| (catalog_name.clone(), s)));
            }
        }
        let strings = |f: &dyn Fn(&(String, String)) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        batch(
            schemata_schema(),
            vec![
                strings(&|r| Some(r.0.clone())),
                strings(&|r| Some(r.1.clone())),
                strings(&|_| Some("quiver".to_string())),
                strings(&|_| None),
                strings(&|_| None),
                strings(&|_| None),
                strings(&|_| None),
            ],
        )
    }

    async fn tables(&self, only_views: bool) -> DfResult<RecordBatch> {
        let relations: Vec<Relation> = self
            .relations()
            .await?
            .into_iter()
            .filter(|r| !only_views || r.provider.table_type() == TableType::View)
            .collect();
        let column = |f: &dyn Fn(&Relation) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(
                relations.iter().map(f).collect::<Vec<_>>(),
            ))
        };
        if only_views {
            return batch(
                views_schema(),
                vec![
                    column(&|r| Some(r.catalog.clone())),
                    column(&|r| Some(r.schema.clone())),
                    column(&|r| Some(r.name.clone())),
                    column(&|r| r.provider.get_table_definition().map(str::to_string)),
                ],
            );
        }
        batch(
            tables_schema(),
            vec![
                column(&|r| Some(r.catalog.clone())),
                column(&|r| Some(r.schema.clone())),
                column(&|r| Some(r.name.clone())),
                column(&|r| {
                    Some(
                        match r.provider.table_type() {
                            TableType::View => "VIEW",
                            TableType::Temporary => "LOCAL TEMPORARY",
                            TableType::Base => "BASE TABLE",
                        }
                        .to_string(),
                    )
                }),
                column(&|_| Some("NO".to_string())),
            ],
        )
    }

    async fn columns(&self) -> DfResult<RecordBatch> {
        struct Row {
            catalog: String,
            schema: String,
            table: String,
            field: Arc<Field>,
            position: i32,
        }
        let mut rows = Vec::new();
        for r in self.relations().await? {
            for (i, field) in r.provider.schema().fields().iter().enumerate() {
                rows.push(Row {
                    catalog: r.catalog.clone(),
                    schema: r.schema.clone(),
                    table: r.name.clone(),
                    field: field.clone(),
                    position: i32::try_from(i + 1).unwrap_or(i32::MAX),
                });
            }
        }
        let text = |f: &dyn Fn(&Row) -> Option<String>| -> ArrayRef {
            Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let int = |f: &dyn Fn(&Row) -> Option<i32>| -> ArrayRef {
            Arc::new(Int32Array::from(rows.iter().map(f).collect::<Vec<_>>()))
        };
        let ty = |r: &Row| pg_type(r.field.data_type());
        batch(
            columns_schema(),
            vec![
                text(&|r| Some(r.catalog.clone())),
                text(&|r| Some(r.schema.clone())),
                text(&|r| Some(r.table.clone())),
                text(&|r| Some(r.field.name().clone())),
                int(&|r| Some(r.position)),
                text(&|_| None),
                text(&|r| Some(if r.field.is_nullable() { "YES" } else { "NO" }.to_string())),
                text(&|r| Some(ty(r).0.to_string())),
                int(&|_| None),
                int(&|r| ty(r).2),
                int(&|r| ty(r).3),
                int(&|r| ty(r).4),
                int(&|r| matches!(r.field.data_type(), DataType::Timestamp(_, _)).then_some(3)),
                text(&|r| Some(r.catalog.clone())),
                text(&|_| Some("pg_catalog".to_string())),
                text(&|r| Some(ty(r).1.to_string())),
                text(&|_| Some("NO".to_string())),
            ],
        )
    }
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> DfResult<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

fn text_fields(names: &[&str]) -> Vec<Field> {
    names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, true))
        .collect()
}

fn schemata_schema() -> SchemaRef {
    Arc::new(Schema::new(text_fields(&[
        "catalog_name",
        "schema_name",
        "schema_owner",
        "default_character_set_catalog",
        "default_character_set_schema",
        "default_character_set_name",
        "sql_path",
    ])))
}

fn tables_schema() -> SchemaRef {
    Arc::new(Schema::new(text_fields(&[
        "table_catalog",
        "table_schema",
        "table_name",
        "table_type",
        "is_insertable_into",
    ])))
}

fn views_schema() -> SchemaRef {
    Arc::new(Schema::new(text_fields(&[
        "table_catalog",
        "table_schema",
        "table_name",
        "view_definition",
    ])))
}

fn columns_schema() -> SchemaRef {
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    let mut fields = text_fields(&["table_catalog", "table_schema", "table_name", "column_name"]);
    fields.push(int("ordinal_position"));
    fields.extend(text_fields(&["column_default", "is_nullable", "data_type"]));
    fields.extend([
        int("character_maximum_length"),
        int("numeric_precision"),
        int("numeric_precision_radix"),
        int("numeric_scale"),
        int("datetime_precision"),
    ]);
    fields.extend(text_fields(&[
        "udt_catalog",
        "udt_schema",
        "udt_name",
        "is_updatable",
    ]));
    Arc::new(Schema::new(fields))
}

#[async_trait]
impl SchemaProvider for PgInformationSchema {
    fn table_names(&self) -> Vec<String> {
        TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let batch = match name.to_ascii_lowercase().as_str() {
            "tables" => self.tables(false).await?,
            "views" => self.tables(true).await?,
            "columns" => self.columns().await?,
            "schemata" => self.schemata()?,
            _ => return Ok(None),
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        TABLES.contains(&name.to_ascii_lowercase().as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::TimeUnit;

    #[test]
    fn arrow_types_map_to_postgres_names() {
        assert_eq!(pg_type(&DataType::Float64).0, "double precision");
        assert_eq!(pg_type(&DataType::Float64).1, "float8");
        assert_eq!(pg_type(&DataType::Utf8).1, "text");
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        assert_eq!(pg_type(&ts).0, "timestamp with time zone");
        assert_eq!(pg_type(&ts).1, "timestamptz");
        assert_eq!(pg_type(&DataType::Int64).0, "bigint");
        assert_eq!(pg_type(&DataType::Decimal128(10, 2)).2, Some(10));
    }
}
