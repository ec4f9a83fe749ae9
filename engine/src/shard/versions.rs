//! Per-slot versions shared by all cores of a node.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One counter per slot. Only the slot's owner core bumps it (after it has
/// stored the new value); any core reads it to validate a read copy.
#[derive(Debug, Clone)]
pub struct SlotVersions(Arc<[AtomicU64]>);

impl SlotVersions {
    pub fn new(slots: usize) -> SlotVersions {
        assert!(slots > 0);
        SlotVersions((0..slots).map(|_| AtomicU64::new(0)).collect())
    }

    pub fn get(&self, slot: u16) -> u64 {
        self.0[slot as usize].load(Ordering::Acquire)
    }

    /// Returns the new version.
    pub fn bump(&self, slot: u16) -> u64 {
        self.0[slot as usize].fetch_add(1, Ordering::AcqRel) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bump_is_visible_to_clones_and_per_slot() {
        let v = SlotVersions::new(16384);
        let other_core = v.clone();
        assert_eq!(other_core.get(7), 0);
        assert_eq!(v.bump(7), 1);
        assert_eq!(v.bump(7), 2);
        assert_eq!(other_core.get(7), 2);
        assert_eq!(other_core.get(8), 0);
    }
}
