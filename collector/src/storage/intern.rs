//! Label-set interning: the head and every block hold their series' label sets through one
//! shared table, so a series present in the head and in many blocks costs one copy of its
//! labels instead of one per block. Entries nobody else holds are purged periodically.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use vigil_shared::model::Labels;

/// Shared, deduplicated label sets.
#[derive(Debug, Default)]
pub(crate) struct Interner(Mutex<HashSet<Arc<Labels>>>);

impl Interner {
    /// The shared copy of `labels`.
    pub fn intern(&self, labels: Labels) -> Arc<Labels> {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = set.get(&labels) {
            return a.clone();
        }
        let a = Arc::new(labels);
        set.insert(a.clone());
        a
    }

    /// Drops label sets no series holds any more; returns how many remain.
    pub fn purge(&self) -> usize {
        let mut set = self.0.lock().unwrap_or_else(|p| p.into_inner());
        set.retain(|a| Arc::strong_count(a) > 1);
        set.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_label_sets_share_one_copy_until_released() {
        let i = Interner::default();
        let a = i.intern(Labels::metric("up", &[("job", "x")]));
        let b = i.intern(Labels::metric("up", &[("job", "x")]));
        assert!(Arc::ptr_eq(&a, &b));
        let c = i.intern(Labels::metric("up", &[("job", "y")]));
        assert!(!Arc::ptr_eq(&a, &c));
        drop(c);
        assert_eq!(i.purge(), 1);
        drop((a, b));
        assert_eq!(i.purge(), 0);
    }
}
