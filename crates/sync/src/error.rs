//! The sync error, classified by what a retry can fix.

use gatelog_local_store::StoreError;

/// What a failure means for the rows that were being sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The path or the target is down, slow or overloaded (network error,
    /// timeout, 5xx, 429, lost connection). The same rows go again later.
    Transient,
    /// The target refused the request as a whole for a reason an operator
    /// must fix (bad key, missing table or column, no privilege). Splitting
    /// the batch cannot help, and the rows are not to blame, so they stay
    /// pending and the batch is retried with backoff.
    Misconfigured,
    /// The target refused the rows' content (a constraint or a data error).
    /// The batch is split until the offending rows are isolated; only they
    /// become dead letters.
    Rejected,
}

/// Everything that can go wrong in sync. Messages never carry secrets:
/// the actor passes every message through its redactor before it shows or
/// logs one, and the variants built here never include a key or a URL's
/// password.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration is incomplete or invalid; names the key.
    #[error("sync configuration: {0}")]
    Config(String),
    /// The target could not be reached or the connection was lost.
    #[error("cannot reach the sync target: {0}")]
    Unreachable(String),
    /// The target did not answer within the request timeout. It may have
    /// committed; idempotent writes make the retry harmless.
    #[error("the sync target did not answer within {0} ms")]
    Timeout(u64),
    /// The target answered that it cannot take work now (5xx, 429, a
    /// PostgreSQL resource or shutdown error).
    #[error("the sync target is unavailable: {0}")]
    Unavailable(String),
    /// The target refused the request as a whole; see
    /// [`ErrorClass::Misconfigured`].
    #[error("the sync target refused the request: {0}")]
    Refused(String),
    /// The target refused the rows' content; see [`ErrorClass::Rejected`].
    #[error("the sync target rejected the rows: {0}")]
    Rejected(String),
    /// The central schema could not be applied.
    #[error("central migration failed: {0}")]
    Migrate(String),
    /// An archive of a central partition could not be written, checked or
    /// loaded; names the file or the partition. Nothing was dropped.
    #[error("central archive: {0}")]
    Archive(String),
    /// The local store failed; the supervisor restarts the actor.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SyncError {
    /// How the actor treats this failure.
    pub fn class(&self) -> ErrorClass {
        match self {
            SyncError::Rejected(_) => ErrorClass::Rejected,
            SyncError::Config(_)
            | SyncError::Refused(_)
            | SyncError::Migrate(_)
            | SyncError::Archive(_) => ErrorClass::Misconfigured,
            SyncError::Unreachable(_)
            | SyncError::Timeout(_)
            | SyncError::Unavailable(_)
            | SyncError::Store(_) => ErrorClass::Transient,
        }
    }

    /// Whether sending the same rows again later may succeed. False only
    /// for rows the target refused for their content.
    pub fn is_retriable(&self) -> bool {
        self.class() != ErrorClass::Rejected
    }
}

/// The most bytes of a target's error text that sync keeps. A target can
/// answer with any amount of text (a 20 MB JSON `message` was seen), and
/// that text is stored with dead letters, logged, and published to every
/// dashboard; the first few hundred bytes say what went wrong.
pub const ERROR_TEXT_LIMIT: usize = 512;

/// Marks text that was cut.
const ELLIPSIS: &str = "…";

/// Removes secrets from text before it is logged or shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct Redactor {
    /// Longest first, so a secret that contains another is removed whole.
    secrets: Vec<String>,
}

impl Redactor {
    /// Every non-empty secret is redacted, however short. A password of
    /// one or two characters also takes those characters out of ordinary
    /// words, which can make a message hard to read; that is the price of
    /// never showing it.
    pub(crate) fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut secrets: Vec<String> = secrets.into_iter().filter(|s| !s.is_empty()).collect();
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    /// Redacts `text`, then cuts it to at most [`ERROR_TEXT_LIMIT`] bytes
    /// on a character boundary, ending in `…` when it was cut. Redacting
    /// first means a secret is removed whole before any cut could leave a
    /// piece of it behind. Cleaning clean text changes nothing.
    pub(crate) fn clean(&self, text: &str) -> String {
        truncate(self.redact(text))
    }

    pub(crate) fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// Cuts `text` to at most [`ERROR_TEXT_LIMIT`] bytes, on a character
/// boundary, marking the cut.
fn truncate(mut text: String) -> String {
    if text.len() <= ERROR_TEXT_LIMIT {
        return text;
    }
    let mut end = ERROR_TEXT_LIMIT - ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(ELLIPSIS);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        assert!(SyncError::Timeout(10).is_retriable());
        assert!(SyncError::Refused("401".into()).is_retriable());
        assert!(!SyncError::Rejected("23514".into()).is_retriable());
        assert_eq!(
            SyncError::Unavailable("503".into()).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn redactor_removes_every_secret() {
        let r = Redactor::new(["s3cret-key".to_string(), "pw".to_string()]);
        assert_eq!(
            r.redact("bad key s3cret-key, pw gone"),
            "bad key [redacted], [redacted] gone"
        );
    }

    /// A password shorter than four characters is a secret like any other.
    #[test]
    fn short_passwords_are_redacted_too() {
        let url = secrecy::SecretString::from("postgres://gatelog:x9@db.internal:5432/central");
        let r = Redactor::new(crate::config::url_secrets(&url));
        let text = r.clean("cannot connect as gatelog with password x9 to db.internal");
        assert!(!text.contains("x9"), "{text}");
        assert_eq!(Redactor::new([String::new()]).redact("text"), "text");
    }

    #[test]
    fn clean_text_is_short_redacted_and_whole_characters() {
        let r = Redactor::new(["s3cret-key".to_string()]);
        // Multi-byte characters put the cut inside a character.
        let long = format!("s3cret-key {}", "가".repeat(10_000));
        let cleaned = r.clean(&long);
        assert!(cleaned.len() <= ERROR_TEXT_LIMIT, "{}", cleaned.len());
        assert!(cleaned.starts_with("[redacted] 가"));
        assert!(cleaned.ends_with(ELLIPSIS));
        assert_eq!(r.clean(&cleaned), cleaned, "cleaning is idempotent");
        assert_eq!(r.clean("short"), "short");
    }
}
