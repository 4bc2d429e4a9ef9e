//! Leader election over a coordination.k8s.io Lease, as client-go's leaderelection does: of the
//! servers sharing a datastore, only the holder of the lease runs the controllers.

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timings, upstream's defaults for kube-controller-manager and kube-scheduler.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// How long a lease is valid without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates retry and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timings {
    fn default() -> Timings {
        Timings {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Who holds the lease, as a candidate last observed it.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    transitions: i32,
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// Runs `lead` whenever this process holds the lease `kube-system/NAME`, until `cancel` fires.
/// `lead` gets a token that is cancelled when leadership is lost; it must return then, after
/// which this candidate tries again.
pub async fn run<F, Fut>(
    client: kube::Client,
    name: &str,
    identity: &str,
    timings: Timings,
    cancel: CancellationToken,
    lead: F,
) where
    F: Fn(CancellationToken) -> Fut,
    Fut: Future<Output = ()>,
{
    let leases: Api<Lease> = Api::namespaced(client, "kube-system");
    let mut elector = Elector {
        leases,
        name: name.to_string(),
        identity: identity.to_string(),
        timings,
        observed: None,
        observed_at: Instant::now(),
    };
    loop {
        // Candidate: try until acquired.
        loop {
            if elector.try_acquire_or_renew().await {
                break;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(jittered(timings.retry_period)) => {}
            }
        }
        tracing::info!(lease = name, identity, "became leader");
        let term = cancel.child_token();
        let leading = lead(term.clone());
        tokio::pin!(leading);
        let mut last_renew = Instant::now();
        let lost = loop {
            tokio::select! {
                _ = &mut leading => break false,
                _ = cancel.cancelled() => break false,
                _ = tokio::time::sleep(timings.retry_period) => {
                    if elector.try_acquire_or_renew().await {
                        last_renew = Instant::now();
                    } else if last_renew.elapsed() >= timings.renew_deadline {
                        break true;
                    }
                }
            }
        };
        term.cancel();
        leading.await;
        if lost {
            tracing::warn!(lease = name, identity, "lost the lease; stopped leading");
            continue;
        }
        if cancel.is_cancelled() {
            elector.release().await;
            return;
        }
    }
}

fn jittered(d: Duration) -> Duration {
    // Upstream's JitterFactor 1.2: candidates spread their attempts.
    d + d.mul_f64(rand_fraction() * 1.2)
}

fn rand_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 1000.0
}

struct Elector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    /// The lease record as last seen, and when it was first seen that way (our clock, so
    /// that clock skew between servers does not matter).
    observed: Option<Observed>,
    observed_at: Instant,
}

impl Elector {
    fn observe(&mut self, lease: &Lease) {
        let spec = lease.spec.clone().unwrap_or_default();
        let o = Observed {
            holder: spec.holder_identity.filter(|h| !h.is_empty()),
            renew: spec.renew_time,
            transitions: spec.lease_transitions.unwrap_or(0),
        };
        if self.observed.as_ref() != Some(&o) {
            self.observed = Some(o);
            self.observed_at = Instant::now();
        }
    }

    fn spec(&self, transitions: i32, acquire: Option<MicroTime>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timings.lease_duration.as_secs() as i32),
            acquire_time: acquire,
            renew_time: Some(now()),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// One attempt; true when we hold the lease afterwards.
    async fn try_acquire_or_renew(&mut self) -> bool {
        let current = match self.leases.get_opt(&self.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(lease = %self.name, error = %e, "cannot read the lease");
                return false;
            }
        };
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some("kube-system".into()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(0, Some(now()))),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(l) => {
                    self.observe(&l);
                    true
                }
                Err(e) => {
                    tracing::debug!(lease = %self.name, error = %e, "cannot create the lease");
                    false
                }
            };
        };
        self.observe(&lease);
        let observed = self.observed.clone().unwrap_or(Observed {
            holder: None,
            renew: None,
            transitions: 0,
        });
        let mine = observed.holder.as_deref() == Some(self.identity.as_str());
        let duration = lease
            .spec
            .as_ref()
            .and_then(|s| s.lease_duration_seconds)
            .map(|s| Duration::from_secs(s.max(1) as u64))
            .unwrap_or(self.timings.lease_duration);
        let expired = observed.holder.is_none() || self.observed_at.elapsed() > duration;
        if !mine && !expired {
            return false;
        }
        let spec = if mine {
            let acquire = lease.spec.as_ref().and_then(|s| s.acquire_time.clone());
            self.spec(observed.transitions, acquire)
        } else {
            self.spec(observed.transitions + 1, Some(now()))
        };
        lease.spec = Some(spec);
        // The update carries the resourceVersion we read: two candidates cannot both win.
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(l) => {
                self.observe(&l);
                true
            }
            Err(e) => {
                tracing::debug!(lease = %self.name, error = %e, "cannot update the lease");
                false
            }
        }
    }

    /// Gives the lease up so that another server takes over at once.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now());
        if let Err(e) = self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(lease = %self.name, error = %e, "cannot release the lease");
        }
    }
}
