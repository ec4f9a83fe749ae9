//! A group's metadata and how each record changes it. The same transitions
//! run in the syncer (to know what the next segment's GroupState record must
//! say and which segments a group still pins) and at recovery (replaying
//! the records), so the two cannot disagree.

use std::collections::VecDeque;

use super::LogId;

/// One group's metadata as the log's records define it.
///
/// Live entries are `first ..= last.index` (none when `last` is `None` or
/// `last == purged`). A group with no entry and no purge (`last == None`)
/// accepts any index as its first entry: openraft writes its first
/// membership entry at index 0, and nothing here treats 0 as "empty".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Index of the first live entry (or of the next one, when none is live).
    pub first: u64,
    /// Last log id: the last entry's, or the purge point when no entry is live.
    pub last: Option<LogId>,
    /// Last purged log id (with its term).
    pub purged: Option<LogId>,
    pub committed: Option<LogId>,
    pub vote: Option<Vec<u8>>,
}

impl Meta {
    /// Nothing was ever recorded for this group (it is left out of GroupState records).
    pub fn is_empty(&self) -> bool {
        self.last.is_none() && self.purged.is_none() && self.committed.is_none() && self.vote.is_none()
    }

    /// Number of live entries.
    pub fn live(&self) -> u64 {
        self.last.map_or(0, |l| (l.index + 1).saturating_sub(self.first))
    }

    /// Index of the last live entry, if any.
    pub fn last_live(&self) -> Option<u64> {
        (self.live() > 0).then(|| self.last.expect("live entries have a last id").index)
    }

    pub fn append_entry(&mut self, id: LogId) {
        if self.last.is_none() {
            self.first = id.index;
        }
        self.last = Some(id);
    }

    /// The group's last log id becomes `last` (entries after it are gone).
    pub fn truncate(&mut self, last: Option<LogId>) {
        match last {
            None => self.first = 0,
            Some(l) if l.index < self.first => self.first = l.index + 1,
            Some(_) => {}
        }
        self.last = last;
    }

    /// Entries up to `upto` are gone; `upto` is the new purge point.
    pub fn purge(&mut self, upto: LogId) {
        if self.last.is_none_or(|l| upto.index >= l.index) {
            self.last = Some(upto);
            self.first = upto.index + 1;
        } else if upto.index >= self.first {
            self.first = upto.index + 1;
        }
        self.purged = Some(upto);
    }
}

/// Which segments hold a group's live entries: `(seq, first index written
/// to that seq)` per segment, oldest first. Its front is the oldest segment
/// the group pins.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runs(VecDeque<(u64, u64)>);

impl Runs {
    pub fn on_entry(&mut self, seq: u64, index: u64) {
        if self.0.back().is_none_or(|&(s, _)| s != seq) {
            self.0.push_back((seq, index));
        }
    }

    /// Drop runs that no longer hold live entries of `meta`.
    pub fn normalize(&mut self, meta: &Meta) {
        let Some(last) = meta.last_live() else {
            self.0.clear();
            return;
        };
        while self.0.back().is_some_and(|&(_, from)| from > last) {
            self.0.pop_back();
        }
        while self.0.len() >= 2 && self.0[1].1 <= meta.first {
            self.0.pop_front();
        }
    }

    /// The oldest segment holding a live entry of the group.
    pub fn oldest(&self) -> Option<u64> {
        self.0.front().map(|&(s, _)| s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(term: u64, index: u64) -> LogId {
        LogId { term, index }
    }

    #[test]
    fn transitions_keep_first_and_last_consistent() {
        let mut m = Meta::default();
        assert!(m.is_empty());
        assert_eq!((m.live(), m.last_live()), (0, None));
        m.append_entry(id(1, 0));
        m.append_entry(id(1, 1));
        m.append_entry(id(2, 2));
        assert_eq!((m.first, m.live(), m.last_live()), (0, 3, Some(2)));
        m.truncate(Some(id(1, 1)));
        assert_eq!((m.live(), m.last), (2, Some(id(1, 1))));
        m.purge(id(1, 0));
        assert_eq!((m.first, m.live(), m.purged), (1, 1, Some(id(1, 0))));
        m.truncate(m.purged);
        assert_eq!((m.first, m.live(), m.last), (1, 0, Some(id(1, 0))));
        // Purge past the end: the log continues after the snapshot.
        m.purge(id(3, 50));
        assert_eq!((m.first, m.live(), m.last), (51, 0, Some(id(3, 50))));
        m.append_entry(id(3, 51));
        assert_eq!((m.first, m.live()), (51, 1));
        // Truncating everything of a never-purged group makes it new again.
        let mut n = Meta::default();
        n.append_entry(id(1, 5));
        n.truncate(None);
        assert_eq!((n.first, n.last, n.live()), (0, None, 0));
    }

    #[test]
    fn runs_follow_live_entries() {
        let mut m = Meta::default();
        let mut r = Runs::default();
        for (seq, i) in [(1, 0), (1, 1), (2, 2), (2, 3), (3, 4)] {
            m.append_entry(id(1, i));
            r.on_entry(seq, i);
        }
        assert_eq!(r.oldest(), Some(1));
        m.purge(id(1, 1));
        r.normalize(&m);
        assert_eq!(r.oldest(), Some(2));
        m.truncate(Some(id(1, 3)));
        r.normalize(&m);
        assert_eq!(r.0.len(), 1);
        m.purge(id(1, 3));
        r.normalize(&m);
        assert_eq!(r.oldest(), None);
    }
}
