//! The store's error, classified for callers.

/// What went wrong in the store. None of the messages carries SQL text, so
/// they may be logged; the API still shows only its own wording.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file cannot be written now (locked, full, read-only, I/O error).
    /// Callers answer 503 and the client retries.
    #[error("the local store cannot write: {0}")]
    Unavailable(String),
    /// The writer actor has stopped (shutdown in progress).
    #[error("the local store is shutting down")]
    Closed,
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the local schema could not be applied: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error; a bug or a damaged file.
    #[error("local database error: {0}")]
    Database(String),
    /// Stored data that this version cannot read (a damaged row).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// An operation refused to go ahead (a damaged or foreign backup, a
    /// store that is in use); nothing was changed.
    #[error("{0}")]
    Refused(String),
}

impl StoreError {
    /// Classifies a sqlx error: lock, disk and I/O conditions mean the store
    /// is unavailable for now; everything else is a database error.
    pub fn from_sqlx(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) => {
                // SQLite primary result codes (the low byte of the code):
                // BUSY 5, LOCKED 6, NOMEM 7, READONLY 8, IOERR 10, FULL 13,
                // CANTOPEN 14.
                let primary = db
                    .code()
                    .and_then(|c| c.parse::<i32>().ok())
                    .map(|c| c & 0xff);
                match primary {
                    Some(5 | 6 | 7 | 8 | 10 | 13 | 14) => {
                        Self::Unavailable(db.message().to_string())
                    }
                    _ => Self::Database(db.message().to_string()),
                }
            }
            sqlx::Error::Io(io) => Self::Unavailable(io.to_string()),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Self::Unavailable("no database connection available".into())
            }
            _ => Self::Database(e.to_string()),
        }
    }

    /// Whether a retry later may succeed (the API answers 503).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Closed)
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::from_sqlx(e)
    }
}
