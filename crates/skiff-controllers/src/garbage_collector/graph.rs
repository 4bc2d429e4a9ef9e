//! The ownership graph the garbage collector keeps from its watches, and the pure decisions taken on it.

use std::collections::{BTreeSet, HashMap};

/// The finalizer that makes an owner wait for its blocking dependents (`propagationPolicy=Foreground`).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the collector strip references to an owner (`propagationPolicy=Orphan`).
pub const ORPHAN: &str = "orphan";

/// One `metadata.ownerReferences` entry, as much of it as the collector needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

/// What the collector knows about one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub uid: String,
    /// Index of the object's resource in the collector's resource table.
    pub resource: usize,
    pub namespace: Option<String>,
    pub name: String,
    pub owners: Vec<OwnerRef>,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Node {
    pub fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Deleting, and waiting for its dependents (`foregroundDeletion`).
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }
}

/// Every observed object by uid, and the reverse index from an owner's uid to its dependents.
/// Owners need not be observed: a dependent can point at a uid the graph never saw.
#[derive(Debug, Default)]
pub struct Graph {
    nodes: HashMap<String, Node>,
    dependents: HashMap<String, BTreeSet<String>>,
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Uids of the objects that name `owner` in their ownerReferences.
    pub fn dependents_of(&self, owner: &str) -> Vec<String> {
        self.dependents
            .get(owner)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Uids of every object of one resource (to forget the ones a re-list no longer shows).
    pub fn uids_of_resource(&self, resource: usize) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| n.resource == resource)
            .map(|n| n.uid.clone())
            .collect()
    }

    /// Uids worth a look on the next periodic pass: objects with owners or collector finalizers.
    pub fn interesting(&self) -> Vec<String> {
        self.nodes
            .values()
            .filter(|n| {
                !n.owners.is_empty()
                    || (n.deleting && (n.has_finalizer(FOREGROUND) || n.has_finalizer(ORPHAN)))
            })
            .map(|n| n.uid.clone())
            .collect()
    }

    /// Records an added or changed object; returns the uids whose decision may have changed.
    pub fn upsert(&mut self, node: Node) -> Vec<String> {
        let mut touched = vec![node.uid.clone()];
        let old = self.nodes.remove(&node.uid);
        let old_owners: Vec<String> = old
            .as_ref()
            .map(|o| o.owners.iter().map(|r| r.uid.clone()).collect())
            .unwrap_or_default();
        for uid in &old_owners {
            if let Some(set) = self.dependents.get_mut(uid) {
                set.remove(&node.uid);
                if set.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        for r in &node.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(node.uid.clone());
        }
        // An owner waiting on this object must look again when the reference changes.
        let new_owners = node.owners.iter().map(|r| r.uid.clone());
        for uid in old_owners.iter().cloned().chain(new_owners) {
            if !touched.contains(&uid) {
                touched.push(uid);
            }
        }
        // An owner entering foreground deletion or changing state: its dependents are due.
        let state_changed = old.as_ref().is_none_or(|o| {
            o.deleting != node.deleting
                || o.has_finalizer(FOREGROUND) != node.has_finalizer(FOREGROUND)
                || o.has_finalizer(ORPHAN) != node.has_finalizer(ORPHAN)
        });
        if state_changed {
            for d in self.dependents_of(&node.uid) {
                if !touched.contains(&d) {
                    touched.push(d);
                }
            }
        }
        self.nodes.insert(node.uid.clone(), node);
        touched
    }

    /// Forgets a deleted object; returns its dependents (their owner is gone) and its owners
    /// (one of them may have been waiting for it).
    pub fn remove(&mut self, uid: &str) -> Vec<String> {
        let Some(old) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut touched = Vec::new();
        for r in &old.owners {
            if let Some(set) = self.dependents.get_mut(&r.uid) {
                set.remove(uid);
                if set.is_empty() {
                    self.dependents.remove(&r.uid);
                }
            }
            touched.push(r.uid.clone());
        }
        touched.extend(self.dependents_of(uid));
        touched
    }

    /// What the graph says about an owner reference; `None` when the owner was never observed
    /// (absent, or not yet seen: the caller asks the API server).
    pub fn owner_state(&self, r: &OwnerRef) -> Option<OwnerState> {
        self.nodes.get(&r.uid).map(|n| {
            if n.deleting_dependents() {
                OwnerState::Waiting
            } else {
                OwnerState::Solid
            }
        })
    }
}

/// How an owner reference stands, in upstream's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// The owner exists and is not waiting for its dependents.
    Solid,
    /// The owner no longer exists (or a different object holds its name).
    Dangling,
    /// The owner is being deleted in the foreground, waiting for its dependents.
    Waiting,
}

/// How a delete issued by the collector propagates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Background,
    Foreground,
    Orphan,
}

/// What to do with one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// An owner with the `orphan` finalizer: drop the references to it from these dependents,
    /// then the finalizer.
    Orphan {
        dependents: Vec<String>,
    },
    /// An owner in foreground deletion whose blocking dependents are gone: drop `foregroundDeletion`.
    FinishForeground,
    /// An owner in foreground deletion still blocked by these dependents.
    WaitForDependents {
        blocking: Vec<String>,
    },
    /// Some owners are gone or waiting while others still hold the object: drop the references
    /// to these owner uids.
    RemoveOwnerRefs {
        owners: Vec<String>,
    },
    /// No owner holds the object any more: delete it. `unblock` first clears
    /// `blockOwnerDeletion` on references to waiting owners, to break a foreground cycle.
    Delete {
        propagation: Propagation,
        unblock: Vec<String>,
    },
}

/// The decision for an object being deleted with a collector finalizer (the owner side).
pub fn decide_owner(graph: &Graph, node: &Node) -> Decision {
    if !node.deleting {
        return Decision::Nothing;
    }
    if node.has_finalizer(ORPHAN) {
        return Decision::Orphan {
            dependents: graph.dependents_of(&node.uid),
        };
    }
    if node.has_finalizer(FOREGROUND) {
        let blocking: Vec<String> = graph
            .dependents_of(&node.uid)
            .into_iter()
            .filter(|d| {
                graph.get(d).is_some_and(|dep| {
                    dep.owners
                        .iter()
                        .any(|r| r.uid == node.uid && r.block_owner_deletion)
                })
            })
            .collect();
        return if blocking.is_empty() {
            Decision::FinishForeground
        } else {
            Decision::WaitForDependents { blocking }
        };
    }
    Decision::Nothing
}

/// The decision for an object with owners (the dependent side), given each owner's state.
pub fn decide_dependent(graph: &Graph, node: &Node, states: &[(OwnerRef, OwnerState)]) -> Decision {
    if node.deleting || states.is_empty() {
        return Decision::Nothing;
    }
    let uids = |s: OwnerState| -> Vec<String> {
        states
            .iter()
            .filter(|(_, st)| *st == s)
            .map(|(r, _)| r.uid.clone())
            .collect()
    };
    let (solid, dangling, waiting) = (
        uids(OwnerState::Solid),
        uids(OwnerState::Dangling),
        uids(OwnerState::Waiting),
    );
    if !solid.is_empty() {
        if dangling.is_empty() && waiting.is_empty() {
            return Decision::Nothing;
        }
        return Decision::RemoveOwnerRefs {
            owners: dangling.into_iter().chain(waiting).collect(),
        };
    }
    let dependents = graph.dependents_of(&node.uid);
    if !waiting.is_empty() && !dependents.is_empty() {
        // A dependent of ours already waiting on its own dependents may point back at an
        // owner that waits on us: unblock our references so that the cycle cannot wedge.
        let cycle = dependents
            .iter()
            .any(|d| graph.get(d).is_some_and(Node::deleting_dependents));
        let unblock = if cycle {
            states
                .iter()
                .filter(|(r, st)| *st == OwnerState::Waiting && r.block_owner_deletion)
                .map(|(r, _)| r.uid.clone())
                .collect()
        } else {
            Vec::new()
        };
        return Decision::Delete {
            propagation: Propagation::Foreground,
            unblock,
        };
    }
    let propagation = if node.has_finalizer(ORPHAN) {
        Propagation::Orphan
    } else if node.has_finalizer(FOREGROUND) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    Decision::Delete {
        propagation,
        unblock: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(uid: &str, block: bool) -> OwnerRef {
        OwnerRef {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            block_owner_deletion: block,
        }
    }

    fn node(uid: &str, owners: Vec<OwnerRef>) -> Node {
        Node {
            uid: uid.into(),
            resource: 0,
            namespace: Some("default".into()),
            name: format!("n-{uid}"),
            owners,
            deleting: false,
            finalizers: Vec::new(),
        }
    }

    fn deleting(mut n: Node, finalizer: &str) -> Node {
        n.deleting = true;
        n.finalizers.push(finalizer.into());
        n
    }

    fn states(g: &Graph, n: &Node) -> Vec<(OwnerRef, OwnerState)> {
        n.owners
            .iter()
            .map(|r| (r.clone(), g.owner_state(r).unwrap_or(OwnerState::Dangling)))
            .collect()
    }

    #[test]
    fn reverse_index_follows_changes() {
        let mut g = Graph::default();
        let touched = g.upsert(node("rs", vec![owner("d1", true)]));
        assert_eq!(touched, vec!["rs".to_string(), "d1".to_string()]);
        assert_eq!(g.dependents_of("d1"), vec!["rs".to_string()]);
        let touched = g.upsert(node("rs", vec![owner("d2", false)]));
        assert!(touched.contains(&"d1".to_string()) && touched.contains(&"d2".to_string()));
        assert!(g.dependents_of("d1").is_empty());
        assert_eq!(g.dependents_of("d2"), vec!["rs".to_string()]);
        assert_eq!(g.remove("rs"), vec!["d2".to_string()]);
        assert!(g.dependents_of("d2").is_empty());
        assert!(g.is_empty());
    }

    #[test]
    fn owner_entering_foreground_touches_its_dependents() {
        let mut g = Graph::default();
        g.upsert(node("d", vec![]));
        g.upsert(node("rs", vec![owner("d", true)]));
        let touched = g.upsert(deleting(node("d", vec![]), FOREGROUND));
        assert!(touched.contains(&"rs".to_string()), "{touched:?}");
        assert_eq!(g.remove("d"), vec!["rs".to_string()]);
    }

    #[test]
    fn background_deletes_a_dependent_whose_owners_are_all_gone() {
        let mut g = Graph::default();
        let rs = node("rs", vec![owner("gone1", false), owner("gone2", true)]);
        g.upsert(rs.clone());
        assert_eq!(
            decide_dependent(&g, &rs, &states(&g, &rs)),
            Decision::Delete {
                propagation: Propagation::Background,
                unblock: vec![]
            }
        );
    }

    #[test]
    fn a_remaining_owner_keeps_the_dependent_and_loses_the_dangling_reference() {
        let mut g = Graph::default();
        g.upsert(node("alive", vec![]));
        let rs = node("rs", vec![owner("alive", false), owner("gone", false)]);
        g.upsert(rs.clone());
        assert_eq!(
            decide_dependent(&g, &rs, &states(&g, &rs)),
            Decision::RemoveOwnerRefs {
                owners: vec!["gone".into()]
            }
        );
        let kept = node("kept", vec![owner("alive", true)]);
        g.upsert(kept.clone());
        assert_eq!(
            decide_dependent(&g, &kept, &states(&g, &kept)),
            Decision::Nothing
        );
    }

    #[test]
    fn the_dependents_own_finalizers_choose_its_propagation() {
        let g = Graph::default();
        let mut rs = node("rs", vec![owner("gone", false)]);
        rs.finalizers.push(ORPHAN.into());
        assert_eq!(
            decide_dependent(&g, &rs, &states(&g, &rs)),
            Decision::Delete {
                propagation: Propagation::Orphan,
                unblock: vec![]
            }
        );
    }

    #[test]
    fn foreground_deletes_dependents_and_waits_for_blocking_ones() {
        let mut g = Graph::default();
        let d = deleting(node("d", vec![]), FOREGROUND);
        g.upsert(d.clone());
        let blocker = node("rs1", vec![owner("d", true)]);
        let free = node("rs2", vec![owner("d", false)]);
        g.upsert(blocker.clone());
        g.upsert(free.clone());
        // The owner waits only for the blocking dependent.
        assert_eq!(
            decide_owner(&g, &d),
            Decision::WaitForDependents {
                blocking: vec!["rs1".into()]
            }
        );
        // Both dependents are deleted (they have no dependents of their own).
        for dep in [&blocker, &free] {
            assert_eq!(
                decide_dependent(&g, dep, &states(&g, dep)),
                Decision::Delete {
                    propagation: Propagation::Background,
                    unblock: vec![]
                }
            );
        }
        // A dependent with its own dependents is deleted in the foreground too.
        g.upsert(node("pod", vec![owner("rs1", true)]));
        assert_eq!(
            decide_dependent(&g, &blocker, &states(&g, &blocker)),
            Decision::Delete {
                propagation: Propagation::Foreground,
                unblock: vec![]
            }
        );
        // Once the blocking dependent is gone the owner may go, non-blocking ones notwithstanding.
        g.remove("rs1");
        assert_eq!(g.dependents_of("d"), vec!["rs2".to_string()]);
        assert_eq!(decide_owner(&g, &d), Decision::FinishForeground);
    }

    #[test]
    fn a_dependent_with_another_solid_owner_is_released_from_a_foreground_owner() {
        let mut g = Graph::default();
        g.upsert(deleting(node("d", vec![]), FOREGROUND));
        g.upsert(node("other", vec![]));
        let rs = node("rs", vec![owner("d", true), owner("other", false)]);
        g.upsert(rs.clone());
        assert_eq!(
            decide_dependent(&g, &rs, &states(&g, &rs)),
            Decision::RemoveOwnerRefs {
                owners: vec!["d".into()]
            }
        );
    }

    #[test]
    fn a_foreground_cycle_is_unblocked() {
        let mut g = Graph::default();
        // a owns b, b owns a; a is deleted in the foreground, b already waits for its dependents.
        let a = deleting(node("a", vec![owner("b", true)]), FOREGROUND);
        let b = deleting(node("b", vec![owner("a", true)]), FOREGROUND);
        g.upsert(a);
        g.upsert(b);
        let c = node("c", vec![owner("a", true)]);
        g.upsert(c.clone());
        g.upsert(node("x", vec![owner("c", true)]));
        g.upsert(deleting(node("x", vec![owner("c", true)]), FOREGROUND));
        assert_eq!(
            decide_dependent(&g, &c, &states(&g, &c)),
            Decision::Delete {
                propagation: Propagation::Foreground,
                unblock: vec!["a".into()]
            }
        );
    }

    #[test]
    fn orphan_lists_every_dependent_and_ignores_deleting_ones_without_finalizers() {
        let mut g = Graph::default();
        let d = deleting(node("d", vec![]), ORPHAN);
        g.upsert(d.clone());
        g.upsert(node("rs1", vec![owner("d", true)]));
        g.upsert(node("rs2", vec![owner("d", false)]));
        assert_eq!(
            decide_owner(&g, &d),
            Decision::Orphan {
                dependents: vec!["rs1".into(), "rs2".into()]
            }
        );
        let mut plain = node("p", vec![]);
        plain.deleting = true;
        assert_eq!(decide_owner(&g, &plain), Decision::Nothing);
        // A dependent already on its way out is left alone.
        let mut going = node("g", vec![owner("gone", false)]);
        going.deleting = true;
        assert_eq!(
            decide_dependent(&g, &going, &states(&g, &going)),
            Decision::Nothing
        );
    }
}
