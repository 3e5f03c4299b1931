use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

/// A fresh SQLite file in the temporary directory, removed with its journal files when
/// dropped: the database of a test or a load run.
#[derive(Debug)]
pub struct ScratchDatabase(PathBuf);

impl ScratchDatabase {
    /// A file named after `purpose`, this process and a counter, none there yet.
    #[must_use]
    pub fn new(purpose: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "stratacache-{purpose}-{}-{n}.db",
            std::process::id()
        ));
        let database = Self(path);
        database.remove();
        database
    }

    /// Its `DATABASE_URL`: the file is created on first connection.
    #[must_use]
    pub fn url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.0.display())
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.0.display()));
        }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        self.remove();
    }
}
