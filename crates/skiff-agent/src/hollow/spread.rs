//! Periodic per-node work spread evenly over its interval, so thousands of nodes do not write at once.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The smallest gap between two batches.
const MIN_TICK: Duration = Duration::from_millis(20);

/// How `n` items split into ticks of one interval: (tick length, items per tick).
pub fn plan(n: usize, interval: Duration) -> (Duration, usize) {
    if n == 0 {
        return (interval, 0);
    }
    let max_ticks = (interval.as_millis() / MIN_TICK.as_millis()).max(1) as usize;
    let ticks = n.min(max_ticks);
    let per_tick = n.div_ceil(ticks);
    (interval / ticks as u32, per_tick)
}

/// Calls `work(i)` for each i in `0..n` once per `interval`, spread over it, with at most
/// `concurrency` calls in flight, until `cancel` fires. Calls overlap across ticks, so a slow
/// server lowers the rate only once `concurrency` calls are waiting on it.
pub async fn run<F, Fut>(
    n: usize,
    interval: Duration,
    concurrency: usize,
    cancel: CancellationToken,
    work: F,
) where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let (tick, per_tick) = plan(n, interval);
    if per_tick == 0 {
        cancel.cancelled().await;
        return;
    }
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut in_flight = FuturesUnordered::new();
    let mut next = 0usize;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            Some(()) = in_flight.next(), if !in_flight.is_empty() => continue,
            _ = ticker.tick() => {}
        }
        for _ in 0..per_tick {
            while in_flight.len() >= concurrency.max(1) {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = in_flight.next() => {}
                }
            }
            in_flight.push(work(next));
            next = (next + 1) % n;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn spreads_many_nodes_over_the_interval() {
        assert_eq!(
            plan(5000, Duration::from_secs(10)),
            (Duration::from_millis(20), 10)
        );
        assert_eq!(
            plan(3, Duration::from_secs(10)),
            (
                Duration::from_millis(3333) + Duration::from_nanos(333_333),
                1
            )
        );
        assert_eq!(plan(0, Duration::from_secs(1)).1, 0);
    }

    #[tokio::test]
    async fn visits_every_item_in_turn() {
        let seen = std::sync::Mutex::new(Vec::new());
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let seen_ref = &seen;
        let work = run(
            4,
            Duration::from_millis(400),
            2,
            cancel,
            move |i| async move {
                seen_ref.lock().unwrap().push(i);
            },
        );
        let stopper = async move {
            tokio::time::sleep(Duration::from_millis(700)).await;
            stop.cancel();
        };
        tokio::time::timeout(
            Duration::from_secs(20),
            futures::future::join(work, stopper),
        )
        .await
        .unwrap();
        let seen = seen.lock().unwrap();
        assert!((4..=9).contains(&seen.len()), "{seen:?}");
        assert_eq!(seen[..4], [0, 1, 2, 3]);
    }
}
