use std::fmt;

/// Why a test server could not be started.
#[derive(Debug)]
pub enum Error {
    /// The server binary is not installed.
    MissingBinary {
        /// The binary that was looked for.
        binary: &'static str,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// The server started but did not answer in time, or exited.
    NotReady(String),
    /// Spawning or talking to the process failed.
    Io(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingBinary { binary, package } => write!(
                f,
                "`{binary}` is not installed: install the Debian package `{package}` \
                 (apt-get install {package}), or run ./scripts/test.sh, which does"
            ),
            Self::NotReady(why) => write!(f, "test server not ready: {why}"),
            Self::Io(error) => write!(f, "test server: {error}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(error) => Some(error),
            _ => None,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}
