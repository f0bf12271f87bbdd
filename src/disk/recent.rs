//! The directories a filesystem reader read last, kept for the next lookups of the same command:
//! a path walk lists the same few directories again and again.

use std::sync::{Arc, Mutex};

/// A bound on the kept values' total weight: how much one weighs, and the most they may weigh.
pub type Weight<V> = Option<(fn(&V) -> usize, usize)>;

/// Up to `count` values by inode number, the least recently used dropped first; with a `weight`
/// bound too, values are dropped (never the newest) until their weights add up to at most it.
pub struct Recent<V> {
    kept: Mutex<Vec<(u64, Arc<V>)>>,
    count: usize,
    weight: Weight<V>,
}

impl<V> Recent<V> {
    pub fn new(count: usize, weight: Weight<V>) -> Recent<V> {
        Recent {
            kept: Mutex::new(Vec::new()),
            count,
            weight,
        }
    }

    /// The value kept for `number`, now the most recently used.
    pub fn get(&self, number: u64) -> Option<Arc<V>> {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let i = kept.iter().position(|(n, _)| *n == number)?;
        let hit = kept.remove(i);
        kept.push(hit.clone());
        Some(hit.1)
    }

    /// Keeps `value` for `number`, dropping the oldest over the bounds.
    pub fn put(&self, number: u64, value: Arc<V>) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.push((number, value));
        let weigh = |kept: &[(u64, Arc<V>)]| match self.weight {
            Some((of, _)) => kept.iter().map(|(_, v)| of(v)).sum(),
            None => 0,
        };
        let bound = self.weight.map_or(usize::MAX, |(_, b)| b);
        while kept.len() > self.count || (kept.len() > 1 && weigh(&kept) > bound) {
            kept.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_goes_first_and_weight_is_bounded() {
        let r: Recent<Vec<u8>> = Recent::new(2, None);
        r.put(1, Arc::new(vec![1]));
        r.put(2, Arc::new(vec![2]));
        assert!(r.get(1).is_some());
        r.put(3, Arc::new(vec![3]));
        assert!(r.get(2).is_none() && r.get(1).is_some() && r.get(3).is_some());
        let w: Recent<Vec<u8>> = Recent::new(8, Some((Vec::len, 10)));
        w.put(1, Arc::new(vec![0; 6]));
        w.put(2, Arc::new(vec![0; 6]));
        assert!(w.get(1).is_none() && w.get(2).is_some());
        w.put(3, Arc::new(vec![0; 20]));
        assert!(w.get(3).is_some(), "the newest stays, whatever its weight");
    }
}
