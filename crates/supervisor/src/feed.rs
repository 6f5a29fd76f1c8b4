//! A realistic simulated camera feed.
//!
//! Trucks arrive at random (a Poisson process) at one of several cameras.
//! While a truck stands in view, its camera reads the container 3 to 15
//! times over 5 to 60 seconds. Now and then the OCR confuses look-alike
//! characters (O/0, I/1, S/5, B/8, Z/2) or misses the check digit, as real
//! modules do. `serve --demo` feeds these reads into the store in process.

use std::future::Future;
use std::time::Duration;

use chrono::Utc;
use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};
use rand::Rng;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

/// Owner codes seen at the simulated gate.
const OWNERS: [&str; 10] = [
    "MSCU", "MAEU", "CMAU", "HLXU", "OOLU", "EGHU", "TGHU", "CSQU", "SEGU", "TCLU",
];
/// Look-alike characters OCR modules mix up.
const CONFUSIONS: [(char, char); 5] = [('O', '0'), ('I', '1'), ('S', '5'), ('B', '8'), ('Z', '2')];

/// Shape of the simulated traffic.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    pub cameras: usize,
    /// Mean truck arrivals per minute, over all cameras.
    pub trucks_per_minute: f64,
    /// Probability that one read has a confused character.
    pub ocr_error_rate: f64,
    /// Probability that one read lacks its check digit.
    pub missing_check_digit_rate: f64,
}

impl Default for FeedConfig {
    fn default() -> Self {
        Self {
            cameras: 3,
            trucks_per_minute: 12.0,
            ocr_error_rate: 0.05,
            missing_check_digit_rate: 0.03,
        }
    }
}

/// One truck's reads: each with its delay after the truck's arrival.
pub fn truck(rng: &mut impl Rng, config: &FeedConfig) -> Vec<(Duration, Value)> {
    let owner = OWNERS[rng.random_range(0..OWNERS.len())];
    let serial = format!("{:06}", rng.random_range(0..1_000_000));
    let digit = CheckDigit::compute(
        &OwnerCode::parse(owner).expect("owner list is valid"),
        &SerialNumber::parse(&serial).expect("serial is six digits"),
    );
    let camera = format!("gate-cam-{}", rng.random_range(1..=config.cameras.max(1)));
    let reads = rng.random_range(3..=15);
    let dwell = rng.random_range(5.0..60.0);
    let mut out = Vec::with_capacity(reads);
    for i in 0..reads {
        let at = Duration::from_secs_f64(dwell * i as f64 / reads as f64);
        let mut text = format!("{owner}{serial}{digit}");
        if rng.random_bool(config.ocr_error_rate) {
            text = confuse(rng, &text);
        }
        if rng.random_bool(config.missing_check_digit_rate) {
            text.pop();
        }
        out.push((
            at,
            json!({
                "container": text,
                "camera_id": camera,
                "source_video": format!("rtsp://{camera}/stream"),
                "cropped_image_ref": format!("crops/{camera}/{owner}{serial}-{i}.jpg"),
                "confidence": (rng.random_range(0.70..0.999) * 1000.0_f64).round() / 1000.0,
            }),
        ));
    }
    out
}

/// Swaps one look-alike character, if the text has one.
fn confuse(rng: &mut impl Rng, text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let candidates: Vec<usize> = (0..chars.len())
        .filter(|&i| {
            CONFUSIONS
                .iter()
                .any(|(a, b)| chars[i] == *a || chars[i] == *b)
        })
        .collect();
    if candidates.is_empty() {
        return text.to_string();
    }
    let i = candidates[rng.random_range(0..candidates.len())];
    for (a, b) in CONFUSIONS {
        if chars[i] == a {
            chars[i] = b;
            break;
        } else if chars[i] == b {
            chars[i] = a;
            break;
        }
    }
    chars.into_iter().collect()
}

/// Runs the feed until `shutdown`, handing each read (stamped with the
/// current time as `captured_at`) to `deliver`.
pub async fn run<D, Fut>(config: FeedConfig, shutdown: CancellationToken, deliver: D)
where
    D: Fn(Value) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let rate_per_sec = (config.trucks_per_minute / 60.0).max(1e-6);
    loop {
        // Exponential gaps between arrivals make a Poisson process.
        let (gap, reads) = {
            let mut rng = rand::rng();
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            (
                Duration::from_secs_f64(-u.ln() / rate_per_sec),
                truck(&mut rng, &config),
            )
        };
        tokio::select! {
            _ = tokio::time::sleep(gap) => {}
            _ = shutdown.cancelled() => return,
        }
        let deliver = deliver.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            for (at, mut body) in reads {
                tokio::select! {
                    _ = tokio::time::sleep_until(start + at) => {}
                    _ = stop.cancelled() => return,
                }
                body["captured_at"] = Value::String(Utc::now().to_rfc3339());
                deliver(body).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trucks_have_three_to_fifteen_reads_within_a_minute() {
        let mut rng = rand::rng();
        let config = FeedConfig::default();
        for _ in 0..200 {
            let t = truck(&mut rng, &config);
            assert!((3..=15).contains(&t.len()));
            assert!(t.iter().all(|(at, _)| *at < Duration::from_secs(60)));
        }
    }

    #[test]
    fn clean_reads_carry_a_valid_number() {
        let mut rng = rand::rng();
        let config = FeedConfig {
            ocr_error_rate: 0.0,
            missing_check_digit_rate: 0.0,
            ..FeedConfig::default()
        };
        for (_, body) in truck(&mut rng, &config) {
            let c =
                gatelog_core::ContainerNumber::parse(body["container"].as_str().unwrap()).unwrap();
            assert_eq!(
                c.check_status(),
                gatelog_core::container::CheckStatus::Valid
            );
        }
    }

    #[test]
    fn confusion_changes_one_look_alike() {
        let mut rng = rand::rng();
        let out = confuse(&mut rng, "OOLU1234566");
        let diff = out
            .chars()
            .zip("OOLU1234566".chars())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(diff, 1);
    }
}
