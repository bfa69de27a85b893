//! Snapshots, as Prometheus's `POST /api/v1/admin/tsdb/snapshot`: a consistent copy of the
//! data under `snapshots/<name>/` of the same store (the data directory, or the bucket and
//! prefix), laid out as a storage of its own: the blocks of the manifest copied (a hard
//! link or a server-side copy, by the store), the head's samples written as blocks of
//! their windows (unless `skip_head`), and a manifest naming them, published last. A Quiver
//! started on that folder (`--storage.tsdb.path`, or `storage.s3.prefix`) serves it.
//!
//! Consistency: the snapshot holds a read lease on the manifest it copies, so the head
//! keeps every sample at or after that manifest's `flushed_until` until the snapshot is
//! done, even while a cut publishes a newer manifest meanwhile; blocks that a compaction
//! retires stay in the store for the deletion delay.

use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

use super::block::BlockData;
use super::manifest::Manifest;
use super::querier::Lease;
use super::{Storage, blocking, new_block_id};

/// The folder of the store that holds snapshots.
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// What a snapshot holds.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    /// The folder's name under `snapshots/`, as Prometheus names it: the UTC time and a
    /// random suffix.
    pub name: String,
    /// Blocks copied from the storage.
    pub blocks_copied: usize,
    /// Blocks written from the head.
    pub head_blocks: usize,
    pub head_samples: usize,
}

impl Storage {
    /// Writes a snapshot; see the module's documentation.
    pub async fn write_snapshot(self: &Arc<Self>, skip_head: bool) -> anyhow::Result<SnapshotInfo> {
        let name = snapshot_name();
        let prefix = format!("{SNAPSHOTS_DIR}/{name}");
        let target: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(
            self.store.clone(),
            prefix.as_str(),
        ));
        let lease = Lease::take(self);
        let source = lease.manifest.clone();
        let mut manifest = Manifest {
            flushed_until: source.flushed_until,
            external_labels: source.external_labels.clone(),
            ..Manifest::default()
        };
        let mut info = SnapshotInfo {
            name,
            blocks_copied: 0,
            head_blocks: 0,
            head_samples: 0,
        };
        for block in source.all_blocks() {
            for path in block.paths() {
                let to = Path::from(format!("{prefix}/{path}"));
                self.store
                    .copy(&path, &to)
                    .await
                    .with_context(|| format!("copying {path} into the snapshot"))?;
            }
            manifest.add(block.clone());
            info.blocks_copied += 1;
        }
        if !skip_head {
            let from = source.flushed_until.unwrap_or(i64::MIN);
            for (start, end) in self.head_windows(from) {
                let storage = self.clone();
                let encoded = blocking(move || {
                    let data = BlockData::from_head(&storage.head, start.max(from), end);
                    if data.is_empty() {
                        return Ok(None);
                    }
                    let samples = data.num_samples();
                    data.encode(new_block_id(start)).map(|e| Some((e, samples)))
                })
                .await?;
                if let Some((encoded, samples)) = encoded {
                    manifest.add(encoded.upload(&target).await?);
                    info.head_blocks += 1;
                    info.head_samples += samples;
                }
                // Samples before this are all in the snapshot's blocks now.
                manifest.flushed_until = Some(end);
            }
        }
        drop(lease);
        manifest
            .publish(&target)
            .await
            .context("publishing the snapshot's manifest")?;
        tracing::info!(
            name = %info.name,
            blocks_copied = info.blocks_copied,
            head_blocks = info.head_blocks,
            head_samples = info.head_samples,
            "snapshot written"
        );
        Ok(info)
    }

    /// The block windows the head's samples at or after `from` fall in, oldest first.
    fn head_windows(&self, from: i64) -> Vec<(i64, i64)> {
        let (Some(min), Some(max)) = (self.head.min_time(), self.head.max_time()) else {
            return Vec::new();
        };
        let range = self.options.config.block_duration.as_millis_i64().max(1);
        let mut start = min.max(from).div_euclid(range) * range;
        let mut windows = Vec::new();
        while start <= max {
            windows.push((start, start + range));
            start += range;
        }
        windows
    }
}

/// `20261206T150405Z-` and 16 random hex digits, as Prometheus names snapshots.
fn snapshot_name() -> String {
    format!(
        "{}-{:016x}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        u64::from_le_bytes(crate::model::random_bytes::<8>())
    )
}
