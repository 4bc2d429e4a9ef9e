//! Indexed Jobs: the completion index of a pod, and index sets in the compressed form
//! `status.completedIndexes` uses ("0-2,4").

use k8s_openapi::api::core::v1::Pod;
use std::collections::BTreeSet;

pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
pub const INDEX_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-failure-count";
pub const INDEX_IGNORED_FAILURE_COUNT: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// The completion index of a pod: its annotation, else its label (as upstream reads them).
pub fn completion_index(pod: &Pod) -> Option<i32> {
    let from = |m: Option<&std::collections::BTreeMap<String, String>>| {
        m.and_then(|m| m.get(COMPLETION_INDEX))
            .and_then(|v| v.parse::<i32>().ok())
            .filter(|i| *i >= 0)
    };
    from(pod.metadata.annotations.as_ref()).or_else(|| from(pod.metadata.labels.as_ref()))
}

/// How many failures of this pod's index came before it.
pub fn index_failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub fn index_ignored_failure_count(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_IGNORED_FAILURE_COUNT))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Parses "0-2,4" into indexes below `completions`; malformed parts are skipped, as upstream's
/// parseIndexesFromString skips them.
pub fn parse(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => match (a.parse::<i32>(), b.parse::<i32>()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => continue,
            },
            None => match part.parse::<i32>() {
                Ok(v) => (v, v),
                Err(_) => continue,
            },
        };
        if lo < 0 || lo > hi {
            continue;
        }
        out.extend(lo..=hi.min(completions.saturating_sub(1)));
    }
    out
}

/// Formats indexes as ranges: consecutive runs of three or more as "a-b", pairs as "a,b".
pub fn format(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        match end - start {
            0 => parts.push(start.to_string()),
            1 => {
                parts.push(start.to_string());
                parts.push(end.to_string());
            }
            _ => parts.push(format!("{start}-{end}")),
        }
    }
    parts.join(",")
}

/// The first `n` indexes below `completions` that are in none of `taken`.
pub fn first_pending(n: usize, completions: i32, taken: &[&BTreeSet<i32>]) -> Vec<i32> {
    (0..completions.max(0))
        .filter(|i| taken.iter().all(|t| !t.contains(i)))
        .take(n)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[i32]) -> BTreeSet<i32> {
        v.iter().copied().collect()
    }

    #[test]
    fn formats_ranges_as_upstream() {
        assert_eq!(format(&set(&[])), "");
        assert_eq!(format(&set(&[0, 1, 2, 4])), "0-2,4");
        assert_eq!(format(&set(&[1, 2])), "1,2");
        assert_eq!(format(&set(&[0, 2, 3, 4, 5, 7, 9, 10])), "0,2-5,7,9,10");
    }

    #[test]
    fn parses_ranges_within_completions() {
        assert_eq!(parse("0-2,4", 10), set(&[0, 1, 2, 4]));
        assert_eq!(parse("1,3-20", 5), set(&[1, 3, 4]));
        assert_eq!(parse("x,2,5-3", 10), set(&[2]));
        assert_eq!(parse("", 3), set(&[]));
        for s in ["0-2,4", "1,2", "0,2-5,7,9,10"] {
            assert_eq!(format(&parse(s, 100)), s);
        }
    }

    #[test]
    fn pending_indexes_skip_taken_ones() {
        let done = set(&[0, 2]);
        let active = set(&[1]);
        assert_eq!(first_pending(2, 6, &[&done, &active]), vec![3, 4]);
        assert_eq!(first_pending(5, 4, &[&done, &active]), vec![3]);
    }
}
