//! What has been delivered, per file, and how that survives a crash.
//!
//! A record's completion arrives on a producer thread, in any order. Each
//! file has a [`Progress`]: the offset up to which *every* byte belongs to
//! an acknowledged (or deliberately skipped) record. Only that contiguous
//! offset is checkpointed, so after `kill -9` a restart never skips a
//! record; it resends what lies past the last checkpoint written: records
//! not yet acknowledged, those acknowledged behind one that was not, and
//! those acknowledged since (the file is written every
//! `--checkpoint-interval-ms`).
//!
//! The checkpoint file is replaced atomically: write a temporary file,
//! fsync it, rename it over the old one, fsync the directory. A crash at any
//! point leaves either the old or the new checkpoint, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Contiguous acknowledgement of one file's byte ranges.
///
/// Records are handed out as consecutive `[start, end)` ranges; they may
/// complete in any order. Completions beyond the contiguous front wait in
/// `done` until the gap before them closes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Progress {
    acked: u64,
    /// Completed ranges past `acked`, by start offset.
    done: BTreeMap<u64, u64>,
}

impl Progress {
    /// Progress of a file whose first `acked` bytes are already delivered.
    pub(crate) fn new(acked: u64) -> Self {
        Progress {
            acked,
            done: BTreeMap::new(),
        }
    }

    /// Every byte below this offset is delivered or skipped.
    pub(crate) fn acked(&self) -> u64 {
        self.acked
    }

    /// Marks `[start, end)` as delivered (or skipped on purpose).
    pub(crate) fn complete(&mut self, start: u64, end: u64) {
        if end <= self.acked {
            return;
        }
        if start <= self.acked {
            self.acked = end;
        } else {
            self.done.insert(start, end);
        }
        while let Some(end) = self.done.remove(&self.acked) {
            self.acked = self.acked.max(end);
        }
        // Drop entries the front has overtaken (only after a reset).
        while let Some((&start, &end)) = self.done.first_key_value() {
            if start > self.acked {
                break;
            }
            self.done.remove(&start);
            self.acked = self.acked.max(end);
        }
    }
}

/// A prefix of a file's content: tells a copy (copytruncate) or an inode
/// reused by a different file apart from the file we knew.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Fingerprint {
    /// How many leading bytes were hashed.
    pub(crate) len: u64,
    /// MD5 of them, first 8 bytes, as an integer.
    pub(crate) hash: u64,
}

impl Fingerprint {
    /// Bytes hashed once a file is at least this long.
    pub(crate) const MAX_LEN: u64 = 1024;

    /// The fingerprint of `head` (the first bytes of a file).
    pub(crate) fn of(head: &[u8]) -> Self {
        use md5::Digest as _;
        let digest = md5::Md5::digest(head);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        Fingerprint {
            len: head.len() as u64,
            hash: u64::from_be_bytes(first),
        }
    }
}

/// One file's entry in the checkpoint file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileCheckpoint {
    /// Where the file was last seen (informational; files are matched by
    /// device and inode, then fingerprint).
    pub(crate) path: PathBuf,
    /// `st_dev`.
    pub(crate) dev: u64,
    /// `st_ino`.
    pub(crate) ino: u64,
    /// Every byte before this is delivered.
    pub(crate) offset: u64,
    /// The file's leading bytes when the checkpoint was taken.
    pub(crate) fingerprint: Fingerprint,
    /// The bytes just before `offset` (up to [`Fingerprint::MAX_LEN`]):
    /// tells the file we read from one that only starts the same way (a
    /// truncated file written again, a new file with the same banner).
    /// Absent in checkpoints written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) before_offset: Option<Fingerprint>,
}

/// The checkpoint file's content: per flow id, its files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Checkpoints {
    /// Format version, for later changes.
    pub(crate) version: u32,
    /// Flow id → files.
    pub(crate) flows: BTreeMap<String, Vec<FileCheckpoint>>,
}

/// Reads and writes the checkpoint file.
#[derive(Debug)]
pub(crate) struct CheckpointStore {
    path: PathBuf,
    temp: PathBuf,
}

impl CheckpointStore {
    /// Makes sure the checkpoint file's directory exists and is writable.
    pub(crate) fn open(path: &Path) -> io::Result<Self> {
        let dir = parent(path);
        fs::create_dir_all(dir)?;
        let mut temp = path.as_os_str().to_owned();
        temp.push(".tmp");
        let store = CheckpointStore {
            path: path.to_owned(),
            temp: PathBuf::from(temp),
        };
        // Fail at start, not at the first checkpoint, if we cannot write.
        File::create(&store.temp)?;
        fs::remove_file(&store.temp)?;
        Ok(store)
    }

    /// The saved checkpoints, or empty ones on the first run.
    pub(crate) fn load(&self) -> io::Result<Checkpoints> {
        match fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{} is not a checkpoint file: {e}", self.path.display()),
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Checkpoints::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the checkpoint file durably (see the module docs).
    pub(crate) fn save(&self, checkpoints: &Checkpoints) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(checkpoints).map_err(io::Error::other)?;
        let mut file = File::create(&self.temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&self.temp, &self.path)?;
        // The rename is durable only once the directory entry is.
        File::open(parent(&self.path))?.sync_all()
    }
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_advances_only_over_contiguous_completions() {
        let mut p = Progress::new(0);
        p.complete(10, 20);
        p.complete(30, 40);
        assert_eq!(p.acked(), 0);
        p.complete(0, 10);
        assert_eq!(p.acked(), 20);
        p.complete(20, 30);
        assert_eq!(p.acked(), 40);
        p.complete(5, 15); // stale: ignored
        assert_eq!(p.acked(), 40);
    }

    #[test]
    fn progress_starting_mid_file() {
        let mut p = Progress::new(100);
        p.complete(100, 150);
        assert_eq!(p.acked(), 150);
    }

    #[test]
    fn checkpoints_round_trip_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/checkpoints");
        let store = CheckpointStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap(), Checkpoints::default());
        let mut checkpoints = Checkpoints {
            version: 1,
            ..Default::default()
        };
        checkpoints.flows.insert(
            "kinesis:s:/tmp/x*".into(),
            vec![FileCheckpoint {
                path: "/tmp/x".into(),
                dev: 1,
                ino: 2,
                offset: 3,
                fingerprint: Fingerprint::of(b"hello"),
                before_offset: Some(Fingerprint::of(b"hel")),
            }],
        );
        store.save(&checkpoints).unwrap();
        assert_eq!(store.load().unwrap(), checkpoints);
        assert!(!store.temp.exists());
        fs::write(&path, b"garbage").unwrap();
        assert!(store.load().is_err());
    }

    #[test]
    fn checkpoints_without_the_bytes_before_the_offset_still_load() {
        let json = br#"{"version":1,"flows":{"f":[{"path":"/tmp/x","dev":1,"ino":2,
            "offset":3,"fingerprint":{"len":5,"hash":7}}]}}"#;
        let checkpoints: Checkpoints = serde_json::from_slice(json).unwrap();
        assert_eq!(checkpoints.flows["f"][0].before_offset, None);
    }

    #[test]
    fn fingerprints_tell_contents_apart() {
        assert_eq!(Fingerprint::of(b"abc"), Fingerprint::of(b"abc"));
        assert_ne!(Fingerprint::of(b"abc"), Fingerprint::of(b"abd"));
    }
}
