//! Errors in the files the broker reads besides its config (password file, ACL file): every
//! one names `file:line` and what is wrong, so an operator can fix the file without guessing.

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a line of a file, or with the file as a whole (`line == 0`: it could not be
/// read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    /// 1-based; 0 when the file as a whole is at fault (missing, unreadable, not UTF-8).
    pub line: usize,
    pub what: String,
}

impl FileError {
    pub fn at(path: &Path, line: usize, what: impl Into<String>) -> FileError {
        FileError {
            path: path.to_owned(),
            line,
            what: what.into(),
        }
    }

    /// Reads a whole file as UTF-8 text, naming the file when that fails.
    pub fn read_to_string(path: &Path) -> Result<String, FileError> {
        std::fs::read_to_string(path).map_err(|e| FileError::at(path, 0, e.to_string()))
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.path.display(), self.what)
        } else {
            write!(f, "{}:{}: {}", self.path.display(), self.line, self.what)
        }
    }
}

impl std::error::Error for FileError {}
