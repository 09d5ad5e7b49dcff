//! A generational slab: transaction storage addressed by (index, generation), so a stale
//! reference (a late response, an old timer) never reaches a reused slot.

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Storage with stable, generation-checked keys.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
    /// Generation of a new slot: keys (and the branches made of them) of two slabs with
    /// different seeds do not repeat each other.
    seed: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab::with_seed(0)
    }
}

impl<T> Slab<T> {
    /// An empty slab whose slots start at generation `seed`.
    pub(crate) fn with_seed(seed: u32) -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            seed,
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        self.len += 1;
        if let Some(i) = self.free.pop() {
            let s = &mut self.slots[i as usize];
            s.generation = s.generation.wrapping_add(1);
            s.value = Some(value);
            (i, s.generation)
        } else {
            let generation = self.seed;
            self.slots.push(Slot {
                generation,
                value: Some(value),
            });
            ((self.slots.len() - 1) as u32, generation)
        }
    }

    pub(crate) fn get(&self, index: u32, generation: u32) -> Option<&T> {
        let s = self.slots.get(index as usize)?;
        if s.generation == generation {
            s.value.as_ref()
        } else {
            None
        }
    }

    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let s = self.slots.get_mut(index as usize)?;
        if s.generation == generation {
            s.value.as_mut()
        } else {
            None
        }
    }

    pub(crate) fn remove(&mut self, index: u32, generation: u32) -> Option<T> {
        let s = self.slots.get_mut(index as usize)?;
        if s.generation != generation {
            return None;
        }
        let v = s.value.take()?;
        self.free.push(index);
        self.len -= 1;
        Some(v)
    }

    /// Removes the value at a key, dropping it where it lies, after `f` has taken what the
    /// caller needs from it. Unlike [`remove`](Self::remove), the value is not moved out
    /// first: a transaction is a few hundred bytes, and an expired one is cold, so the
    /// move would read every cache line of it where dropping reads only those with
    /// something to free.
    pub(crate) fn remove_with<R>(
        &mut self,
        index: u32,
        generation: u32,
        f: impl FnOnce(&mut T) -> R,
    ) -> Option<R> {
        let s = self.slots.get_mut(index as usize)?;
        if s.generation != generation {
            return None;
        }
        let r = f(s.value.as_mut()?);
        s.value = None;
        self.free.push(index);
        self.len -= 1;
        Some(r)
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keys of every occupied slot.
    pub(crate) fn keys(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(i, s)| (i as u32, s.generation))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_keep_keys_apart() {
        let mut a: Slab<u8> = Slab::with_seed(7);
        let mut b: Slab<u8> = Slab::with_seed(0x8000_0007);
        let ka: Vec<_> = (0..100).map(|i| a.insert(i)).collect();
        let kb: Vec<_> = (0..100).map(|i| b.insert(i)).collect();
        assert!(ka.iter().all(|k| !kb.contains(k)));
        assert_eq!(ka[0], (0, 7));
        // Reuse advances from the seed.
        a.remove(0, 7);
        assert_eq!(a.insert(9), (0, 8));
    }

    #[test]
    fn stale_keys_miss() {
        let mut s = Slab::default();
        let a = s.insert(1);
        assert_eq!(s.remove(a.0, a.1), Some(1));
        let b = s.insert(2);
        assert_eq!(a.0, b.0);
        assert_ne!(a.1, b.1);
        assert_eq!(s.get(a.0, a.1), None);
        assert_eq!(s.get(b.0, b.1), Some(&2));
        assert_eq!(s.len(), 1);
        assert_eq!(s.keys().count(), 1);
    }

    #[test]
    fn remove_with_drops_in_place_and_frees_the_slot() {
        let mut s = Slab::default();
        let a = s.insert(vec![1u8, 2, 3]);
        let b = s.insert(vec![4u8]);
        assert_eq!(s.remove_with(a.0, a.1, |v| v.len()), Some(3));
        // Gone, and a stale key neither reads nor removes anything.
        assert_eq!(s.get(a.0, a.1), None);
        assert_eq!(s.remove_with(a.0, a.1, |v| v.len()), None);
        assert_eq!(s.len(), 1);
        // The freed slot is reused with a new generation.
        let c = s.insert(vec![5u8, 6]);
        assert_eq!(c.0, a.0);
        assert_ne!(c.1, a.1);
        assert_eq!(s.get(b.0, b.1), Some(&vec![4u8]));
    }
}
