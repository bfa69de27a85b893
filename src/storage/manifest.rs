//! The block manifest: which blocks exist, up to when the head has been cut, and the layout
//! version. It is one JSON object, `manifest.json`, replaced whole by a single put, so a
//! reader sees the old or the new manifest and never a mix.

use std::sync::Arc;

use anyhow::Context;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::block::BlockMeta;
use super::migrate;

pub const MANIFEST_PATH: &str = "manifest.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub layout_version: u32,
    /// Every sample older than this is in a block; the head holds only newer ones.
    pub flushed_until: Option<i64>,
    pub blocks: Vec<BlockMeta>,
    /// Downsampled copies of blocks (each with its `resolution_ms` and `source`); they stay
    /// when raw retention retires their source.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub downsampled: Vec<BlockMeta>,
    /// Blocks no longer part of the data (replaced by compaction or a deletion, or past
    /// retention) whose objects stay until `delete_after`, for queries planned before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<DeletedBlock>,
    /// The writer's `global.external_labels`, which a read-only node adds to its series.
    #[serde(default, skip_serializing_if = "crate::model::Labels::is_empty")]
    pub external_labels: crate::model::Labels,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeletedBlock {
    pub id: String,
    /// When its objects may go, in ms since the epoch.
    pub delete_after: i64,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            layout_version: migrate::CURRENT_LAYOUT_VERSION,
            flushed_until: None,
            blocks: Vec::new(),
            downsampled: Vec::new(),
            deleted: Vec::new(),
            external_labels: Default::default(),
        }
    }
}

impl Manifest {
    /// Takes the blocks `ids` names (raw or downsampled) out of the data, to be deleted
    /// after `delete_after`. Returns false, changing nothing, unless every one of them is in
    /// the data.
    pub fn retire(&mut self, ids: &[&str], delete_after: i64) -> bool {
        let live = |id: &str| self.all_blocks().any(|b| b.id == id);
        if !ids.iter().all(|id| live(id)) {
            return false;
        }
        self.blocks.retain(|b| !ids.contains(&b.id.as_str()));
        self.downsampled.retain(|b| !ids.contains(&b.id.as_str()));
        self.deleted.extend(ids.iter().map(|id| DeletedBlock {
            id: id.to_string(),
            delete_after,
        }));
        true
    }

    /// Adds a block (to the raw or the downsampled list by its resolution), keeping the
    /// list ordered by time.
    pub fn add(&mut self, block: BlockMeta) {
        let list = match block.resolution_ms {
            0 => &mut self.blocks,
            _ => &mut self.downsampled,
        };
        list.push(block);
        list.sort_by_key(|b| (b.resolution_ms, b.min_time, b.level));
    }

    /// Raw blocks, then downsampled ones.
    pub fn all_blocks(&self) -> impl Iterator<Item = &BlockMeta> {
        self.blocks.iter().chain(&self.downsampled)
    }

    /// The downsampled blocks of one resolution.
    pub fn at_resolution(&self, resolution_ms: i64) -> impl Iterator<Item = &BlockMeta> {
        self.downsampled
            .iter()
            .filter(move |b| b.resolution_ms == resolution_ms)
    }

    /// The ids of the downsampled copies made from any of `sources`.
    pub fn copies_of(&self, sources: &[&str]) -> Vec<String> {
        (self.downsampled.iter())
            .filter(|b| b.source.as_deref().is_some_and(|s| sources.contains(&s)))
            .map(|b| b.id.clone())
            .collect()
    }

    /// Whether the manifest names the block, in the data or waiting for deletion.
    pub fn knows(&self, id: &str) -> bool {
        self.all_blocks().any(|b| b.id == id) || self.deleted.iter().any(|d| d.id == id)
    }

    /// Reads the manifest, upgrading an older layout (and saving the upgrade) first.
    /// A missing manifest is a new, empty storage.
    pub async fn load(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Manifest> {
        let Some(raw) = Self::fetch(store).await? else {
            return Ok(Manifest::default());
        };
        let (upgraded, changed) = migrate::upgrade(store, raw).await?;
        let manifest: Manifest =
            serde_json::from_value(upgraded).context("manifest.json does not match the layout")?;
        if changed {
            manifest.publish(store).await?;
        }
        Ok(manifest)
    }

    /// Reads the manifest as a reader that never writes (a read-only node): a missing one
    /// is empty; an older layout is an error until its writer upgrades it at start-up.
    pub async fn read_only(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Manifest> {
        let Some(raw) = Self::fetch(store).await? else {
            return Ok(Manifest::default());
        };
        let version = raw.get("layout_version").and_then(|v| v.as_u64());
        if version != Some(u64::from(migrate::CURRENT_LAYOUT_VERSION)) {
            anyhow::bail!(
                "manifest.json has layout version {version:?}; this build reads version {} (a writer of this build upgrades it when it starts)",
                migrate::CURRENT_LAYOUT_VERSION
            );
        }
        serde_json::from_value(raw).context("manifest.json does not match the layout")
    }

    /// The stored manifest as JSON; None when there is none.
    async fn fetch(store: &Arc<dyn ObjectStore>) -> anyhow::Result<Option<serde_json::Value>> {
        let path = Path::from(MANIFEST_PATH);
        let bytes = match store.get(&path).await {
            Ok(result) => result.bytes().await.context("reading manifest.json")?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e).context("reading manifest.json"),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .context("manifest.json is not valid JSON")
    }

    /// Replaces the stored manifest with this one in a single atomic put.
    pub async fn publish(&self, store: &Arc<dyn ObjectStore>) -> anyhow::Result<()> {
        let body = serde_json::to_vec_pretty(self)?;
        store
            .put(&Path::from(MANIFEST_PATH), PutPayload::from(body))
            .await
            .context("publishing manifest.json")?;
        Ok(())
    }
}
