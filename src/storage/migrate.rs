//! Layout migrations: a storage written by an older Quiver is upgraded step by step at
//! start-up. The steps live in the top-level `migrations/` folder, one file per version, so
//! the history of the on-disk format reads in one place.

use std::sync::Arc;

use anyhow::Context;
use futures::future::BoxFuture;
use object_store::ObjectStore;

#[path = "../../migrations/v0001_layout_version.rs"]
mod v0001;

/// The layout this build writes.
pub const CURRENT_LAYOUT_VERSION: u32 = 1;

/// Upgrades a manifest from version N to N+1; may read or rewrite objects in the store.
type Step = fn(
    Arc<dyn ObjectStore>,
    serde_json::Value,
) -> BoxFuture<'static, anyhow::Result<serde_json::Value>>;

/// `STEPS[n]` upgrades layout version n to n+1.
const STEPS: [Step; CURRENT_LAYOUT_VERSION as usize] = [v0001::upgrade];

/// Applies every step the manifest needs. Returns the upgraded manifest and whether it changed.
pub async fn upgrade(
    store: &Arc<dyn ObjectStore>,
    mut manifest: serde_json::Value,
) -> anyhow::Result<(serde_json::Value, bool)> {
    let start = layout_version(&manifest);
    if start > CURRENT_LAYOUT_VERSION {
        anyhow::bail!(
            "storage layout version {start} was written by a newer Quiver; this build reads up to version {CURRENT_LAYOUT_VERSION}"
        );
    }
    for version in start..CURRENT_LAYOUT_VERSION {
        tracing::info!(from = version, to = version + 1, "migrating storage layout");
        manifest = STEPS[version as usize](store.clone(), manifest)
            .await
            .with_context(|| format!("migrating storage layout {version} to {}", version + 1))?;
        manifest["layout_version"] = serde_json::json!(version + 1);
    }
    Ok((manifest, start != CURRENT_LAYOUT_VERSION))
}

/// A manifest without `layout_version` predates versioning: version 0.
fn layout_version(manifest: &serde_json::Value) -> u32 {
    manifest
        .get("layout_version")
        .and_then(|v| v.as_u64())
        .map(|v| v as u32)
        .unwrap_or(0)
}
