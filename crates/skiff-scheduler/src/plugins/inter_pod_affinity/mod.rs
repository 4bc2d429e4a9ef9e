//! InterPodAffinity: required pod affinity and anti-affinity (the incoming pod's, and existing
//! pods' anti-affinity against it) filter nodes by topology domain; preferred terms score them.

use crate::cache::{Cache, NodeInfo};
use crate::framework::{MAX_NODE_SCORE, Plugin, Status};
use crate::pod_info::{AffinityTerm, NamespaceLabels, PodInfo, WeightedAffinityTerm};
use std::collections::HashMap;

pub const REASON_AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const REASON_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const REASON_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

type Counts = HashMap<(String, String), i64>;

fn bump(counts: &mut Counts, node: &NodeInfo, key: &str, delta: i64) {
    if let Some(v) = node.labels().get(key) {
        let pair = (key.to_string(), v.clone());
        let e = counts.entry(pair.clone()).or_insert(0);
        *e += delta;
        if *e == 0 {
            counts.remove(&pair);
        }
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: &dyn NamespaceLabels) -> bool {
    terms.iter().all(|t| t.matches(pod, ns))
}

/// Topology domains where the incoming pod's required terms, and existing pods' required
/// anti-affinity, find matching pods.
#[derive(Debug, Clone, Default)]
pub struct FilterState {
    existing_anti_affinity: Counts,
    affinity: Counts,
    anti_affinity: Counts,
}

impl FilterState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Option<FilterState> {
        if pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
            && cache.pods_with_required_anti_affinity() == 0
        {
            return None;
        }
        let mut s = FilterState::default();
        for node in cache.node_infos().iter().filter(|n| n.node.is_some()) {
            for existing in &node.pods {
                s.add(pod, existing, node, 1, &cache.namespaces);
            }
        }
        Some(s)
    }

    fn add(
        &mut self,
        pod: &PodInfo,
        existing: &PodInfo,
        node: &NodeInfo,
        delta: i64,
        ns: &dyn NamespaceLabels,
    ) {
        for t in &existing.required_anti_affinity {
            if t.matches(pod, ns) {
                bump(
                    &mut self.existing_anti_affinity,
                    node,
                    &t.topology_key,
                    delta,
                );
            }
        }
        if !pod.required_affinity.is_empty() && matches_all(&pod.required_affinity, existing, ns) {
            for t in &pod.required_affinity {
                bump(&mut self.affinity, node, &t.topology_key, delta);
            }
        }
        for t in &pod.required_anti_affinity {
            if t.matches(existing, ns) {
                bump(&mut self.anti_affinity, node, &t.topology_key, delta);
            }
        }
    }

    /// Accounts for `other` added to (`delta` 1) or removed from (-1) `node`.
    pub fn update(
        &mut self,
        pod: &PodInfo,
        other: &PodInfo,
        node: &NodeInfo,
        delta: i64,
        ns: &dyn NamespaceLabels,
    ) {
        self.add(pod, other, node, delta, ns);
    }

    pub fn filter(
        &self,
        pod: &PodInfo,
        node: &NodeInfo,
        ns: &dyn NamespaceLabels,
    ) -> Result<(), Status> {
        let labels = node.labels();
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match labels.get(&t.topology_key) {
                Some(v) => {
                    if self
                        .affinity
                        .get(&(t.topology_key.clone(), v.clone()))
                        .copied()
                        .unwrap_or(0)
                        <= 0
                    {
                        pods_exist = false;
                    }
                }
                None => {
                    return Err(Status::unresolvable(
                        Plugin::InterPodAffinity,
                        REASON_AFFINITY,
                    ));
                }
            }
        }
        // The first pod of a group with affinity to itself may go anywhere.
        let first_of_its_kind =
            self.affinity.is_empty() && matches_all(&pod.required_affinity, pod, ns);
        if !pods_exist && !first_of_its_kind {
            return Err(Status::unresolvable(
                Plugin::InterPodAffinity,
                REASON_AFFINITY,
            ));
        }
        for t in &pod.required_anti_affinity {
            if let Some(v) = labels.get(&t.topology_key)
                && self
                    .anti_affinity
                    .get(&(t.topology_key.clone(), v.clone()))
                    .is_some_and(|n| *n > 0)
            {
                return Err(Status::unschedulable(
                    Plugin::InterPodAffinity,
                    REASON_ANTI_AFFINITY,
                ));
            }
        }
        if !self.existing_anti_affinity.is_empty() {
            for (k, v) in labels {
                if self
                    .existing_anti_affinity
                    .get(&(k.clone(), v.clone()))
                    .is_some_and(|n| *n > 0)
                {
                    return Err(Status::unschedulable(
                        Plugin::InterPodAffinity,
                        REASON_EXISTING_ANTI_AFFINITY,
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Per-domain sums of preferred (anti-)affinity weights, from the incoming pod's preferred
/// terms and from existing pods' terms that select it.
#[derive(Debug, Default)]
pub struct ScoreState {
    scores: HashMap<String, HashMap<String, i64>>,
}

/// What a required affinity term of an existing pod weighs (upstream's `hardPodAffinityWeight`).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

impl ScoreState {
    pub fn new(pod: &PodInfo, cache: &Cache) -> Option<ScoreState> {
        let has_constraints =
            !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !has_constraints && cache.pods_with_affinity() == 0 {
            return None;
        }
        let ns = &cache.namespaces;
        let mut s = ScoreState::default();
        let process = |terms: &[WeightedAffinityTerm],
                       target: &PodInfo,
                       node: &NodeInfo,
                       sign: i64,
                       s: &mut ScoreState| {
            for w in terms {
                if w.term.matches(target, ns)
                    && let Some(v) = node.labels().get(&w.term.topology_key)
                {
                    *s.scores
                        .entry(w.term.topology_key.clone())
                        .or_default()
                        .entry(v.clone())
                        .or_default() += w.weight * sign;
                }
            }
        };
        for node in cache.node_infos().iter().filter(|n| n.node.is_some()) {
            if node.labels().is_empty() || (!has_constraints && node.pods_with_affinity == 0) {
                continue;
            }
            for existing in &node.pods {
                if !has_constraints && !existing.has_affinity() {
                    continue;
                }
                process(&pod.preferred_affinity, existing, node, 1, &mut s);
                process(&pod.preferred_anti_affinity, existing, node, -1, &mut s);
                let hard: Vec<WeightedAffinityTerm> = existing
                    .required_affinity
                    .iter()
                    .map(|t| WeightedAffinityTerm {
                        term: t.clone(),
                        weight: HARD_POD_AFFINITY_WEIGHT,
                    })
                    .collect();
                process(&hard, pod, node, 1, &mut s);
                process(&existing.preferred_affinity, pod, node, 1, &mut s);
                process(&existing.preferred_anti_affinity, pod, node, -1, &mut s);
            }
        }
        Some(s)
    }

    pub fn score(&self, node: &NodeInfo) -> i64 {
        let labels = node.labels();
        self.scores
            .iter()
            .filter_map(|(k, values)| labels.get(k).and_then(|v| values.get(v)))
            .sum()
    }
}

/// Min-max normalization to 0..=100 (all zero when every node scores the same).
pub fn normalize(scores: &mut [i64]) {
    let min = scores.iter().copied().min().unwrap_or(0);
    let max = scores.iter().copied().max().unwrap_or(0);
    let diff = max - min;
    for s in scores.iter_mut() {
        *s = if diff > 0 {
            (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
        } else {
            0
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::{
        Affinity, Pod, PodAffinity, PodAffinityTerm, PodAntiAffinity, WeightedPodAffinityTerm,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use std::collections::BTreeMap;

    fn term(app: &str, key: &str) -> PodAffinityTerm {
        PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), app.to_string())].into()),
                ..LabelSelector::default()
            }),
            topology_key: key.into(),
            ..PodAffinityTerm::default()
        }
    }

    fn with_affinity(
        mut p: Pod,
        affinity: Vec<PodAffinityTerm>,
        anti: Vec<PodAffinityTerm>,
    ) -> Pod {
        p.spec.get_or_insert_default().affinity = Some(Affinity {
            pod_affinity: (!affinity.is_empty()).then(|| PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(affinity),
                ..PodAffinity::default()
            }),
            pod_anti_affinity: (!anti.is_empty()).then(|| PodAntiAffinity {
                required_during_scheduling_ignored_during_execution: Some(anti),
                ..PodAntiAffinity::default()
            }),
            ..Affinity::default()
        });
        p
    }

    fn zoned(name: &str, zone: &str) -> k8s_openapi::api::core::v1::Node {
        with_labels(node(name, "4", "4Gi", "10"), &[("zone", zone)])
    }

    #[test]
    fn anti_affinity_keeps_pods_apart() {
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z1"), zoned("c", "z2")],
            vec![on(labeled(pod("db", "", ""), &[("app", "db")]), "a")],
        );
        let p = info(with_affinity(
            labeled(pod("p", "", ""), &[("app", "web")]),
            vec![],
            vec![term("db", "zone")],
        ));
        let s = FilterState::new(&p, &c).expect("state");
        let ns = BTreeMap::new();
        for n in ["a", "b"] {
            assert_eq!(
                s.filter(&p, c.node_info(n).expect("n"), &ns)
                    .expect_err("same zone")
                    .reasons,
                vec![REASON_ANTI_AFFINITY]
            );
        }
        assert!(s.filter(&p, c.node_info("c").expect("c"), &ns).is_ok());
    }

    #[test]
    fn existing_pods_anti_affinity_is_respected() {
        let guard = with_affinity(
            labeled(pod("guard", "", ""), &[("app", "guard")]),
            vec![],
            vec![term("web", "kubernetes.io/hostname")],
        );
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z1")],
            vec![on(guard, "a")],
        );
        let p = info(labeled(pod("p", "", ""), &[("app", "web")]));
        let s = FilterState::new(&p, &c).expect("existing anti-affinity");
        let ns = BTreeMap::new();
        assert_eq!(
            s.filter(&p, c.node_info("a").expect("a"), &ns)
                .expect_err("guarded")
                .reasons,
            vec![REASON_EXISTING_ANTI_AFFINITY]
        );
        assert!(s.filter(&p, c.node_info("b").expect("b"), &ns).is_ok());
    }

    #[test]
    fn affinity_needs_a_matching_pod_unless_it_is_the_first() {
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z2")],
            vec![on(labeled(pod("cache", "", ""), &[("app", "cache")]), "a")],
        );
        let ns = BTreeMap::new();
        let p = info(with_affinity(
            pod("p", "", ""),
            vec![term("cache", "zone")],
            vec![],
        ));
        let s = FilterState::new(&p, &c).expect("state");
        assert!(s.filter(&p, c.node_info("a").expect("a"), &ns).is_ok());
        assert_eq!(
            s.filter(&p, c.node_info("b").expect("b"), &ns)
                .expect_err("no cache")
                .reasons,
            vec![REASON_AFFINITY]
        );
        // A pod with affinity to its own kind goes anywhere when none exists yet.
        let first = info(with_affinity(
            labeled(pod("w", "", ""), &[("app", "web")]),
            vec![term("web", "zone")],
            vec![],
        ));
        let s = FilterState::new(&first, &c).expect("state");
        assert!(s.filter(&first, c.node_info("b").expect("b"), &ns).is_ok());
    }

    #[test]
    fn namespaces_scope_the_terms() {
        let mut other = labeled(pod("db", "", ""), &[("app", "db")]);
        other.metadata.namespace = Some("other".into());
        let c = cache(vec![zoned("a", "z1")], vec![on(other, "a")]);
        let ns = BTreeMap::new();
        let p = info(with_affinity(
            pod("p", "", ""),
            vec![],
            vec![term("db", "zone")],
        ));
        let s = FilterState::new(&p, &c).expect("state");
        // The term only covers the pod's own namespace.
        assert!(s.filter(&p, c.node_info("a").expect("a"), &ns).is_ok());
        let mut all = term("db", "zone");
        all.namespace_selector = Some(LabelSelector::default());
        let q = info(with_affinity(pod("q", "", ""), vec![], vec![all]));
        let s = FilterState::new(&q, &c).expect("state");
        assert!(s.filter(&q, c.node_info("a").expect("a"), &ns).is_err());
    }

    #[test]
    fn preferred_terms_score_domains() {
        let c = cache(
            vec![zoned("a", "z1"), zoned("b", "z2")],
            vec![on(labeled(pod("db", "", ""), &[("app", "db")]), "a")],
        );
        let mut p = pod("p", "", "");
        p.spec.get_or_insert_default().affinity = Some(Affinity {
            pod_affinity: Some(PodAffinity {
                preferred_during_scheduling_ignored_during_execution: Some(vec![
                    WeightedPodAffinityTerm {
                        weight: 10,
                        pod_affinity_term: term("db", "zone"),
                    },
                ]),
                ..PodAffinity::default()
            }),
            ..Affinity::default()
        });
        let p = info(p);
        let s = ScoreState::new(&p, &c).expect("state");
        let mut scores = vec![
            s.score(c.node_info("a").expect("a")),
            s.score(c.node_info("b").expect("b")),
        ];
        assert_eq!(scores, vec![10, 0]);
        normalize(&mut scores);
        assert_eq!(scores, vec![100, 0]);
    }
}
