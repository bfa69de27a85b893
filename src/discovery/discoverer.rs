//! The running file discoverer: filesystem watcher + periodic refresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, warn};

use super::config::{FilePattern, FileSdConfig};
use super::error::DiscoveryError;
use super::target_file::{TargetGroup, read_target_file};

/// Quiet period after the last filesystem event before re-reading, so that an
/// editor's write/rename/chmod burst produces one update.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// Upper bound on debouncing, so a file written continuously still updates.
const MAX_DEBOUNCE: Duration = Duration::from_secs(1);
/// A zero interval would make tokio's interval panic and a tiny one would spin;
/// `validate` rejects zero, this guards callers that skipped it.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(100);

/// Keeps the target groups of one [`FileSdConfig`] current.
///
/// Watches the directories of the `files` patterns, so a file that is written,
/// created, renamed into place or deleted is picked up within about a second,
/// and re-reads everything every `refresh_interval` in case events were missed
/// (network filesystems, directories created later, watcher failures).
///
/// Each change publishes the complete list of groups, ordered by file path and
/// then by position in the file. A file that fails to read or parse keeps its
/// last good groups (and a warning is logged); a deleted file's groups go away.
///
/// Dropping the discoverer, or calling [`FileDiscoverer::stop`], stops the
/// watcher and the background task; receivers then see the channel close.
#[derive(Debug)]
pub struct FileDiscoverer {
    task: JoinHandle<()>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum WatchMode {
    Notify,
    /// Only the refresh interval; lets tests prove the fallback on its own.
    #[cfg_attr(not(test), allow(dead_code))]
    RefreshOnly,
}

impl FileDiscoverer {
    /// Starts discovery for `config`; relative `files` entries are resolved
    /// against `base_dir`, normally the directory of the config file.
    ///
    /// The files are read once before this returns, so the receiver already
    /// holds the initial groups. Invalid patterns are logged and skipped; call
    /// [`FileSdConfig::validate`] at config load to reject them up front.
    ///
    /// # Panics
    /// Must be called from within a tokio runtime (it spawns a task).
    pub fn spawn(
        config: FileSdConfig,
        base_dir: &Path,
    ) -> (FileDiscoverer, watch::Receiver<Vec<TargetGroup>>) {
        Self::spawn_with(config, base_dir, WatchMode::Notify)
    }

    fn spawn_with(
        config: FileSdConfig,
        base_dir: &Path,
        mode: WatchMode,
    ) -> (FileDiscoverer, watch::Receiver<Vec<TargetGroup>>) {
        if let Err(err) = config.validate() {
            warn!(error = %err, "file_sd_config is invalid; continuing with its valid paths");
        }
        let patterns: Arc<[FilePattern]> = resolve_patterns(&config, base_dir).into();
        let changed = Arc::new(Notify::new());

        // Watch before the first read: a change racing with that read then
        // still triggers another read instead of being lost.
        let watcher = match mode {
            WatchMode::Notify => DirWatcher::start(&patterns, Arc::clone(&changed)),
            WatchMode::RefreshOnly => DirWatcher::disabled(),
        };
        let mut state = State::default();
        state.apply(scan(&patterns));
        let (tx, rx) = watch::channel(state.groups());

        let refresh = config.refresh_interval.max(MIN_REFRESH_INTERVAL);
        let task = tokio::spawn(run(state, patterns, watcher, changed, tx, refresh));
        (FileDiscoverer { task }, rx)
    }

    /// Stops watching; the same as dropping the discoverer.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for FileDiscoverer {
    fn drop(&mut self) {
        // The task owns the watcher, so aborting it also ends the watch.
        self.task.abort();
    }
}

fn resolve_patterns(config: &FileSdConfig, base_dir: &Path) -> Vec<FilePattern> {
    config
        .files
        .iter()
        .filter_map(|pattern| match FilePattern::resolve(pattern, base_dir) {
            Ok(resolved) => Some(resolved),
            Err(why) => {
                warn!(path = %pattern, reason = %why, "ignoring invalid file_sd path");
                None
            }
        })
        .collect()
}

async fn run(
    mut state: State,
    patterns: Arc<[FilePattern]>,
    mut watcher: DirWatcher,
    changed: Arc<Notify>,
    tx: watch::Sender<Vec<TargetGroup>>,
    refresh: Duration,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + refresh, refresh);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Nobody listens any more: stop reading files for nothing.
            () = tx.closed() => return,
            () = changed.notified() => wait_for_quiet(&changed).await,
            _ = ticker.tick() => watcher.rearm(),
        }
        let scan_patterns = Arc::clone(&patterns);
        // File I/O blocks; keep it off the async workers.
        match tokio::task::spawn_blocking(move || scan(&scan_patterns)).await {
            Ok(result) => state.apply(result),
            Err(err) => {
                warn!(error = %err, "reading target files failed; keeping previous groups");
                continue;
            }
        }
        publish(&tx, state.groups());
    }
}

/// Waits until no event has arrived for `DEBOUNCE`, or `MAX_DEBOUNCE` passed.
async fn wait_for_quiet(changed: &Notify) {
    let give_up = Instant::now() + MAX_DEBOUNCE;
    loop {
        let quiet_until = (Instant::now() + DEBOUNCE).min(give_up);
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep_until(quiet_until) => return,
        }
        if Instant::now() >= give_up {
            // A permit may be left behind; that only causes one more read.
            return;
        }
    }
}

/// Sends only real changes, so consumers are not woken by every refresh tick.
fn publish(tx: &watch::Sender<Vec<TargetGroup>>, groups: Vec<TargetGroup>) {
    tx.send_if_modified(|current| {
        if *current == groups {
            return false;
        }
        debug!(groups = groups.len(), "file_sd target groups changed");
        *current = groups;
        true
    });
}

/// The outcome of reading every file that currently matches the patterns.
type Scan = BTreeMap<PathBuf, Result<Vec<TargetGroup>, DiscoveryError>>;

fn scan(patterns: &[FilePattern]) -> Scan {
    let mut result = Scan::new();
    for pattern in patterns {
        let paths = match glob::glob(&pattern.glob) {
            Ok(paths) => paths,
            Err(err) => {
                warn!(pattern = %pattern.glob, error = %err, "invalid file_sd glob");
                continue;
            }
        };
        for entry in paths {
            match entry {
                // A directory whose name happens to match is not a target file.
                Ok(path) if path.is_dir() || result.contains_key(&path) => {}
                Ok(path) => {
                    let groups = read_target_file(&path);
                    result.insert(path, groups);
                }
                Err(err) => warn!(error = %err, "cannot list file_sd path"),
            }
        }
    }
    result
}

/// Last good groups of every file that currently exists.
#[derive(Default)]
struct State {
    files: BTreeMap<PathBuf, Vec<TargetGroup>>,
}

impl State {
    /// Replaces the state with a new scan: files absent from the scan are
    /// dropped, and a file that failed to read keeps what it had before.
    fn apply(&mut self, scan: Scan) {
        let mut previous = std::mem::take(&mut self.files);
        for (path, outcome) in scan {
            match outcome {
                Ok(groups) => {
                    self.files.insert(path, groups);
                }
                // Deleted between listing and reading: a normal deletion.
                Err(err) if err.is_not_found() => {}
                Err(err) => match previous.remove(&path) {
                    Some(last_good) => {
                        warn!(file = %path.display(), error = %err, "keeping last good target groups");
                        self.files.insert(path, last_good);
                    }
                    None => {
                        warn!(file = %path.display(), error = %err, "ignoring unreadable target file");
                    }
                },
            }
        }
    }

    fn groups(&self) -> Vec<TargetGroup> {
        self.files.values().flatten().cloned().collect()
    }
}

/// Watches the directories of the patterns (not the files: editors replace
/// files by renaming a new one over them, which a file watch would miss).
struct DirWatcher {
    watcher: Option<RecommendedWatcher>,
    dirs: Vec<PathBuf>,
}

impl DirWatcher {
    fn disabled() -> DirWatcher {
        DirWatcher {
            watcher: None,
            dirs: Vec::new(),
        }
    }

    fn start(patterns: &[FilePattern], changed: Arc<Notify>) -> DirWatcher {
        let mut dirs: Vec<PathBuf> = patterns.iter().map(|p| p.dir.clone()).collect();
        dirs.sort();
        dirs.dedup();

        let handler = move |event: notify::Result<Event>| {
            if is_relevant(&event) {
                changed.notify_one();
            }
        };
        let watcher = match notify::recommended_watcher(handler) {
            Ok(watcher) => Some(watcher),
            Err(err) => {
                warn!(error = %err, "cannot start file watcher; relying on refresh_interval");
                None
            }
        };
        let mut dir_watcher = DirWatcher { watcher, dirs };
        dir_watcher.watch_all(true);
        dir_watcher
    }

    /// Re-establishes every watch. A directory that was deleted and recreated,
    /// or did not exist at start, needs a fresh watch; this runs on each
    /// refresh tick, just before a full re-read, so nothing is lost meanwhile.
    fn rearm(&mut self) {
        if let Some(watcher) = self.watcher.as_mut() {
            for dir in &self.dirs {
                // Fails when the kernel already dropped the watch; that's fine.
                let _ = watcher.unwatch(dir);
            }
        }
        self.watch_all(false);
    }

    fn watch_all(&mut self, first_time: bool) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for dir in &self.dirs {
            if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
                // Say it once; the retry on every refresh would repeat it.
                if first_time {
                    warn!(dir = %dir.display(), error = %err, "cannot watch file_sd directory; relying on refresh_interval until it can be watched");
                } else {
                    debug!(dir = %dir.display(), error = %err, "cannot watch file_sd directory");
                }
            }
        }
    }
}

/// Decides on the watcher's thread whether an event calls for a re-read.
///
/// Any change in a watched directory counts, not only changes to files whose
/// names match: a Kubernetes ConfigMap volume, for one, updates its files by
/// swapping a `..data` symlink, so the only events carry unrelated names. Like
/// Prometheus we simply re-read everything; debouncing bounds the cost, and
/// unchanged results are not published.
fn is_relevant(event: &notify::Result<Event>) -> bool {
    let event = match event {
        Ok(event) => event,
        Err(err) => {
            // We cannot tell what was missed; a full re-read is always safe.
            warn!(error = %err, "file watcher error; re-reading target files");
            return true;
        }
    };
    match event.kind {
        // Closing after a write changes content.
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        // Opening and reading change nothing, and ignoring them matters: our
        // own reads would otherwise trigger re-reads forever.
        EventKind::Access(_) => event.need_rescan(),
        _ => true,
    }
}

/// Resolves when any of `receivers` (of discoverers) sees a change; false when all their
/// discoverers are gone. Never resolves for no receivers.
pub async fn wait_any_changed(receivers: &mut [watch::Receiver<Vec<TargetGroup>>]) -> bool {
    if receivers.is_empty() {
        return std::future::pending().await;
    }
    let futures = receivers.iter_mut().map(|rx| Box::pin(rx.changed()));
    let (result, _, _) = futures::future::select_all(futures).await;
    result.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::Path;
    use tempfile::TempDir;

    /// Generous: CI machines are small and may be busy; the watcher itself
    /// normally reacts in a few hundred milliseconds.
    const DEADLINE: Duration = Duration::from_secs(5);
    /// Long enough that only the watcher can explain an update in a test.
    const NO_REFRESH: Duration = Duration::from_secs(3600);

    type Groups = watch::Receiver<Vec<TargetGroup>>;

    fn write(dir: &Path, name: &str, content: &str) {
        fs::write(dir.join(name), content).expect("write target file");
    }

    fn json_targets(targets: &[&str]) -> String {
        format!(r#"[{{"targets": {targets:?}, "labels": {{"job": "test"}}}}]"#)
    }

    fn config(files: &[&str], refresh_interval: Duration) -> FileSdConfig {
        FileSdConfig {
            files: files.iter().map(|f| f.to_string()).collect(),
            refresh_interval,
        }
    }

    fn targets(groups: &[TargetGroup]) -> Vec<String> {
        let mut all: Vec<String> = groups.iter().flat_map(|g| g.targets.clone()).collect();
        all.sort();
        all
    }

    /// Waits until the published targets equal `expected`, failing with the
    /// last seen value after `DEADLINE`.
    async fn wait_for_targets(rx: &mut Groups, expected: &[&str]) -> Vec<TargetGroup> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let current = rx.borrow_and_update().clone();
            if targets(&current) == expected {
                return current;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("discoverer stopped; last targets {:?}", targets(&current)),
                Err(_) => panic!(
                    "timed out waiting for {expected:?}; last targets {:?}",
                    targets(&current)
                ),
            }
        }
    }

    #[tokio::test]
    async fn initial_groups_are_available_immediately() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        write(dir.path(), "b.yml", "- targets: ['b:1', 'b:2']\n");
        write(dir.path(), "notes.txt", "not a target file");
        let cfg = config(&["*.json", "*.yml"], NO_REFRESH);

        let (_discoverer, rx) = FileDiscoverer::spawn(cfg, dir.path());

        let groups = rx.borrow().clone();
        assert_eq!(targets(&groups), ["a:1", "b:1", "b:2"]);
        let a_path = dir.path().join("a.json").display().to_string();
        assert_eq!(groups[0].source, format!("{a_path}:0"));
        assert_eq!(groups[0].labels["__meta_filepath"], a_path);
    }

    #[tokio::test]
    async fn relative_patterns_resolve_against_base_dir() {
        let dir = TempDir::new().expect("tempdir");
        fs::create_dir(dir.path().join("sd")).expect("mkdir");
        write(&dir.path().join("sd"), "a.yaml", "- targets: ['a:1']\n");
        let (_discoverer, rx) =
            FileDiscoverer::spawn(config(&["sd/*.yaml"], NO_REFRESH), dir.path());
        assert_eq!(targets(&rx.borrow()), ["a:1"]);
    }

    #[tokio::test]
    async fn modifying_a_file_updates_within_two_seconds() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), dir.path());

        let started = Instant::now();
        write(dir.path(), "a.json", &json_targets(&["a:2"]));
        wait_for_targets(&mut rx, &["a:2"]).await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn atomic_replace_by_rename_updates() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.yml", "- targets: ['a:1']\n");
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.yml"], NO_REFRESH), dir.path());

        // What editors and config tools do: write a temp file, rename it over.
        write(dir.path(), ".a.yml.tmp", "- targets: ['a:2']\n");
        fs::rename(dir.path().join(".a.yml.tmp"), dir.path().join("a.yml")).expect("rename");
        wait_for_targets(&mut rx, &["a:2"]).await;

        // The replaced file is a new inode; later edits must still be seen.
        write(dir.path(), ".a.yml.tmp", "- targets: ['a:3']\n");
        fs::rename(dir.path().join(".a.yml.tmp"), dir.path().join("a.yml")).expect("rename");
        wait_for_targets(&mut rx, &["a:3"]).await;
        write(dir.path(), "a.yml", "- targets: ['a:4']\n");
        wait_for_targets(&mut rx, &["a:4"]).await;
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn configmap_style_symlink_swap_updates() {
        use std::os::unix::fs::symlink;
        let dir = TempDir::new().expect("tempdir");
        let root = dir.path();
        // Layout of a Kubernetes ConfigMap volume: a.json -> ..data/a.json,
        // ..data -> ..v1; an update swaps ..data atomically.
        fs::create_dir(root.join("..v1")).expect("mkdir");
        write(&root.join("..v1"), "a.json", &json_targets(&["a:1"]));
        symlink("..v1", root.join("..data")).expect("symlink");
        symlink("..data/a.json", root.join("a.json")).expect("symlink");
        let (_discoverer, mut rx) = FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), root);
        assert_eq!(targets(&rx.borrow()), ["a:1"]);

        fs::create_dir(root.join("..v2")).expect("mkdir");
        write(&root.join("..v2"), "a.json", &json_targets(&["a:2"]));
        symlink("..v2", root.join("..data_tmp")).expect("symlink");
        fs::rename(root.join("..data_tmp"), root.join("..data")).expect("rename");
        fs::remove_dir_all(root.join("..v1")).expect("rmdir");
        wait_for_targets(&mut rx, &["a:2"]).await;
    }

    #[tokio::test]
    async fn new_matching_file_appears_and_others_are_ignored() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["node-*.json", "a.json"], NO_REFRESH), dir.path());

        write(dir.path(), "other.json", &json_targets(&["other:1"]));
        write(dir.path(), "node-1.json", &json_targets(&["n:1"]));
        let groups = wait_for_targets(&mut rx, &["a:1", "n:1"]).await;
        assert!(groups.iter().all(|g| !g.source.contains("other.json")));
    }

    #[tokio::test]
    async fn deleting_a_file_removes_its_groups() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        write(dir.path(), "b.json", &json_targets(&["b:1"]));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), dir.path());
        assert_eq!(targets(&rx.borrow()), ["a:1", "b:1"]);

        fs::remove_file(dir.path().join("a.json")).expect("remove");
        wait_for_targets(&mut rx, &["b:1"]).await;
    }

    #[tokio::test]
    async fn garbage_keeps_last_good_groups_until_fixed() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), dir.path());

        write(dir.path(), "a.json", "{ this is not json");
        // A second file gives an observable update; the re-read that shows it
        // also read the garbage in a.json, which must have kept its groups.
        write(dir.path(), "b.json", &json_targets(&["b:1"]));
        wait_for_targets(&mut rx, &["a:1", "b:1"]).await;

        // Invalid content that parses (a bad target) is handled the same way.
        write(dir.path(), "a.json", &json_targets(&["http://a:1/metrics"]));
        write(dir.path(), "b.json", &json_targets(&["b:2"]));
        wait_for_targets(&mut rx, &["a:1", "b:2"]).await;

        write(dir.path(), "a.json", &json_targets(&["a:2"]));
        wait_for_targets(&mut rx, &["a:2", "b:2"]).await;
    }

    #[tokio::test]
    async fn file_broken_from_the_start_is_picked_up_once_fixed() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.yml", "- targets: [unclosed\n");
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.yml"], NO_REFRESH), dir.path());
        assert!(rx.borrow().is_empty());

        write(dir.path(), "a.yml", "- targets: ['a:1']\n");
        wait_for_targets(&mut rx, &["a:1"]).await;
    }

    #[tokio::test]
    async fn refresh_interval_alone_picks_up_changes() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        let cfg = config(&["*.json"], Duration::from_millis(200));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn_with(cfg, dir.path(), WatchMode::RefreshOnly);

        write(dir.path(), "a.json", &json_targets(&["a:2"]));
        wait_for_targets(&mut rx, &["a:2"]).await;
        write(dir.path(), "b.json", &json_targets(&["b:1"]));
        wait_for_targets(&mut rx, &["a:2", "b:1"]).await;
        fs::remove_file(dir.path().join("a.json")).expect("remove");
        wait_for_targets(&mut rx, &["b:1"]).await;
    }

    #[tokio::test]
    async fn directory_created_after_start_is_found_by_refresh() {
        let dir = TempDir::new().expect("tempdir");
        let cfg = config(&["later/*.json"], Duration::from_millis(200));
        let (_discoverer, mut rx) = FileDiscoverer::spawn(cfg, dir.path());
        assert!(rx.borrow().is_empty());

        fs::create_dir(dir.path().join("later")).expect("mkdir");
        write(&dir.path().join("later"), "a.json", &json_targets(&["a:1"]));
        wait_for_targets(&mut rx, &["a:1"]).await;
    }

    #[tokio::test]
    async fn burst_of_writes_yields_few_updates() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:0"]));
        let (_discoverer, mut rx) =
            FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), dir.path());

        for i in 1..=20 {
            write(dir.path(), "a.json", &json_targets(&[&format!("a:{i}")]));
        }
        wait_for_targets(&mut rx, &["a:20"]).await;
        let mut updates = 1;
        while tokio::time::timeout(Duration::from_millis(500), rx.changed())
            .await
            .is_ok()
        {
            updates += 1;
        }
        // Without debouncing this would be up to 20.
        assert!(updates <= 3, "{updates} updates for one burst");
    }

    #[tokio::test]
    async fn stop_and_drop_close_the_channel() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        for use_stop in [true, false] {
            let (discoverer, mut rx) =
                FileDiscoverer::spawn(config(&["*.json"], NO_REFRESH), dir.path());
            if use_stop {
                discoverer.stop();
            } else {
                drop(discoverer);
            }
            let closed =
                tokio::time::timeout(DEADLINE, async { while rx.changed().await.is_ok() {} }).await;
            assert!(closed.is_ok(), "channel still open after stopping");
            // The last value stays readable after the sender is gone.
            assert_eq!(targets(&rx.borrow()), ["a:1"]);
        }
    }

    #[tokio::test]
    async fn invalid_patterns_are_skipped_without_panicking() {
        let dir = TempDir::new().expect("tempdir");
        write(dir.path(), "a.json", &json_targets(&["a:1"]));
        let cfg = config(&["*/x.json", "*.txt", "*.json"], Duration::ZERO);
        let (_discoverer, rx) = FileDiscoverer::spawn(cfg, dir.path());
        assert_eq!(targets(&rx.borrow()), ["a:1"]);
    }

    #[test]
    fn state_keeps_last_good_and_drops_missing_files() {
        let group = |t: &str| TargetGroup {
            targets: vec![t.to_string()],
            labels: BTreeMap::new(),
            source: String::new(),
        };
        let broken = || DiscoveryError::InvalidConfig("broken".into());
        let mut state = State::default();
        state.apply(Scan::from([
            (PathBuf::from("a"), Ok(vec![group("a:1")])),
            (PathBuf::from("b"), Ok(vec![group("b:1")])),
        ]));
        state.apply(Scan::from([
            (PathBuf::from("a"), Err(broken())),
            (PathBuf::from("c"), Err(broken())),
        ]));
        assert_eq!(targets(&state.groups()), ["a:1"]);
    }
}
