//! ImageLocality: prefers nodes that already have the pod's images, weighted by image size and
//! by how widely the image is spread (so one node with everything does not attract all pods).

use crate::cache::{Cache, NodeInfo};
use crate::framework::MAX_NODE_SCORE;
use crate::pod_info::PodInfo;

const MB: i64 = 1024 * 1024;
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

pub fn score(pod: &PodInfo, node: &NodeInfo, cache: &Cache) -> i64 {
    if node.images.is_empty() || pod.images.is_empty() {
        return 0;
    }
    let total = cache.node_count().max(1) as f64;
    let sum: i64 = pod
        .images
        .iter()
        .filter_map(|img| {
            node.images.get(img).map(|size| {
                let spread = cache.image_node_count(img) as f64 / total;
                (*size as f64 * spread) as i64
            })
        })
        .sum();
    let max_threshold = MAX_CONTAINER_THRESHOLD * pod.images.len() as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max_threshold);
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::testing::*;
    use k8s_openapi::api::core::v1::ContainerImage;

    #[test]
    fn nodes_with_big_images_score_higher() {
        let mut a = node("a", "1", "1Gi", "10");
        a.status.get_or_insert_default().images = Some(vec![ContainerImage {
            names: Some(vec!["busybox:latest".into()]),
            size_bytes: Some(500 * MB),
        }]);
        let mut b = node("b", "1", "1Gi", "10");
        b.status.get_or_insert_default().images = Some(vec![ContainerImage {
            names: Some(vec!["busybox:latest".into()]),
            size_bytes: Some(500 * MB),
        }]);
        let c = cache(vec![a, b, node("c", "1", "1Gi", "10")], vec![]);
        let p = info(pod("p", "", ""));
        // 500 MB × 2/3 spread = 333 MB → (333 - 23) × 100 / (1000 - 23) = 31.
        assert_eq!(score(&p, c.node_info("a").expect("a"), &c), 31);
        assert_eq!(score(&p, c.node_info("c").expect("c"), &c), 0);
    }
}
