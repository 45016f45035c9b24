//! The on-disk format: header, lock area, allocator state, block headers.
//!
//! ```text
//! 0      Identity   64 B  magic, version, geometry, checksum (written once, before rename)
//! 64     LockArea   64 B  the lock word, alone on its cache line (atomic access only)
//! 128    SlotRecord × 128 the attachment table (atomic access only)
//! 2048   State            capacity, generation, intent, flags, undo log, counters, bitmaps,
//!                         roots, free heads (every field an 8-byte word at an 8-aligned offset)
//! 16384  arena            blocks tiling [HEADER_SIZE, capacity - 8), then the sentinel
//! ```
//!
//! Invariant F1: every field is fixed-width and native little-endian; the layout below is
//! asserted at compile time, and only offsets from the file's start are ever stored (no
//! absolute address). Invariant F2: `Identity` is covered by its checksum and never changes
//! after creation; everything in `State` changes only under the lock, so the checksum does
//! not cover it (a process killed between a field and its checksum would otherwise brick
//! the file); `State` is validated field by field instead.
//! docs/format.md describes every byte.

pub mod block;
mod fields;

use bytemuck::{Pod, Zeroable};

pub use crate::sync::SlotRecord;
pub use fields::{IdentityField, IDENTITY_FIELDS};

/// The first eight bytes of every heap file. The last byte is the byte order marker: a
/// big-endian host would read the version word differently and fail the version check too.
pub const MAGIC: [u8; 8] = *b"MAPHEAP\x01";
/// The format version this build reads and writes. Version 1 had no undo log and no root
/// checksums; it is refused by name (`FormatError::BadVersion`), never upgraded in place.
pub const VERSION: u32 = 2;
/// Where the arena starts; also the size of the header area.
pub const HEADER_SIZE: u64 = 16384;
/// Offset of the lock area.
pub const LOCK_OFFSET: usize = 64;
/// Offset of the attachment table.
pub const SLOTS_OFFSET: usize = 128;
/// Number of attachment slots.
pub const SLOT_COUNT: u32 = 128;
/// Offset of the allocator and root state.
pub const STATE_OFFSET: usize = 2048;
/// Size of the state: it ends at `STATE_OFFSET + STATE_SIZE` (14672); the header's bytes
/// from there to `HEADER_SIZE` are zero.
pub const STATE_SIZE: usize = 12624;
/// Where the zero bytes after the attachment table start (they run to `STATE_OFFSET`).
pub const SLOTS_END: usize = SLOTS_OFFSET + SLOT_COUNT as usize * 8;
/// Number of named roots.
pub const ROOT_COUNT: usize = 32;
/// Longest root name in bytes (the field is NUL-padded).
pub const ROOT_NAME_LEN: usize = 32;

/// log2 of the block granularity.
pub const ALIGN_LOG2: u32 = 3;
/// Block granularity: every block size and block offset is a multiple of it.
pub const ALIGN: u64 = 1 << ALIGN_LOG2;
/// log2 of the number of second-level lists per first-level class.
pub const SL_LOG2: u32 = 5;
/// Second-level lists per first-level class.
pub const SL_COUNT: usize = 1 << SL_LOG2;
/// First-level classes. Class 0 holds blocks below `SMALL_BLOCK`; class `f > 0` holds
/// sizes in `[2^(f+FL_SHIFT-1), 2^(f+FL_SHIFT))`.
pub const FL_COUNT: usize = 40;
/// Sizes below `1 << FL_SHIFT` share first-level class 0.
pub const FL_SHIFT: u32 = SL_LOG2 + ALIGN_LOG2;
/// Blocks below this size are classed linearly.
pub const SMALL_BLOCK: u64 = 1 << FL_SHIFT;
/// Smallest block: header, two free-list links, footer.
pub const MIN_BLOCK: u64 = 32;
/// Size of a block header.
pub const BLOCK_HEADER: u64 = 8;
/// Largest capacity a heap may have (the largest block must still have a class).
pub const MAX_CAPACITY: u64 = 1 << (FL_COUNT as u32 + FL_SHIFT - 2);
/// Smallest capacity: the header, one minimum block and the sentinel, page-rounded later.
pub const MIN_CAPACITY: u64 = HEADER_SIZE + MIN_BLOCK + BLOCK_HEADER;

/// Immutable identity of a heap file.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct Identity {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`VERSION`].
    pub version: u32,
    /// [`HEADER_SIZE`].
    pub header_size: u32,
    /// Page size of the machine that created the file; alignment up to it is promised.
    pub page_size: u32,
    /// [`SLOT_COUNT`].
    pub slot_count: u32,
    /// [`ROOT_COUNT`].
    pub root_count: u32,
    /// [`FL_COUNT`].
    pub fl_count: u32,
    /// [`SL_COUNT`].
    pub sl_count: u32,
    /// [`MIN_BLOCK`].
    pub min_block: u32,
    /// Creation time in nanoseconds since the epoch: tells two heaps apart.
    pub created_ns: u64,
    /// FNV-1a 64 of the bytes before this field.
    pub checksum: u64,
    /// Reserved, zero.
    pub reserved: u64,
}

/// The lock area. Accessed only atomically, never through a reference to this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct LockArea {
    /// The lock word (see `sync::word`).
    pub word: u32,
    /// Padding to a cache line, so the word does not share one with hot state.
    pub pad: [u32; 15],
}

/// What operation was in flight, for repair after an owner's death. `op` is written last
/// when the record is set and first when it is cleared, so `block` means something only
/// while `op` is not [`INTENT_NONE`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Intent {
    /// One of the `INTENT_*` constants.
    pub op: u64,
    /// The block the operation works on (for a growth: the old sentinel, which sits at the
    /// old capacity minus 8).
    pub block: u64,
}

/// No operation in flight.
pub const INTENT_NONE: u64 = 0;
/// An allocation; `block` is set just before its commit store.
pub const INTENT_ALLOC: u64 = 1;
/// A free of `block`.
pub const INTENT_FREE: u64 = 2;
/// A growth; `block` is the old sentinel (so the old capacity is `block + 8`, and the new
/// one is `capacity` once the capacity store has been made).
pub const INTENT_GROW: u64 = 3;

/// A named root.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Root {
    /// NUL-padded name; all zero for an unused entry.
    pub name: [u8; ROOT_NAME_LEN],
    /// `size_of` of the root's type.
    pub size: u32,
    /// `align_of` of the root's type.
    pub align: u32,
    /// FNV-1a 64 of the type's name.
    pub type_hash: u64,
    /// Offset of the root's payload.
    pub offset: u64,
    /// FNV-1a 64 of the 56 bytes above ([`Root::checksum_of`]); 0 in an unused entry.
    pub checksum: u64,
}

impl Root {
    /// The checksum a used entry with these first 56 bytes must carry.
    pub fn checksum_of(&self) -> u64 {
        let bytes = bytemuck::bytes_of(self);
        fnv1a(&bytes[..std::mem::offset_of!(Root, checksum)])
    }

    /// Whether the entry is unused (every byte zero).
    pub fn is_unused(&self) -> bool {
        bytemuck::bytes_of(self).iter().all(|&b| b == 0)
    }
}

/// Set in `State::flags` while the heap must be repaired before use (a guard was dropped
/// by a panic and could not roll its transaction back, or a repair failed half-way).
pub const FLAG_NEEDS_REPAIR: u64 = 1;
/// Every flag bit this version defines; `check` reports any other bit.
pub const FLAGS_KNOWN: u64 = FLAG_NEEDS_REPAIR;

/// How many extension segments the undo log may chain (docs/transactions.md).
pub const LOG_EXTENSIONS: usize = 8;

/// The undo log's descriptor (docs/transactions.md). The log is the payload of a block the
/// heap owns (`block`, `cap` bytes of it), followed, while a transaction needs more room,
/// by extension segments: blocks allocated by the transaction and listed in `ext` (each
/// holding its block's whole payload). Entries fill the segments in order; `len` is the
/// position after the last entry, counted across the segments.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct LogState {
    /// Bytes of valid entries, across the segments; bit 63 ([`LOG_COMMITTED`]) once the
    /// transaction committed. 0 outside a transaction.
    pub len: u64,
    /// While committed: how many deferred frees have been carried out, or [`LOG_DONE_ALL`]
    /// once all of them have. 0 otherwise.
    pub done: u64,
    /// Payload offset of the log's own block (never null in a valid file).
    pub block: u64,
    /// Bytes of that block the log uses (a multiple of 8, at most its payload).
    pub cap: u64,
    /// Payload offsets of the extension segments in use, in order; 0 after the last.
    pub ext: [u64; LOG_EXTENSIONS],
}

/// Set in `LogState::len` by the commit store: the transaction is final.
pub const LOG_COMMITTED: u64 = 1 << 63;
/// The length part of `LogState::len`.
pub const LOG_LEN_MASK: u64 = LOG_COMMITTED - 1;
/// `LogState::done` once every deferred free is done (the extensions are being freed).
pub const LOG_DONE_ALL: u64 = u64::MAX;

/// Allocator and root state. Read and written only by the lock's owner.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct State {
    /// Bytes of the file in use: the arena ends here. Never exceeds the file's length.
    pub capacity: u64,
    /// Bumped on every growth; a handle that sees a newer value remaps.
    pub generation: u64,
    /// `FLAG_*` bits.
    pub flags: u64,
    /// The operation in flight.
    pub intent: Intent,
    /// The undo log of the transaction in progress. (`capacity` to `log.done` share the
    /// first cache line: every lock reads them.)
    pub log: LogState,
    /// Bytes in allocated blocks (headers included).
    pub used_bytes: u64,
    /// Number of allocated blocks (the sentinel excluded).
    pub used_blocks: u64,
    /// Bytes in free blocks.
    pub free_bytes: u64,
    /// Number of free blocks.
    pub free_blocks: u64,
    /// Bit `f` set iff some list of first-level class `f` is non-empty.
    pub fl_bitmap: u64,
    /// Bit `s` of entry `f` set iff list `(f, s)` is non-empty.
    pub sl_bitmap: [u32; FL_COUNT],
    /// Named roots.
    pub roots: [Root; ROOT_COUNT],
    /// Head of each free list (block offset, 0 = empty), index `f * SL_COUNT + s`.
    pub heads: [u64; FL_COUNT * SL_COUNT],
}

const _: () = {
    assert!(std::mem::size_of::<Identity>() == 64);
    assert!(std::mem::size_of::<LockArea>() == 64);
    assert!(LOCK_OFFSET + std::mem::size_of::<LockArea>() <= SLOTS_OFFSET);
    assert!(std::mem::size_of::<SlotRecord>() == 8);
    assert!(SLOTS_OFFSET + SLOT_COUNT as usize * 8 <= STATE_OFFSET);
    assert!(std::mem::size_of::<Root>() == 64);
    assert!(std::mem::size_of::<Intent>() == 16);
    assert!(std::mem::size_of::<LogState>() == 96);
    assert!(std::mem::offset_of!(State, flags) == 16);
    assert!(std::mem::offset_of!(State, intent) == 24);
    assert!(std::mem::offset_of!(State, log) == 40);
    assert!(std::mem::offset_of!(State, used_bytes) == 136);
    assert!(std::mem::offset_of!(State, fl_bitmap) == 168);
    assert!(std::mem::offset_of!(State, sl_bitmap) == 176);
    assert!(std::mem::offset_of!(State, roots) == 336);
    assert!(std::mem::offset_of!(State, heads) == 336 + 64 * ROOT_COUNT);
    // What every lock reads (capacity, generation, flags, intent.op, log.len, log.done)
    // lies in the state's first cache line.
    assert!(std::mem::offset_of!(State, log) + 16 <= 64);
    assert!(std::mem::size_of::<State>() == STATE_SIZE);
    assert!(STATE_OFFSET + STATE_SIZE <= HEADER_SIZE as usize);
    // Every field is a whole number of 8-byte words at an 8-aligned offset, so every store
    // to the state is one 8-byte word (`alloc::Arena::store`).
    assert!(std::mem::size_of::<State>().is_multiple_of(8));
    assert!(STATE_OFFSET.is_multiple_of(8) && HEADER_SIZE.is_multiple_of(4096));
    assert!(FL_COUNT <= 64 && SL_COUNT <= 32);
    assert!(crate::sync::word::MAX_SLOTS >= SLOT_COUNT);
};

/// FNV-1a, 64 bit: the header checksum and the type fingerprint hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Errors found in a file image before anything in it is trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    /// The file is shorter than its header says or than any heap can be.
    #[error("file is truncated: {found} bytes, at least {needed} needed")]
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes found.
        found: u64,
    },
    /// Not a mapheap file.
    #[error("not a mapheap file (bad magic {found:02x?})")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },
    /// A format version this build cannot read.
    #[error("unsupported format version {found} (this build reads {VERSION})")]
    BadVersion {
        /// The version found.
        found: u32,
    },
    /// The identity block does not match its checksum.
    #[error("header checksum mismatch: stored {stored:#018x}, computed {computed:#018x}")]
    BadChecksum {
        /// Stored checksum.
        stored: u64,
        /// Checksum of the bytes.
        computed: u64,
    },
    /// A geometry field differs from this build's layout.
    #[error("header field {field} is {found}, expected {expected}")]
    BadGeometry {
        /// Which field.
        field: &'static str,
        /// Value found.
        found: u64,
        /// Value expected.
        expected: u64,
    },
    /// The capacity field is impossible or larger than the file.
    #[error("capacity {capacity} is invalid for a file of {file_len} bytes")]
    BadCapacity {
        /// Capacity in the header.
        capacity: u64,
        /// Length of the file.
        file_len: u64,
    },
}

impl Identity {
    /// A fresh identity for a file made now on a machine with `page_size`.
    pub fn new(page_size: u32, created_ns: u64) -> Identity {
        let mut id = Identity {
            magic: MAGIC,
            version: VERSION,
            header_size: HEADER_SIZE as u32,
            page_size,
            slot_count: SLOT_COUNT,
            root_count: ROOT_COUNT as u32,
            fl_count: FL_COUNT as u32,
            sl_count: SL_COUNT as u32,
            min_block: MIN_BLOCK as u32,
            created_ns,
            checksum: 0,
            reserved: 0,
        };
        id.checksum = id.compute_checksum();
        id
    }

    fn compute_checksum(&self) -> u64 {
        let bytes = bytemuck::bytes_of(self);
        fnv1a(&bytes[..std::mem::offset_of!(Identity, checksum)])
    }

    /// Checks magic, version, checksum and geometry against this build and `page_size`.
    pub fn validate(&self, page_size: u32) -> Result<(), FormatError> {
        if crate::mutant::active(crate::mutant::Mutant::SkipIdentityCheck) {
            return Ok(());
        }
        if self.magic != MAGIC {
            return Err(FormatError::BadMagic { found: self.magic });
        }
        if self.version != VERSION {
            return Err(FormatError::BadVersion {
                found: self.version,
            });
        }
        let computed = self.compute_checksum();
        if computed != self.checksum {
            return Err(FormatError::BadChecksum {
                stored: self.checksum,
                computed,
            });
        }
        let fields: [(&'static str, u64, u64); 8] = [
            ("header_size", self.header_size.into(), HEADER_SIZE),
            ("page_size", self.page_size.into(), page_size.into()),
            ("slot_count", self.slot_count.into(), SLOT_COUNT.into()),
            ("root_count", self.root_count.into(), ROOT_COUNT as u64),
            ("fl_count", self.fl_count.into(), FL_COUNT as u64),
            ("sl_count", self.sl_count.into(), SL_COUNT as u64),
            ("min_block", self.min_block.into(), MIN_BLOCK),
            ("reserved", self.reserved, 0),
        ];
        for (field, found, expected) in fields {
            if found != expected {
                return Err(FormatError::BadGeometry {
                    field,
                    found,
                    expected,
                });
            }
        }
        Ok(())
    }
}

/// Checks a capacity read from the header against the file's length.
#[inline]
pub fn validate_capacity(capacity: u64, file_len: u64) -> Result<(), FormatError> {
    let trust = crate::mutant::active(crate::mutant::Mutant::TrustCapacity);
    let ok = (MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity)
        && capacity.is_multiple_of(ALIGN)
        && (trust || capacity <= file_len);
    if ok {
        Ok(())
    } else {
        Err(FormatError::BadCapacity { capacity, file_len })
    }
}

/// The system page size (the kernel's `AT_PAGESZ`, which it hands every process: no
/// failure to fall back from).
pub fn page_size() -> u32 {
    // SAFETY: getauxval only reads the auxiliary vector; it has no preconditions.
    let p = unsafe { libc::getauxval(libc::AT_PAGESZ) };
    p as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_each_field_is_checked() {
        let id = Identity::new(4096, 42);
        assert_eq!(id.validate(4096), Ok(()));
        let mut bad = id;
        bad.magic[0] ^= 1;
        assert!(matches!(
            bad.validate(4096),
            Err(FormatError::BadMagic { .. })
        ));
        for v in [VERSION - 1, VERSION + 1] {
            let mut bad = id;
            bad.version = v;
            assert_eq!(
                bad.validate(4096),
                Err(FormatError::BadVersion { found: v })
            );
        }
        let mut bad = id;
        bad.created_ns ^= 1;
        assert!(matches!(
            bad.validate(4096),
            Err(FormatError::BadChecksum { .. })
        ));
        assert!(matches!(
            id.validate(16384),
            Err(FormatError::BadGeometry {
                field: "page_size",
                ..
            })
        ));
    }

    #[test]
    fn capacity_must_fit_the_file() {
        assert!(validate_capacity(1 << 20, 1 << 20).is_ok());
        assert!(validate_capacity((1 << 20) + 8, 1 << 20).is_err());
        assert!(validate_capacity(HEADER_SIZE, 1 << 20).is_err());
        assert!(validate_capacity((1 << 20) + 3, 1 << 21).is_err());
    }
}
