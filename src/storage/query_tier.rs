//! The read-only query tier's view of several writers' buckets, as Thanos's store gateway
//! and querier give: each source's manifest is read (never written), their blocks merged
//! into one manifest under ids namespaced by source (`<source>/<block id>`), HA replicas
//! deduplicated block by block, and one object store routes `blocks/<source>/…` to the
//! source's own store.
//!
//! Series identity across sources: a source's series get its external labels (those its
//! writer recorded in its manifest, overridden by the configuration) without the replica
//! labels, and its series ids are XORed with a salt derived from those labels. Two clusters
//! with the same series stay two series; two replicas of one set get the same labels and
//! ids, so they are one series, and the block selection keeps one copy of each time range.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use anyhow::Context;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result as StoreResult,
};

use crate::config::{QueryTierConfig, StorageConfig};
use crate::model::{Labels, SeriesId};

use super::block::{BlockMeta, BlockSeries};
use super::manifest::Manifest;
use super::objstore;

/// How one source's series appear in the merged view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    /// XORed into the source's series ids: zero for a source without external labels.
    pub salt: u64,
    /// External labels without the replica labels, added to each series lacking them.
    pub labels: Labels,
}

impl SourceView {
    fn new(labels: Labels) -> SourceView {
        let salt = match labels.is_empty() {
            true => 0,
            false => labels.stable_hash(),
        };
        SourceView { salt, labels }
    }

    /// The id a series of this source has in the merged view (and back: XOR is its own
    /// inverse).
    pub fn series_id(&self, id: SeriesId) -> SeriesId {
        id ^ self.salt
    }

    /// A block's series as the merged view has them.
    pub fn apply(&self, series: BlockSeries) -> BlockSeries {
        if self.salt == 0 && self.labels.is_empty() {
            return series;
        }
        let mut out = BlockSeries::default();
        for (metric, list) in series.by_metric {
            let list = list
                .into_iter()
                .map(|(id, labels)| {
                    let mut merged = labels.builder();
                    for (name, value) in self.labels.iter() {
                        if labels.get(name).is_none() {
                            merged.set(name, value.to_string());
                        }
                    }
                    (self.series_id(id), Arc::new(merged.labels()))
                })
                .collect();
            out.by_metric.insert(metric, list);
        }
        out
    }
}

/// One writer's bucket or prefix.
struct Source {
    name: String,
    store: Arc<dyn ObjectStore>,
    external_labels: Labels,
}

/// The sources a read-only node serves and how it merges them.
pub struct QueryTier {
    sources: Vec<Source>,
    replica_labels: Vec<String>,
}

impl QueryTier {
    /// Opens the stores of the configured sources; with none configured, the node's own
    /// `storage` backend is the one source (a reader beside its writer).
    pub fn open(
        tier: &QueryTierConfig,
        storage: &StorageConfig,
        data_dir: &FsPath,
        resolve: impl Fn(&FsPath) -> std::path::PathBuf,
    ) -> anyhow::Result<QueryTier> {
        let mut sources = Vec::new();
        for source in &tier.sources {
            let dir = source.path.as_deref().map(&resolve).unwrap_or_default();
            let store = objstore::build_backend(source.backend, source.s3.as_ref(), &dir)
                .with_context(|| format!("opening source {}", source.name))?;
            sources.push(Source {
                name: source.name.clone(),
                store,
                external_labels: source.external_labels.clone(),
            });
        }
        if sources.is_empty() {
            sources.push(Source {
                name: "local".to_string(),
                store: objstore::build(storage, data_dir)?,
                external_labels: Labels::default(),
            });
        }
        Ok(QueryTier {
            sources,
            replica_labels: tier.replica_labels.clone(),
        })
    }

    /// The store queries read blocks through: `blocks/<source>/<rest>` is `blocks/<rest>`
    /// of that source.
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::new(RoutingStore {
            sources: (self.sources.iter())
                .map(|s| (s.name.clone(), s.store.clone()))
                .collect(),
        })
    }

    /// Reads every source's manifest and merges them into one view.
    pub async fn merged_manifest(&self) -> anyhow::Result<Manifest> {
        let reads = self.sources.iter().map(|s| async move {
            Manifest::read_only(&s.store)
                .await
                .with_context(|| format!("reading the manifest of source {}", s.name))
        });
        let manifests = futures::future::try_join_all(reads).await?;
        let named: Vec<(&str, Labels, Manifest)> = (self.sources.iter())
            .zip(manifests)
            .map(|(s, m)| {
                let mut labels = m.external_labels.builder();
                for (name, value) in s.external_labels.iter() {
                    labels.set(name, value.to_string());
                }
                (s.name.as_str(), labels.labels(), m)
            })
            .collect();
        Ok(merge(named, &self.replica_labels))
    }
}

/// A replica set's external labels without the replica labels.
type ReplicaSet = Labels;

/// Merges the sources' manifests (name, external labels, manifest, in preference order):
/// every block under `<name>/<id>`, with its source's view; within a replica set (sources
/// with a replica label whose other external labels are equal) a block of a later replica
/// is kept only where no kept block of an earlier one overlaps it, raw or downsampled, so
/// each time range is read from one replica.
pub fn merge(sources: Vec<(&str, Labels, Manifest)>, replica_labels: &[String]) -> Manifest {
    let replica_names: Vec<&str> = replica_labels.iter().map(String::as_str).collect();
    let mut out = Manifest::default();
    // Kept time ranges per replica set (named by its view's labels).
    let mut kept: BTreeMap<ReplicaSet, Vec<(i64, i64)>> = BTreeMap::new();
    for (name, labels, manifest) in sources {
        let replica = labels.iter().any(|(n, _)| replica_names.contains(&n));
        let labels = labels.without(&replica_names);
        let view = Arc::new(SourceView::new(labels));
        let mut blocks: Vec<BlockMeta> = manifest.all_blocks().cloned().collect();
        // Only a source with a replica label is one replica of a set; others add up.
        if replica {
            let earlier = kept.entry(view.labels.clone()).or_default();
            blocks.retain(|b| !earlier.iter().any(|&(min, max)| b.overlaps(min, max - 1)));
            earlier.extend(blocks.iter().map(|b| (b.min_time, b.max_time)));
        }
        for mut block in blocks {
            block.id = format!("{name}/{}", block.id);
            block.source = block.source.map(|s| format!("{name}/{s}"));
            for names in block.metrics.values_mut() {
                names.extend(view.labels.iter().map(|(n, _)| n.to_string()));
            }
            block.view = Some(view.clone());
            out.add(block);
        }
    }
    out
}

/// Routes reads of `blocks/<source>/<rest>` to `blocks/<rest>` of the source's store;
/// refuses writes (a read-only node writes nothing).
struct RoutingStore {
    sources: BTreeMap<String, Arc<dyn ObjectStore>>,
}

impl RoutingStore {
    fn route(&self, location: &Path) -> StoreResult<(&Arc<dyn ObjectStore>, Path)> {
        let mut parts = location.parts();
        let (Some(top), Some(source)) = (parts.next(), parts.next()) else {
            return Err(not_found(location));
        };
        match (top.as_ref(), self.sources.get(source.as_ref())) {
            ("blocks", Some(store)) => {
                let rest = Path::from_iter(std::iter::once(top).chain(parts));
                Ok((store, rest))
            }
            _ => Err(not_found(location)),
        }
    }
}

fn not_found(location: &Path) -> object_store::Error {
    object_store::Error::NotFound {
        path: location.to_string(),
        source: "no source of this read-only node holds it".into(),
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported {
        source: "this node is read-only (--storage.read-only)".into(),
    }
}

impl fmt::Display for RoutingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.sources.keys().map(String::as_str).collect();
        write!(f, "RoutingStore({})", names.join(","))
    }
}

impl fmt::Debug for RoutingStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[async_trait]
impl ObjectStore for RoutingStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> StoreResult<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> StoreResult<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> StoreResult<GetResult> {
        let (store, path) = self.route(location)?;
        let mut result = store.get_opts(&path, options).await?;
        result.meta.location = location.clone();
        Ok(result)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> StoreResult<Vec<Bytes>> {
        let (store, path) = self.route(location)?;
        store.get_ranges(&path, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, StoreResult<Path>>,
    ) -> BoxStream<'static, StoreResult<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, _: Option<&Path>) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        futures::stream::once(async { Err(read_only()) }).boxed()
    }

    async fn list_with_delimiter(&self, _: Option<&Path>) -> StoreResult<ListResult> {
        Err(read_only())
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> StoreResult<()> {
        Err(read_only())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn block(id: &str, min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            id: id.to_string(),
            min_time: min,
            max_time: max,
            num_series: 1,
            num_samples: 1,
            data_bytes: 1,
            data_file_bytes: 1,
            metrics: [("up".to_string(), BTreeSet::from(["job".to_string()]))].into(),
            histogram_metrics: Default::default(),
            level: 1,
            resolution_ms: 0,
            source: None,
            view: None,
        }
    }

    fn manifest(blocks: &[(&str, i64, i64)]) -> Manifest {
        let mut m = Manifest::default();
        for (id, min, max) in blocks {
            m.add(block(id, *min, *max));
        }
        m
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        (pairs.iter())
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn ids(m: &Manifest) -> Vec<&str> {
        m.all_blocks().map(|b| b.id.as_str()).collect()
    }

    #[test]
    fn shards_are_a_union_and_replicas_one_copy_per_time_range() {
        let replicas = vec!["replica".to_string()];
        let merged = merge(
            vec![
                (
                    "eu",
                    labels(&[("cluster", "eu")]),
                    manifest(&[("a", 0, 10)]),
                ),
                (
                    "us",
                    labels(&[("cluster", "us")]),
                    manifest(&[("a", 0, 10)]),
                ),
            ],
            &replicas,
        );
        assert_eq!(ids(&merged), ["eu/a", "us/a"]);
        let views: Vec<&SourceView> = merged
            .blocks
            .iter()
            .flat_map(|b| &b.view)
            .map(|v| v.as_ref())
            .collect();
        assert_ne!(views[0].salt, views[1].salt);
        assert!(merged.blocks[0].metrics["up"].contains("cluster"));

        // An HA pair: r2 fills only what r1 lacks, whatever its block boundaries.
        let merged = merge(
            vec![
                (
                    "r1",
                    labels(&[("cluster", "x"), ("replica", "1")]),
                    manifest(&[("a", 0, 8), ("b", 20, 22)]),
                ),
                (
                    "r2",
                    labels(&[("cluster", "x"), ("replica", "2")]),
                    manifest(&[("c", 0, 2), ("d", 6, 10), ("e", 10, 20), ("f", 22, 24)]),
                ),
            ],
            &replicas,
        );
        assert_eq!(ids(&merged), ["r1/a", "r2/e", "r1/b", "r2/f"]);
        let salts: BTreeSet<u64> = merged
            .blocks
            .iter()
            .map(|b| b.view.as_ref().unwrap().salt)
            .collect();
        assert_eq!(salts.len(), 1, "replicas share ids");
        assert_eq!(
            merged.blocks[0].view.as_ref().unwrap().labels,
            labels(&[("cluster", "x")])
        );
    }

    #[test]
    fn sources_without_a_replica_label_are_never_deduplicated() {
        let merged = merge(
            vec![
                ("s1", Labels::default(), manifest(&[("a", 0, 10)])),
                ("s2", Labels::default(), manifest(&[("a", 0, 10)])),
            ],
            &["replica".to_string()],
        );
        assert_eq!(ids(&merged), ["s1/a", "s2/a"]);
    }

    #[test]
    fn a_source_without_external_labels_keeps_its_ids() {
        let merged = merge(
            vec![("only", Labels::default(), manifest(&[("a", 0, 10)]))],
            &[],
        );
        let view = merged.blocks[0].view.as_ref().unwrap();
        assert_eq!(view.salt, 0);
        assert_eq!(view.series_id(42), 42);
        let mut series = BlockSeries::default();
        let up = Arc::new(Labels::from_trusted(vec![("__name__".into(), "up".into())]));
        series.by_metric.insert("up".into(), vec![(42, up.clone())]);
        assert_eq!(view.apply(series).by_metric["up"], vec![(42, up)]);
    }

    #[test]
    fn external_labels_are_added_unless_the_series_has_them() {
        let view = SourceView::new(labels(&[("cluster", "eu"), ("job", "x")]));
        let mut series = BlockSeries::default();
        let up = Labels::from_trusted(vec![
            ("__name__".into(), "up".into()),
            ("job".into(), "node".into()),
        ]);
        series
            .by_metric
            .insert("up".into(), vec![(7, Arc::new(up))]);
        let out = view.apply(series);
        let (id, labels) = &out.by_metric["up"][0];
        assert_eq!(*id, 7 ^ view.salt);
        assert_eq!(labels.to_string(), r#"up{cluster="eu", job="node"}"#);
    }

    #[tokio::test]
    async fn reads_route_to_the_source_and_writes_are_refused() {
        let eu: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        eu.put(
            &Path::from("blocks/b1/data.parquet"),
            vec![1u8, 2, 3].into(),
        )
        .await
        .unwrap();
        let routing = RoutingStore {
            sources: [("eu".to_string(), eu)].into(),
        };
        let path = Path::from("blocks/eu/b1/data.parquet");
        let got = routing.get(&path).await.unwrap();
        assert_eq!(got.meta.location, path);
        assert_eq!(got.bytes().await.unwrap().as_ref(), [1, 2, 3]);
        let ranges = routing.get_ranges(&path, &[1..3, 0..1]).await.unwrap();
        assert_eq!(
            (ranges[0].as_ref(), ranges[1].as_ref()),
            (&[2, 3][..], &[1][..])
        );
        for missing in ["blocks/us/b1/data.parquet", "manifest.json"] {
            let err = routing.get(&Path::from(missing)).await.unwrap_err();
            assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
        }
        let err = routing.put(&path, vec![0u8].into()).await.unwrap_err();
        assert!(matches!(err, object_store::Error::NotSupported { .. }));
    }
}
