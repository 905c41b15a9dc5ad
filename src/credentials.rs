//! Credentials remembered for a moment: who a session token or a seller's API key stood for
//! when Postgres last said so, so that a busy client's requests do not each read it again.
//!
//! Promises: an entry is trusted for at most `auth.credential_cache_ttl_ms` and only while
//! this process hears the revocations every process announces on Redis pub/sub
//! ([`CredentialCache::listening`]): a revoked session, a suspended seller, a changed password
//! or profile is forgotten here at once by the process that changed it and by every other as
//! soon as the announcement arrives (milliseconds; within a second is tested); while the
//! listener is cut off from Redis nothing is trusted from memory. The cache holds at most
//! `auth.credential_cache_entries` entries (full: it is emptied and refills), so memory stays
//! bounded whatever the number of clients. Keys are the SHA-256 digests Postgres stores, never
//! the tokens themselves.

use std::{
    any::Any,
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use crate::notices::Revocation;
use crate::{
    hot_state::HotState,
    notices::{self, Notice},
};

struct Entry {
    /// The shopper or seller the credential is theirs.
    subject: Uuid,
    /// Whom it stands for, as the reader stored it (a `Shopper`, a `Seller`).
    principal: Arc<dyn Any + Send + Sync>,
    cached_at: Instant,
    /// When the credential itself expires (a session), if it does.
    expires_at: Option<DateTime<Utc>>,
}

struct Inner {
    entries: HashMap<Vec<u8>, Entry>,
    /// Since when the listener has been hearing revocations; `None`: it is not.
    listening_since: Option<Instant>,
    /// When the last revocation was heard: a read that started before it may have seen what
    /// it revoked, so it is not remembered.
    last_revocation: Option<Instant>,
}

/// The process's remembered credentials, and the announcer of revocations; cheap to clone.
#[derive(Clone)]
pub struct CredentialCache {
    memory: Memory,
    hot: HotState,
}

impl CredentialCache {
    pub fn new(hot: HotState, ttl: Duration, capacity: usize) -> Self {
        Self {
            memory: Memory::new(ttl, capacity),
            hot,
        }
    }

    /// Who the credential with this digest stands for, if remembered, still trusted and a `T`.
    pub fn get<T: Clone + 'static>(&self, digest: &[u8]) -> Option<T> {
        self.memory
            .get(digest)
            .and_then(|principal| principal.downcast_ref::<T>().cloned())
    }

    /// Remembers what Postgres just said, stamped with `read_at` (taken before the read, so a
    /// revocation announced during it wins), trusted no longer than the credential's own
    /// `expires_at`.
    pub fn put<T: Send + Sync + 'static>(
        &self,
        digest: &[u8],
        subject: Uuid,
        principal: T,
        read_at: Instant,
        expires_at: Option<DateTime<Utc>>,
    ) {
        let principal: Arc<dyn Any + Send + Sync> = Arc::new(principal);
        self.memory
            .put(digest, subject, principal, read_at, expires_at);
    }

    /// Forgets what `revocation` names here, then tells every process.
    pub async fn revoke(&self, revocation: Revocation) {
        self.memory.forget(&revocation);
        notices::publish(&self.hot, &Notice::Revoked { revocation }).await;
    }

    /// Forgets what `revocation` names (this process's share of an announcement).
    pub fn forget(&self, revocation: &Revocation) {
        self.memory.forget(revocation);
    }

    /// The listener's state: hearing revocations from now on (`true`), or cut off (`false`);
    /// either way what was remembered before is no longer trusted.
    pub fn listening(&self, listening: bool) {
        self.memory.listening(listening);
    }
}

/// The remembered entries themselves, bounded and timed.
#[derive(Clone)]
struct Memory {
    inner: Arc<Mutex<Inner>>,
    ttl: Duration,
    capacity: usize,
}

impl Memory {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                entries: HashMap::new(),
                listening_since: None,
                last_revocation: None,
            })),
            ttl,
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: still usable.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, digest: &[u8]) -> Option<Arc<dyn Any + Send + Sync>> {
        let inner = self.lock();
        let since = inner.listening_since?;
        let found = inner.entries.get(digest).filter(|entry| {
            entry.cached_at >= since
                && entry.cached_at.elapsed() < self.ttl
                && entry.expires_at.is_none_or(|until| Utc::now() < until)
        });
        metrics::counter!("agora_credential_cache_total", "outcome" => if found.is_some() { "hit" } else { "miss" })
            .increment(1);
        found.map(|entry| entry.principal.clone())
    }

    fn put(
        &self,
        digest: &[u8],
        subject: Uuid,
        principal: Arc<dyn Any + Send + Sync>,
        read_at: Instant,
        expires_at: Option<DateTime<Utc>>,
    ) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.lock();
        let stale = inner.last_revocation.is_some_and(|last| read_at <= last);
        if stale || inner.listening_since.is_none_or(|since| read_at < since) {
            return;
        }
        if inner.entries.len() >= self.capacity {
            inner.entries.clear();
        }
        inner.entries.insert(
            digest.to_vec(),
            Entry {
                subject,
                principal,
                cached_at: read_at,
                expires_at,
            },
        );
    }

    fn forget(&self, revocation: &Revocation) {
        let mut inner = self.lock();
        inner.last_revocation = Some(Instant::now());
        match revocation {
            Revocation::Credential { digest } => {
                if let Ok(digest) = hex::decode(digest) {
                    inner.entries.remove(&digest);
                }
            }
            Revocation::Subject { id } => {
                inner.entries.retain(|_, entry| entry.subject != *id);
            }
        }
    }

    fn listening(&self, listening: bool) {
        let mut inner = self.lock();
        inner.entries.clear();
        inner.listening_since = listening.then(Instant::now);
    }
}

/// The revocation of one credential, by its digest.
pub fn credential(digest: &[u8]) -> Revocation {
    Revocation::Credential {
        digest: hex::encode(digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a credential of `subject` stands for (its kind does not matter here).
    fn shopper(subject: Uuid) -> Arc<dyn Any + Send + Sync> {
        Arc::new(subject)
    }

    /// Puts a shopper credential under `key`, read now, with no expiry of its own.
    fn remember(cache: &Memory, key: &[u8]) {
        cache.put(key, Uuid::nil(), shopper(Uuid::nil()), Instant::now(), None);
    }

    fn cache(ttl_ms: u64) -> Memory {
        Memory::new(Duration::from_millis(ttl_ms), 2)
    }

    #[test]
    fn nothing_is_trusted_while_revocations_cannot_be_heard() {
        let cache = cache(60_000);
        remember(&cache, b"a");
        assert!(cache.get(b"a").is_none(), "not listening: not remembered");
        cache.listening(true);
        remember(&cache, b"a");
        assert!(cache.get(b"a").is_some());
        cache.listening(false);
        assert!(cache.get(b"a").is_none(), "cut off: forgotten");
    }

    #[test]
    fn a_revocation_forgets_the_credential_or_everything_of_its_subject() {
        let cache = cache(60_000);
        cache.listening(true);
        let (one, other) = (Uuid::now_v7(), Uuid::now_v7());
        cache.put(b"a", one, shopper(one), Instant::now(), None);
        cache.put(b"b", other, shopper(other), Instant::now(), None);
        let read_before = Instant::now();
        cache.forget(&credential(b"a"));
        assert!(cache.get(b"a").is_none());
        assert!(cache.get(b"b").is_some());
        cache.put(b"a", one, shopper(one), read_before, None);
        assert!(
            cache.get(b"a").is_none(),
            "a read older than a revocation is not kept"
        );
        cache.forget(&Revocation::Subject { id: other });
        assert!(cache.get(b"b").is_none());
    }

    #[test]
    fn entries_expire_and_a_full_cache_starts_over() {
        let cache = cache(0);
        cache.listening(true);
        remember(&cache, b"a");
        assert!(cache.get(b"a").is_none(), "a zero lifetime caches nothing");
        let cache = self::cache(60_000);
        cache.listening(true);
        let expired = Utc::now() - chrono::Duration::seconds(1);
        cache.put(
            b"s",
            Uuid::nil(),
            shopper(Uuid::nil()),
            Instant::now(),
            Some(expired),
        );
        assert!(
            cache.get(b"s").is_none(),
            "an expired session is not trusted"
        );
        let cache = self::cache(60_000);
        cache.listening(true);
        let read_before_listening = Instant::now() - Duration::from_secs(1);
        cache.put(
            b"x",
            Uuid::nil(),
            shopper(Uuid::nil()),
            read_before_listening,
            None,
        );
        assert!(
            cache.get(b"x").is_none(),
            "read before the listener heard: not kept"
        );
        for key in [b"a", b"b", b"c"] {
            cache.put(key, Uuid::nil(), shopper(Uuid::nil()), Instant::now(), None);
        }
        assert!(cache.inner.lock().map(|i| i.entries.len()).unwrap_or(9) <= 2);
    }
}
