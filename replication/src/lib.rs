//! Key placement: character name → slot → partition → owner core.
//!
//! The hash is CRC16/XMODEM (polynomial 0x1021, init 0, no reflection) of the
//! normalised name's UTF-8 bytes, modulo [`SLOT_COUNT`] — the same function
//! Redis Cluster uses (without its `{hash tag}` rule), so a slot can be
//! checked against `redis-cli cluster keyslot`. It is stable across builds,
//! platforms and versions: placement must never depend on `std`'s
//! randomised hasher.
//!
//! Single node: partition = slot % cores and partition p is owned by core p.
//! A cluster step later maps partitions to (node, core) through the same
//! [`SlotMap`].

pub mod slot;

pub use slot::{crc16_xmodem, normalize_name, slot_of, NameError, SlotMap, MAX_NAME_CHARS, SLOT_COUNT};
