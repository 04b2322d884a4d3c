//! Finding and following the files of one flow, and cutting them into
//! records.
//!
//! # Identity and rotation
//!
//! A file is identified by device + inode, not by name, so the three common
//! rotations work:
//!
//! - **rename and create** (`data.log` → `data.log.1`, new `data.log`): the
//!   renamed file keeps its inode and its progress; the new file is new.
//!   A file that leaves the glob (or is deleted) is still read to its end
//!   through the descriptor we hold, then dropped.
//! - **copytruncate** (copy `data.log` to `data.log.1`, truncate
//!   `data.log`): the copy is a new inode whose first bytes equal the
//!   original's, so it inherits the original's progress (offset and
//!   pending acknowledgements) and only its unread tail is sent; the
//!   truncated original starts again at offset 0. The original's state is
//!   kept for a few seconds after the truncation in case the copy is seen
//!   only afterwards. A new file that could be such a copy still being
//!   written (shorter than what we read of a followed file, and equal to it
//!   in its first bytes and in its last bytes so far) is left alone until it
//!   holds what we read, stops growing for a second, or has waited
//!   [`GHOST_TTL`]: read from offset 0 half-way through the copy, it would
//!   send again everything already read from the original.
//! - **new files** matching the glob are read from their start.
//!
//! Truncation is noticed when a file is shorter than what we consumed, or
//! its first bytes changed.
//!
//! # Records
//!
//! A record is one line without its `\n`, or with `multiLineStartPattern`
//! a start line and the lines up to the next start line. A line that is not
//! finished is left in the file until it is (or, once the file has left the
//! glob and gone quiet, sent as it is). A record over the size limit is cut
//! and ends with `truncatedRecordTerminator`; the rest of its line is
//! skipped, as the Kinesis Agent does.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::bytes::Regex;

use crate::checkpoint::{FileCheckpoint, Fingerprint, Progress};
use crate::config::InitialPosition;

/// Most bytes read from one file per pass: bounds memory per file.
const READ_CHUNK: u64 = 4 * 1024 * 1024;

/// Most bytes read from all files together per pass. What a pass reads is
/// held as records until the flow has queued them, outside the producer's
/// buffer, so without it hundreds of files that are behind would hold
/// 4 MiB each at once.
const READ_BUDGET: u64 = 16 * 1024 * 1024;

/// How long a truncated file's old state waits for its copy to show up,
/// and the longest a possible copy still being written is left unread.
const GHOST_TTL: Duration = Duration::from_secs(10);

/// How many bytes at the end of what a possible copy holds, or of what we
/// read of the original, are compared to tell a copy from a file that only
/// starts the same way (a common header, say).
const COPY_CHECK_LEN: u64 = 4096;

/// How long a file must be quiet before an unfinished last record (a
/// pending multi-line record, or the unterminated last line of a file that
/// left the glob) is sent as it is.
const QUIET_FLUSH: Duration = Duration::from_secs(1);

/// Device + inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(meta: &Metadata) -> Self {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// A shared handle on a file's acknowledgement state: callbacks hold it, so
/// a file can hand its progress on (copytruncate) while records are out.
pub(crate) type SharedProgress = Arc<Mutex<Progress>>;

/// How a flow cuts records.
#[derive(Debug, Clone)]
pub(crate) struct Splitter {
    /// `multiLineStartPattern`.
    pub(crate) multi_line_start: Option<Regex>,
    /// Largest record sent; longer ones are cut.
    pub(crate) max_record: usize,
    /// Appended to a cut record.
    pub(crate) terminator: Vec<u8>,
    /// `skipHeaderLines`.
    pub(crate) skip_header_lines: usize,
}

/// A byte range of a file and what to send for it (`None`: skipped, e.g. a
/// header line; its range still counts as done).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RawRecord {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) data: Option<Vec<u8>>,
}

/// Where the splitter is inside a file between two reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SplitState {
    /// Header lines still to skip.
    pub(crate) header_lines_left: usize,
    /// Inside an over-long line whose start was already sent, cut.
    pub(crate) discarding: bool,
}

impl Splitter {
    /// Cuts `chunk` (the file's bytes from offset `base`) into records.
    /// Returns the records and how many bytes of `chunk` they cover; the
    /// rest is read again next time. `flush` sends an unfinished record as
    /// it is.
    pub(crate) fn split(
        &self,
        chunk: &[u8],
        base: u64,
        state: &mut SplitState,
        flush: bool,
    ) -> (Vec<RawRecord>, usize) {
        let mut records = Vec::new();
        let mut pos = 0; // start of the record being built
        let mut line_start = 0;
        let skip = |records: &mut Vec<RawRecord>, from: usize, to: usize| {
            records.push(RawRecord {
                start: base + from as u64,
                end: base + to as u64,
                data: None,
            })
        };
        while line_start < chunk.len() {
            let newline = chunk[line_start..].iter().position(|&b| b == b'\n');
            let line_end = newline.map(|i| line_start + i + 1);
            if state.discarding {
                let to = line_end.unwrap_or(chunk.len());
                skip(&mut records, line_start, to);
                state.discarding = line_end.is_none();
                line_start = to;
                pos = to;
                continue;
            }
            let Some(line_end) = line_end else { break };
            if state.header_lines_left > 0 && pos == line_start {
                state.header_lines_left -= 1;
                skip(&mut records, line_start, line_end);
                line_start = line_end;
                pos = line_end;
                continue;
            }
            match &self.multi_line_start {
                None => {
                    records.push(self.record(chunk, base, pos, line_end));
                    pos = line_end;
                }
                Some(start) => {
                    let line = &chunk[line_start..line_end - 1];
                    if line_start > pos && start.is_match(line) {
                        records.push(self.record(chunk, base, pos, line_start));
                        pos = line_start;
                    }
                }
            }
            line_start = line_end;
        }
        // What is left: [pos, line_start) complete lines of a pending
        // multi-line record, then [line_start, len) an unfinished line.
        let pending = chunk.len() - pos;
        if pending > self.max_record {
            let cut_mid_line = line_start < chunk.len();
            records.push(self.record(chunk, base, pos, chunk.len()));
            state.discarding = cut_mid_line;
            pos = chunk.len();
        } else if flush && pending > 0 {
            records.push(self.record(chunk, base, pos, chunk.len()));
            pos = chunk.len();
        } else if pos < line_start && self.multi_line_start.is_some() && flush {
            records.push(self.record(chunk, base, pos, line_start));
            pos = line_start;
        }
        (records, pos)
    }

    /// The record for `chunk[from..to]`, without its final `\n`, cut to the
    /// size limit.
    fn record(&self, chunk: &[u8], base: u64, from: usize, to: usize) -> RawRecord {
        let mut data = &chunk[from..to];
        if data.last() == Some(&b'\n') {
            data = &data[..data.len() - 1];
        }
        let data = if data.len() > self.max_record {
            let keep = self.max_record - self.terminator.len();
            let mut cut = data[..keep].to_vec();
            cut.extend_from_slice(&self.terminator);
            cut
        } else {
            data.to_vec()
        };
        RawRecord {
            start: base + from as u64,
            end: base + to as u64,
            data: Some(data),
        }
    }
}

/// One file being followed.
#[derive(Debug)]
pub(crate) struct TailedFile {
    id: FileId,
    /// Where it was last seen.
    pub(crate) path: PathBuf,
    file: File,
    /// Offset up to which records have been handed out.
    consumed: u64,
    size: u64,
    progress: SharedProgress,
    /// Its first bytes (up to [`Fingerprint::MAX_LEN`]), to recognise its
    /// truncation and its copies.
    head: Vec<u8>,
    split: SplitState,
    last_change: Instant,
    in_glob: bool,
    /// The bytes just before `consumed` as we read them (up to
    /// [`Fingerprint::MAX_LEN`]): if the file still holds them, it has not
    /// been truncated and written again since.
    read_tail: Vec<u8>,
    /// The last checkpoint entry made for this file: `(offset,
    /// before_offset)`, kept when the file no longer holds what we read.
    checkpointed: Option<(u64, Option<Fingerprint>)>,
}

impl TailedFile {
    /// Sets `consumed` and remembers the bytes before it, read from the
    /// file (which the caller has checked holds what was read), and the
    /// checkpoint entry of its progress as it stands: set `progress` first.
    fn resume_at(&mut self, consumed: u64) {
        self.consumed = consumed;
        self.read_tail = self.bytes_before(consumed).unwrap_or_default();
        let acked = self.progress.lock().map(|p| p.acked()).unwrap_or(0);
        self.checkpointed = Some((acked, self.fingerprint_before(acked)));
    }

    /// Whether the bytes before `consumed` are still those we read there
    /// (`false`: the file was truncated and written again past that point;
    /// `None`: they cannot be read now).
    fn holds_read_tail(&self) -> Option<bool> {
        if self.read_tail.is_empty() {
            return Some(true);
        }
        self.bytes_before(self.consumed)
            .map(|bytes| bytes == self.read_tail)
    }

    /// The up to [`Fingerprint::MAX_LEN`] bytes before `offset`.
    fn bytes_before(&self, offset: u64) -> Option<Vec<u8>> {
        bytes_before(&self.file, offset, Fingerprint::MAX_LEN)
    }

    /// This file's checkpoint entry for `acked`: `(offset, before_offset)`.
    /// The bytes before `acked` are read from the file, then the bytes we
    /// read last are checked to be still there; if they are not (the file
    /// was truncated, and maybe written again, since the last scan), the
    /// last entry that was checked stands: it may resend, never skip.
    fn checkpoint_entry(&mut self, acked: u64) -> (u64, Option<Fingerprint>) {
        if let Some(entry) = self.checkpointed
            && entry.0 == acked
        {
            return entry;
        }
        let before = self.fingerprint_before(acked);
        if self.holds_read_tail() == Some(true) {
            self.checkpointed = Some((acked, before));
        }
        self.checkpointed.unwrap_or((0, None))
    }

    fn read_head(&self, len: u64) -> io::Result<Vec<u8>> {
        let mut head = vec![0; len.min(self.size) as usize];
        let n = read_fully_at(&self.file, &mut head, 0)?;
        head.truncate(n);
        Ok(head)
    }

    /// The fingerprint of the bytes just before `offset`, if they can be
    /// read (see [`FileCheckpoint::before_offset`]).
    fn fingerprint_before(&self, offset: u64) -> Option<Fingerprint> {
        if offset == 0 {
            return None;
        }
        self.bytes_before(offset)
            .map(|bytes| Fingerprint::of(&bytes))
    }

    /// True when this file still holds what `saved` says was read: the same
    /// first bytes, at least `offset` bytes, and the same bytes before it.
    fn holds(&self, saved: &FileCheckpoint) -> bool {
        saved.offset > 0
            && self.size >= saved.offset
            && self.starts_like(saved.fingerprint)
            && saved
                .before_offset
                .is_none_or(|fp| self.fingerprint_before(saved.offset) == Some(fp))
    }

    /// True when this file's first bytes are those `fingerprint` describes.
    fn starts_like(&self, fingerprint: Fingerprint) -> bool {
        fingerprint.len > 0
            && self.size >= fingerprint.len
            && self
                .read_head(fingerprint.len)
                .is_ok_and(|head| Fingerprint::of(&head) == fingerprint)
    }

    /// True when this file still begins with the `head` read from it earlier.
    fn still_starts_with(&self, head: &[u8]) -> bool {
        self.size >= head.len() as u64
            && self
                .read_head(head.len() as u64)
                .is_ok_and(|now| now == head)
    }
}

/// How a new file relates to a file we read `consumed` bytes of, whose first
/// bytes are `original_head`.
#[derive(Debug, PartialEq, Eq)]
enum Kinship {
    /// It holds at least what we read, and starts the same: a copy.
    Copy,
    /// All it holds so far is the start of the original, but less than we
    /// read: a copy still being written, or a file made from an older state.
    MaybeCopy,
    Unrelated,
}

/// Keeps the last [`Fingerprint::MAX_LEN`] bytes of `tail` followed by
/// `read` in `tail`.
fn remember_tail(tail: &mut Vec<u8>, read: &[u8]) {
    let max = Fingerprint::MAX_LEN as usize;
    if read.len() >= max {
        tail.clear();
        tail.extend_from_slice(&read[read.len() - max..]);
    } else {
        tail.extend_from_slice(read);
        let excess = tail.len().saturating_sub(max);
        tail.drain(..excess);
    }
}

fn kinship(original_head: &[u8], consumed: u64, new_head: &[u8], new_size: u64) -> Kinship {
    if consumed == 0 || original_head.is_empty() {
        Kinship::Unrelated
    } else if new_size >= consumed && new_head.starts_with(original_head) {
        Kinship::Copy
    } else if new_size < consumed && original_head.starts_with(new_head) {
        Kinship::MaybeCopy
    } else {
        Kinship::Unrelated
    }
}

/// Whether `a` and `b` hold the same bytes in `[end - COPY_CHECK_LEN, end)`
/// (clamped at 0). `None` when either is shorter than `end` by now (the
/// original was truncated meanwhile, say), so the question cannot be
/// answered.
fn same_bytes_before(a: &File, b: &File, end: u64) -> Option<bool> {
    Some(bytes_before(a, end, COPY_CHECK_LEN)? == bytes_before(b, end, COPY_CHECK_LEN)?)
}

/// The `len` bytes of `file` before `end` (all of them when `end < len`),
/// if every one can be read.
fn bytes_before(file: &File, end: u64, len: u64) -> Option<Vec<u8>> {
    let len = end.min(len);
    let mut bytes = vec![0; len as usize];
    match read_fully_at(file, &mut bytes, end - len) {
        Ok(n) if n == bytes.len() => Some(bytes),
        _ => None,
    }
}

/// A new file left unread for now because it may be a copy still being
/// written.
#[derive(Debug)]
struct Deferral {
    size: u64,
    first_seen: Instant,
    size_changed: Instant,
}

fn read_fully_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read_at(&mut buf[n..], offset + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// A truncated file's state before the truncation, kept in case its copy
/// appears later.
#[derive(Debug)]
struct Ghost {
    head: Vec<u8>,
    consumed: u64,
    progress: SharedProgress,
    split: SplitState,
    expires: Instant,
}

/// A record read from a file, with the progress its completion updates.
#[derive(Debug)]
pub(crate) struct ReadRecord {
    pub(crate) progress: SharedProgress,
    pub(crate) record: RawRecord,
}

/// All the files of one flow.
#[derive(Debug)]
pub(crate) struct Tailer {
    pattern: String,
    splitter: Splitter,
    initial_position: InitialPosition,
    files: Vec<TailedFile>,
    ghosts: Vec<Ghost>,
    /// New files that may be copies still being written, by identity.
    deferred: std::collections::HashMap<FileId, Deferral>,
    /// Checkpoints loaded at start; used by the first scan only.
    saved: Vec<FileCheckpoint>,
    /// No checkpoint existed for this flow: `initialPosition` applies.
    first_run: bool,
    scanned: bool,
    /// The file the next `read` starts with: files take turns at the
    /// budget, so the first ones cannot starve the others.
    next_read: usize,
    /// Paths whose problem (a file or directory that cannot be read) was
    /// logged and persists: scans run every poll, and one warning is enough.
    warned: std::collections::HashSet<PathBuf>,
}

impl Tailer {
    /// A tailer for `pattern`, resuming from `saved` (this flow's entries in
    /// the checkpoint file; `None` on the flow's first run).
    pub(crate) fn new(
        pattern: String,
        splitter: Splitter,
        initial_position: InitialPosition,
        saved: Option<Vec<FileCheckpoint>>,
    ) -> Self {
        Tailer {
            pattern,
            splitter,
            initial_position,
            files: Vec::new(),
            ghosts: Vec::new(),
            deferred: std::collections::HashMap::new(),
            first_run: saved.is_none(),
            saved: saved.unwrap_or_default(),
            scanned: false,
            next_read: 0,
            warned: std::collections::HashSet::new(),
        }
    }

    fn warn_once(&mut self, path: &Path, problem: &str) {
        if self.warned.insert(path.to_owned()) {
            tracing::warn!(path = %path.display(), "{problem} (retried every poll; logged again only if it recurs after being solved)");
        }
    }

    /// Finds new files, notices renames and truncations, drops finished
    /// files.
    pub(crate) fn scan(&mut self) {
        let now = Instant::now();
        self.ghosts.retain(|g| g.expires > now);

        let mut found = Vec::new();
        let mut problems = std::collections::HashSet::new();
        if let Ok(paths) = glob::glob(&self.pattern) {
            for entry in paths {
                match entry {
                    Ok(path) => match std::fs::metadata(&path) {
                        Ok(meta) if meta.is_file() => found.push((path, meta)),
                        _ => {}
                    },
                    // A directory the agent may not read, say.
                    Err(e) => {
                        let path = e.path().to_owned();
                        self.warn_once(
                            &path,
                            &format!("cannot look for files in it: {}", e.error()),
                        );
                        problems.insert(path);
                    }
                }
            }
        }
        for file in &mut self.files {
            file.in_glob = false;
        }
        self.deferred
            .retain(|id, _| found.iter().any(|(_, meta)| FileId::of(meta) == *id));
        let mut new = Vec::new();
        for (path, meta) in found {
            let id = FileId::of(&meta);
            match self.files.iter_mut().find(|f| f.id == id) {
                Some(file) => {
                    file.in_glob = true;
                    file.path = path;
                }
                None => new.push((path, meta)),
            }
        }
        // Older files first: after a rotation, the rotated file's rest is
        // read before the new file's first lines.
        new.sort_by_key(|(_, meta)| meta.modified().ok());
        let mut new: Vec<PathBuf> = new.into_iter().map(|(path, _)| path).collect();
        // On the first scan, every file that still holds what its own
        // checkpoint says was read resumes from it before any other file is
        // looked at, so a file that merely starts the same way cannot take
        // that checkpoint, and a copy made while we were down is matched
        // against its original.
        if !self.scanned {
            // A file that cannot be opened is tried again below (and
            // reported there).
            new.retain(|path| {
                self.resume_own_checkpoint(path)
                    .map_or(true, |resumed| !resumed)
            });
        }
        for path in new {
            match self.start_following(path.clone()) {
                Ok(()) => {}
                Err(e) => {
                    self.warn_once(&path, &format!("cannot open file: {e}"));
                    problems.insert(path);
                }
            }
        }
        // Reported again if the problem comes back after it was solved.
        self.warned.retain(|path| problems.contains(path));

        // Copies were matched above against the state before truncation;
        // now reset truncated files.
        for file in &mut self.files {
            let Ok(meta) = file.file.metadata() else {
                continue;
            };
            let size = meta.len();
            if size != file.size {
                file.last_change = now;
            }
            file.size = size;
            let replaced = size < file.consumed
                || (file.consumed > 0 && !file.still_starts_with(&file.head))
                || file.holds_read_tail() == Some(false);
            if replaced {
                tracing::info!(path = %file.path.display(), "file was truncated; reading it from the start");
                let fresh = Arc::new(Mutex::new(Progress::new(0)));
                self.ghosts.push(Ghost {
                    head: std::mem::take(&mut file.head),
                    consumed: file.consumed,
                    progress: std::mem::replace(&mut file.progress, fresh),
                    split: std::mem::take(&mut file.split),
                    expires: now + GHOST_TTL,
                });
                file.consumed = 0;
                file.read_tail.clear();
                file.checkpointed = None;
                file.split = SplitState {
                    header_lines_left: self.splitter.skip_header_lines,
                    discarding: false,
                };
            }
            if (file.head.len() as u64) < Fingerprint::MAX_LEN
                && size > file.head.len() as u64
                && let Ok(head) = file.read_head(Fingerprint::MAX_LEN)
            {
                file.head = head;
            }
        }

        // A file that left the glob is done once read to its end, quiet,
        // and every record read from it is acknowledged (until then its
        // records may still expire and be sent again, and its checkpoint
        // entry is kept).
        self.files.retain(|f| {
            let acknowledged = f.progress.lock().is_ok_and(|p| p.acked() >= f.consumed);
            let done = !f.in_glob
                && f.consumed >= f.size
                && now - f.last_change >= QUIET_FLUSH
                && acknowledged;
            if done {
                tracing::debug!(path = %f.path.display(), "finished with a file that left the pattern");
            }
            !done
        });
        self.scanned = true;
    }

    /// Opens `path` to follow it from its start (callers move it on).
    fn open(&self, path: PathBuf) -> io::Result<TailedFile> {
        let file = File::open(&path)?;
        let meta = file.metadata()?;
        let size = meta.len();
        let mut tailed = TailedFile {
            id: FileId::of(&meta),
            path,
            file,
            consumed: 0,
            size,
            progress: Arc::new(Mutex::new(Progress::new(0))),
            head: Vec::new(),
            split: SplitState {
                header_lines_left: self.splitter.skip_header_lines,
                discarding: false,
            },
            last_change: Instant::now(),
            in_glob: true,
            read_tail: Vec::new(),
            checkpointed: None,
        };
        tailed.head = tailed.read_head(Fingerprint::MAX_LEN)?;
        Ok(tailed)
    }

    /// Step 1 of following a file on the first scan: our own checkpoint,
    /// if this inode still holds what it says was read. A checkpoint
    /// resumes one file only: once claimed, it is gone. Returns whether the
    /// file is now followed.
    fn resume_own_checkpoint(&mut self, path: &Path) -> io::Result<bool> {
        let mut tailed = self.open(path.to_owned())?;
        let Some(i) = self.saved.iter().position(|c| {
            c.dev == tailed.id.dev && c.ino == tailed.id.ino && (c.offset == 0 || tailed.holds(c))
        }) else {
            return Ok(false);
        };
        let offset = self.saved.swap_remove(i).offset;
        if offset > 0 {
            tailed.progress = Arc::new(Mutex::new(Progress::new(offset)));
            tailed.split = SplitState::default();
            tailed.resume_at(offset);
        }
        tracing::info!(path = %tailed.path.display(), offset, "resuming from checkpoint");
        self.files.push(tailed);
        Ok(true)
    }

    fn start_following(&mut self, path: PathBuf) -> io::Result<()> {
        let mut tailed = self.open(path)?;
        let size = tailed.size;
        let first_scan = !self.scanned;

        let resume =
            |consumed: u64, progress: SharedProgress, split: SplitState, t: &mut TailedFile| {
                t.progress = progress;
                t.split = split;
                t.resume_at(consumed);
            };
        let past_header = SplitState::default();

        // 2. Possibly a copy (copytruncate) still being written: decide
        //    once it holds what we read of the original, stops growing for
        //    a second, or has waited GHOST_TTL. Only followed originals
        //    count: copytruncate copies before it truncates, so the copy of
        //    a file already truncated is complete.
        let new_head = tailed.head.clone();
        let kin = |head: &[u8], consumed: u64| kinship(head, consumed, &new_head, size);
        let maybe_copy = self.files.iter().any(|f| {
            kin(&f.head, f.consumed) == Kinship::MaybeCopy
                && same_bytes_before(&f.file, &tailed.file, size) != Some(false)
        });
        let now = Instant::now();
        if maybe_copy {
            let wait = self.deferred.entry(tailed.id).or_insert(Deferral {
                size,
                first_seen: now,
                size_changed: now,
            });
            if wait.size != size {
                wait.size = size;
                wait.size_changed = now;
            }
            if now - wait.size_changed < QUIET_FLUSH && now - wait.first_seen < GHOST_TTL {
                tracing::debug!(path = %tailed.path.display(), "new file may be a copy still being written; waiting");
                return Ok(());
            }
        }
        self.deferred.remove(&tailed.id);
        // 3. A copy of a file we follow (copytruncate): take over its
        //    progress; the original continues with a fresh one. Where the
        //    original still holds what we read, the copy must hold the same
        //    bytes just before that point too, not only the same start.
        if let Some(original) = self.files.iter_mut().find(|f| {
            kin(&f.head, f.consumed) == Kinship::Copy
                && same_bytes_before(&f.file, &tailed.file, f.consumed) != Some(false)
        }) {
            let consumed = original.consumed;
            let fresh = Arc::new(Mutex::new(Progress::new(consumed)));
            let progress = std::mem::replace(&mut original.progress, fresh);
            resume(consumed, progress, original.split.clone(), &mut tailed);
            tracing::info!(path = %tailed.path.display(), copy_of = %original.path.display(), consumed, "found a copy of a followed file; reading only its unread tail");
            self.files.push(tailed);
            return Ok(());
        }
        if let Some(i) = self
            .ghosts
            .iter()
            .position(|g| kin(&g.head, g.consumed) == Kinship::Copy)
        {
            let ghost = self.ghosts.swap_remove(i);
            resume(ghost.consumed, ghost.progress, ghost.split, &mut tailed);
            tracing::info!(path = %tailed.path.display(), consumed = ghost.consumed, "found the copy of a truncated file; reading only its unread tail");
            self.files.push(tailed);
            return Ok(());
        }
        // 4. A copy made while we were down of a file we had checkpointed
        //    and that no longer holds what we read (truncated or gone):
        //    checkpoints still held by their own inode were claimed first
        //    (`resume_own_checkpoint`).
        if first_scan && let Some(i) = self.saved.iter().position(|c| tailed.holds(c)) {
            let offset = self.saved.swap_remove(i).offset;
            resume(
                offset,
                Arc::new(Mutex::new(Progress::new(offset))),
                past_header,
                &mut tailed,
            );
            self.files.push(tailed);
            return Ok(());
        }
        // 5. initialPosition, for files present at the very first start.
        if first_scan && self.first_run && self.initial_position == InitialPosition::EndOfFile {
            resume(
                size,
                Arc::new(Mutex::new(Progress::new(size))),
                past_header,
                &mut tailed,
            );
        }
        // 6. Otherwise a new file: from its start.
        tracing::info!(path = %tailed.path.display(), offset = tailed.consumed, "following file");
        self.files.push(tailed);
        Ok(())
    }

    /// Reads what was appended to the files, up to [`READ_BUDGET`] bytes in
    /// all (each file's records in order, the files taking turns to go
    /// first), and cuts it into records; an empty result means nothing
    /// new.
    pub(crate) fn read(&mut self) -> Vec<ReadRecord> {
        let now = Instant::now();
        let mut out = Vec::new();
        let mut budget = READ_BUDGET;
        let count = self.files.len();
        let first = self.next_read % count.max(1);
        self.next_read = first + 1;
        for turn in 0..count {
            if budget == 0 {
                break;
            }
            let file = &mut self.files[(first + turn) % count];
            if file.consumed >= file.size {
                continue;
            }
            let len = (file.size - file.consumed).min(READ_CHUNK).min(budget);
            let mut chunk = vec![0; len as usize];
            let n = match read_fully_at(&file.file, &mut chunk, file.consumed) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(path = %file.path.display(), "read failed: {e}");
                    continue;
                }
            };
            chunk.truncate(n);
            let at_end = file.consumed + n as u64 >= file.size;
            let quiet = now - file.last_change >= QUIET_FLUSH;
            // An unfinished multi-line record is sent once the file is
            // quiet; an unterminated line only once the file has left the
            // glob too (it will not grow any more).
            let flush =
                at_end && quiet && (!file.in_glob || self.splitter.multi_line_start.is_some());
            let flush_partial_line = at_end && quiet && !file.in_glob;
            let (records, used) = if flush && !flush_partial_line {
                // Multi-line: flush the pending record's complete lines only.
                let complete = chunk.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                self.splitter
                    .split(&chunk[..complete], file.consumed, &mut file.split, true)
            } else {
                self.splitter
                    .split(&chunk, file.consumed, &mut file.split, flush_partial_line)
            };
            file.consumed += used as u64;
            budget = budget.saturating_sub(n as u64);
            remember_tail(&mut file.read_tail, &chunk[..used]);
            out.extend(records.into_iter().map(|record| ReadRecord {
                progress: file.progress.clone(),
                record,
            }));
        }
        out
    }

    /// The checkpoint entries of the followed files.
    pub(crate) fn checkpoints(&mut self) -> Vec<FileCheckpoint> {
        self.files
            .iter_mut()
            .map(|f| {
                let acked = f.progress.lock().map(|p| p.acked()).unwrap_or(0);
                let (offset, before_offset) = f.checkpoint_entry(acked);
                FileCheckpoint {
                    path: f.path.clone(),
                    dev: f.id.dev,
                    ino: f.id.ino,
                    offset,
                    fingerprint: Fingerprint::of(&f.head),
                    before_offset,
                }
            })
            .collect()
    }

    /// Bytes in the files not yet handed out as records.
    pub(crate) fn behind_bytes(&self) -> u64 {
        self.files
            .iter()
            .map(|f| f.size.saturating_sub(f.consumed))
            .sum()
    }

    /// How many files are followed.
    pub(crate) fn file_count(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn splitter(multi: Option<&str>) -> Splitter {
        Splitter {
            multi_line_start: multi.map(|p| Regex::new(p).unwrap()),
            max_record: 10,
            terminator: b"~".to_vec(),
            skip_header_lines: 0,
        }
    }

    fn data(records: &[RawRecord]) -> Vec<Option<String>> {
        records
            .iter()
            .map(|r| {
                r.data
                    .as_ref()
                    .map(|d| String::from_utf8(d.clone()).unwrap())
            })
            .collect()
    }

    #[test]
    fn kinship_tells_copies_from_files_still_being_copied() {
        let head = b"line 1\nline 2\n";
        // Holds what we read (10 bytes) and starts the same.
        assert_eq!(kinship(head, 10, head, 20), Kinship::Copy);
        // Half-written copy: a prefix of the original, shorter than read.
        assert_eq!(kinship(head, 10, b"line", 4), Kinship::MaybeCopy);
        assert_eq!(kinship(head, 10, b"", 0), Kinship::MaybeCopy);
        // Different bytes, or an original we have not read from.
        assert_eq!(kinship(head, 10, b"other\n", 6), Kinship::Unrelated);
        assert_eq!(kinship(head, 10, b"other line\n", 20), Kinship::Unrelated);
        assert_eq!(kinship(head, 0, b"", 0), Kinship::Unrelated);
    }

    /// The race the copytruncate rotation test once lost: a scan that sees
    /// the copy half-written must not follow it from offset 0.
    #[test]
    fn a_copy_seen_half_written_is_followed_from_the_original_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("data.log");
        let lines: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
        std::fs::write(&log, &lines).unwrap();
        let mut tailer = tailer(
            &format!("{}*", log.display()),
            InitialPosition::StartOfFile,
            None,
        );
        tailer.scan();
        assert_eq!(tailer.read().len(), 100);

        // The copy, caught half-way: left alone.
        let copy = dir.path().join("data.log.1");
        std::fs::write(&copy, &lines[..lines.len() / 2]).unwrap();
        tailer.scan();
        assert_eq!(tailer.file_count(), 1);
        assert!(tailer.read().is_empty());

        // Copy finished, original truncated, then written to again.
        std::fs::write(&copy, &lines).unwrap();
        std::fs::write(&log, "after\n").unwrap();
        tailer.scan();
        assert_eq!(tailer.file_count(), 2);
        let read: Vec<_> = tailer
            .read()
            .into_iter()
            .map(|r| r.record.data.unwrap())
            .collect();
        assert_eq!(read, vec![b"after".to_vec()]);
    }

    /// A new file that starts like a followed one (a common header longer
    /// than the compared head) but goes on differently is not a copy: it is
    /// read whole, at once, whether shorter or longer than what was read.
    #[test]
    fn a_file_that_only_shares_a_header_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let header: String = (0..40)
            .map(|i| format!("# header line {i:02} ........\n"))
            .collect();
        assert!(header.len() as u64 > Fingerprint::MAX_LEN);
        let body =
            |tag: &str, n: usize| -> String { (0..n).map(|i| format!("{tag} {i:03}\n")).collect() };
        let first = dir.path().join("a.log");
        std::fs::write(&first, format!("{header}{}", body("first", 200))).unwrap();
        let mut tailer = tailer(
            &format!("{}/*.log", dir.path().display()),
            InitialPosition::StartOfFile,
            None,
        );
        tailer.scan();
        assert_eq!(tailer.read().len(), 240);

        // Shorter than what was read of a.log, and longer.
        std::fs::write(
            dir.path().join("b.log"),
            format!("{header}{}", body("b", 10)),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("c.log"),
            format!("{header}{}", body("c", 400)),
        )
        .unwrap();
        tailer.scan();
        assert_eq!(tailer.file_count(), 3);
        assert_eq!(tailer.read().len(), 50 + 440);
    }

    /// A tailer of `pattern` cutting records of up to 100 bytes.
    fn tailer(
        pattern: &str,
        position: InitialPosition,
        saved: Option<Vec<FileCheckpoint>>,
    ) -> Tailer {
        let mut splitter = splitter(None);
        splitter.max_record = 100;
        Tailer::new(pattern.to_owned(), splitter, position, saved)
    }

    /// Six files of about 4 MiB each: one read takes at most the budget,
    /// the files behind take their turn next, and every line is read once.
    #[test]
    fn a_read_takes_at_most_its_budget_and_files_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let line = format!("{}\n", "x".repeat(99));
        let per_file = (READ_CHUNK / 100) as usize;
        for i in 0..6 {
            std::fs::write(dir.path().join(format!("{i}.log")), line.repeat(per_file)).unwrap();
        }
        let mut tailer = tailer(
            &format!("{}/*.log", dir.path().display()),
            InitialPosition::StartOfFile,
            None,
        );
        tailer.scan();
        let mut reads = Vec::new();
        loop {
            let records = tailer.read();
            if records.is_empty() {
                break;
            }
            let bytes: u64 = records.iter().map(|r| r.record.end - r.record.start).sum();
            assert!(bytes <= READ_BUDGET, "{bytes} bytes in one read");
            reads.push(records.len());
        }
        assert_eq!(reads.iter().sum::<usize>(), 6 * per_file);
        assert!(reads.len() >= 2, "{reads:?}");
    }

    /// A file that left the pattern stays followed (and in the checkpoint
    /// entries) until what was read from it is acknowledged.
    #[test]
    fn a_file_that_left_the_pattern_is_kept_until_its_records_are_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        std::fs::write(&log, "one\ntwo\n").unwrap();
        let mut tailer = tailer(
            &format!("{}", log.display()),
            InitialPosition::StartOfFile,
            None,
        );
        tailer.scan();
        let records = tailer.read();
        assert_eq!(records.len(), 2);
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        std::thread::sleep(QUIET_FLUSH + Duration::from_millis(100));
        tailer.scan();
        assert_eq!(tailer.file_count(), 1, "dropped with records in flight");
        assert_eq!(tailer.checkpoints().len(), 1);
        deliver(records);
        tailer.scan();
        assert_eq!(tailer.file_count(), 0);
    }

    /// Marks `records` delivered.
    fn deliver(records: Vec<ReadRecord>) {
        for r in records {
            r.progress
                .lock()
                .unwrap()
                .complete(r.record.start, r.record.end);
        }
    }

    /// Reads everything `tailer` has, marks it delivered, and returns the
    /// checkpoints a stopping agent would write.
    fn read_all_and_checkpoint(tailer: &mut Tailer) -> Vec<FileCheckpoint> {
        tailer.scan();
        deliver(tailer.read());
        tailer.checkpoints()
    }

    fn append(path: &Path, text: &str) {
        let mut file = File::options().append(true).open(path).unwrap();
        io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    }

    /// The lines of `text`, sorted (what `restart` returns).
    fn sorted_lines(text: &str) -> Vec<String> {
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        lines
    }

    fn set_mtime(path: &Path, seconds_ago: u64) {
        let when = std::time::SystemTime::now() - Duration::from_secs(seconds_ago);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    fn lines(tag: &str, range: std::ops::Range<usize>) -> String {
        range.map(|i| format!("{tag} {i:03}\n")).collect()
    }

    fn restart(pattern: &str, saved: Vec<FileCheckpoint>) -> Vec<String> {
        let mut tailer = tailer(pattern, InitialPosition::EndOfFile, Some(saved));
        tailer.scan();
        let mut read: Vec<String> = tailer
            .read()
            .into_iter()
            .map(|r| String::from_utf8(r.record.data.unwrap()).unwrap())
            .collect();
        read.sort();
        read
    }

    /// Rename rotation while the agent was down, and the new file happens
    /// to begin with the same bytes as the old one (a start-up banner
    /// longer than the fingerprint). The rotated file keeps its checkpoint
    /// by inode; the new file is read whole, not taken for a copy of the
    /// old one.
    #[test]
    fn after_a_restart_a_new_file_like_the_rotated_one_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("data.log");
        let banner = lines("banner", 0..100);
        assert!(banner.len() as u64 > Fingerprint::MAX_LEN);
        std::fs::write(&log, format!("{banner}{}", lines("old", 0..5))).unwrap();
        let pattern = format!("{}*", log.display());
        let mut tailer = tailer(&pattern, InitialPosition::StartOfFile, None);
        let saved = read_all_and_checkpoint(&mut tailer);
        drop(tailer);

        // While down: two more lines, rotation, a new file with the banner.
        let rotated = dir.path().join("data.log.1");
        append(&log, &lines("old", 5..7));
        std::fs::rename(&log, &rotated).unwrap();
        std::fs::write(&log, format!("{banner}{}", lines("new", 0..9))).unwrap();
        assert!(std::fs::metadata(&log).unwrap().len() >= saved[0].offset);
        set_mtime(&rotated, 20);
        set_mtime(&log, 10);

        let expected = sorted_lines(&(lines("old", 5..7) + &banner + &lines("new", 0..9)));
        assert_eq!(restart(&pattern, saved), expected);
    }

    /// Copytruncate while the agent was down, and the application wrote
    /// its banner (longer than the fingerprint) to the truncated file
    /// again: the copy resumes from the checkpoint, the original is read
    /// from its start, whether it is still shorter than the checkpoint or
    /// has grown past it, and whatever order the scan meets the two in.
    #[test]
    fn after_a_restart_a_copy_resumes_and_the_truncated_original_starts_over() {
        let banner = lines("banner", 0..100);
        for (new_lines, copy_is_older) in [(3, true), (3, false), (400, true), (400, false)] {
            let dir = tempfile::tempdir().unwrap();
            let log = dir.path().join("data.log");
            std::fs::write(&log, format!("{banner}{}", lines("old", 0..40))).unwrap();
            let pattern = format!("{}*", log.display());
            let mut tailer = tailer(&pattern, InitialPosition::StartOfFile, None);
            let saved = read_all_and_checkpoint(&mut tailer);
            drop(tailer);

            let copy = dir.path().join("data.log.1");
            append(&log, &lines("old", 40..45));
            std::fs::copy(&log, &copy).unwrap();
            std::fs::write(&log, format!("{banner}{}", lines("new", 0..new_lines))).unwrap();
            let regrown = std::fs::metadata(&log).unwrap().len() >= saved[0].offset;
            assert_eq!(regrown, new_lines > 3);
            set_mtime(&copy, if copy_is_older { 20 } else { 5 });
            set_mtime(&log, 10);

            let expected =
                sorted_lines(&(lines("old", 40..45) + &banner + &lines("new", 0..new_lines)));
            assert_eq!(
                restart(&pattern, saved),
                expected,
                "original grown past the checkpoint: {regrown}, copy older: {copy_is_older}"
            );
        }
    }

    /// A checkpoint taken after copytruncate but before the next scan (the
    /// last one, at stop, is taken without a scan) must not describe the
    /// rewritten file as the one we read: it keeps the last entry checked,
    /// so the copy resumes and the rewritten original is read whole.
    #[test]
    fn a_checkpoint_taken_before_the_scan_sees_a_truncation_keeps_the_old_entry() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("data.log");
        let banner = lines("banner", 0..100);
        std::fs::write(&log, format!("{banner}{}", lines("old", 0..40))).unwrap();
        let pattern = format!("{}*", log.display());
        let mut tailer = tailer(&pattern, InitialPosition::StartOfFile, None);
        let first = read_all_and_checkpoint(&mut tailer);

        // More lines read and delivered, then copytruncate and a new
        // banner, with no scan since.
        append(&log, &lines("old", 40..45));
        tailer.scan();
        deliver(tailer.read());
        std::fs::copy(&log, dir.path().join("data.log.1")).unwrap();
        std::fs::write(&log, format!("{banner}{}", lines("new", 0..400))).unwrap();
        let saved = tailer.checkpoints();
        assert_eq!(saved, first);
        drop(tailer);

        let expected = sorted_lines(&(lines("old", 40..45) + &banner + &lines("new", 0..400)));
        assert_eq!(restart(&pattern, saved), expected);
    }

    /// A file truncated and written again past the point we had read, with
    /// the same first KiB (a banner), is read again from its start.
    #[test]
    fn a_file_rewritten_past_the_point_read_is_read_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("data.log");
        let banner = lines("banner", 0..100);
        std::fs::write(&log, format!("{banner}{}", lines("old", 0..40))).unwrap();
        let mut tailer = tailer(
            &format!("{}", log.display()),
            InitialPosition::StartOfFile,
            None,
        );
        tailer.scan();
        assert_eq!(tailer.read().len(), 140);

        std::fs::write(&log, format!("{banner}{}", lines("new", 0..400))).unwrap();
        tailer.scan();
        let read = tailer.read();
        assert_eq!(read.len(), 500);
        assert_eq!(read[0].record.start, 0);
    }

    #[test]
    fn lines_become_records_and_partial_lines_wait() {
        let s = splitter(None);
        let mut state = SplitState::default();
        let (records, used) = s.split(b"ab\ncd\nef", 100, &mut state, false);
        assert_eq!(data(&records), [Some("ab".into()), Some("cd".into())]);
        assert_eq!((records[1].start, records[1].end), (103, 106));
        assert_eq!(used, 6);
        let (records, used) = s.split(b"ef", 106, &mut state, true);
        assert_eq!(data(&records), [Some("ef".into())]);
        assert_eq!(used, 2);
    }

    #[test]
    fn header_lines_are_skipped_but_counted() {
        let mut s = splitter(None);
        s.skip_header_lines = 1;
        let mut state = SplitState {
            header_lines_left: 1,
            discarding: false,
        };
        let (records, used) = s.split(b"h\nx\n", 0, &mut state, false);
        assert_eq!(data(&records), [None, Some("x".into())]);
        assert_eq!(used, 4);
    }

    #[test]
    fn long_lines_are_cut_and_their_rest_skipped() {
        let s = splitter(None);
        let mut state = SplitState::default();
        let (records, used) = s.split(b"0123456789abcdef", 0, &mut state, false);
        assert_eq!(data(&records), [Some("012345678~".into())]);
        assert_eq!(used, 16);
        assert!(state.discarding);
        let (records, used) = s.split(b"gh\nok\n", 16, &mut state, false);
        assert_eq!(data(&records), [None, Some("ok".into())]);
        assert_eq!((records[0].start, records[0].end), (16, 19));
        assert_eq!(used, 6);
    }

    #[test]
    fn multi_line_records_end_at_the_next_start() {
        let mut s = splitter(Some("^\\d"));
        s.max_record = 100;
        let mut state = SplitState::default();
        let (records, used) = s.split(b"1 a\n  b\n2 c\n  d\n", 0, &mut state, false);
        assert_eq!(data(&records), [Some("1 a\n  b".into())]);
        assert_eq!(used, 8);
        let (records, used) = s.split(b"2 c\n  d\n", 8, &mut state, true);
        assert_eq!(data(&records), [Some("2 c\n  d".into())]);
        assert_eq!(used, 8);
    }
}
