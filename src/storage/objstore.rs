//! Builds the object store blocks live in: the local filesystem under the data directory, or
//! an S3-compatible bucket (under an optional prefix).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;

use crate::config::{Backend, S3Config, StorageConfig};

pub fn build(config: &StorageConfig, data_dir: &Path) -> anyhow::Result<Arc<dyn ObjectStore>> {
    build_backend(config.backend, config.s3.as_ref(), data_dir)
}

/// The store of `backend`: `data_dir` for a local one, the bucket of `s3` otherwise.
pub fn build_backend(
    backend: Backend,
    s3: Option<&S3Config>,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn ObjectStore>> {
    match backend {
        Backend::Local => {
            std::fs::create_dir_all(data_dir)
                .with_context(|| format!("creating data directory {}", data_dir.display()))?;
            // A deleted block's folder goes with its last file.
            let store = LocalFileSystem::new_with_prefix(data_dir)
                .with_context(|| format!("opening {} as object store", data_dir.display()))?
                .with_automatic_cleanup(true);
            Ok(Arc::new(store))
        }
        Backend::S3 => {
            let s3 = s3.context("storage.backend is s3 but storage.s3 is missing")?;
            build_s3(s3)
        }
    }
}

fn build_s3(s3: &S3Config) -> anyhow::Result<Arc<dyn ObjectStore>> {
    // from_env picks up AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT,
    // ...; explicit settings in the config file win.
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(&s3.bucket);
    if let Some(endpoint) = &s3.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = &s3.region {
        builder = builder.with_region(region);
    }
    if let Some(key) = &s3.access_key_id {
        builder = builder.with_access_key_id(key);
    }
    if let Some(secret) = &s3.secret_access_key {
        builder = builder.with_secret_access_key(secret);
    }
    if s3.allow_http {
        builder = builder.with_allow_http(true);
    }
    builder = builder.with_retry(object_store::RetryConfig {
        retry_timeout: s3.retry_timeout.0,
        ..object_store::RetryConfig::default()
    });
    let store = builder
        .build()
        .with_context(|| format!("configuring S3 bucket {:?}", s3.bucket))?;
    let prefix = s3.prefix.trim_matches('/');
    if prefix.is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}
