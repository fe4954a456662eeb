//! The keys a lock covers, stored inline with fixed capacity.

use heapless::Vec;

use crate::Error;

/// The longest key one resource may have, in bytes.
pub const MAX_KEY_LEN: usize = 512;
/// The most resources one lock may cover (all of them locked together or none).
pub const MAX_RESOURCES: usize = 8;
/// The most key bytes one lock may hold across all of its resources.
pub const MAX_RESOURCES_LEN: usize = 1024;

/// The resource keys of one lock: one key, or several locked all-or-nothing on each instance.
///
/// Keys are arbitrary non-empty byte strings (binary keys work) of at most [`MAX_KEY_LEN`] bytes;
/// at most [`MAX_RESOURCES`] distinct keys, [`MAX_RESOURCES_LEN`] bytes in all.
///
/// ```
/// use redlock_core::Resources;
///
/// let one = Resources::single(b"orders:42")?;
/// let both = Resources::from_keys(&[b"account:1".as_slice(), b"account:2".as_slice()])?;
/// assert_eq!(one.len(), 1);
/// assert_eq!(both.iter().nth(1), Some(b"account:2".as_slice()));
/// # Ok::<(), redlock_core::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Resources {
    bytes: Vec<u8, MAX_RESOURCES_LEN>,
    ends: Vec<u16, MAX_RESOURCES>,
}

impl Resources {
    /// No resources yet; add keys with [`Resources::push`].
    pub const fn new() -> Self {
        Self {
            bytes: Vec::new(),
            ends: Vec::new(),
        }
    }

    /// One resource.
    pub fn single(key: &[u8]) -> Result<Self, Error> {
        let mut r = Self::new();
        r.push(key)?;
        Ok(r)
    }

    /// Several resources, locked together.
    pub fn from_keys<K: AsRef<[u8]>>(keys: &[K]) -> Result<Self, Error> {
        let mut r = Self::new();
        for k in keys {
            r.push(k.as_ref())?;
        }
        if r.is_empty() {
            return Err(Error::NoResources);
        }
        Ok(r)
    }

    /// Adds one key.
    pub fn push(&mut self, key: &[u8]) -> Result<(), Error> {
        if key.is_empty() {
            return Err(Error::EmptyKey);
        }
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLong { len: key.len() });
        }
        if self.iter().any(|k| k == key) {
            return Err(Error::DuplicateResource);
        }
        if self.ends.is_full() || self.bytes.len() + key.len() > MAX_RESOURCES_LEN {
            return Err(Error::TooManyResources);
        }
        self.bytes
            .extend_from_slice(key)
            .map_err(|_| Error::TooManyResources)?;
        // Fits: bytes.len() <= MAX_RESOURCES_LEN (1024) < u16::MAX.
        let end = self.bytes.len() as u16;
        self.ends.push(end).map_err(|_| Error::TooManyResources)
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`-th key.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = usize::from(*self.ends.get(i)?);
        let start = match i.checked_sub(1) {
            Some(prev) => usize::from(*self.ends.get(prev)?),
            None => 0,
        };
        self.bytes.get(start..end)
    }

    /// The keys in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + Clone + '_ {
        (0..self.len()).map(move |i| self.get(i).unwrap_or_default())
    }
}

impl core::fmt::Debug for Resources {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let mut list = f.debug_list();
        for k in self.iter() {
            match core::str::from_utf8(k) {
                Ok(s) => list.entry(&s),
                Err(_) => list.entry(&k),
            };
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(Resources::single(b""), Err(Error::EmptyKey));
        assert_eq!(
            Resources::single(&[b'x'; MAX_KEY_LEN + 1]),
            Err(Error::KeyTooLong {
                len: MAX_KEY_LEN + 1
            })
        );
        assert_eq!(
            Resources::from_keys(&[b"a", b"a"]),
            Err(Error::DuplicateResource)
        );
        let none: [&[u8]; 0] = [];
        assert_eq!(Resources::from_keys(&none), Err(Error::NoResources));
        let many: [[u8; 1]; MAX_RESOURCES + 1] = core::array::from_fn(|i| [b'a' + i as u8]);
        assert_eq!(Resources::from_keys(&many), Err(Error::TooManyResources));
        let big = [b'x'; MAX_KEY_LEN];
        let mut r = Resources::single(&big).unwrap();
        let mut big2 = big;
        big2[0] = b'y';
        r.push(&big2).unwrap();
        assert_eq!(r.push(b"z"), Err(Error::TooManyResources));
    }

    #[test]
    fn keeps_binary_keys_in_order() {
        let r = Resources::from_keys(&[&[0u8, 255][..], b"b", &[0xc3, 0x28][..]]).unwrap();
        let keys: heapless::Vec<&[u8], 3> = r.iter().collect();
        assert_eq!(keys, [&[0u8, 255][..], b"b", &[0xc3, 0x28][..]]);
        assert_eq!(r.get(3), None);
    }
}
