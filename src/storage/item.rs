//! The item header: what every stored item carries in front of its key and
//! value, inside its slab chunk.
//!
//! Layout (little endian, no padding; fields are read with
//! `from_le_bytes`, so a chunk needs no alignment):
//!
//! ```text
//! offset size field
//!  0     4    prev     LRU link toward the head (chunk index, NIL at the head)
//!  4     4    next     LRU link toward the tail; free-list link when free
//!  8     4    hnext    next item in the same hash bucket (a packed `Loc`)
//! 12     8    cas      CAS unique; also orders items against flush_all
//! 20     4    exptime  relative expiry time, 0 = never
//! 24     4    atime    relative time of the last access
//! 28     4    vlen     value length (bits 0-30); bit 31: client flags follow
//! 32     1    klen     key length (keys are at most 250 bytes)
//! 33     1    iflags   LINKED | FETCHED | STALE | TOKEN_SENT | ACTIVE
//! 34     0/4  flags    client flags, stored only when not zero
//!             key bytes, then value bytes
//! ```
//!
//! 34 bytes against memcached's 48 (its `item` struct) plus the 8-byte CAS
//! and the `\r\n` it stores after each value. Like memcached, client flags
//! cost 4 bytes only when they are not 0. Nothing here knows about pages or
//! tables.

/// Bytes in front of the key (or of the client flags, when stored).
pub const HEADER_LEN: usize = 34;
/// Bytes the client flags add when they are not 0.
pub const FLAGS_LEN: usize = 4;

/// "No chunk": the end of an LRU, free or hash-bucket list.
pub const NIL: u32 = u32::MAX;

/// The item is in the hash table and its class LRU.
pub const LINKED: u8 = 1;
/// The item was read at least once since it was stored.
pub const FETCHED: u8 = 2;
/// Marked stale by a meta invalidation (`md .. I`, `ms .. I`).
pub const STALE: u8 = 4;
/// A meta get already told one client it "won" the right to recache.
pub const TOKEN_SENT: u8 = 8;
/// Used since it last reached its LRU tail (see `lru.rs`).
pub const ACTIVE: u8 = 16;

const PREV: usize = 0;
const NEXT: usize = 4;
const HNEXT: usize = 8;
const CAS: usize = 12;
const EXPTIME: usize = 20;
const ATIME: usize = 24;
const VLEN: usize = 28;
const KLEN: usize = 32;
const IFLAGS: usize = 33;
/// Bit of the `vlen` field saying client flags are stored.
const HAS_FLAGS: u32 = 1 << 31;

/// Total bytes an item with this key, value and client flags needs.
#[inline]
pub fn total_len(klen: usize, vlen: usize, flags: u32) -> usize {
    HEADER_LEN + if flags != 0 { FLAGS_LEN } else { 0 } + klen + vlen
}

#[inline]
fn get_u32(c: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([c[at], c[at + 1], c[at + 2], c[at + 3]])
}

#[inline]
fn put_u32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

/// Read access to one item's chunk.
#[derive(Clone, Copy)]
pub struct ItemRef<'a>(pub &'a [u8]);

impl<'a> ItemRef<'a> {
    #[inline]
    pub fn prev(&self) -> u32 {
        get_u32(self.0, PREV)
    }
    #[inline]
    pub fn next(&self) -> u32 {
        get_u32(self.0, NEXT)
    }
    #[inline]
    pub fn hnext(&self) -> u32 {
        get_u32(self.0, HNEXT)
    }
    #[inline]
    pub fn cas(&self) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.0[CAS..CAS + 8]);
        u64::from_le_bytes(b)
    }
    #[inline]
    pub fn exptime(&self) -> u32 {
        get_u32(self.0, EXPTIME)
    }
    #[inline]
    pub fn atime(&self) -> u32 {
        get_u32(self.0, ATIME)
    }
    #[inline]
    fn has_flags(&self) -> bool {
        get_u32(self.0, VLEN) & HAS_FLAGS != 0
    }
    /// Where the key starts.
    #[inline]
    fn key_at(&self) -> usize {
        if self.has_flags() {
            HEADER_LEN + FLAGS_LEN
        } else {
            HEADER_LEN
        }
    }
    #[inline]
    pub fn flags(&self) -> u32 {
        if self.has_flags() {
            get_u32(self.0, HEADER_LEN)
        } else {
            0
        }
    }
    #[inline]
    pub fn vlen(&self) -> usize {
        (get_u32(self.0, VLEN) & !HAS_FLAGS) as usize
    }
    #[inline]
    pub fn klen(&self) -> usize {
        self.0[KLEN] as usize
    }
    #[inline]
    pub fn iflags(&self) -> u8 {
        self.0[IFLAGS]
    }
    #[inline]
    pub fn is_linked(&self) -> bool {
        self.iflags() & LINKED != 0
    }
    #[inline]
    pub fn key(&self) -> &'a [u8] {
        let at = self.key_at();
        &self.0[at..at + self.klen()]
    }
    #[inline]
    pub fn value(&self) -> &'a [u8] {
        let start = self.key_at() + self.klen();
        &self.0[start..start + self.vlen()]
    }
    /// Bytes this item accounts for (memcached's `ITEM_ntotal`).
    #[inline]
    pub fn total_len(&self) -> usize {
        self.key_at() + self.klen() + self.vlen()
    }
}

/// Write access to one item's chunk.
pub struct ItemMut<'a>(pub &'a mut [u8]);

impl ItemMut<'_> {
    #[inline]
    pub fn as_ref(&self) -> ItemRef<'_> {
        ItemRef(self.0)
    }
    #[inline]
    pub fn set_prev(&mut self, v: u32) {
        put_u32(self.0, PREV, v)
    }
    #[inline]
    pub fn set_next(&mut self, v: u32) {
        put_u32(self.0, NEXT, v)
    }
    #[inline]
    pub fn set_hnext(&mut self, v: u32) {
        put_u32(self.0, HNEXT, v)
    }
    #[inline]
    pub fn set_cas(&mut self, v: u64) {
        self.0[CAS..CAS + 8].copy_from_slice(&v.to_le_bytes())
    }
    #[inline]
    pub fn set_exptime(&mut self, v: u32) {
        put_u32(self.0, EXPTIME, v)
    }
    #[inline]
    pub fn set_atime(&mut self, v: u32) {
        put_u32(self.0, ATIME, v)
    }
    #[inline]
    pub fn set_iflags(&mut self, v: u8) {
        self.0[IFLAGS] = v
    }
    /// Writes header fields, key and value pieces (concatenated) at once.
    pub fn init(&mut self, key: &[u8], flags: u32, exptime: u32, now: u32, cas: u64, value: &[&[u8]]) {
        debug_assert!(key.len() <= u8::MAX as usize);
        let vlen: usize = value.iter().map(|p| p.len()).sum();
        debug_assert!(total_len(key.len(), vlen, flags) <= self.0.len());
        debug_assert!((vlen as u64) < u64::from(HAS_FLAGS));
        self.set_prev(NIL);
        self.set_next(NIL);
        self.set_hnext(NIL);
        self.set_cas(cas);
        self.set_exptime(exptime);
        self.set_atime(now);
        let mut at = HEADER_LEN;
        if flags != 0 {
            put_u32(self.0, VLEN, vlen as u32 | HAS_FLAGS);
            put_u32(self.0, HEADER_LEN, flags);
            at += FLAGS_LEN;
        } else {
            put_u32(self.0, VLEN, vlen as u32);
        }
        self.0[KLEN] = key.len() as u8;
        self.0[IFLAGS] = 0;
        self.0[at..at + key.len()].copy_from_slice(key);
        at += key.len();
        for piece in value {
            self.0[at..at + piece.len()].copy_from_slice(piece);
            at += piece.len();
        }
    }
    /// The value bytes, for in-place rewrites (incr/decr).
    pub fn value_mut(&mut self) -> &mut [u8] {
        let r = self.as_ref();
        let start = r.key_at() + r.klen();
        let end = start + r.vlen();
        &mut self.0[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_read_back_every_field() {
        let mut chunk = vec![0xAAu8; 128];
        let mut it = ItemMut(&mut chunk);
        it.init(b"key", 0xdead_beef, 77, 5, u64::MAX - 1, &[b"va", b"lue"]);
        it.set_iflags(LINKED | FETCHED);
        let r = ItemRef(&chunk);
        assert_eq!(r.prev(), NIL);
        assert_eq!(r.next(), NIL);
        assert_eq!(r.cas(), u64::MAX - 1);
        assert_eq!(r.exptime(), 77);
        assert_eq!(r.atime(), 5);
        assert_eq!(r.flags(), 0xdead_beef);
        assert_eq!(r.key(), b"key");
        assert_eq!(r.value(), b"value");
        assert_eq!(r.total_len(), HEADER_LEN + FLAGS_LEN + 3 + 5);
        assert_eq!(r.total_len(), total_len(3, 5, 0xdead_beef));
        assert_eq!(r.hnext(), NIL);
        assert!(r.is_linked());
        assert_eq!(r.iflags() & FETCHED, FETCHED);
    }

    #[test]
    fn largest_key_fits_the_length_byte() {
        let key = vec![b'k'; 250];
        let mut chunk = vec![0u8; total_len(250, 0, 0)];
        ItemMut(&mut chunk).init(&key, 0, 0, 0, 1, &[]);
        assert_eq!(ItemRef(&chunk).key(), &key[..]);
        assert_eq!(ItemRef(&chunk).value(), b"");
    }

    #[test]
    fn zero_flags_take_no_bytes_and_others_four() {
        let mut plain = vec![0xFFu8; 64];
        ItemMut(&mut plain).init(b"k", 0, 0, 0, 1, &[b"vv"]);
        let r = ItemRef(&plain);
        assert_eq!((r.flags(), r.key(), r.value()), (0, &b"k"[..], &b"vv"[..]));
        assert_eq!(r.total_len(), HEADER_LEN + 3);
        let mut flagged = vec![0u8; 64];
        ItemMut(&mut flagged).init(b"k", 1, 0, 0, 1, &[b"vv"]);
        let r = ItemRef(&flagged);
        assert_eq!((r.flags(), r.key(), r.value(), r.vlen()), (1, &b"k"[..], &b"vv"[..], 2));
        assert_eq!(r.total_len(), HEADER_LEN + FLAGS_LEN + 3);
        // An in-place rewrite (incr/decr) keeps the flags.
        let mut m = ItemMut(&mut flagged);
        m.value_mut().copy_from_slice(b"ab");
        assert_eq!(ItemRef(&flagged).value(), b"ab");
        assert_eq!(ItemRef(&flagged).flags(), 1);
    }
}
