//! The fields of [`Identity`] as a table, for code that must visit each one: the test that
//! alters every identity field alone and requires `open` to refuse it by name
//! (`limits_tests::identity`).
//!
//! The table tiles the struct: each field starts where the one before it ends, and the last
//! ends at `size_of::<Identity>()` (checked by that test), so a field added to `Identity`
//! without a row here fails it.

use super::Identity;

/// One field of [`Identity`]: its name (as errors name it), offset and size in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityField {
    /// The field's name in `Identity` (and in `FormatError` messages).
    pub name: &'static str,
    /// Its byte offset in the file.
    pub offset: usize,
    /// Its size in bytes.
    pub size: usize,
}

/// The size of what `f` returns: a field's size, from the field's own type.
const fn size_of_field<F>(_f: fn(&Identity) -> &F) -> usize {
    size_of::<F>()
}

macro_rules! field {
    ($name:ident) => {
        IdentityField {
            name: stringify!($name),
            offset: std::mem::offset_of!(Identity, $name),
            size: size_of_field(|i: &Identity| &i.$name),
        }
    };
}

/// Every field of [`Identity`], in layout order.
pub const IDENTITY_FIELDS: [IdentityField; 12] = [
    field!(magic),
    field!(version),
    field!(header_size),
    field!(page_size),
    field!(slot_count),
    field!(root_count),
    field!(fl_count),
    field!(sl_count),
    field!(min_block),
    field!(created_ns),
    field!(checksum),
    field!(reserved),
];
