//! The series of one label pair (or one metric), as Prometheus's postings lists: sorted ids.
//! A list stays a plain sorted vector while short, where most label pairs' lists are (a
//! series' own `instance` or id label has one series): a few bytes an entry, no node to
//! allocate. Past [`LIST_MAX`] entries it becomes a B-tree, so that inserting a hash-ordered
//! id does not move a long vector's tail.

use std::collections::BTreeSet;

use crate::model::SeriesId;

const LIST_MAX: usize = 512;

#[derive(Debug, Clone)]
pub enum Postings {
    List(Vec<SeriesId>),
    Tree(BTreeSet<SeriesId>),
}

impl Default for Postings {
    fn default() -> Self {
        Postings::List(Vec::new())
    }
}

impl Postings {
    pub fn insert(&mut self, id: SeriesId) {
        match self {
            Postings::List(list) => {
                if let Err(at) = list.binary_search(&id) {
                    if list.len() < LIST_MAX {
                        list.insert(at, id);
                    } else {
                        let mut tree: BTreeSet<SeriesId> = list.drain(..).collect();
                        tree.insert(id);
                        *self = Postings::Tree(tree);
                    }
                }
            }
            Postings::Tree(tree) => {
                tree.insert(id);
            }
        }
    }

    pub fn remove(&mut self, id: SeriesId) {
        match self {
            Postings::List(list) => {
                if let Ok(at) = list.binary_search(&id) {
                    list.remove(at);
                    if list.len() < list.capacity() / 4 {
                        list.shrink_to_fit();
                    }
                }
            }
            Postings::Tree(tree) => {
                tree.remove(&id);
                if tree.len() < LIST_MAX / 2 {
                    *self = Postings::List(tree.iter().copied().collect());
                }
            }
        }
    }

    pub fn contains(&self, id: SeriesId) -> bool {
        match self {
            Postings::List(list) => list.binary_search(&id).is_ok(),
            Postings::Tree(tree) => tree.contains(&id),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Postings::List(list) => list.len(),
            Postings::Tree(tree) => tree.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = SeriesId> + '_ {
        let (list, tree) = match self {
            Postings::List(list) => (Some(list.iter()), None),
            Postings::Tree(tree) => (None, Some(tree.iter())),
        };
        list.into_iter()
            .flatten()
            .chain(tree.into_iter().flatten())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_set_across_the_switch_both_ways() {
        let mut next = crate::testutil::xorshift(0x1234_5678_9abc_def1);
        let mut postings = Postings::default();
        let mut model = BTreeSet::new();
        let ids: Vec<SeriesId> = (0..2000).map(|_| next() % 5000).collect();
        for &id in &ids {
            postings.insert(id);
            model.insert(id);
            assert_eq!(postings.len(), model.len());
        }
        assert!(matches!(postings, Postings::Tree(_)));
        assert!(postings.iter().eq(model.iter().copied()));
        for &id in &ids {
            postings.remove(id);
            model.remove(&id);
            assert!(!postings.contains(id));
        }
        assert!(postings.is_empty());
        assert!(matches!(postings, Postings::List(_)));
        for id in [5, 1, 3] {
            postings.insert(id);
        }
        assert!(postings.iter().eq([1, 3, 5]));
        assert!(postings.contains(3) && !postings.contains(2));
    }
}
