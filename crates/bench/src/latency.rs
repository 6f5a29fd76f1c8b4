//! Latency percentiles, kept in an HDR histogram, and a timed GET.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Recorded latencies, in microseconds, from 1 µs to 10 minutes with three
/// significant digits.
pub struct Latencies(Histogram<u64>);

impl Latencies {
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"))
    }

    /// Records one latency; longer than the bounds counts as the longest.
    pub fn record(&mut self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(micros.max(1));
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        self.0
            .add(&other.0)
            .expect("histograms of the same bounds merge");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The latency at quantile `q` (0 to 1); zero when nothing was recorded.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        Duration::from_micros(self.0.value_at_quantile(q))
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.0.max())
    }
}

/// A latency in milliseconds, for the tables.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// GETs `url` and reads its JSON body, timing both.
pub async fn timed_get(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let t = Instant::now();
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((t.elapsed(), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_the_recorded_values() {
        let mut l = Latencies::new();
        for ms in 1..=100u64 {
            l.record(Duration::from_millis(ms));
        }
        // Three significant digits: within 0.1% of the exact rank.
        let p99 = l.quantile(0.99).as_secs_f64() * 1000.0;
        assert!((98.9..=99.1).contains(&p99), "{p99}");
        let p50 = l.quantile(0.5).as_secs_f64() * 1000.0;
        assert!((49.9..=50.1).contains(&p50), "{p50}");
        assert_eq!(l.count(), 100);
        assert_eq!(Latencies::new().quantile(0.99), Duration::ZERO);
    }
}
