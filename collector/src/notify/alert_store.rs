//! The alerts the dispatcher holds, shared read-only with the HTTP API so that
//! `GET /api/v2/alerts` lists them as Alertmanager does. The dispatcher inserts every
//! alert it receives (with the time it received it, the v2 API's `updatedAt`) and drops
//! the ones it garbage-collects; the API computes each alert's status (silenced,
//! inhibited, receivers) when asked, as Alertmanager's API does.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use super::alert::Alert;

/// One alert and when it was last received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    /// The alert as the dispatcher holds it (with `ends_at` filled in).
    pub alert: Alert,
    /// When the dispatcher last received it.
    pub updated_at: SystemTime,
}

/// Shared view of the dispatcher's alerts; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct AlertStore(Arc<RwLock<HashMap<u64, StoredAlert>>>);

impl AlertStore {
    /// Records `alert` (fingerprint `fp`) as received at `now`.
    pub fn upsert(&self, fp: u64, alert: Alert, now: SystemTime) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        m.insert(
            fp,
            StoredAlert {
                alert,
                updated_at: now,
            },
        );
    }

    /// Keeps only the alerts whose fingerprint satisfies `keep`.
    pub fn retain(&self, keep: impl Fn(u64) -> bool) {
        let mut m = self.0.write().unwrap_or_else(|p| p.into_inner());
        m.retain(|fp, _| keep(*fp));
    }

    /// A copy of every alert, sorted by fingerprint.
    pub fn snapshot(&self) -> Vec<(u64, StoredAlert)> {
        let m = self.0.read().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(u64, StoredAlert)> = m.iter().map(|(k, a)| (*k, a.clone())).collect();
        v.sort_by_key(|(fp, _)| *fp);
        v
    }
}
