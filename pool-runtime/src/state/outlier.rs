//! Outlier detection, as gRPC's A50 specifies it: every interval, weigh
//! each endpoint's calls of the interval, eject the outliers for a while,
//! and return those whose time is up.

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::{Inner, Subchannel, maintain};
use crate::config::{FailurePercentageEjection, OutlierDetection, SuccessRateEjection};

/// Runs outlier detection for as long as the pool exists and is open,
/// over the pool's endpoints, or over one cluster's (an xDS pool's).
pub(super) async fn run(pool: Weak<Inner>, settings: OutlierDetection, cluster: Option<Arc<str>>) {
    let period = settings.interval;
    maintain::every(pool, period, move |inner, now| {
        inner.weigh_endpoints(&settings, cluster.as_deref(), now);
    })
    .await;
}

/// Each xDS cluster's outlier detection, by cluster (gRPC A50).
#[cfg(feature = "xds")]
pub(crate) type ClusterDetection = std::collections::BTreeMap<Arc<str>, OutlierDetection>;

/// Runs each cluster's outlier detection over its endpoints with the
/// settings `settings` holds, anew each time they change (gRPC A50);
/// while no cluster asks for it, no endpoint is ejected, and those
/// ejected return at once. The pool's endpoints are shared: one in two
/// clusters is ejected from both, and its calls of an interval are
/// weighed by the first of them to look.
#[cfg(feature = "xds")]
pub(super) async fn follow(
    pool: Weak<Inner>,
    mut settings: tokio::sync::watch::Receiver<ClusterDetection>,
) {
    loop {
        let current = settings.borrow_and_update().clone();
        if current.is_empty() {
            if let Some(inner) = pool.upgrade() {
                inner.return_every_ejected();
            }
            if settings.changed().await.is_err() {
                return;
            }
            continue;
        }
        let runs = futures_util::future::join_all(
            current
                .into_iter()
                .map(|(cluster, detection)| run(pool.clone(), detection, Some(cluster))),
        );
        tokio::select! {
            _ = runs => return,
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// One endpoint's calls in the interval just ended.
struct Tally<'a> {
    subchannel: &'a Arc<Subchannel>,
    calls: u64,
    failures: u64,
}

impl Tally<'_> {
    fn success_rate(&self) -> f64 {
        (self.calls - self.failures) as f64 / self.calls as f64
    }
}

/// The endpoints with at least `request_volume` calls in the interval, if
/// there are at least `minimum_hosts` of them (A50 weighs none otherwise).
fn weighed<'a, 'b>(
    tallies: &'b [Tally<'a>],
    request_volume: u32,
    minimum_hosts: u32,
) -> Option<Vec<&'b Tally<'a>>> {
    let weighed: Vec<&Tally<'_>> = tallies
        .iter()
        .filter(|t| t.calls > 0 && t.calls >= u64::from(request_volume))
        .collect();
    (!weighed.is_empty() && weighed.len() >= minimum_hosts as usize).then_some(weighed)
}

/// A50 success-rate ejection: the endpoints whose success rate is more
/// than `stdev_factor / 1000` standard deviations below the mean.
fn success_rate_outliers<'a>(
    tallies: &[Tally<'a>],
    rule: &SuccessRateEjection,
) -> Vec<&'a Arc<Subchannel>> {
    let Some(weighed) = weighed(tallies, rule.request_volume, rule.minimum_hosts) else {
        return Vec::new();
    };
    let rates: Vec<f64> = weighed.iter().map(|t| t.success_rate()).collect();
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let variance = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / rates.len() as f64;
    let floor = mean - variance.sqrt() * f64::from(rule.stdev_factor) / 1000.0;
    weighed
        .iter()
        .zip(rates)
        .filter(|(_, rate)| *rate < floor)
        .map(|(tally, _)| tally.subchannel)
        .collect()
}

/// A50 failure-percentage ejection: the endpoints more than `threshold`
/// percent of whose calls in the interval failed.
fn failure_percentage_outliers<'a>(
    tallies: &[Tally<'a>],
    rule: &FailurePercentageEjection,
) -> Vec<&'a Arc<Subchannel>> {
    let Some(weighed) = weighed(tallies, rule.request_volume, rule.minimum_hosts) else {
        return Vec::new();
    };
    weighed
        .into_iter()
        .filter(|t| t.failures as f64 * 100.0 / t.calls as f64 > f64::from(rule.threshold))
        .map(|t| t.subchannel)
        .collect()
}

impl Inner {
    /// One interval of gRPC A50: un-eject those whose time is up, then look
    /// for outliers by success rate and by failure percentage.
    fn weigh_endpoints(
        self: &Arc<Self>,
        settings: &OutlierDetection,
        cluster: Option<&str>,
        now: Instant,
    ) {
        let all = self.fleet.subchannels.load();
        let subchannels = match cluster {
            None => &all,
            Some(name) => match all.cluster(name) {
                Some(set) => set,
                None => return,
            },
        };
        let tallies: Vec<Tally<'_>> = subchannels
            .iter()
            .map(|subchannel| {
                let (calls, failures) = subchannel.take_interval();
                Tally {
                    subchannel,
                    calls,
                    failures,
                }
            })
            .collect();
        for subchannel in subchannels.iter() {
            if !subchannel.has_ejection() {
                // A50: an endpoint that stayed in through an interval has
                // its multiplier lowered.
                subchannel.lower_ejection_multiplier();
            } else if !subchannel.is_ejected(now) {
                subchannel.return_from_ejection();
                tracing::info!(endpoint = %subchannel.endpoint.key, "outlier detection: endpoint back in the pick");
                self.notify();
            }
        }
        // A50: at most max_ejection_percent of the endpoints, and at least one.
        let allowed = (subchannels.len() * settings.max_ejection_percent as usize / 100).max(1);
        let mut outliers = Vec::new();
        if let Some(rule) = &settings.success_rate {
            let found = success_rate_outliers(&tallies, rule);
            outliers.extend(found.into_iter().map(|s| (s, rule.enforcement_percentage)));
        }
        if let Some(rule) = &settings.failure_percentage {
            let found = failure_percentage_outliers(&tallies, rule);
            outliers.extend(found.into_iter().map(|s| (s, rule.enforcement_percentage)));
        }
        for (subchannel, enforcement_percentage) in outliers {
            let ejected = subchannels.iter().filter(|s| s.is_ejected(now)).count();
            if ejected < allowed {
                self.maybe_eject(subchannel, enforcement_percentage, settings, now);
            }
        }
    }

    /// Returns every ejected endpoint to the pick: outlier detection was
    /// turned off.
    #[cfg(feature = "xds")]
    fn return_every_ejected(&self) {
        for subchannel in self.fleet.subchannels.load().iter() {
            if subchannel.has_ejection() {
                subchannel.return_from_ejection();
                self.notify();
            }
        }
    }

    /// Ejects `subchannel` if enforcement says so (the caller counted
    /// the endpoints out): for `base_ejection_time` times the times it
    /// was ejected, at most `max(base_ejection_time, max_ejection_time)`.
    fn maybe_eject(
        self: &Arc<Self>,
        subchannel: &Subchannel,
        enforcement_percentage: u32,
        settings: &OutlierDetection,
        now: Instant,
    ) {
        if subchannel.is_ejected(now) || fastrand::u32(..100) >= enforcement_percentage {
            return;
        }
        let times = subchannel.count_ejection();
        let longest = settings.base_ejection_time.max(settings.max_ejection_time);
        let time = settings
            .base_ejection_time
            .saturating_mul(u32::try_from(times).unwrap_or(u32::MAX))
            .min(longest);
        subchannel.eject_until(now + time);
        tracing::warn!(endpoint = %subchannel.endpoint.key, ?time, "outlier detection: endpoint ejected");
        self.notify();
        // Its return shows in its state when the time is up, before the
        // tick that records it: watchers hear of it then.
        tokio::spawn(maintain::notify_at(Arc::downgrade(self), now + time));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Endpoint;

    fn subchannels(count: usize) -> Vec<Arc<Subchannel>> {
        (0..count)
            .map(|i| {
                let endpoint = Endpoint::parse(&format!("http://10.0.0.{i}:50051")).unwrap();
                Arc::new(Subchannel::new(Arc::new(super::super::Member::new(
                    endpoint,
                ))))
            })
            .collect()
    }

    fn tallies<'a>(subchannels: &'a [Arc<Subchannel>], failures: &[u64]) -> Vec<Tally<'a>> {
        subchannels
            .iter()
            .zip(failures)
            .map(|(subchannel, &failures)| Tally {
                subchannel,
                calls: 100,
                failures,
            })
            .collect()
    }

    #[test]
    fn both_rules_find_the_endpoint_failing_half_its_calls() {
        let all = subchannels(5);
        let tallies = tallies(&all, &[50, 0, 1, 0, 2]);
        let by_rate = success_rate_outliers(&tallies, &SuccessRateEjection::default());
        assert_eq!(by_rate.len(), 1);
        assert!(Arc::ptr_eq(by_rate[0], &all[0]));
        let rule = FailurePercentageEjection {
            threshold: 40,
            ..Default::default()
        };
        let by_failures = failure_percentage_outliers(&tallies, &rule);
        assert_eq!(by_failures.len(), 1);
        assert!(Arc::ptr_eq(by_failures[0], &all[0]));
    }

    #[test]
    fn too_few_hosts_or_calls_weigh_nothing() {
        let all = subchannels(4);
        let tallies = tallies(&all, &[90, 0, 0, 0]);
        // minimum_hosts 5 by default: four endpoints are not compared.
        assert!(success_rate_outliers(&tallies, &SuccessRateEjection::default()).is_empty());
        assert!(
            failure_percentage_outliers(&tallies, &FailurePercentageEjection::default()).is_empty()
        );
        let needs_more_calls = FailurePercentageEjection {
            minimum_hosts: 4,
            request_volume: 101,
            ..Default::default()
        };
        assert!(failure_percentage_outliers(&tallies, &needs_more_calls).is_empty());
    }
}
