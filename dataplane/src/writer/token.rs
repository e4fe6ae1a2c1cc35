//! The bearer token `POST /ingest` requires, read from a file (a mounted
//! Secret) and re-read when the file changes, so rotating the Secret takes
//! effect without restarting the writer.
//!
//! Kubernetes updates a Secret volume by writing the new files into a fresh
//! directory and swapping a symlink to it. Each request therefore `stat`s the
//! path (following the symlink): one system call on a memory-backed volume,
//! far cheaper than the batch it guards. When length, modification time or
//! inode differ from the last read, the file is read again. A file that
//! cannot be read or is empty leaves the last good token in force (a warning
//! says so) rather than locking the trading service out or opening ingest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use subtle::ConstantTimeEq;

/// Why the token file cannot be used at start.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read the ingest token file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the ingest token file {path} is empty")]
    Empty { path: PathBuf },
}

/// The token file and the token last read from it.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    current: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    stamp: Option<Stamp>,
    token: Vec<u8>,
}

/// What tells a changed file apart without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl TokenFile {
    /// Reads the token; a missing or empty file is an error at start.
    pub fn open(path: &Path) -> Result<TokenFile, TokenError> {
        let (stamp, token) = read(path)?;
        Ok(TokenFile {
            path: path.to_owned(),
            current: Mutex::new(Loaded {
                stamp: Some(stamp),
                token,
            }),
        })
    }

    /// Whether `presented` is the current token, compared in constant time
    /// (only the length can differ in time, and every token the operator
    /// generates has the same length).
    pub fn accepts(&self, presented: &[u8]) -> bool {
        let mut loaded = self.current.lock().unwrap_or_else(|p| p.into_inner());
        self.refresh(&mut loaded);
        bool::from(loaded.token.as_slice().ct_eq(presented))
    }

    fn refresh(&self, loaded: &mut Loaded) {
        let stamp = std::fs::metadata(&self.path).ok().map(|m| stamp(&m));
        if stamp.is_some() && stamp == loaded.stamp {
            return;
        }
        match read(&self.path) {
            Ok((stamp, token)) => {
                if token != loaded.token {
                    tracing::info!(path = %self.path.display(), "ingest token changed; using the new one");
                }
                *loaded = Loaded {
                    stamp: Some(stamp),
                    token,
                };
            }
            Err(e) => {
                // Remember the failure so it is logged once, not per request.
                if loaded.stamp.take().is_some() {
                    tracing::warn!(error = %e, "keeping the last ingest token");
                }
            }
        }
    }
}

fn read(path: &Path) -> Result<(Stamp, Vec<u8>), TokenError> {
    let failed = |source| TokenError::Read {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(failed)?;
    let stamp = stamp(&file.metadata().map_err(failed)?);
    let text = std::io::read_to_string(file).map_err(failed)?;
    let token = text.trim().as_bytes().to_vec();
    if token.is_empty() {
        return Err(TokenError::Empty {
            path: path.to_owned(),
        });
    }
    Ok((stamp, token))
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    Stamp {
        len: meta.len(),
        modified: meta.modified().ok(),
        inode,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_or_empty_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(matches!(
            TokenFile::open(&path),
            Err(TokenError::Read { .. })
        ));
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            TokenFile::open(&path),
            Err(TokenError::Empty { .. })
        ));
    }

    #[test]
    fn a_swapped_symlink_is_followed_and_a_broken_one_keeps_the_last_token() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&old, "first\n").unwrap();
        std::fs::write(&new, "second").unwrap();
        let link = dir.path().join("token");
        std::os::unix::fs::symlink(&old, &link).unwrap();
        let token = TokenFile::open(&link).unwrap();
        assert!(token.accepts(b"first") && !token.accepts(b"second"));
        // What the kubelet does: a new target, then an atomic rename.
        let tmp = dir.path().join("tmp");
        std::os::unix::fs::symlink(&new, &tmp).unwrap();
        std::fs::rename(&tmp, &link).unwrap();
        assert!(token.accepts(b"second") && !token.accepts(b"first"));
        std::fs::remove_file(&new).unwrap();
        assert!(token.accepts(b"second"), "the last good token stays");
        assert!(!token.accepts(b""));
    }
}
