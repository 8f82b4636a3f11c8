//! Why a run could not be done. Each variant is what the user needs to act on: a flag to
//! change, a broker that is not there, a file that cannot be written.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum LoadgenError {
    /// Flags that contradict each other or exceed a limit; exit code 2.
    Usage(String),
    /// The broker could not be reached or refused the clients the scenario needs.
    Setup(String),
    /// An operating-system call failed.
    Io { context: String, source: io::Error },
}

impl LoadgenError {
    pub fn io(context: impl Into<String>, source: io::Error) -> LoadgenError {
        LoadgenError::Io {
            context: context.into(),
            source,
        }
    }

    /// Process exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            LoadgenError::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for LoadgenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadgenError::Usage(why) => write!(f, "{why}"),
            LoadgenError::Setup(why) => write!(f, "{why}"),
            LoadgenError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for LoadgenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadgenError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
