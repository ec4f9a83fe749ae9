//! The owner runtime of a core: what a core does for the keys of the
//! partitions it hosts.

pub mod groups;

pub use groups::{GroupError, Groups, PartitionId};
