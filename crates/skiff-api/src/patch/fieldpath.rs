//! Field paths and sets of them, in upstream's `FieldsV1` encoding (`f:`, `k:`, `v:`, `i:`),
//! for server-side apply's managed fields.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde_json::{Map, Value};

/// One step of a field path. The order (fields, keys, values, indexes) is upstream's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PathElement {
    /// A struct field or map key: `f:name`.
    Field(String),
    /// A list element found by its key fields: `k:{"name":"x"}`, the compact JSON of the
    /// key object with its fields sorted.
    Key(String),
    /// A list-of-primitives element found by its value: `v:"x"`, compact JSON.
    Value(String),
    /// A list element found by position: `i:0`.
    Index(usize),
}

impl PathElement {
    /// The `FieldsV1` form of the element.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(n) => format!("f:{n}"),
            PathElement::Key(k) => format!("k:{k}"),
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    fn decode(s: &str) -> Option<PathElement> {
        let (prefix, rest) = s.split_at_checked(2)?;
        match prefix {
            "f:" => Some(PathElement::Field(rest.to_string())),
            "k:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                v.as_object().map(|m| PathElement::Key(canonical_key(m)))
            }
            "v:" => {
                let v: Value = serde_json::from_str(rest).ok()?;
                Some(PathElement::Value(v.to_string()))
            }
            "i:" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }
}

/// The compact JSON of a key object with its fields sorted by name.
pub(super) fn canonical_key(m: &Map<String, Value>) -> String {
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    let mut out = String::from("{");
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(k.clone()).to_string());
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push('}');
    out
}

/// Formats a path the way upstream prints it in conflict messages:
/// `.spec.template.spec.containers[name="nginx"].image`.
pub fn format_path(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        match pe {
            PathElement::Field(n) => {
                out.push('.');
                out.push_str(n);
            }
            PathElement::Key(k) => {
                let parsed: Option<Map<String, Value>> = serde_json::from_str(k).ok();
                out.push('[');
                for (i, (name, v)) in parsed.unwrap_or_default().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "{name}={v}");
                }
                out.push(']');
            }
            PathElement::Value(v) => {
                let _ = write!(out, "[={v}]");
            }
            PathElement::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
        }
    }
    out
}

/// A set of field paths, as one manager owns them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    paths: BTreeSet<Vec<PathElement>>,
}

impl FieldSet {
    /// An empty set.
    pub fn new() -> FieldSet {
        FieldSet::default()
    }

    /// Adds a path (the empty path is ignored: nobody owns the object as a whole).
    pub fn insert(&mut self, path: Vec<PathElement>) {
        if !path.is_empty() {
            self.paths.insert(path);
        }
    }

    /// Whether the path is in the set.
    pub fn contains(&self, path: &[PathElement]) -> bool {
        self.paths.contains(path)
    }

    /// Whether the set has no paths.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The number of paths.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// The paths in order.
    pub fn iter(&self) -> impl Iterator<Item = &Vec<PathElement>> {
        self.paths.iter()
    }

    /// Paths in either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.union(&other.paths).cloned().collect(),
        }
    }

    /// Paths in both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.intersection(&other.paths).cloned().collect(),
        }
    }

    /// Paths in this set and not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        FieldSet {
            paths: self.paths.difference(&other.paths).cloned().collect(),
        }
    }

    /// Removes one path; whether it was there.
    pub fn remove(&mut self, path: &[PathElement]) -> bool {
        self.paths.remove(path)
    }

    /// Removes every path that starts with `prefix`.
    pub fn remove_prefix(&mut self, prefix: &[PathElement]) {
        self.paths.retain(|p| !p.starts_with(prefix));
    }

    /// Whether some path of the set starts with `prefix` (or is it).
    pub fn has_prefix(&self, prefix: &[PathElement]) -> bool {
        self.paths
            .range(prefix.to_vec()..)
            .next()
            .is_some_and(|p| p.starts_with(prefix))
    }

    /// The set plus every prefix of its paths that ends in a field name (upstream's
    /// "named fields are members").
    pub(super) fn with_named_fields(&self) -> FieldSet {
        let mut out = self.clone();
        for p in &self.paths {
            for end in 1..p.len() {
                if matches!(p.get(end - 1), Some(PathElement::Field(_))) {
                    out.paths.insert(p[..end].to_vec());
                }
            }
        }
        out
    }

    /// Encodes the set as a `FieldsV1` object: each path step is a key, `{}` closes a path,
    /// `".": {}` marks a path that also has longer paths below it.
    pub fn to_fields_v1(&self) -> Value {
        let mut root = FieldTree::default();
        for path in &self.paths {
            let mut node = &mut root;
            for pe in path {
                node = node.children.entry(pe.clone()).or_default();
            }
            node.member = true;
        }
        root.to_fields_v1()
    }

    /// Decodes a `FieldsV1` object; `None` when it is malformed.
    pub fn from_fields_v1(v: &Value) -> Option<FieldSet> {
        fn walk(v: &Value, path: &mut Vec<PathElement>, out: &mut FieldSet) -> Option<()> {
            let m = v.as_object()?;
            if m.is_empty() {
                out.insert(path.clone());
                return Some(());
            }
            for (k, child) in m {
                if k == "." {
                    out.insert(path.clone());
                    continue;
                }
                path.push(PathElement::decode(k)?);
                walk(child, path, out)?;
                path.pop();
            }
            Some(())
        }
        let mut out = FieldSet::new();
        if v.as_object().is_some_and(|m| m.is_empty()) {
            return Some(out);
        }
        walk(v, &mut Vec::new(), &mut out)?;
        Some(out)
    }
}

/// A set of paths as the tree `FieldsV1` is: built in one walk where a whole object's
/// fields are wanted (a create), without a path copied per field.
#[derive(Debug, Default)]
pub(super) struct FieldTree {
    /// Whether the path to this node is itself in the set.
    pub(super) member: bool,
    pub(super) children: BTreeMap<PathElement, FieldTree>,
}

impl FieldTree {
    /// The node at `path`, if there is one.
    pub(super) fn get_mut(&mut self, path: &[PathElement]) -> Option<&mut FieldTree> {
        let mut node = self;
        for pe in path {
            node = node.children.get_mut(pe)?;
        }
        Some(node)
    }

    /// Drops nodes that are not members and have no members below them (what is left
    /// after paths were taken out); whether this node is such a node.
    pub(super) fn prune(&mut self) -> bool {
        self.children.retain(|_, c| !c.prune());
        !self.member && self.children.is_empty()
    }

    /// The `FieldsV1` encoding (see [`FieldSet::to_fields_v1`]). The root is never a member:
    /// nobody owns the object as a whole.
    pub(super) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".to_string(), Value::Object(Map::new()));
        }
        for (pe, child) in &self.children {
            m.insert(pe.encode(), child.to_fields_v1());
        }
        Value::Object(m)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn f(n: &str) -> PathElement {
        PathElement::Field(n.to_string())
    }

    #[test]
    fn fields_v1_round_trip() {
        let v = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}},
                       "f:finalizers": {"v:\"a\"": {}}}
        });
        let set = FieldSet::from_fields_v1(&v).unwrap();
        assert_eq!(set.len(), 6);
        assert!(set.contains(&[f("metadata"), f("labels")]));
        assert!(set.contains(&[
            f("spec"),
            f("containers"),
            PathElement::Key(r#"{"name":"nginx"}"#.to_string()),
            f("image")
        ]));
        assert_eq!(set.to_fields_v1(), v);
    }

    #[test]
    fn paths_print_like_upstream() {
        let p = [
            f("spec"),
            f("containers"),
            PathElement::Key(r#"{"name":"nginx"}"#.to_string()),
            f("ports"),
            PathElement::Key(r#"{"containerPort":80,"protocol":"TCP"}"#.to_string()),
        ];
        assert_eq!(
            format_path(&p),
            r#".spec.containers[name="nginx"].ports[containerPort=80,protocol="TCP"]"#
        );
        assert_eq!(
            format_path(&[f("a"), PathElement::Value("\"x\"".into())]),
            r#".a[="x"]"#
        );
    }

    #[test]
    fn prefixes() {
        let mut s = FieldSet::new();
        s.insert(vec![f("spec"), f("template"), f("x")]);
        assert!(s.has_prefix(&[f("spec")]));
        assert!(s.has_prefix(&[f("spec"), f("template"), f("x")]));
        assert!(!s.has_prefix(&[f("status")]));
        assert!(s.with_named_fields().contains(&[f("spec"), f("template")]));
        s.remove_prefix(&[f("spec")]);
        assert!(s.is_empty());
    }
}
