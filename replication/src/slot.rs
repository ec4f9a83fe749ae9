//! The slot hash and the slot → partition → core map. Names are
//! normalised by the one normaliser, [`engine::name::normalize_name`]
//! (re-exported here).

/// Number of hash slots (as Redis Cluster).
pub const SLOT_COUNT: u16 = 16384;

pub use engine::name::{normalize_name, NameError, MAX_NAME_CHARS};

/// CRC16/XMODEM: poly 0x1021, init 0x0000, MSB first, no final xor.
pub fn crc16_xmodem(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= (b as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { (crc << 1) ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// Slot of an already normalised key.
pub fn slot_of(normalized: &str) -> u16 {
    crc16_xmodem(normalized.as_bytes()) % SLOT_COUNT
}

/// Most partitions a data dir may have (`--partitions`).
pub const MAX_PARTITIONS: u32 = 1024;

/// Slot → partition → core of one node. Partition `p` owns the contiguous
/// slots `[p * 16384 / P, (p + 1) * 16384 / P)` (so a Redis `CLUSTER SLOTS`
/// answer is `P` ranges) and lives on core `p % cores`: the partition count
/// is fixed when the data dir is created, the core count is not, and any
/// core count serves every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotMap {
    partitions: u32,
    cores: u16,
}

impl SlotMap {
    /// Panics outside `1..=MAX_PARTITIONS` partitions or `1..=16384` cores
    /// (the config checks both first).
    pub fn new(partitions: u32, cores: usize) -> SlotMap {
        assert!((1..=MAX_PARTITIONS).contains(&partitions), "partitions out of range: {partitions}");
        assert!(cores >= 1 && cores <= SLOT_COUNT as usize, "cores out of range: {cores}");
        SlotMap { partitions, cores: cores as u16 }
    }

    pub fn cores(&self) -> usize {
        self.cores as usize
    }

    pub fn partitions(&self) -> u32 {
        self.partitions
    }

    /// The partition of a slot (contiguous ranges).
    pub fn partition_of(&self, slot: u16) -> u32 {
        debug_assert!(slot < SLOT_COUNT);
        (slot as u32 * self.partitions) / SLOT_COUNT as u32
    }

    /// The core hosting a partition.
    pub fn core_of(&self, partition: u32) -> usize {
        (partition % self.cores as u32) as usize
    }

    /// The core owning this slot.
    pub fn owner_core(&self, slot: u16) -> usize {
        self.core_of(self.partition_of(slot))
    }

    /// The slots of a partition, `first..=last`.
    pub fn slot_range(&self, partition: u32) -> (u16, u16) {
        let first = (partition as u64 * SLOT_COUNT as u64).div_ceil(self.partitions as u64);
        let next = ((partition as u64 + 1) * SLOT_COUNT as u64).div_ceil(self.partitions as u64);
        (first as u16, (next - 1) as u16)
    }

    /// The partitions hosted by `core` (none when there are more cores than partitions).
    pub fn partitions_of_core(&self, core: usize) -> impl Iterator<Item = u32> + '_ {
        (0..self.partitions).filter(move |p| self.core_of(*p) == core)
    }

    /// Normalised name, its slot and its owner core in one step.
    pub fn locate(&self, raw_name: &str) -> Result<(String, u16, usize), NameError> {
        let key = normalize_name(raw_name)?;
        let slot = slot_of(&key);
        Ok((key, slot, self.owner_core(slot)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_matches_the_xmodem_check_value() {
        assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
        assert_eq!(crc16_xmodem(b""), 0);
    }

    #[test]
    fn slots_match_redis_cluster_keyslot() {
        // `redis-cli cluster keyslot foo|bar|hello`
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("bar"), 5061);
        assert_eq!(slot_of("hello"), 866);
    }

    #[test]
    fn names_go_through_the_engine_normaliser() {
        assert_eq!(normalize_name("  MapleUser ").unwrap(), "mapleuser");
        // 강 = ᄀ + ᅡ + ᆼ ; 은 = ᄋ + ᅳ + ᆫ ; 호 = ᄒ + ᅩ
        let nfd = "\u{1100}\u{1161}\u{11BC}\u{110B}\u{1173}\u{11AB}\u{1112}\u{1169}";
        assert_eq!(slot_of(&normalize_name(nfd).unwrap()), slot_of("강은호"));
        assert_eq!(normalize_name("a b"), Err(NameError::InvalidChar(' ')), "one rule: inner whitespace is refused everywhere");
    }

    #[test]
    fn partitions_are_contiguous_slot_ranges_covering_every_slot() {
        for p_count in [1u32, 2, 3, 7, 16, 1000, 1024] {
            let map = SlotMap::new(p_count, 3);
            let mut next = 0u32;
            for p in 0..p_count {
                let (first, last) = map.slot_range(p);
                assert_eq!(first as u32, next, "P={p_count} p={p}: ranges are contiguous");
                assert!(first <= last);
                assert_eq!((map.partition_of(first), map.partition_of(last)), (p, p), "P={p_count} p={p}");
                if first > 0 {
                    assert_eq!(map.partition_of(first - 1), p - 1);
                }
                next = last as u32 + 1;
            }
            assert_eq!(next, SLOT_COUNT as u32, "P={p_count}: every slot has a partition");
        }
        let map = SlotMap::new(16, 2);
        assert_eq!(map.slot_range(0), (0, 1023));
        assert_eq!(map.slot_range(15), (15360, 16383));
    }

    #[test]
    fn any_core_count_serves_every_partition() {
        for cores in [1usize, 2, 3, 16, 40] {
            let map = SlotMap::new(16, cores);
            let mut seen = Vec::new();
            for core in 0..cores {
                seen.extend(map.partitions_of_core(core));
            }
            seen.sort_unstable();
            assert_eq!(seen, (0..16).collect::<Vec<_>>(), "cores {cores}");
            // The partition of a key never depends on the core count.
            assert_eq!(map.partition_of(slot_of("아델")), SlotMap::new(16, 1).partition_of(slot_of("아델")));
        }
        assert_eq!(SlotMap::new(16, 40).partitions_of_core(20).count(), 0, "a core without partitions");
    }

    #[test]
    fn locate_is_stable_for_equivalent_spellings() {
        let map = SlotMap::new(16, 2);
        let a = map.locate("Adele").unwrap();
        let b = map.locate("  adele ").unwrap();
        assert_eq!(a, b);
    }
}
