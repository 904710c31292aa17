//! [`EnvFile`]: reading, editing and atomically writing one env file.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::diff;
use crate::document::{Document, Entry, LineKind, key_problem, value_problem};
use crate::error::{Error, Result, from_io};

/// What a path that is neither a directory nor a regular file is, for an error.
fn special_kind(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    let t = meta.file_type();
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_char_device() || t.is_block_device() {
        "device"
    } else {
        "special file"
    }
}

/// The largest file [`EnvFile::open`] reads: 16 MiB. Setup's `global.override.env` is a few
/// kilobytes; anything this large is the wrong file, and refusing it keeps memory bounded.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// How old a temporary file left beside the env file (or its backup) by an interrupted save
/// must be before the next successful save removes it.
///
/// A save writes into an unnamed temporary file and, on commit, links it under a hidden name
/// (`.global.override.env.Ab12Cd`) an instant before renaming it over the file: Linux cannot
/// link an unnamed file over an existing name. A process killed inside that instant, or on a
/// file system without unnamed temporary files during the whole write, leaves that hidden
/// file behind (mode 0600, like the file). The next save removes such leftovers once they are
/// this old; younger ones may belong to a save still running in another process.
pub const STALE_TEMPORARY_AGE: Duration = Duration::from_mins(1);

/// The name errors use for a document that was not read from a file.
const MEMORY_LABEL: &str = "<memory>";

/// An env file held in memory, losslessly.
///
/// Rendering an unedited `EnvFile` gives back its input byte for byte (BOM, CRLF, comments,
/// blank lines, quoting, a missing final newline). Edits touch only the lines they change.
///
/// Keys are looked up **ignoring ASCII case**, as the server's configuration binder does.
/// Reading a key that occurs more than once returns its last occurrence (the one docker compose
/// passes on); editing or removing such a key is refused with [`Error::AmbiguousKey`], and
/// [`EnvFile::checks`] reports it.
#[derive(Debug, Clone)]
pub struct EnvFile {
    pub(crate) path: PathBuf,
    /// True when `path` is a real file location (not the in-memory label).
    has_path: bool,
    /// True when the file existed when it was read.
    existed: bool,
    /// The file's permission bits when it was read (Unix).
    pub(crate) mode: Option<u32>,
    pub(crate) doc: Document,
}

/// What [`EnvFile::save`] does besides writing the file.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Before replacing the file, copy the current one to `<name>.bak` beside it (mode 0600,
    /// replacing an older backup).
    pub backup: bool,
}

impl WriteOptions {
    /// The defaults: no backup.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`WriteOptions::backup`].
    #[must_use]
    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }
}

/// What [`EnvFile::save`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaveOutcome {
    /// Nothing had changed: the file was not touched (its modification time is unchanged).
    Unchanged,
    /// The file was replaced atomically, keeping its mode and (where permitted) its owner.
    Written {
        /// Where the previous content was copied, if a backup was asked for.
        backup: Option<PathBuf>,
    },
    /// The file did not exist and was created with mode 0600.
    Created,
}

/// A point in [`EnvFile::save`] at which a test can inject a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SaveStage {
    /// The new content is in the temporary file, fsync not yet done, nothing renamed.
    BeforeCommit,
}

impl EnvFile {
    /// Reads and parses a file.
    ///
    /// A symbolic link is followed to its target (a common layout keeps the file elsewhere and
    /// links it into `bwdata/env`); the document then names the target, and a save replaces
    /// the target atomically in its own directory, leaving the link as it is.
    ///
    /// Refuses a missing file (or a link to one), a directory, anything but a regular file (a
    /// FIFO would block the reader), a file that is not UTF-8 (saying the line), and a file
    /// larger than [`MAX_FILE_BYTES`] (reading at most that many bytes, even from a file that
    /// grows).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let given = path.as_ref();
        let mut meta = fs::symlink_metadata(given).map_err(|e| from_io(given, "reading", e))?;
        let real;
        let path = if meta.file_type().is_symlink() {
            real = fs::canonicalize(given).map_err(|e| from_io(given, "following the link", e))?;
            meta = fs::symlink_metadata(&real).map_err(|e| from_io(&real, "reading", e))?;
            tracing::debug!(link = %given.display(), target = %real.display(), "env file is a link: following it");
            real.as_path()
        } else {
            given
        };
        if meta.is_dir() {
            return Err(Error::IsDirectory {
                path: path.to_path_buf(),
            });
        }
        if !meta.is_file() {
            return Err(Error::NotARegularFile {
                path: path.to_path_buf(),
                kind: special_kind(&meta),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(too_large(path, meta.len()));
        }
        let bytes = read_bounded(path, meta.len())?;
        let mut file = Self::from_bytes(bytes, path, true)?;
        file.mode = file_mode(&meta);
        tracing::debug!(path = %path.display(), lines = file.doc.lines.len(), "env file read");
        Ok(file)
    }

    /// Like [`EnvFile::open`], but a missing file gives an empty document that
    /// [`EnvFile::save`] creates with mode 0600.
    pub fn open_or_new(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        match Self::open(path) {
            Err(Error::NotFound { .. }) => Ok(Self {
                path: path.to_path_buf(),
                has_path: true,
                existed: false,
                mode: None,
                doc: Document::parse(String::new()),
            }),
            other => other,
        }
    }

    /// Parses a document from memory. Errors name it `<memory>`; give it a file with
    /// [`EnvFile::with_path`] to save it.
    pub fn parse(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        let label = Path::new(MEMORY_LABEL);
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(too_large(label, bytes.len() as u64));
        }
        Self::from_bytes(bytes, label, false)
    }

    fn from_bytes(bytes: Vec<u8>, path: &Path, has_path: bool) -> Result<Self> {
        let text = String::from_utf8(bytes).map_err(|e| {
            let bytes = e.as_bytes();
            let bad = e.utf8_error().valid_up_to();
            let before = &bytes[..bad];
            #[allow(clippy::naive_bytecount)] // error path only
            let line = before.iter().filter(|b| **b == b'\n').count() + 1;
            let line_start = before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
            Error::NotUtf8 {
                path: path.to_path_buf(),
                line,
                column: bad - line_start + 1,
            }
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            has_path,
            existed: has_path,
            mode: None,
            doc: Document::parse(text),
        })
    }

    /// Sets the file this document is saved to (as a file that does not exist yet: saving
    /// refuses to overwrite a file whose content differs from what this document was read from,
    /// so a parsed document can only create a new file or overwrite an identical one).
    #[must_use]
    pub fn with_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = path.into();
        self.has_path = true;
        self
    }

    /// The file's path (or `<memory>`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's permission bits when it was read (Unix), if it was read from disk.
    pub fn mode(&self) -> Option<u32> {
        self.mode
    }

    /// Every `KEY=VALUE` line, in file order.
    pub fn entries(&self) -> impl Iterator<Item = Entry<'_>> {
        self.doc.lines.iter().enumerate().filter_map(|(i, line)| {
            if let LineKind::Entry(spans) = line.kind {
                Some(Entry {
                    line_no: i + 1,
                    text: self.doc.line_text(line),
                    spans,
                })
            } else {
                None
            }
        })
    }

    /// The entry on line index `idx` (0-based), if that line is an assignment.
    pub(crate) fn entry_at(&self, idx: usize) -> Option<Entry<'_>> {
        let line = self.doc.lines.get(idx)?;
        match line.kind {
            LineKind::Entry(spans) => Some(Entry {
                line_no: idx + 1,
                text: self.doc.line_text(line),
                spans,
            }),
            _ => None,
        }
    }

    /// Every line where `key` occurs, ignoring ASCII case.
    pub fn occurrences<'a>(&'a self, key: &'a str) -> impl Iterator<Item = Entry<'a>> + 'a {
        self.entries().filter(move |e| same_key(e.key(), key))
    }

    /// The last occurrence of `key` (ignoring ASCII case), if any.
    pub fn entry(&self, key: &str) -> Option<Entry<'_>> {
        self.entries().filter(|e| same_key(e.key(), key)).last()
    }

    /// The value of `key` as docker compose reads it (quotes removed), from its last
    /// occurrence. An empty value is `Some("")`.
    pub fn get(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.entry(key).map(|e| e.value())
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        self.doc.lines.len()
    }

    /// For each key, the 1-based lines where it occurs (ignoring ASCII case), in one pass.
    pub(crate) fn locate(&self, keys: &[&str]) -> Vec<Vec<usize>> {
        let mut found = vec![Vec::new(); keys.len()];
        for e in self.entries() {
            for (lines, key) in found.iter_mut().zip(keys) {
                if same_key(e.key(), key) {
                    lines.push(e.line());
                }
            }
        }
        found
    }

    /// The one line index (0-based) among `lines` (1-based), or an error if there are several.
    fn single_line(&self, key: &str, lines: &[usize]) -> Result<Option<usize>> {
        if lines.len() > 1 {
            return Err(Error::AmbiguousKey {
                path: self.path.clone(),
                key: key.to_owned(),
                lines: lines.to_vec(),
            });
        }
        Ok(lines.first().map(|l| l - 1))
    }

    fn check_key(&self, key: &str) -> Result<()> {
        match key_problem(key) {
            Some(reason) => Err(Error::InvalidKey {
                path: self.path.clone(),
                key: key.chars().take(64).collect(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Validates a planned `set` without doing it, returning the index of the line that holds
    /// the key, if any. Used to check a group of edits before applying any: appending and
    /// replacing lines never moves other lines, so the index stays valid for [`Self::apply_set`].
    pub(crate) fn plan_set(&self, key: &str, value: &str) -> Result<Option<usize>> {
        self.check_key(key)?;
        let lines = self.locate(&[key]).pop().unwrap_or_default();
        self.plan_set_at(key, value, &lines)
    }

    /// [`Self::plan_set`] with the key's lines already located.
    pub(crate) fn plan_set_at(
        &self,
        key: &str,
        value: &str,
        lines: &[usize],
    ) -> Result<Option<usize>> {
        self.check_key(key)?;
        if let Some(reason) = value_problem(value) {
            return Err(Error::UnsafeValue {
                path: self.path.clone(),
                key: key.to_owned(),
                reason,
            });
        }
        self.single_line(key, lines)
    }

    /// Sets `key` to `value`, written the way Bitwarden Setup writes values: raw, no quotes.
    ///
    /// - An existing line keeps its key spelling, `export ` prefix, blanks and inline comment;
    ///   only the value token (quotes included) is replaced. If the value already reads back
    ///   equal, nothing changes.
    /// - A new key is appended as `KEY=value` with the file's line ending.
    ///
    /// Returns whether the document changed. Refuses an invalid key, a value with characters
    /// the dialect cannot carry unquoted (blanks, `#`, `$`, quotes, backslash, control
    /// characters), and a key that occurs more than once.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let found = self.plan_set(key, value)?;
        Ok(self.apply_set(found, key, value))
    }

    /// Applies a `set` validated by [`Self::plan_set`]. Returns whether the document changed.
    pub(crate) fn apply_set(&mut self, found: Option<usize>, key: &str, value: &str) -> bool {
        match found {
            Some(idx) => {
                let line = &self.doc.lines[idx];
                let LineKind::Entry(spans) = line.kind else {
                    return false;
                };
                let entry = Entry {
                    line_no: idx + 1,
                    text: self.doc.line_text(line),
                    spans,
                };
                if entry.value() == value {
                    return false;
                }
                let range = entry.value_range();
                let text = entry.text;
                let (gap, rest) = kept_tail(&text[range.end..]);
                let new_text = format!("{}{value}{gap}{rest}", &text[..range.start]);
                self.doc.replace_line_text(idx, &new_text);
            }
            None => self.doc.push_line(&format!("{key}={value}")),
        }
        tracing::debug!(key, "env value set");
        true
    }

    /// Removes the line holding `key`. Returns whether it was there. Refuses a key that occurs
    /// more than once.
    pub fn remove(&mut self, key: &str) -> Result<bool> {
        self.check_key(key)?;
        let lines = self.locate(&[key]).pop().unwrap_or_default();
        match self.single_line(key, &lines)? {
            Some(idx) => {
                self.doc.lines.remove(idx);
                tracing::debug!(key, "env key removed");
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The document's bytes as they would be written.
    pub fn render(&self) -> String {
        self.doc.render()
    }

    /// Writes the document's bytes to `out`.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(self.render().as_bytes())
    }

    /// The original bytes, as read.
    pub fn original(&self) -> &str {
        &self.doc.buf[..self.doc.orig_len]
    }

    /// True when rendering would give different bytes than were read.
    pub fn is_modified(&self) -> bool {
        self.doc.is_modified() && self.render() != self.original()
    }

    /// A unified diff (`---`/`+++`/`@@` hunks, three lines of context) from the content as read
    /// to the content as it would be written; empty when nothing changed. Values of keys that
    /// look secret (names containing `key`, `password`, `secret`, `token` or
    /// `connectionString`) are shown as `[hidden]`.
    pub fn diff(&self) -> String {
        if !self.is_modified() {
            return String::new();
        }
        diff::unified(self)
    }

    /// Saves the document to its path atomically.
    ///
    /// - Nothing changed (or the content already on disk is what would be written): the file
    ///   is not touched ([`SaveOutcome::Unchanged`]).
    /// - Either way, temporary files an interrupted save left beside the file or its backup
    ///   are removed once they are [`STALE_TEMPORARY_AGE`] old.
    /// - The file read was a link's target; if the target itself became a symbolic link since,
    ///   the save is refused ([`Error::Symlink`]).
    /// - The new file keeps the old one's mode, owner and group ([`Error::OwnerNotKept`] when
    ///   this process cannot give it them) and its extended attributes, POSIX ACLs included
    ///   ([`Error::AttributeNotKept`] when one cannot be copied); nothing is replaced then.
    /// - The file changed on disk since it was read: refused ([`Error::ChangedOnDisk`]).
    /// - Otherwise the content goes to a temporary file in the same directory, is fsynced and
    ///   renamed over the file, keeping its mode and trying to keep its owner. A new file gets
    ///   mode 0600. If anything fails before the rename, the old file is left byte for byte.
    pub fn save(&mut self, options: &WriteOptions) -> Result<SaveOutcome> {
        self.save_with_hook(options, &mut |_| Ok(()))
    }

    pub(crate) fn save_with_hook(
        &mut self,
        options: &WriteOptions,
        hook: &mut dyn FnMut(SaveStage) -> io::Result<()>,
    ) -> Result<SaveOutcome> {
        if !self.has_path {
            return Err(Error::NoPath {
                path: self.path.clone(),
            });
        }
        let path = self.path.clone();
        let new = self.render();
        let on_disk = match fs::symlink_metadata(&path) {
            Ok(meta) => {
                refuse_symlink(&path, &meta)?;
                if meta.is_dir() {
                    return Err(Error::IsDirectory { path });
                }
                if !meta.is_file() {
                    let kind = special_kind(&meta);
                    return Err(Error::NotARegularFile { path, kind });
                }
                Some(read_bounded(&path, meta.len())?)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(from_io(&path, "reading", e)),
        };
        if on_disk.as_deref() == Some(new.as_bytes()) {
            // Re-running an edit that a killed process had already committed lands here.
            remove_stale_temporaries(&path, SystemTime::now());
            self.accept_rendered(new);
            return Ok(SaveOutcome::Unchanged);
        }
        let expected = if self.existed {
            Some(self.original().as_bytes())
        } else {
            None
        };
        if on_disk.as_deref() != expected {
            return Err(Error::ChangedOnDisk { path });
        }
        let backup = match (&on_disk, options.backup) {
            (Some(old), true) => Some(write_backup(&path, old)?),
            _ => None,
        };
        write_atomically(&path, new.as_bytes(), hook)?;
        tracing::info!(path = %path.display(), "env file written");
        remove_stale_temporaries(&path, SystemTime::now());
        let outcome = if on_disk.is_some() {
            SaveOutcome::Written { backup }
        } else {
            SaveOutcome::Created
        };
        if let Ok(meta) = fs::metadata(&path) {
            self.mode = file_mode(&meta);
        }
        self.existed = true;
        self.accept_rendered(new);
        Ok(outcome)
    }

    /// After a save, the written content becomes the new original.
    fn accept_rendered(&mut self, text: String) {
        self.doc = Document::parse(text);
    }
}

/// What to keep after a replaced value token: an inline comment (with the blanks before it).
/// Text glued to a closing quote (`K="a"junk`) would join the new unquoted value, so it is
/// dropped. An empty old value right before the comment (`K= # c`) needs a blank added.
fn kept_tail(rest: &str) -> (&'static str, &str) {
    let blank = |c: char| c == ' ' || c == '\t';
    let after_blanks = rest.trim_start_matches(blank);
    if rest.starts_with('#') {
        return (" ", rest);
    }
    if rest.is_empty() || (rest.starts_with(blank) && after_blanks.starts_with('#')) {
        return ("", rest);
    }
    let bytes = rest.as_bytes();
    let comment = (1..bytes.len()).find(|&i| bytes[i] == b'#' && blank(char::from(bytes[i - 1])));
    match comment {
        Some(i) => ("", &rest[i - 1..]),
        None => ("", ""),
    }
}

/// Keys compare ignoring ASCII case, as the server's binder does. Compared from the end: keys
/// in these files share the `globalSettings__` prefix, so a mismatch shows up at once there.
pub(crate) fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .rev()
            .zip(b.bytes().rev())
            .all(|(x, y)| x.eq_ignore_ascii_case(&y))
}

fn too_large(path: &Path, size: u64) -> Error {
    Error::TooLarge {
        path: path.to_path_buf(),
        size,
        limit: MAX_FILE_BYTES,
    }
}

fn refuse_symlink(path: &Path, meta: &fs::Metadata) -> Result<()> {
    if meta.file_type().is_symlink() {
        let target = fs::read_link(path).unwrap_or_else(|_| PathBuf::from("an unreadable target"));
        return Err(Error::Symlink {
            path: path.to_path_buf(),
            target,
        });
    }
    Ok(())
}

/// Spare buffer bytes for edited lines (enabling a region writes about 300).
const EDIT_HEADROOM: usize = 1024;

/// Reads at most `MAX_FILE_BYTES + 1` bytes; more is an error. `size_hint` (the file's length
/// from its metadata) sizes the buffer once, so a regular file is read without regrowing it.
fn read_bounded(path: &Path, size_hint: u64) -> Result<Vec<u8>> {
    let file = fs::File::open(path).map_err(|e| from_io(path, "reading", e))?;
    // + 1 to see end-of-file without regrowing; + EDIT_HEADROOM so that the text of a few edited
    // lines, appended to the same buffer, fits too.
    let capacity = usize::try_from(size_hint.min(MAX_FILE_BYTES)).unwrap_or(0) + 1 + EDIT_HEADROOM;
    let mut bytes = Vec::with_capacity(capacity);
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| from_io(path, "reading", e))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    Ok(bytes)
}

#[cfg(unix)]
#[allow(clippy::unnecessary_wraps)] // `None` on other platforms
fn file_mode(meta: &fs::Metadata) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    Some(meta.permissions().mode() & 0o7777)
}

#[cfg(not(unix))]
fn file_mode(_meta: &fs::Metadata) -> Option<u32> {
    None
}

fn open_options() -> atomic_write_file::OpenOptions {
    let mut options = atomic_write_file::OpenOptions::new();
    #[cfg(unix)]
    {
        use atomic_write_file::unix::OpenOptionsExt as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // Mode for a file that does not exist yet; an existing file's mode is kept.
        options.mode(0o600);
        options.preserve_mode(true);
        // The owner and group are kept, or the save fails: a file silently given to whoever
        // edited it can lock the server's user out.
        options.preserve_owner(true);
    }
    options
}

/// Copies every extended attribute of `original` (POSIX ACLs among them) onto `file`.
#[cfg(unix)]
fn keep_attributes(original: &Path, file: &fs::File) -> Result<()> {
    use xattr::FileExt as _;
    let Ok(names) = xattr::list(original) else {
        // A file system without extended attributes: nothing to keep.
        return Ok(());
    };
    for name in names {
        let shown = name.to_string_lossy().into_owned();
        let value = xattr::get(original, &name).map_err(|e| Error::AttributeNotKept {
            path: original.to_path_buf(),
            name: shown.clone(),
            reason: e.to_string(),
        })?;
        if let Some(value) = value {
            file.set_xattr(&name, &value)
                .map_err(|e| Error::AttributeNotKept {
                    path: original.to_path_buf(),
                    name: shown,
                    reason: e.to_string(),
                })?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn keep_attributes(_original: &Path, _file: &fs::File) -> Result<()> {
    Ok(())
}

fn write_atomically(
    path: &Path,
    bytes: &[u8],
    hook: &mut dyn FnMut(SaveStage) -> io::Result<()>,
) -> Result<()> {
    let mut file = open_options().open(path).map_err(|e| {
        #[cfg(unix)]
        // EPERM (not EACCES): the owner or group could not be given to the new file.
        if e.raw_os_error() == Some(1) {
            use std::os::unix::fs::MetadataExt as _;
            if let Ok(meta) = fs::metadata(path) {
                return Error::OwnerNotKept {
                    path: path.to_path_buf(),
                    uid: meta.uid(),
                    gid: meta.gid(),
                };
            }
        }
        from_io(path, "creating a temporary file beside", e)
    })?;
    if path.exists()
        && let Err(e) = keep_attributes(path, file.as_file())
    {
        let _ = file.discard();
        return Err(e);
    }
    file.write_all(bytes)
        .map_err(|e| from_io(path, "writing a temporary file beside", e))?;
    if let Err(e) = hook(SaveStage::BeforeCommit) {
        // Dropping `file` discards the temporary file; the original is untouched.
        let _ = file.discard();
        return Err(from_io(path, "writing", e));
    }
    // `commit` fsyncs the temporary file, renames it over `path` and fsyncs the directory.
    file.commit()
        .map_err(|e| from_io(path, "replacing (rename)", e))
}

fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    path.with_file_name(name)
}

/// Whether `name` is `.{base}.` followed by six ASCII letters or digits: the hidden name under
/// which a save's temporary file is linked just before the rename.
fn is_temporary_name(name: &[u8], base: &[u8]) -> bool {
    const SUFFIX: usize = 6;
    name.len() == base.len() + 2 + SUFFIX
        && name[0] == b'.'
        && name[1..=base.len()] == *base
        && name[base.len() + 1] == b'.'
        && name[base.len() + 2..].iter().all(u8::is_ascii_alphanumeric)
}

/// Removes the temporary files interrupted saves of `path` (or of its backup) left behind, once
/// they are [`STALE_TEMPORARY_AGE`] old. Only regular files with exactly the temporary-file
/// name are touched. Best effort: a file that cannot be inspected or removed is left alone (the
/// save itself has succeeded); returns how many were removed.
fn remove_stale_temporaries(path: &Path, now: SystemTime) -> usize {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return 0;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let backup = backup_path(path);
    let bases = [name, backup.file_name().unwrap_or(name)].map(std::ffi::OsStr::as_encoded_bytes);
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let entry_name = entry.file_name();
        if !bases
            .iter()
            .any(|base| is_temporary_name(entry_name.as_encoded_bytes(), base))
        {
            continue;
        }
        // `DirEntry::metadata` does not follow symbolic links.
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta
            .modified()
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .is_some_and(|age| age >= STALE_TEMPORARY_AGE);
        if !meta.is_file() || !stale {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => {
                removed += 1;
                tracing::warn!(
                    file = %entry.path().display(),
                    "removed a temporary file an interrupted save left behind"
                );
            }
            Err(e) => tracing::debug!(
                file = %entry.path().display(),
                error = %e,
                "could not remove a leftover temporary file"
            ),
        }
    }
    removed
}

fn write_backup(path: &Path, old: &[u8]) -> Result<PathBuf> {
    let backup = backup_path(path);
    if let Ok(meta) = fs::symlink_metadata(&backup) {
        refuse_symlink(&backup, &meta)?;
    }
    let mut options = atomic_write_file::OpenOptions::new();
    #[cfg(unix)]
    {
        use atomic_write_file::unix::OpenOptionsExt as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        // A backup holds the same secrets: never more open than 0600.
        options.mode(0o600);
        options.preserve_mode(false);
        options.try_preserve_owner(true);
    }
    let mut file = options
        .open(&backup)
        .map_err(|e| from_io(&backup, "creating the backup", e))?;
    file.write_all(old)
        .map_err(|e| from_io(&backup, "writing the backup", e))?;
    file.commit()
        .map_err(|e| from_io(&backup, "writing the backup", e))?;
    Ok(backup)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path, by: Duration) {
        // Opening read-only is enough to set the times of a file or directory one owns.
        let file = fs::File::open(path).unwrap();
        file.set_modified(SystemTime::now() - by).unwrap();
    }

    #[test]
    fn a_save_removes_stale_temporary_files_of_the_file_and_its_backup_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.override.env");
        fs::write(&path, "A=1\n").unwrap();
        let old = STALE_TEMPORARY_AGE + Duration::from_secs(5);
        let stale = [
            ".global.override.env.Ab12Cd",
            ".global.override.env.bak.Zz99yY",
        ];
        for name in stale {
            fs::write(dir.path().join(name), "A=secret\n").unwrap();
            age(&dir.path().join(name), old);
        }
        // Kept: a young temporary file (a save may still be running), names that only look
        // alike, and a directory with a temporary file's name.
        let young = ".global.override.env.Ef34Gh";
        fs::write(dir.path().join(young), "A=2\n").unwrap();
        let alike = [
            ".global.override.env.notes!",
            ".global.override.env.Ab12Cde",
            ".global.override.env.Ab12C",
            ".global.override.env_Ab12Cd",
            ".other.env.Ab12Cd",
            "global.override.env.Ab12Cd",
        ];
        for name in alike {
            fs::write(dir.path().join(name), "x").unwrap();
            age(&dir.path().join(name), old);
        }
        let a_dir = dir.path().join(".global.override.env.Di12Rr");
        fs::create_dir(&a_dir).unwrap();
        age(&a_dir, old);

        let mut file = EnvFile::open(&path).unwrap();
        file.set("A", "3").unwrap();
        file.save(&WriteOptions::new().backup(true)).unwrap();

        let mut names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected: Vec<String> = alike
            .iter()
            .chain(&[
                young,
                ".global.override.env.Di12Rr",
                "global.override.env",
                "global.override.env.bak",
            ])
            .map(ToString::to_string)
            .collect();
        expected.sort();
        assert_eq!(names, expected);

        // Re-running an edit a killed process had committed changes nothing but still tidies up.
        age(&dir.path().join(young), old);
        let mut again = EnvFile::open(&path).unwrap();
        again.set("A", "3").unwrap();
        assert_eq!(
            again.save(&WriteOptions::new()).unwrap(),
            SaveOutcome::Unchanged
        );
        assert!(!dir.path().join(young).exists());
    }

    #[test]
    fn a_failure_injected_before_the_rename_leaves_the_old_file_byte_identical() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("global.override.env");
        let original = "# mine\r\nA=1\r\nB=2";
        fs::write(&path, original).unwrap();
        let mut file = EnvFile::open(&path).unwrap();
        file.set("A", "changed").unwrap();
        let mut stages = Vec::new();
        let err = file
            .save_with_hook(&WriteOptions::new(), &mut |stage| {
                stages.push(stage);
                Err(io::Error::other("disk full (injected)"))
            })
            .unwrap_err();
        assert_eq!(stages, [SaveStage::BeforeCommit]);
        let text = err.to_string();
        assert!(
            text.contains("global.override.env") && text.contains("injected"),
            "{text}"
        );
        assert_eq!(fs::read(&path).unwrap(), original.as_bytes());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["global.override.env"]);
        // The edit is still in memory and a later save succeeds.
        assert!(file.is_modified());
        assert_eq!(
            file.save(&WriteOptions::new()).unwrap(),
            SaveOutcome::Written { backup: None }
        );
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "# mine\r\nA=changed\r\nB=2"
        );
    }
}
