//! The write-ahead log: every accepted write is framed, checksummed and written here before
//! it is acknowledged, and replayed into the head after a restart.
//!
//! Layout: `wal/` holds numbered segment files (`00000001`, ...). A segment is a sequence of
//! frames `[u32 payload length][u32 crc32 of payload][payload]`, little-endian. One append
//! request is one frame, so a replay sees a request whole or not at all.
//!
//! When a block is cut, the closed segments are rewritten into one that keeps only what the
//! head still holds (a checkpoint, see [`Wal::checkpoint_closed_segments`]), with no lock
//! held while the files are read and written. A deletion checkpoints differently: it writes
//! the head's content into a fresh segment and deletes the older ones. A crash part-way
//! through either leaves old and new side by side, and replay is still right because
//! applying a sample twice keeps one value.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;

use crate::config::{FsyncPolicy, WalConfig};
use crate::metrics::StorageMetrics;
use crate::model::{Histogram, Labels, SeriesId};

use super::histogram_codec;
use super::walsync::GroupSync;

const FRAME_HEADER_LEN: usize = 8;
/// Samples per frame of a checkpoint.
pub const CHECKPOINT_RECORD_SAMPLES: usize = 64 * 1024;
/// A frame larger than this is treated as corruption rather than allocated.
const MAX_FRAME_LEN: u32 = 1 << 30;
const KIND_APPEND: u8 = 1;
/// A KIND_APPEND payload compressed with snappy (raw format): label sets and timestamps
/// repeat a lot, and the WAL is written once and read only at start-up.
const KIND_APPEND_SNAPPY: u8 = 2;

/// One logical WAL entry: series first seen in this write, then the samples of the write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalRecord {
    pub new_series: Vec<(SeriesId, Labels)>,
    pub samples: Vec<WalSample>,
    pub histograms: Vec<WalHistogram>,
}

/// A native histogram sample of a series.
#[derive(Debug, Clone, PartialEq)]
pub struct WalHistogram {
    pub series: SeriesId,
    pub timestamp_ms: i64,
    /// 0 when unknown.
    pub start_timestamp_ms: i64,
    pub histogram: Arc<Histogram>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WalSample {
    pub series: SeriesId,
    pub timestamp_ms: i64,
    pub value: f64,
    /// 0 when unknown (see [`crate::model::Sample`]).
    pub start_timestamp_ms: i64,
}

/// What replay found, for logs and `/api/v1/status/walreplay`.
#[derive(Debug, Clone, Default)]
pub struct ReplayReport {
    pub segments: usize,
    pub records: usize,
    /// Segments that ended in a torn or corrupt frame and were truncated there.
    pub truncated: Vec<(PathBuf, u64, String)>,
}

struct Writer {
    file: File,
    segment: u64,
    size: u64,
    /// Sequence number of the last frame written.
    written_seq: u64,
    /// Bytes in the segments before this one (for the WAL size metric).
    older_bytes: u64,
    /// Segments closed by a rotation whose data may not be on stable storage yet: the next
    /// sync fsyncs them, outside the writer lock, so a rotation costs appenders no fsync.
    unsynced: Vec<File>,
    /// A failed write left bytes that could not be cut off: rotate before the next frame.
    torn: bool,
}

pub struct Wal {
    dir: PathBuf,
    config: WalConfig,
    writer: Arc<Mutex<Writer>>,
    /// The fsyncs of the `always` policy and of [`Wal::sync_all`] (group commit).
    group: GroupSync,
    metrics: StorageMetrics,
}

impl Wal {
    /// Replays every segment in `dir` (truncating a torn tail), then opens a new segment
    /// for writing. Returns the WAL and the records in write order.
    pub fn open(
        dir: &Path,
        config: WalConfig,
        metrics: StorageMetrics,
    ) -> anyhow::Result<(Wal, Vec<WalRecord>, ReplayReport)> {
        fs::create_dir_all(dir)
            .with_context(|| format!("creating WAL directory {}", dir.display()))?;
        let segments = list_segments(dir)?;
        let mut report = ReplayReport {
            segments: segments.len(),
            ..Default::default()
        };
        let mut records = Vec::new();
        for (_, path) in &segments {
            replay_segment(path, &mut records, &mut report)?;
        }
        report.records = records.len();
        let next = segments.last().map(|(n, _)| n + 1).unwrap_or(1);
        let writer = Arc::new(Mutex::new(Writer::create(dir, next)?));
        let group = GroupSync::spawn(Box::new({
            let (writer, metrics) = (writer.clone(), metrics.clone());
            move || sync_written(&writer, &metrics)
        }))?;
        let wal = Wal {
            dir: dir.to_path_buf(),
            config,
            writer,
            group,
            metrics,
        };
        wal.update_size_metric();
        Ok((wal, records, report))
    }

    /// Writes one record. It is in the operating system's hands on return (safe from a
    /// process crash); call [`Wal::sync`] to make it durable per the fsync policy.
    pub fn append(&self, record: &WalRecord) -> anyhow::Result<u64> {
        let frame = encode_frame(record);
        let mut writer = lock(&self.writer);
        if writer.torn
            || (writer.size > 0
                && writer.size + frame.len() as u64 > self.config.segment_size_bytes)
        {
            writer.rotate(&self.dir)?;
        }
        writer.write_frame(&frame)?;
        self.metrics
            .wal_bytes
            .set((writer.older_bytes + writer.size) as i64);
        Ok(writer.written_seq)
    }

    /// Starts making everything up to `seq` durable when the policy is `always`, and
    /// returns at once: the writer applies its samples meanwhile, then calls [`Wal::sync`].
    pub fn begin_sync(&self, seq: u64) {
        if self.config.fsync == FsyncPolicy::Always {
            self.group.request(seq);
        }
    }

    /// Makes everything up to `seq` durable when the policy is `always`; otherwise returns
    /// at once (the background syncer or the OS does it).
    pub fn sync(&self, seq: u64) -> anyhow::Result<()> {
        if self.config.fsync != FsyncPolicy::Always {
            return Ok(());
        }
        self.group.wait(seq)
    }

    /// Syncs whatever has been written so far (used by the interval policy and on shutdown).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        let seq = lock(&self.writer).written_seq;
        self.group.wait(seq)
    }

    /// Starts a new segment holding `records` (the head's surviving content), makes it
    /// durable, then deletes every older segment.
    pub fn checkpoint(&self, records: &[WalRecord]) -> anyhow::Result<()> {
        let mut writer = lock(&self.writer);
        writer.rotate(&self.dir)?;
        let checkpoint_segment = writer.segment;
        for record in records {
            writer.write_frame(&encode_frame(record))?;
        }
        writer.file.sync_data().context("fsync of WAL checkpoint")?;
        self.metrics.wal_fsyncs.inc();
        self.group.mark_synced(writer.written_seq);
        for (n, path) in list_segments(&self.dir)? {
            if n < checkpoint_segment {
                fs::remove_file(&path)
                    .with_context(|| format!("removing old WAL segment {}", path.display()))?;
            }
        }
        writer.older_bytes = 0;
        writer.unsynced.clear();
        self.metrics.wal_bytes.set(writer.size as i64);
        Ok(())
    }

    /// Prometheus's checkpoint, for after a block cut: closes the current segment (new
    /// writes go on into the next one), then rewrites every closed segment into one that
    /// keeps only the samples at or after `keep_from` and the series `keep_series` names or
    /// those samples use, and deletes the rest. Appenders wait only for the segment switch;
    /// the rewriting reads and writes files under no lock, so call it off the async
    /// runtime's workers. Returns the number of samples kept.
    ///
    /// The checkpoint replaces the newest closed segment by a rename, then the older ones
    /// are deleted. A crash before the rename leaves the old segments; one after it leaves
    /// some of them beside a checkpoint that repeats their surviving samples in the same
    /// order, which replays to the same head because a later write of a timestamp wins.
    pub fn checkpoint_closed_segments(
        &self,
        keep_from: i64,
        keep_series: &dyn Fn(SeriesId) -> bool,
    ) -> anyhow::Result<usize> {
        let last_closed = {
            let mut writer = lock(&self.writer);
            writer.rotate(&self.dir)?;
            writer.segment - 1
        };
        let closed: Vec<(u64, PathBuf)> = list_segments(&self.dir)?
            .into_iter()
            .filter(|(n, _)| *n <= last_closed)
            .collect();
        if closed.is_empty() {
            return Ok(0);
        }
        let tmp = self.dir.join("checkpoint.tmp");
        let mut out = File::create(&tmp)
            .with_context(|| format!("creating WAL checkpoint {}", tmp.display()))?;
        let mut kept_samples = 0;
        let mut pending = WalRecord::default();
        for (_, path) in &closed {
            let mut records = Vec::new();
            read_segment(path, &mut records)?;
            for record in records {
                let samples: Vec<WalSample> = record
                    .samples
                    .into_iter()
                    .filter(|s| s.timestamp_ms >= keep_from)
                    .collect();
                let histograms: Vec<WalHistogram> = record
                    .histograms
                    .into_iter()
                    .filter(|h| h.timestamp_ms >= keep_from)
                    .collect();
                let used: std::collections::HashSet<SeriesId> = samples
                    .iter()
                    .map(|s| s.series)
                    .chain(histograms.iter().map(|h| h.series))
                    .collect();
                pending.new_series.extend(
                    record
                        .new_series
                        .into_iter()
                        .filter(|(id, _)| used.contains(id) || keep_series(*id)),
                );
                kept_samples += samples.len() + histograms.len();
                pending.samples.extend(samples);
                pending.histograms.extend(histograms);
                if pending.samples.len() + pending.histograms.len() >= CHECKPOINT_RECORD_SAMPLES {
                    out.write_all(&encode_frame(&pending))
                        .context("writing WAL checkpoint")?;
                    pending = WalRecord::default();
                }
            }
        }
        if !pending.samples.is_empty()
            || !pending.histograms.is_empty()
            || !pending.new_series.is_empty()
        {
            out.write_all(&encode_frame(&pending))
                .context("writing WAL checkpoint")?;
        }
        out.sync_data().context("fsync of WAL checkpoint")?;
        drop(out);
        let target = segment_path(&self.dir, last_closed);
        fs::rename(&tmp, &target)
            .with_context(|| format!("renaming the WAL checkpoint to {}", target.display()))?;
        sync_dir(&self.dir)?;
        for (n, path) in &closed {
            if *n < last_closed {
                fs::remove_file(path)
                    .with_context(|| format!("removing old WAL segment {}", path.display()))?;
            }
        }
        self.metrics.wal_fsyncs.inc();
        self.update_size_metric();
        Ok(kept_samples)
    }

    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.config.fsync
    }

    fn update_size_metric(&self) {
        let mut writer = lock(&self.writer);
        writer.older_bytes = list_segments(&self.dir)
            .map(|segs| {
                segs.iter()
                    .filter_map(|(_, p)| fs::metadata(p).ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        self.metrics.wal_bytes.set(writer.older_bytes as i64);
    }
}

impl Writer {
    fn create(dir: &Path, segment: u64) -> anyhow::Result<Writer> {
        let path = segment_path(dir, segment);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("creating WAL segment {}", path.display()))?;
        sync_dir(dir)?;
        Ok(Writer {
            file,
            segment,
            size: 0,
            written_seq: 0,
            older_bytes: 0,
            unsynced: Vec::new(),
            torn: false,
        })
    }

    /// Continues in a new segment. The closed one is fsynced by the next sync, not here.
    fn rotate(&mut self, dir: &Path) -> anyhow::Result<()> {
        let next = Writer::create(dir, self.segment + 1)?;
        let closed = std::mem::replace(&mut self.file, next.file);
        self.unsynced.push(closed);
        self.segment = next.segment;
        self.older_bytes += self.size;
        self.size = 0;
        self.torn = false;
        Ok(())
    }

    /// Appends one frame whole or not at all: a write that fails part-way (a full disk)
    /// is cut off again, so the frames after it do not follow a torn one, which replay
    /// would stop at, dropping them.
    fn write_frame(&mut self, frame: &[u8]) -> anyhow::Result<()> {
        if let Err(e) = self.file.write_all(frame) {
            if let Err(cut) = self.file.set_len(self.size) {
                // Append nothing after the torn bytes: the next frame starts a new segment.
                tracing::error!(error = %cut, "cutting a torn WAL frame off failed");
                self.torn = true;
            }
            return Err(e).context("writing WAL frame");
        }
        self.size += frame.len() as u64;
        self.written_seq += 1;
        Ok(())
    }
}

/// fsyncs the segments closed since the last sync and the current one; returns the
/// sequence number of the last frame that is now durable. Runs on the sync thread.
fn sync_written(writer: &Mutex<Writer>, metrics: &StorageMetrics) -> anyhow::Result<u64> {
    let (file, upto, closed) = {
        let mut writer = lock(writer);
        (
            writer.file.try_clone().context("cloning WAL file handle")?,
            writer.written_seq,
            std::mem::take(&mut writer.unsynced),
        )
    };
    let started = Instant::now();
    for old in closed {
        old.sync_data().context("fsync of a closed WAL segment")?;
    }
    file.sync_data().context("fsync of WAL segment")?;
    metrics.wal_fsyncs.inc();
    metrics
        .wal_fsync_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(upto)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a WAL lock leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:08}"))
}

fn list_segments(dir: &Path) -> anyhow::Result<Vec<(u64, PathBuf)>> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        if let Some(n) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u64>().ok())
        {
            segments.push((n, entry.path()));
        }
    }
    segments.sort();
    Ok(segments)
}

fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// Where a segment's frames stopped early (a torn or corrupt frame): the byte offset and why.
type BadTail = Option<(u64, String)>;

/// Every good frame of a segment, in order, and where and why the frames stopped early, if
/// they did.
fn read_frames(path: &Path) -> anyhow::Result<(Vec<WalRecord>, BadTail)> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .with_context(|| format!("reading WAL segment {}", path.display()))?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < data.len() {
        match decode_frame(&data[offset..]) {
            Ok((record, len)) => {
                records.push(record);
                offset += len;
            }
            Err(reason) => return Ok((records, Some((offset as u64, reason)))),
        }
    }
    Ok((records, None))
}

/// Reads frames until the end or the first bad frame; a bad frame and everything after it in
/// that segment are cut off, because a torn write can only be at the tail.
fn replay_segment(
    path: &Path,
    records: &mut Vec<WalRecord>,
    report: &mut ReplayReport,
) -> anyhow::Result<()> {
    let (good, bad) = read_frames(path)?;
    records.extend(good);
    if let Some((offset, reason)) = bad {
        tracing::warn!(
            segment = %path.display(),
            offset,
            %reason,
            "WAL segment has a torn or corrupt tail; truncating it there"
        );
        truncate(path, offset)?;
        report.truncated.push((path.to_path_buf(), offset, reason));
    }
    Ok(())
}

/// Reads every frame of a closed segment; unlike replay, a bad frame is an error: replay
/// at start-up already cut torn tails, so one now means the file was damaged since.
fn read_segment(path: &Path, records: &mut Vec<WalRecord>) -> anyhow::Result<()> {
    let (good, bad) = read_frames(path)?;
    if let Some((offset, reason)) = bad {
        anyhow::bail!(
            "WAL segment {} at offset {offset}: {reason}",
            path.display()
        );
    }
    records.extend(good);
    Ok(())
}

fn truncate(path: &Path, len: u64) -> anyhow::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .with_context(|| format!("opening {} to truncate", path.display()))?;
    file.set_len(len)
        .and_then(|_| file.sync_all())
        .with_context(|| format!("truncating {}", path.display()))
}

fn encode_frame(record: &WalRecord) -> Vec<u8> {
    let mut payload = Vec::with_capacity(16 + record.samples.len() * 24);
    payload.push(KIND_APPEND);
    payload.extend_from_slice(&(record.new_series.len() as u32).to_le_bytes());
    for (id, labels) in &record.new_series {
        payload.extend_from_slice(&id.to_le_bytes());
        payload.extend_from_slice(&(labels.len() as u32).to_le_bytes());
        for (name, value) in labels.iter() {
            put_str(&mut payload, name);
            put_str(&mut payload, value);
        }
    }
    payload.extend_from_slice(&(record.samples.len() as u32).to_le_bytes());
    for s in &record.samples {
        payload.extend_from_slice(&s.series.to_le_bytes());
        payload.extend_from_slice(&s.timestamp_ms.to_le_bytes());
        payload.extend_from_slice(&s.value.to_bits().to_le_bytes());
    }
    put_start_timestamps(&mut payload, &record.samples, !record.histograms.is_empty());
    put_histograms(&mut payload, &record.histograms);
    let payload = compress_payload(payload);
    let mut frame = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Replaces `[KIND_APPEND][body]` by `[KIND_APPEND_SNAPPY][snappy(body)]` when that is
/// smaller.
fn compress_payload(payload: Vec<u8>) -> Vec<u8> {
    let Ok(compressed) = snap::raw::Encoder::new().compress_vec(&payload[1..]) else {
        return payload;
    };
    if compressed.len() + 1 >= payload.len() {
        return payload;
    }
    let mut out = Vec::with_capacity(compressed.len() + 1);
    out.push(KIND_APPEND_SNAPPY);
    out.extend_from_slice(&compressed);
    out
}

/// Start timestamps follow the samples only when one is known (or histograms follow them),
/// so records of sources that send none stay as small as before; readers that predate
/// them stop at the samples.
fn put_start_timestamps(payload: &mut Vec<u8>, samples: &[WalSample], always: bool) {
    if !always && samples.iter().all(|s| s.start_timestamp_ms == 0) {
        return;
    }
    payload.extend_from_slice(&(samples.len() as u32).to_le_bytes());
    for s in samples {
        payload.extend_from_slice(&s.start_timestamp_ms.to_le_bytes());
    }
}

/// Native histograms follow the start timestamps (always written when histograms are):
/// a count, then per histogram its series, time, start time and byte form.
fn put_histograms(payload: &mut Vec<u8>, histograms: &[WalHistogram]) {
    if histograms.is_empty() {
        return;
    }
    payload.extend_from_slice(&(histograms.len() as u32).to_le_bytes());
    for h in histograms {
        payload.extend_from_slice(&h.series.to_le_bytes());
        payload.extend_from_slice(&h.timestamp_ms.to_le_bytes());
        payload.extend_from_slice(&h.start_timestamp_ms.to_le_bytes());
        histogram_codec::encode(&h.histogram, payload);
    }
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Decodes one frame from the start of `data`; returns the record and the frame's length.
fn decode_frame(data: &[u8]) -> Result<(WalRecord, usize), String> {
    if data.len() < FRAME_HEADER_LEN {
        return Err(format!("torn frame header ({} bytes)", data.len()));
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len > MAX_FRAME_LEN {
        return Err(format!("implausible frame length {len}"));
    }
    let end = FRAME_HEADER_LEN + len as usize;
    if data.len() < end {
        return Err(format!(
            "torn frame: {} of {len} payload bytes present",
            data.len() - FRAME_HEADER_LEN
        ));
    }
    let payload = &data[FRAME_HEADER_LEN..end];
    if crc32fast::hash(payload) != crc {
        return Err("checksum mismatch".to_string());
    }
    let record = decode_payload(payload).map_err(|e| format!("undecodable payload: {e}"))?;
    Ok((record, end))
}

fn decode_payload(payload: &[u8]) -> io::Result<WalRecord> {
    let decompressed;
    let body = match payload.first() {
        Some(&KIND_APPEND) => &payload[1..],
        Some(&KIND_APPEND_SNAPPY) => {
            decompressed = snap::raw::Decoder::new()
                .decompress_vec(&payload[1..])
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            decompressed.as_slice()
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "unknown record kind",
            ));
        }
    };
    let mut r = Reader(body);
    let mut record = WalRecord::default();
    for _ in 0..r.u32()? {
        let id = r.u64()?;
        let n = r.u32()?;
        let mut pairs = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            pairs.push((r.string()?, r.string()?));
        }
        record.new_series.push((id, Labels::from_trusted(pairs)));
    }
    for _ in 0..r.u32()? {
        record.samples.push(WalSample {
            series: r.u64()?,
            timestamp_ms: r.u64()? as i64,
            value: f64::from_bits(r.u64()?),
            start_timestamp_ms: 0,
        });
    }
    if !r.0.is_empty() {
        let n = r.u32()? as usize;
        if n != record.samples.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{n} start timestamps for {} samples", record.samples.len()),
            ));
        }
        for s in record.samples.iter_mut() {
            s.start_timestamp_ms = r.u64()? as i64;
        }
    }
    if !r.0.is_empty() {
        for _ in 0..r.u32()? {
            let series = r.u64()?;
            let timestamp_ms = r.u64()? as i64;
            let start_timestamp_ms = r.u64()? as i64;
            let histogram = histogram_codec::decode(&mut r.0)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            record.histograms.push(WalHistogram {
                series,
                timestamp_ms,
                start_timestamp_ms,
                histogram: Arc::new(histogram),
            });
        }
    }
    Ok(record)
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> io::Result<&[u8]> {
        if self.0.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "short payload",
            ));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u32(&mut self) -> io::Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> io::Result<u64> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64, ts: i64) -> WalRecord {
        WalRecord {
            new_series: vec![(
                id,
                Labels::from_trusted(vec![("__name__".into(), "m".into())]),
            )],
            samples: vec![WalSample {
                series: id,
                timestamp_ms: ts,
                value: ts as f64,
                start_timestamp_ms: 0,
            }],
            histograms: Vec::new(),
        }
    }

    #[test]
    fn histograms_round_trip_and_records_without_them_keep_their_bytes() {
        use crate::model::histogram::Span;
        let floats = record(7, 1000);
        let plain = encode_frame(&floats);
        // What a writer before histograms wrote: no section after the samples.
        let (back, _) = decode_frame(&plain).unwrap();
        assert_eq!(back, floats);
        let mut with = floats.clone();
        with.histograms.push(WalHistogram {
            series: 7,
            timestamp_ms: 2000,
            start_timestamp_ms: 1500,
            histogram: Arc::new(Histogram {
                schema: 3,
                count: 4.0,
                sum: 1.5,
                positive_spans: vec![Span {
                    offset: 2,
                    length: 2,
                }],
                positive_buckets: vec![1.0, 3.0],
                ..Default::default()
            }),
        });
        let frame = encode_frame(&with);
        let (back, len) = decode_frame(&frame).unwrap();
        assert_eq!((back, len), (with, frame.len()));
    }

    fn open(dir: &Path) -> (Wal, Vec<WalRecord>, ReplayReport) {
        Wal::open(dir, WalConfig::default(), StorageMetrics::unregistered()).unwrap()
    }

    /// A checkpoint keeps the histograms at or after its bound, and their series.
    #[test]
    fn checkpoint_keeps_recent_histograms() {
        let dir = tempfile::tempdir().unwrap();
        let open =
            |d: &Path| Wal::open(d, WalConfig::default(), StorageMetrics::unregistered()).unwrap();
        let (wal, _, _) = open(dir.path());
        for (id, ts) in [(50u64, 100i64), (51, 300)] {
            let mut r = record(id, ts);
            r.samples.clear();
            r.histograms.push(WalHistogram {
                series: id,
                timestamp_ms: ts,
                start_timestamp_ms: 0,
                histogram: Arc::new(Histogram {
                    count: ts as f64,
                    ..Default::default()
                }),
            });
            wal.append(&r).unwrap();
        }
        assert_eq!(wal.checkpoint_closed_segments(200, &|_| false).unwrap(), 1);
        drop(wal);
        let (_, records, _) = open(dir.path());
        let histograms: Vec<(u64, i64, f64)> = records
            .iter()
            .flat_map(|r| &r.histograms)
            .map(|h| (h.series, h.timestamp_ms, h.histogram.count))
            .collect();
        assert_eq!(histograms, vec![(51, 300, 300.0)]);
        let series: Vec<u64> = records
            .iter()
            .flat_map(|r| r.new_series.iter().map(|(id, _)| *id))
            .collect();
        assert_eq!(series, vec![51]);
    }

    /// The checkpoint after a cut keeps exactly the samples at or after the cut and the
    /// series still needed, across many segments, with writes going on after it.
    #[test]
    fn checkpoint_of_closed_segments_keeps_what_the_head_still_needs() {
        let dir = tempfile::tempdir().unwrap();
        let config = WalConfig {
            segment_size_bytes: 256,
            ..WalConfig::default()
        };
        let open_small =
            |d: &Path| Wal::open(d, config.clone(), StorageMetrics::unregistered()).unwrap();
        let (wal, _, _) = open_small(dir.path());
        // Series 1..=40, series i with samples at i*10 and i*10 + 5.
        for i in 1..=40u64 {
            let mut r = record(i, i as i64 * 10);
            r.samples.push(WalSample {
                timestamp_ms: i as i64 * 10 + 5,
                ..r.samples[0]
            });
            wal.append(&r).unwrap();
        }
        assert!(list_segments(dir.path()).unwrap().len() > 5);
        // Series 3 has no sample left but the head still holds it; series 7 is gone.
        let keep = |id: SeriesId| id == 3;
        let kept = wal.checkpoint_closed_segments(200, &keep).unwrap();
        assert_eq!(kept, 2 * 21);
        wal.append(&record(41, 500)).unwrap();
        wal.sync_all().unwrap();
        drop(wal);

        let samples = |records: &[WalRecord]| {
            let mut s: Vec<(u64, i64)> = records
                .iter()
                .flat_map(|r| r.samples.iter().map(|s| (s.series, s.timestamp_ms)))
                .collect();
            s.sort();
            s.dedup();
            s
        };
        let series = |records: &[WalRecord]| {
            let mut s: Vec<u64> = records
                .iter()
                .flat_map(|r| r.new_series.iter().map(|(id, _)| *id))
                .collect();
            s.sort();
            s
        };
        let (_, records, report) = open_small(dir.path());
        assert!(report.truncated.is_empty());
        let mut want: Vec<(u64, i64)> = (20..=40u64)
            .flat_map(|i| [(i, i as i64 * 10), (i, i as i64 * 10 + 5)])
            .collect();
        want.push((41, 500));
        assert_eq!(samples(&records), want);
        let mut want_series: Vec<u64> = vec![3];
        want_series.extend(20..=41);
        assert_eq!(series(&records), want_series);
    }

    #[test]
    fn replays_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, recs, _) = open(dir.path());
            assert!(recs.is_empty());
            for i in 0..10 {
                let seq = wal.append(&record(i, i as i64)).unwrap();
                wal.sync(seq).unwrap();
            }
        }
        let (_, recs, report) = open(dir.path());
        assert_eq!(recs.len(), 10);
        assert_eq!(recs[3], record(3, 3));
        assert!(report.truncated.is_empty());
    }

    #[test]
    fn start_timestamps_round_trip_and_older_frames_read_as_unknown() {
        let mut with_starts = record(1, 2_000);
        with_starts.samples[0].start_timestamp_ms = 1_500;
        let frame = encode_frame(&with_starts);
        assert_eq!(decode_frame(&frame).unwrap().0, with_starts);
        // A record without start timestamps is written as before they existed, and reads
        // back with every start unknown.
        let plain = record(2, 3_000);
        let frame = encode_frame(&plain);
        assert_eq!(decode_frame(&frame).unwrap().0, plain);
        let mut payload = vec![KIND_APPEND];
        payload.extend_from_slice(&0u32.to_le_bytes());
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&7u64.to_le_bytes());
        payload.extend_from_slice(&9i64.to_le_bytes());
        payload.extend_from_slice(&1.5f64.to_bits().to_le_bytes());
        let decoded = decode_payload(&payload).unwrap();
        assert_eq!(decoded.samples[0].start_timestamp_ms, 0);
        // A trailer that does not match the samples is corruption, not a guess.
        payload.extend_from_slice(&2u32.to_le_bytes());
        assert!(decode_payload(&payload).is_err());
    }

    #[test]
    fn torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = open(dir.path());
            for i in 0..5 {
                wal.append(&record(i, i as i64)).unwrap();
            }
        }
        let (_, path) = list_segments(dir.path()).unwrap().remove(0);
        let full = fs::read(&path).unwrap();
        // Tear the last frame in half.
        fs::write(&path, &full[..full.len() - 10]).unwrap();
        let (_, recs, report) = open(dir.path());
        assert_eq!(recs.len(), 4);
        assert_eq!(report.truncated.len(), 1);
        assert!(fs::metadata(&path).unwrap().len() < full.len() as u64);
    }

    #[test]
    fn corrupt_byte_is_detected_by_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = open(dir.path());
            for i in 0..3 {
                wal.append(&record(i, i as i64)).unwrap();
            }
        }
        let (_, path) = list_segments(dir.path()).unwrap().remove(0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        fs::write(&path, &bytes).unwrap();
        let (_, recs, report) = open(dir.path());
        assert_eq!(recs.len(), 2);
        assert_eq!(report.truncated[0].2, "checksum mismatch");
    }

    #[test]
    fn checkpoint_replaces_old_segments() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (wal, _, _) = open(dir.path());
            for i in 0..5 {
                wal.append(&record(i, i as i64)).unwrap();
            }
            wal.checkpoint(&[record(9, 9)]).unwrap();
            wal.append(&record(10, 10)).unwrap();
        }
        let (_, recs, _) = open(dir.path());
        assert_eq!(recs, vec![record(9, 9), record(10, 10)]);
    }
}
