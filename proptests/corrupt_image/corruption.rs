//! The corruptions a case applies to a valid image: boundary and random values written
//! into header fields (with or without a fixed-up identity checksum), block headers with
//! valid tags, raw words of blocks, single bits, and a new file length.

use super::*;

/// A value to store, chosen among boundaries relative to the image.
#[derive(Clone, Debug)]
pub(super) enum Value {
    Zero,
    One,
    AllOnes,
    Small(u8),
    SignBit,
    MaxAligned,
    HeaderPlus(u8),
    Capacity(i8),
    FileLen(i8),
    MaxCapacity(i8),
    Block(Index, i8),
    XorBit(u8),
    Random(u64),
}

pub(super) fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Zero),
        1 => Just(Value::One),
        1 => Just(Value::AllOnes),
        1 => (0u8..64).prop_map(Value::Small),
        1 => Just(Value::SignBit),
        1 => Just(Value::MaxAligned),
        1 => (0u8..8).prop_map(Value::HeaderPlus),
        1 => (-3i8..=3).prop_map(Value::Capacity),
        1 => (-3i8..=3).prop_map(Value::FileLen),
        1 => (-1i8..=1).prop_map(Value::MaxCapacity),
        2 => (any::<Index>(), -2i8..=3).prop_map(|(i, d)| Value::Block(i, d)),
        2 => (0u8..64).prop_map(Value::XorBit),
        1 => any::<u64>().prop_map(Value::Random),
    ]
}

pub(super) struct Ctx<'a> {
    capacity: u64,
    len: u64,
    blocks: &'a [(u64, u64)],
}

impl Value {
    fn resolve(&self, ctx: &Ctx<'_>, orig: u64) -> u64 {
        let rel = |base: u64, d: i8| base.wrapping_add((i64::from(d) * 8) as u64);
        match *self {
            Value::Zero => 0,
            Value::One => 1,
            Value::AllOnes => u64::MAX,
            Value::Small(v) => u64::from(v),
            Value::SignBit => 1 << 63,
            Value::MaxAligned => !7,
            Value::HeaderPlus(k) => HEADER_SIZE + 8 * u64::from(k),
            Value::Capacity(d) => rel(ctx.capacity, d),
            Value::FileLen(d) => rel(ctx.len, d),
            Value::MaxCapacity(d) => rel(MAX_CAPACITY, d),
            Value::Block(i, d) => rel(ctx.blocks[i.index(ctx.blocks.len())].0, d),
            Value::XorBit(b) => orig ^ (1 << b),
            Value::Random(v) => v,
        }
    }
}

/// A field of the header area.
#[derive(Clone, Debug)]
pub(super) enum Field {
    /// Identity field `0..12`; the checksum is recomputed afterwards if `fix`.
    Identity(u8, bool),
    Lock,
    SlotIncarnation(u8),
    SlotPid(u8),
    /// One of the 15 scalar fields of the state (capacity .. fl_bitmap).
    State(u8),
    SlBitmap(u8),
    /// A free-list head: an `Index` over the non-empty heads (any head if none).
    Head(Index),
    /// Root `.0`, part `.1`: 0 name, 1 size, 2 align, 3 type hash, 4 offset, 5 checksum.
    Root(u8, u8),
}

pub(super) fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        2 => (0u8..12, any::<bool>()).prop_map(|(f, fix)| Field::Identity(f, fix)),
        2 => Just(Field::Lock),
        1 => (0u8..4).prop_map(Field::SlotIncarnation),
        1 => (0u8..4).prop_map(Field::SlotPid),
        6 => (0u8..15).prop_map(Field::State),
        1 => (0u8..40).prop_map(Field::SlBitmap),
        3 => any::<Index>().prop_map(Field::Head),
        3 => (0u8..4, 0u8..6).prop_map(|(r, p)| Field::Root(r, p)),
    ]
}

/// (offset in the file, width in bytes) of a field.
pub(super) fn locate(f: &Field, bytes: &[u8]) -> (u64, usize) {
    const ID: [(u64, usize); 12] = [
        (0, 8),
        (8, 4),
        (12, 4),
        (16, 4),
        (20, 4),
        (24, 4),
        (28, 4),
        (32, 4),
        (36, 4),
        (40, 8),
        (48, 8),
        (56, 8),
    ];
    let st = |o: usize| STATE_OFFSET + o as u64;
    match *f {
        Field::Identity(i, _) => ID[usize::from(i)],
        Field::Lock => (LOCK_OFFSET, 4),
        Field::SlotIncarnation(i) => (SLOTS_OFFSET + 8 * u64::from(i), 4),
        Field::SlotPid(i) => (SLOTS_OFFSET + 8 * u64::from(i) + 4, 4),
        Field::State(i) => {
            let intent = offset_of!(State, intent);
            let log = offset_of!(State, log);
            let fields = [
                offset_of!(State, capacity),
                offset_of!(State, generation),
                offset_of!(State, flags),
                intent + offset_of!(Intent, op),
                intent + offset_of!(Intent, block),
                log + offset_of!(LogState, len),
                log + offset_of!(LogState, done),
                log + offset_of!(LogState, block),
                log + offset_of!(LogState, cap),
                log + offset_of!(LogState, ext),
                offset_of!(State, used_bytes),
                offset_of!(State, used_blocks),
                offset_of!(State, free_bytes),
                offset_of!(State, free_blocks),
                offset_of!(State, fl_bitmap),
            ];
            (st(fields[usize::from(i) % fields.len()]), 8)
        }
        Field::SlBitmap(i) => (st(offset_of!(State, sl_bitmap) + 4 * usize::from(i)), 4),
        Field::Head(ix) => {
            let heads = st(offset_of!(State, heads));
            let n = (HEADER_SIZE - heads) / 8;
            let nonempty: Vec<u64> = (0..n)
                .filter(|k| read_word(bytes, heads + 8 * k, 8) != 0)
                .collect();
            let k = if nonempty.is_empty() {
                ix.index(n as usize) as u64
            } else {
                nonempty[ix.index(nonempty.len())]
            };
            (heads + 8 * k, 8)
        }
        Field::Root(r, part) => {
            let base = offset_of!(State, roots) + std::mem::size_of::<Root>() * usize::from(r);
            let (o, w) = match part {
                0 => (offset_of!(Root, name), 8),
                1 => (offset_of!(Root, size), 4),
                2 => (offset_of!(Root, align), 4),
                3 => (offset_of!(Root, type_hash), 8),
                4 => (offset_of!(Root, offset), 8),
                _ => (offset_of!(Root, checksum), 8),
            };
            (st(base + o), w)
        }
    }
}

pub(super) fn read_word(bytes: &[u8], at: u64, width: usize) -> u64 {
    let at = at as usize;
    if at + width > bytes.len() {
        return 0;
    }
    let mut b = [0u8; 8];
    b[..width].copy_from_slice(&bytes[at..at + width]);
    u64::from_le_bytes(b)
}

pub(super) fn write_word(bytes: &mut [u8], at: u64, width: usize, v: u64) {
    let at = at as usize;
    if at + width <= bytes.len() {
        bytes[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
    }
}

/// A block size for a header rewritten with a valid tag.
#[derive(Clone, Debug)]
pub(super) enum HSize {
    Zero,
    Tiny(u8),
    Original(i8),
    ToSentinel,
    PastSentinel(u8),
    ToFileEnd,
    Huge,
    Random(u64),
}

/// Which word of a block to overwrite raw.
#[derive(Clone, Debug)]
pub(super) enum Word {
    Header,
    Next,
    Prev,
    Footer,
    Payload(u8),
}

/// A new length for the file.
#[derive(Clone, Debug)]
pub(super) enum Len {
    Minus(u16),
    HeaderMinusOne,
    MinCapacity(i8),
    CapacityMinusPage,
    /// Cut through block `.0`, `.1`/256 of the way in.
    InBlock(Index, u8),
    Anywhere(Index),
}

/// One corruption of the image.
#[derive(Clone, Debug)]
pub(super) enum Corruption {
    Set(Field, Value),
    /// Rewrite a block header (or the sentinel) with a valid tag.
    Header(Index, HSize, u8),
    /// Overwrite a word of a block raw.
    BlockWord(Index, Word, Value),
    FlipBit(Index, u8),
    FlipHeaderBit(Index, u8),
    Truncate(Len),
    Extend(u16),
}

pub(super) fn corruption() -> impl Strategy<Value = Corruption> {
    let hsize = prop_oneof![
        Just(HSize::Zero),
        (1u8..4).prop_map(HSize::Tiny),
        (-4i8..=4).prop_map(HSize::Original),
        Just(HSize::ToSentinel),
        (0u8..4).prop_map(HSize::PastSentinel),
        Just(HSize::ToFileEnd),
        Just(HSize::Huge),
        any::<u64>().prop_map(HSize::Random),
    ];
    let word = prop_oneof![
        Just(Word::Header),
        Just(Word::Next),
        Just(Word::Prev),
        Just(Word::Footer),
        (0u8..4).prop_map(Word::Payload),
    ];
    let len = prop_oneof![
        1 => (1u16..4096).prop_map(Len::Minus),
        1 => Just(Len::HeaderMinusOne),
        1 => (-1i8..=1).prop_map(Len::MinCapacity),
        1 => Just(Len::CapacityMinusPage),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, f)| Len::InBlock(i, f)),
        1 => any::<Index>().prop_map(Len::Anywhere),
    ];
    prop_oneof![
        8 => (field(), value()).prop_map(|(f, v)| Corruption::Set(f, v)),
        4 => (any::<Index>(), hsize, 0u8..4).prop_map(|(b, s, f)| Corruption::Header(b, s, f)),
        3 => (any::<Index>(), word, value()).prop_map(|(b, w, v)| Corruption::BlockWord(b, w, v)),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Corruption::FlipBit(i, b)),
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Corruption::FlipHeaderBit(i, b)),
        1 => len.prop_map(Corruption::Truncate),
        1 => (1u16..12288).prop_map(Corruption::Extend),
    ]
}

pub(super) fn fix_checksum(bytes: &mut [u8]) {
    let end = offset_of!(Identity, checksum);
    let sum = mapheap::format::fnv1a(&bytes[..end]);
    bytes[end..end + 8].copy_from_slice(&sum.to_le_bytes());
}

pub(super) fn corrupt(img: &Image, cs: &[Corruption]) -> Vec<u8> {
    let mut bytes = img.bytes.clone();
    for c in cs {
        let ctx = Ctx {
            capacity: img.capacity,
            len: bytes.len() as u64,
            blocks: &img.blocks,
        };
        match c {
            Corruption::Set(f, v) => {
                let (at, w) = locate(f, &bytes);
                let orig = read_word(&bytes, at, w);
                write_word(&mut bytes, at, w, v.resolve(&ctx, orig));
                if let Field::Identity(i, true) = f {
                    if *i != 10 && bytes.len() >= 64 {
                        fix_checksum(&mut bytes);
                    }
                }
            }
            Corruption::Header(b, s, flags) => {
                let (o, size) = img.blocks[b.index(img.blocks.len())];
                let to_sentinel = img.capacity - 8 - o;
                let new = match *s {
                    HSize::Zero => 0,
                    HSize::Tiny(k) => 8 * u64::from(k),
                    HSize::Original(d) => size.saturating_add_signed(i64::from(d) * 8),
                    HSize::ToSentinel => to_sentinel,
                    HSize::PastSentinel(k) => to_sentinel + 8 * (u64::from(k) + 1),
                    HSize::ToFileEnd => ctx.len.saturating_sub(o),
                    HSize::Huge => 1 << 47,
                    HSize::Random(v) => v,
                } & ((1 << 48) - 8);
                let word = block::encode(o, new, u64::from(*flags & 3));
                write_word(&mut bytes, o, 8, word);
            }
            Corruption::BlockWord(b, w, v) => {
                let (o, size) = img.blocks[b.index(img.blocks.len())];
                let at = match w {
                    Word::Header => o,
                    Word::Next => o + 8,
                    Word::Prev => o + 16,
                    Word::Footer => (o + size).saturating_sub(8).max(o),
                    Word::Payload(k) => o + 8 + 8 * u64::from(*k),
                };
                let orig = read_word(&bytes, at, 8);
                write_word(&mut bytes, at, 8, v.resolve(&ctx, orig));
            }
            Corruption::FlipBit(i, bit) => {
                if !bytes.is_empty() {
                    let at = i.index(bytes.len());
                    bytes[at] ^= 1 << bit;
                }
            }
            Corruption::FlipHeaderBit(i, bit) => {
                // The header's live part: identity, lock, slots, state up to the heads of
                // the small classes.
                let n = bytes.len().min(4352 + 8 * 64);
                if n > 0 {
                    let at = i.index(n);
                    bytes[at] ^= 1 << bit;
                }
            }
            Corruption::Truncate(l) => {
                let len = bytes.len() as u64;
                let to = match *l {
                    Len::Minus(k) => len.saturating_sub(u64::from(k)),
                    Len::HeaderMinusOne => HEADER_SIZE - 1,
                    Len::MinCapacity(d) => MIN_CAPACITY.saturating_add_signed(i64::from(d)),
                    Len::CapacityMinusPage => img.capacity - PAGE,
                    Len::InBlock(b, f) => {
                        let (o, size) = img.blocks[b.index(img.blocks.len())];
                        o + 16 + size * u64::from(f) / 256
                    }
                    // An earlier truncation may have left nothing (`index` of 0 panics).
                    Len::Anywhere(i) if len > 0 => i.index(len as usize) as u64,
                    Len::Anywhere(_) => 0,
                };
                bytes.truncate(to.min(len) as usize);
            }
            Corruption::Extend(n) => bytes.resize(bytes.len() + usize::from(*n), 0),
        }
    }
    bytes
}
