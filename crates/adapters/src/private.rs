//! Files only this account may read: keys, SQLite databases, credentials
//! (mode 0600), and the directories we make for them (0700). They are created
//! with that mode, never widened first and narrowed after: there is no moment
//! in which another account can open them.

use std::io::Write;
use std::path::Path;

/// The mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a private directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents, each readable by this account only;
/// an existing directory is left as it is (its owner chose its mode).
pub fn create_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir)
}

fn options() -> std::fs::OpenOptions {
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE);
    }
    o
}

/// Narrows an existing file that other accounts may read or write to 0600;
/// returns whether it had to.
pub fn narrow(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        if meta.is_file() && meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))?;
            return Ok(true);
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(false)
}

/// Creates `path` empty and private if it does not exist yet (so that a
/// program opening it afterwards, SQLite, finds it so); an existing file is
/// narrowed to 0600.
pub fn ensure_file(path: &Path) -> std::io::Result<()> {
    match options().create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            if narrow(path)? {
                tracing::warn!(file = %path.display(), "other accounts could read this file: narrowed to 0600");
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Writes `bytes` as the whole of `path`, private (an existing file is
/// replaced, whatever its mode was).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = temp_beside(path);
    let written = options()
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// Writes `bytes` as `path`, private, only if `path` does not exist; returns
/// whether it wrote. Whole or not at all: a reader never sees half of it, and
/// of two processes racing, one writes and the other reads what it wrote.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<bool> {
    let tmp = temp_beside(path);
    let written = options()
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()));
    // A hard link never replaces an existing file (rename would).
    let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

fn temp_beside(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_directories_are_made_private_and_loose_ones_are_narrowed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);

        let f = dir.join("key");
        assert!(write_new(&f, b"one").unwrap());
        assert!(!write_new(&f, b"two").unwrap(), "an existing file is kept");
        assert_eq!(std::fs::read(&f).unwrap(), b"one");
        assert_eq!(mode(&f), 0o600);

        let loose = dir.join("loose");
        std::fs::write(&loose, b"x").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&loose, b"replaced").unwrap();
        assert_eq!(mode(&loose), 0o600);
        assert_eq!(std::fs::read(&loose).unwrap(), b"replaced");

        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o664)).unwrap();
        ensure_file(&loose).unwrap();
        assert_eq!(mode(&loose), 0o600);
        let fresh = dir.join("fresh.sqlite");
        ensure_file(&fresh).unwrap();
        assert_eq!(mode(&fresh), 0o600);
        assert_eq!(std::fs::read(&fresh).unwrap(), b"");
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(left.is_empty(), "no temporary file is left: {left:?}");
    }
}
