//! File system behaviour: errors that name the file, atomic saves that keep mode, symlinks,
//! backups, untouched files when nothing changed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use env_config::{
    CheckCode, CloudRegion, EnvFile, Error, MAX_FILE_BYTES, SaveOutcome, WriteOptions,
    check_file_mode,
};

use crate::fixture;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn write_with_mode(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn missing_file_directory_and_not_utf8_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("global.override.env");
    let err = EnvFile::open(&missing).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("global.override.env"), "{err}");

    let err = EnvFile::open(dir.path()).unwrap_err();
    assert!(matches!(err, Error::IsDirectory { .. }), "{err}");

    let bad = dir.path().join("bad.env");
    fs::write(&bad, b"A=1\nB=2\nC=caf\xe9\n").unwrap();
    let err = EnvFile::open(&bad).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotUtf8 {
                line: 3,
                column: 6,
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("bad.env: line 3"), "{text}");
}

#[test]
fn files_above_the_limit_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.env");
    // Sparse: no 16 MiB is written or read.
    fs::File::create(&big)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();
    let err = EnvFile::open(&big).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("big.env"), "{err}");
    // A device is never read (it could be endless).
    let err = EnvFile::open("/dev/zero").unwrap_err();
    assert!(
        matches!(err, Error::NotARegularFile { kind: "device", .. }),
        "{err}"
    );
    let err = EnvFile::parse(vec![b'#'; usize::try_from(MAX_FILE_BYTES).unwrap() + 1]).unwrap_err();
    assert!(matches!(err, Error::TooLarge { .. }), "{err}");
}

/// A FIFO given as the env file is refused at once: opening one for reading would block until
/// a writer comes (it once hung `sponsorctl` forever).
#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("global.override.env");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let err = EnvFile::open(&fifo).unwrap_err();
    assert!(
        matches!(err, Error::NotARegularFile { kind: "FIFO", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("is a FIFO, not a regular file"),
        "{err}"
    );
}

/// A symlinked env file (a common layout) is followed: it reads, and a save replaces the
/// target atomically while the link stays a link (issue #16, item 6).
#[test]
fn symlinks_are_followed_and_the_target_is_edited() {
    let dir = tempfile::tempdir().unwrap();
    let real_dir = dir.path().join("elsewhere");
    fs::create_dir(&real_dir).unwrap();
    let target = real_dir.join("real.env");
    fs::write(&target, "A=1\n").unwrap();
    let link = dir.path().join("global.override.env");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let mut file = EnvFile::open(&link).unwrap();
    assert_eq!(file.get("A").as_deref(), Some("1"));
    file.set("A", "2").unwrap();
    file.save(&WriteOptions::new()).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "A=2\n");
    assert_eq!(fs::read_to_string(&link).unwrap(), "A=2\n");

    // A dangling link is a missing file.
    fs::remove_file(&target).unwrap();
    assert!(matches!(EnvFile::open(&link), Err(Error::NotFound { .. })));

    // A file opened through its real path, then replaced by a link before saving: refused.
    let target = dir.path().join("plain.env");
    fs::write(&target, "A=1\n").unwrap();
    let mut file = EnvFile::open(&target).unwrap();
    file.set("A", "2").unwrap();
    fs::rename(&target, dir.path().join("moved.env")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("moved.env"), &target).unwrap();
    let err = file.save(&WriteOptions::new()).unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    assert_eq!(
        fs::read_to_string(dir.path().join("moved.env")).unwrap(),
        "A=1\n"
    );
}

/// A save keeps the file's owner, group and extended attributes: a POSIX ACL (which lives in
/// `system.posix_acl_access`) and a user attribute survive the atomic replace.
#[test]
fn saving_keeps_owner_group_acl_and_attributes() {
    use std::os::unix::fs::MetadataExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    write_with_mode(&path, "A=1\n", 0o600);
    // The server's user owns it (this test runs as root, which can give it back).
    std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
    xattr::set(&path, "user.origin", b"setup").unwrap();
    // An ACL granting uid 4242 read: version 2; USER_OBJ rw, USER(4242) r, GROUP_OBJ none,
    // MASK r, OTHER none.
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 4242),
        (0x04, 0, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 0, u32::MAX),
    ] {
        acl.extend_from_slice(&tag.to_le_bytes());
        acl.extend_from_slice(&perm.to_le_bytes());
        acl.extend_from_slice(&id.to_le_bytes());
    }
    let acl_supported = xattr::set(&path, "system.posix_acl_access", &acl).is_ok();
    let mode_before = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;

    let mut file = EnvFile::open(&path).unwrap();
    file.set("A", "2").unwrap();
    file.save(&WriteOptions::new()).unwrap();

    let meta = fs::metadata(&path).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (65534, 65534),
        "owner and group kept"
    );
    assert_eq!(meta.permissions().mode() & 0o7777, mode_before, "mode kept");
    assert_eq!(
        xattr::get(&path, "user.origin").unwrap().as_deref(),
        Some(&b"setup"[..])
    );
    if acl_supported {
        assert_eq!(
            xattr::get(&path, "system.posix_acl_access").unwrap(),
            Some(acl),
            "the ACL survives the replace"
        );
    }
    assert_eq!(fs::read_to_string(&path).unwrap(), "A=2\n");
}

#[test]
fn saving_keeps_mode_0600_and_the_content_is_the_rendered_document() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    let original = fs::read_to_string(fixture("setup-eu.env")).unwrap();
    write_with_mode(&path, &original, 0o600);
    let mut file = EnvFile::open(&path).unwrap();
    assert_eq!(file.mode(), Some(0o600));
    assert!(check_file_mode(&path).unwrap().is_none());
    file.enable_cloud_communication(&CloudRegion::Eu).unwrap();
    let outcome = file.save(&WriteOptions::new()).unwrap();
    assert_eq!(outcome, SaveOutcome::Written { backup: None });
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        fs::read_to_string(fixture("setup-eu-enabled.env")).unwrap()
    );
    // The saved content is the new baseline.
    assert!(!file.is_modified());
    assert_eq!(file.diff(), "");
}

#[test]
fn a_world_readable_file_is_reported_and_its_mode_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    write_with_mode(&path, "A=1\n", 0o644);
    let finding = check_file_mode(&path).unwrap().unwrap();
    assert_eq!(finding.code, CheckCode::FileModeTooOpen);
    assert!(finding.message.contains("0644"), "{}", finding.message);
    assert!(finding.fix.contains("chmod 600"));
    let mut file = EnvFile::open(&path).unwrap();
    assert!(
        file.checks()
            .iter()
            .any(|f| f.code == CheckCode::FileModeTooOpen)
    );
    file.set("A", "2").unwrap();
    file.save(&WriteOptions::new()).unwrap();
    // The editor keeps the mode it found; fixing it is the operator's decision.
    assert_eq!(mode(&path), 0o644);
}

#[test]
fn an_unchanged_edit_does_not_touch_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    let text = fs::read_to_string(fixture("setup-us-enabled.env")).unwrap();
    write_with_mode(&path, &text, 0o600);
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(past)
        .unwrap();
    let inode = std::os::unix::fs::MetadataExt::ino(&fs::metadata(&path).unwrap());

    let mut file = EnvFile::open(&path).unwrap();
    let summary = file.enable_cloud_communication(&CloudRegion::Us).unwrap();
    assert!(!summary.changed());
    // A set that is undone also leaves nothing to write.
    file.set("globalSettings__mail__smtp__port", "25").unwrap();
    file.set("globalSettings__mail__smtp__port", "587").unwrap();
    assert_eq!(
        file.save(&WriteOptions::new().backup(true)).unwrap(),
        SaveOutcome::Unchanged
    );
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.modified().unwrap(), past);
    assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta), inode);
    assert!(!dir.path().join("global.override.env.bak").exists());
}

#[test]
fn backup_holds_the_previous_content_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    write_with_mode(&path, "# keep\nA=1\n", 0o640);
    let mut file = EnvFile::open(&path).unwrap();
    file.set("A", "2").unwrap();
    let outcome = file.save(&WriteOptions::new().backup(true)).unwrap();
    let backup = dir.path().join("global.override.env.bak");
    assert_eq!(
        outcome,
        SaveOutcome::Written {
            backup: Some(backup.clone())
        }
    );
    assert_eq!(fs::read_to_string(&backup).unwrap(), "# keep\nA=1\n");
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(fs::read_to_string(&path).unwrap(), "# keep\nA=2\n");
    assert_eq!(mode(&path), 0o640);
}

#[test]
fn new_files_are_created_0600() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    let mut file = EnvFile::open_or_new(&path).unwrap();
    assert_eq!(file.line_count(), 0);
    file.enable_cloud_communication(&CloudRegion::Eu).unwrap();
    assert_eq!(
        file.save(&WriteOptions::new()).unwrap(),
        SaveOutcome::Created
    );
    assert_eq!(mode(&path), 0o600);
    assert!(
        fs::read_to_string(&path)
            .unwrap()
            .starts_with("globalSettings__enableCloudCommunication=true\n")
    );
}

#[test]
fn a_file_changed_on_disk_after_reading_is_not_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    fs::write(&path, "A=1\n").unwrap();
    let mut file = EnvFile::open(&path).unwrap();
    file.set("A", "2").unwrap();
    fs::write(&path, "A=1\nB=someone else\n").unwrap();
    let err = file.save(&WriteOptions::new()).unwrap_err();
    assert!(matches!(err, Error::ChangedOnDisk { .. }), "{err}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\nB=someone else\n");
}

#[test]
fn a_parsed_document_needs_a_path_and_never_overwrites_another_file() {
    let mut file = EnvFile::parse("A=1\n").unwrap();
    let err = file.save(&WriteOptions::new()).unwrap_err();
    assert!(matches!(err, Error::NoPath { .. }), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.env");
    fs::write(&path, "OTHER=1\n").unwrap();
    let mut file = file.with_path(&path);
    assert!(matches!(
        file.save(&WriteOptions::new()),
        Err(Error::ChangedOnDisk { .. })
    ));
    fs::remove_file(&path).unwrap();
    assert_eq!(
        file.save(&WriteOptions::new()).unwrap(),
        SaveOutcome::Created
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\n");
}

#[test]
fn no_write_permission_is_a_named_error_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("global.override.env");
    fs::write(&path, "A=1\n").unwrap();
    let mut file = EnvFile::open(&path).unwrap();
    file.set("A", "2").unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o500)).unwrap();
    let result = file.save(&WriteOptions::new());
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    match result {
        // Root ignores directory permissions: there is nothing to observe then.
        Ok(_) => assert_eq!(fs::read_to_string(&path).unwrap(), "A=2\n"),
        Err(err) => {
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
            assert!(err.to_string().contains("global.override.env"), "{err}");
            assert_eq!(fs::read_to_string(&path).unwrap(), "A=1\n");
        }
    }
}
