//! The simulated gate: trucks, their containers, and what a camera's OCR
//! makes of them.
//!
//! One generator, [`Gate`], drives `serve --demo`, `gatelog simulate`
//! (posted to a server as it happens) and `gatelog simulate --labelled`
//! (a file for `gatelog eval`, each read with the truth beside it). So the
//! demo, the load and the measurement all see the same kinds of noise.
//!
//! The model, per [`GateConfig`]:
//! - Trucks arrive at random (exponential gaps, a Poisson process) at one
//!   of a few cameras, one lane each; a lane holds one truck at a time.
//! - True containers are valid ISO 6346 numbers of real-looking owners,
//!   category U mostly. Now and then the next truck in the same lane
//!   carries a **near twin**, a number one serial digit apart (a shipper's
//!   consecutive boxes), and now and then a container **returns** after
//!   the dedup window, which is a new true passage.
//! - While a truck stands in view its camera reads it 3 to 15 times, a
//!   second or few apart. Each character is confused with its look-alike
//!   (O↔0, I↔1, S↔5, B↔8, Z↔2, G↔6, D→0) at one rate and replaced by any
//!   other character at another; most reads carry the check digit, in the
//!   shapes real modules send (one string with or without separators, a
//!   separate `check_digit`, or `owner`/`number` fields). Noisier reads
//!   report a lower `confidence`. Rarely a read is unreadable: 10–11
//!   letters and digits that no correction can make valid.
//!
//! # Layout
//! - [`GateConfig`]: the knobs, with defaults matching the target stream
//!   of issue 9 (4% look-alike and 0.4% random error per character).
//! - [`Gate`]: yields [`Truck`]s, each with its [`SimRead`]s.
//! - [`labelled`]: a whole stream as JSON lines with `truth`.
//! - [`run`]: the live feed, in real time.
//! - [`crop_svg`]: a synthetic crop image of what the camera read.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

/// The first three letters of owner codes seen at the simulated gate
/// (real lines' codes; the category letter is added).
const OWNER_PREFIXES: [&str; 40] = [
    "MSC", "MED", "MAE", "MRK", "MSK", "CMA", "CGM", "HLX", "HLB", "OOL", "OOC", "EGH", "EMC",
    "EIS", "TGH", "TCL", "TCN", "TRH", "CSQ", "CSN", "CBH", "SEG", "SUD", "YML", "ONE", "NYK",
    "APZ", "GES", "FCI", "BMO", "TEM", "GLD", "CAI", "DRY", "INK", "KKF", "HDM", "WHL", "SMC",
    "ZIM",
];

/// Digits with no look-alike letter and letters with no look-alike digit:
/// a character of the wrong kind from these cannot be mapped back, which
/// is what makes a read unreadable.
const UNMAPPABLE_DIGITS: &[u8] = b"3479";
const UNMAPPABLE_LETTERS: &[u8] = b"ACEFHJKLMNPQRTUVWXY";
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// The character OCR mistakes `c` for, if it has a look-alike. D is read
/// as 0, but 0 is read as O: the confusion is not symmetric.
pub fn lookalike(c: char) -> Option<char> {
    Some(match c {
        'O' => '0',
        '0' => 'O',
        'I' => '1',
        '1' => 'I',
        'S' => '5',
        '5' => 'S',
        'B' => '8',
        '8' => 'B',
        'Z' => '2',
        '2' => 'Z',
        'G' => '6',
        '6' => 'G',
        'D' => '0',
        _ => return None,
    })
}

/// The shape of the simulated traffic and of the OCR's mistakes.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// Cameras at the gate, one lane each.
    pub cameras: usize,
    /// Mean truck arrivals per minute, over all cameras (lanes that are
    /// still busy delay a truck).
    pub trucks_per_minute: f64,
    /// The fewest reads of one truck.
    pub reads_min: usize,
    /// The most reads of one truck.
    pub reads_max: usize,
    /// Per character that has a look-alike: the chance it is read as it.
    pub lookalike_rate: f64,
    /// Per character: the chance it is read as any other character.
    pub random_error_rate: f64,
    /// The share of reads that carry the check digit.
    pub check_digit_share: f64,
    /// The share of reads that are unreadable.
    pub unreadable_rate: f64,
    /// The chance that the next truck in the lane carries a container one
    /// serial digit apart.
    pub twin_rate: f64,
    /// The chance that a container comes back after `return_after`.
    pub return_rate: f64,
    /// How long a returning container stays away at least: the server's
    /// dedup window, so that the return is a new passage.
    pub return_after: Duration,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            cameras: 3,
            trucks_per_minute: 2.0,
            reads_min: 3,
            reads_max: 15,
            lookalike_rate: 0.04,
            random_error_rate: 0.004,
            check_digit_share: 0.9,
            unreadable_rate: 0.01,
            twin_rate: 0.05,
            return_rate: 0.05,
            return_after: Duration::from_secs(300),
        }
    }
}

impl GateConfig {
    /// Checks the knobs, naming the one at fault with its flag's name.
    pub fn check(&self) -> Result<(), String> {
        for (name, p) in [
            ("--lookalike-rate", self.lookalike_rate),
            ("--random-error-rate", self.random_error_rate),
            ("--check-digit-share", self.check_digit_share),
            ("--unreadable-rate", self.unreadable_rate),
            ("--twin-rate", self.twin_rate),
            ("--return-rate", self.return_rate),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!("{name} must be from 0 to 1; got {p}"));
            }
        }
        if self.cameras == 0 {
            return Err("--cameras must be at least 1".into());
        }
        if !(self.trucks_per_minute > 0.0 && self.trucks_per_minute.is_finite()) {
            return Err("--rate must be more than 0 trucks a minute".into());
        }
        if self.reads_min == 0 || self.reads_min > self.reads_max || self.reads_max > 1000 {
            return Err(format!(
                "--reads-min and --reads-max must satisfy 1 <= min <= max <= 1000; got {} and {}",
                self.reads_min, self.reads_max
            ));
        }
        Ok(())
    }
}

/// One truck in view of one camera.
#[derive(Debug, Clone)]
pub struct Truck {
    /// The true passage's label, unique in the stream (`p0001`, …).
    pub passage: String,
    /// The true container number, valid, with its check digit.
    pub container: String,
    pub camera: String,
    /// When it arrived, after the start of the stream.
    pub arrival: Duration,
    /// Its reads, in time order.
    pub reads: Vec<SimRead>,
}

/// One read of a truck, as the camera's OCR module would post it.
#[derive(Debug, Clone)]
pub struct SimRead {
    /// When it was captured, after the start of the stream.
    pub at: Duration,
    /// The body without `captured_at`, which depends on how the stream
    /// is played (a fixed start, or the clock of a live feed).
    pub body: Map<String, Value>,
    /// The characters the OCR saw, without separators.
    pub text: String,
}

/// A near twin waiting for the next truck in its lane.
#[derive(Debug, Clone)]
struct Twin {
    container: String,
    camera: usize,
    /// When the twin's predecessor left the lane.
    after: Duration,
}

/// The generator: trucks in arrival order, from a seed.
pub struct Gate {
    config: GateConfig,
    rng: StdRng,
    /// The arrival process's clock (twins and returns do not move it).
    clock: Duration,
    /// When each lane is free again (`None` before its first truck).
    lane_free: Vec<Option<Duration>>,
    /// Containers that will come back, with the time they arrive.
    returns: Vec<(Duration, String)>,
    twin: Option<Twin>,
    /// True passages so far, for the labels.
    passages: u64,
}

impl Gate {
    pub fn new(config: GateConfig, seed: u64) -> Self {
        let lanes = config.cameras.max(1);
        Self {
            config,
            rng: StdRng::seed_from_u64(seed),
            clock: Duration::ZERO,
            lane_free: vec![None; lanes],
            returns: Vec::new(),
            twin: None,
            passages: 0,
        }
    }

    /// The next truck. The first arrives at once, so a demo shows
    /// something at once.
    pub fn next_truck(&mut self) -> Truck {
        let gap = if self.passages == 0 {
            Duration::ZERO
        } else {
            // Exponential gaps between arrivals make a Poisson process.
            let u: f64 = self.rng.random_range(f64::EPSILON..1.0);
            Duration::from_secs_f64(-u.ln() * 60.0 / self.config.trucks_per_minute)
        };
        let next = self.clock + gap;
        let earliest_return = self
            .returns
            .iter()
            .enumerate()
            .min_by_key(|(_, (at, _))| *at)
            .map(|(i, (at, _))| (i, *at));
        let (container, camera, arrival) = if let Some(twin) = self.twin.take() {
            let at = twin.after + secs(self.rng.random_range(5.0..30.0));
            (twin.container, twin.camera, at)
        } else if let Some((i, at)) = earliest_return.filter(|(_, at)| *at <= next) {
            let (_, container) = self.returns.swap_remove(i);
            (
                container,
                self.rng.random_range(0..self.lane_free.len()),
                at,
            )
        } else {
            self.clock = next;
            (
                self.fresh_container(),
                self.rng.random_range(0..self.lane_free.len()),
                next,
            )
        };
        // One truck at a time in a lane.
        let arrival = match self.lane_free[camera] {
            Some(free) => arrival.max(free + secs(3.0)),
            None => arrival,
        };
        self.passages += 1;
        let passage = format!("p{:04}", self.passages);
        let camera_id = format!("gate-cam-{}", camera + 1);
        let n = self
            .rng
            .random_range(self.config.reads_min..=self.config.reads_max);
        let mut at = arrival + secs(self.rng.random_range(0.0..1.0));
        let mut reads = Vec::with_capacity(n);
        for i in 0..n {
            if i > 0 {
                at += secs(self.rng.random_range(0.4..3.0));
            }
            let (body, text) = self.read_of(&container, &camera_id);
            reads.push(SimRead { at, body, text });
        }
        self.lane_free[camera] = Some(at);
        if self.rng.random_bool(self.config.twin_rate) {
            self.twin = Some(Twin {
                container: self.near_twin(&container),
                camera,
                after: at,
            });
        }
        if self.rng.random_bool(self.config.return_rate) {
            let back = at + self.config.return_after + secs(self.rng.random_range(60.0..1800.0));
            self.returns.push((back, container.clone()));
        }
        Truck {
            passage,
            container,
            camera: camera_id,
            arrival,
            reads,
        }
    }

    /// A valid number of a real-looking owner, category U mostly.
    fn fresh_container(&mut self) -> String {
        let prefix = OWNER_PREFIXES[self.rng.random_range(0..OWNER_PREFIXES.len())];
        let category = match self.rng.random_range(0..100) {
            0..=1 => 'J',
            2..=3 => 'Z',
            _ => 'U',
        };
        let serial = format!("{:06}", self.rng.random_range(0..1_000_000));
        with_check_digit(&format!("{prefix}{category}"), &serial)
    }

    /// The same owner with the serial one digit apart: the next box
    /// (half the time), or one digit changed anywhere.
    fn near_twin(&mut self, container: &str) -> String {
        let owner = &container[..4];
        let serial: u32 = container[4..10].parse().expect("a generated serial");
        let twin = if self.rng.random_bool(0.5) {
            if serial == 999_999 {
                serial - 1
            } else {
                serial + 1
            }
        } else {
            let mut digits: Vec<u8> = container[4..10].bytes().collect();
            let i = self.rng.random_range(0..6);
            let old = digits[i];
            while digits[i] == old {
                digits[i] = b'0' + self.rng.random_range(0..10u8);
            }
            String::from_utf8(digits)
                .expect("digits")
                .parse()
                .expect("digits")
        };
        with_check_digit(owner, &format!("{twin:06}"))
    }

    /// One read of `container`: its body (without `captured_at`) and the
    /// characters the OCR saw.
    fn read_of(&mut self, container: &str, camera: &str) -> (Map<String, Value>, String) {
        let mut body = Map::new();
        if self.rng.random_bool(self.config.unreadable_rate) {
            let text = self.unreadable(container);
            let confidence = self.rng.random_range(0.15..0.45);
            body.insert("container".into(), Value::String(text.clone()));
            body.insert("camera_id".into(), Value::String(camera.into()));
            body.insert("confidence".into(), json!(round3(confidence)));
            return (body, text);
        }
        let mut chars: Vec<char> = container.chars().collect();
        if !self.rng.random_bool(self.config.check_digit_share) {
            chars.pop();
        }
        let mut changed = 0;
        for c in chars.iter_mut() {
            if let Some(other) = lookalike(*c) {
                if self.rng.random_bool(self.config.lookalike_rate) {
                    *c = other;
                    changed += 1;
                    continue;
                }
            }
            if self.rng.random_bool(self.config.random_error_rate) {
                let old = *c;
                while *c == old {
                    *c = ALPHABET[self.rng.random_range(0..ALPHABET.len())] as char;
                }
                changed += 1;
            }
        }
        let text: String = chars.iter().collect();
        // OCR modules report less confidence for what they misread, but
        // not reliably: the noise keeps confidence a hint, not a verdict.
        let confidence = (0.97 - 0.12 * f64::from(changed) + self.rng.random_range(-0.06..0.02))
            .clamp(0.05, 0.999);
        self.shape(&mut body, &text);
        body.insert("camera_id".into(), Value::String(camera.into()));
        body.insert("confidence".into(), json!(round3(confidence)));
        (body, text)
    }

    /// Puts `text` into `body` in one of the shapes OCR modules send.
    fn shape(&mut self, body: &mut Map<String, Value>, text: &str) {
        let full = text.len() == 11;
        let check = |d: &str| match d.parse::<u8>() {
            Ok(n) => json!(n),
            // A check digit misread as a letter cannot be a number.
            Err(_) => json!(d),
        };
        match self.rng.random_range(0..10) {
            // One string with separators, as printed on the box.
            0 => {
                let spaced = if full {
                    format!("{} {} {}", &text[..4], &text[4..10], &text[10..])
                } else {
                    format!("{} {}", &text[..4], &text[4..])
                };
                body.insert("container".into(), Value::String(spaced));
            }
            // The check digit in a field of its own.
            1 if full => {
                body.insert("container".into(), Value::String(text[..10].into()));
                body.insert("check_digit".into(), check(&text[10..]));
            }
            // Owner code and serial apart.
            2 => {
                body.insert("owner".into(), Value::String(text[..4].into()));
                body.insert("number".into(), Value::String(text[4..10].into()));
                if full {
                    body.insert("check_digit".into(), check(&text[10..]));
                }
            }
            _ => {
                body.insert("container".into(), Value::String(text.into()));
            }
        }
    }

    /// 10 or 11 letters and digits that no correction can make valid: a
    /// digit without a look-alike in the owner code and a letter without
    /// one in the serial, each at two places, so that no single
    /// substitution helps either.
    fn unreadable(&mut self, container: &str) -> String {
        let mut b: Vec<u8> = container.bytes().collect();
        if self.rng.random_bool(0.2) {
            b.pop();
        }
        let owner = pick_two(&mut self.rng, 0..4);
        for i in owner {
            b[i] = UNMAPPABLE_DIGITS[self.rng.random_range(0..UNMAPPABLE_DIGITS.len())];
        }
        let serial = pick_two(&mut self.rng, 4..10);
        for i in serial {
            b[i] = UNMAPPABLE_LETTERS[self.rng.random_range(0..UNMAPPABLE_LETTERS.len())];
        }
        String::from_utf8(b).expect("ASCII")
    }
}

fn pick_two(rng: &mut StdRng, range: std::ops::Range<usize>) -> [usize; 2] {
    let a = rng.random_range(range.clone());
    let mut b = a;
    while b == a {
        b = rng.random_range(range.clone());
    }
    [a, b]
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// `owner` and `serial` with the check digit ISO 6346 gives them.
fn with_check_digit(owner: &str, serial: &str) -> String {
    let digit = CheckDigit::compute(
        &OwnerCode::parse(owner).expect("generated owner codes are four letters"),
        &SerialNumber::parse(serial).expect("generated serials are six digits"),
    );
    format!("{owner}{serial}{digit}")
}

/// The first `passages` true passages of the gate seeded with `seed`,
/// starting at `start`: every read as one JSON line in capture order, the
/// body as it would be posted plus `truth` (`container`, `passage`).
pub fn labelled(config: GateConfig, seed: u64, passages: usize, start: DateTime<Utc>) -> String {
    let mut gate = Gate::new(config, seed);
    let mut lines = Vec::new();
    for _ in 0..passages {
        let truck = gate.next_truck();
        let truth = json!({ "container": truck.container, "passage": truck.passage });
        for read in truck.reads {
            lines.push((read.at, lines.len(), read.body, truth.clone()));
        }
    }
    // Lanes overlap in time; the file is in the order a server would
    // receive the reads.
    lines.sort_by_key(|(at, seq, _, _)| (*at, *seq));
    let mut out = String::new();
    for (at, _, mut body, truth) in lines {
        body.insert("captured_at".into(), Value::String(timestamp(start, at)));
        body.insert("truth".into(), truth);
        out.push_str(&Value::Object(body).to_string());
        out.push('\n');
    }
    out
}

/// `start + at`, in RFC 3339 with milliseconds.
fn timestamp(start: DateTime<Utc>, at: Duration) -> String {
    let at = chrono::Duration::from_std(at).expect("a stream spans less than centuries");
    (start + at).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A synthetic crop of a read: the characters the camera saw, on a plate.
pub fn crop_svg(text: &str) -> String {
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"360\" height=\"90\" viewBox=\"0 0 360 90\">\
         <rect x=\"2\" y=\"2\" width=\"356\" height=\"86\" rx=\"6\" fill=\"#f3efe3\" stroke=\"#2b2b2b\" stroke-width=\"3\"/>\
         <text x=\"180\" y=\"57\" font-family=\"DejaVu Sans Mono, Menlo, monospace\" font-size=\"34\" \
         font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111\">{escaped}</text></svg>\n"
    )
}

/// Runs the gate in real time until `shutdown`: each read is handed to
/// `deliver` when its time comes, with `captured_at` set to that moment,
/// together with what the camera saw.
pub async fn run<D, Fut>(config: GateConfig, seed: u64, shutdown: CancellationToken, deliver: D)
where
    D: Fn(Map<String, Value>, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut gate = Gate::new(config, seed);
    let start = tokio::time::Instant::now();
    loop {
        let truck = gate.next_truck();
        tokio::select! {
            _ = tokio::time::sleep_until(start + truck.arrival) => {}
            _ = shutdown.cancelled() => return,
        }
        let deliver = deliver.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            for read in truck.reads {
                tokio::select! {
                    _ = tokio::time::sleep_until(start + read.at) => {}
                    _ = stop.cancelled() => return,
                }
                let mut body = read.body;
                body.insert(
                    "captured_at".into(),
                    Value::String(Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)),
                );
                deliver(body, read.text).await;
            }
        });
    }
}

/// The most demo crop images kept; older ones are deleted, so a demo left
/// running does not fill the disk (their sightings then show no image).
const DEMO_IMAGES_KEPT: usize = 5_000;

/// Where `serve --demo` writes its crop images, and how sightings refer
/// to them.
#[derive(Debug, Clone)]
pub struct DemoImages {
    /// The folder the images are written to.
    dir: std::path::PathBuf,
    /// What goes before a file's name in `cropped_image_ref`: the folder's
    /// path relative to `server.image_dir`.
    prefix: String,
}

impl DemoImages {
    /// Sets up the images of `serve --demo`: with no `server.image_dir`
    /// configured, `demo-images/` beside the store becomes the image
    /// folder, so a newcomer sees images without configuring anything;
    /// with one, the demo writes into its `demo/` subfolder.
    pub fn prepare(config: &mut crate::config::Config) -> std::io::Result<Self> {
        let images = match &config.server.image_dir {
            Some(dir) => Self {
                dir: dir.join("demo"),
                prefix: "demo/".into(),
            },
            None => {
                let parent = config
                    .store
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."));
                let dir = parent.join("demo-images");
                config.server.image_dir = Some(dir.clone());
                Self {
                    dir,
                    prefix: String::new(),
                }
            }
        };
        std::fs::create_dir_all(&images.dir)?;
        Ok(images)
    }
}

/// Writes each read's crop, deleting the oldest beyond [`DEMO_IMAGES_KEPT`].
struct CropWriter {
    images: DemoImages,
    /// Files written, oldest first (those of earlier runs too).
    kept: std::collections::VecDeque<std::path::PathBuf>,
    written: u64,
}

impl CropWriter {
    fn new(images: DemoImages) -> Self {
        // Names start with the time they were written, so name order is
        // age order, across runs.
        let mut old: Vec<std::path::PathBuf> = std::fs::read_dir(&images.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "svg"))
            .collect();
        old.sort();
        Self {
            images,
            kept: old.into(),
            written: 0,
        }
    }

    /// Writes `text` as a crop image and returns its `cropped_image_ref`.
    fn write(&mut self, text: &str) -> std::io::Result<String> {
        self.written += 1;
        let name = format!(
            "{:013}-{:06}.svg",
            Utc::now().timestamp_millis(),
            self.written % 1_000_000
        );
        let path = self.images.dir.join(&name);
        std::fs::write(&path, crop_svg(text))?;
        self.kept.push_back(path);
        while self.kept.len() > DEMO_IMAGES_KEPT {
            if let Some(old) = self.kept.pop_front() {
                let _ = std::fs::remove_file(old);
            }
        }
        Ok(format!("{}{name}", self.images.prefix))
    }
}

/// Starts `serve --demo`: the simulated gate, posting each read to this
/// server at `addr` as a camera would, so the demo takes the same path as
/// real reads (auth, validation, the recognition rules, the exceptions
/// queue). Each read gets a synthetic crop image of what the camera saw.
pub fn spawn_demo(
    actors: &mut tokio::task::JoinSet<()>,
    addr: std::net::SocketAddr,
    config: &crate::config::Config,
    images: DemoImages,
    shutdown: &CancellationToken,
    metrics: &gatelog_metrics::Metrics,
) {
    use secrecy::ExposeSecret;
    let key = match config.auth.ingest_keys.first() {
        Some(k) => Some(k.expose_secret().to_string()),
        None if config.auth.is_open() => None,
        None => {
            tracing::warn!("the demo feed needs an ingest key (auth.ingest_keys); not started");
            return;
        }
    };
    // A server bound to every address is reached on loopback.
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/api/v1/recognitions");
    let gate = GateConfig {
        trucks_per_minute: 12.0,
        return_after: Duration::from_secs(config.dedup.window_secs),
        ..GateConfig::default()
    };
    let crops = std::sync::Arc::new(std::sync::Mutex::new(CropWriter::new(images)));
    let client = reqwest::Client::new();
    crate::supervise::spawn(
        actors,
        gatelog_metrics::Component::Demo,
        shutdown,
        metrics,
        (gate, client, url, key, crops),
        |(gate, client, url, key, crops), token| async move {
            run(gate, rand::random(), token, move |mut body, seen| {
                let (client, url, key) = (client.clone(), url.clone(), key.clone());
                // A poisoned lock only costs the image.
                let crop = crops.lock().ok().map(|mut c| c.write(&seen));
                let video = body
                    .get("camera_id")
                    .and_then(Value::as_str)
                    .map(|c| format!("rtsp://{c}/stream"));
                async move {
                    if let Some(video) = video {
                        body.insert("source_video".into(), Value::String(video));
                    }
                    match crop {
                        Some(Ok(reference)) => {
                            body.insert("cropped_image_ref".into(), Value::String(reference));
                        }
                        Some(Err(e)) => {
                            tracing::debug!(error = %e, "demo crop image not written")
                        }
                        None => {}
                    }
                    let mut req = client.post(&url).json(&body);
                    if let Some(k) = &key {
                        req = req.bearer_auth(k);
                    }
                    if let Err(e) = req.send().await {
                        tracing::debug!(error = %e, "demo read not posted");
                    }
                }
            })
            .await;
            Ok::<(), std::convert::Infallible>(())
        },
    );
    tracing::info!(
        cameras = 3,
        "demo feed running: simulated trucks with OCR mistakes"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use gatelog_core::container::CheckStatus;
    use gatelog_core::ContainerNumber;

    fn start() -> DateTime<Utc> {
        "2024-05-01T06:00:00Z".parse().unwrap()
    }

    fn valid(n: &str) -> bool {
        ContainerNumber::parse(n).is_ok_and(|c| c.check_status() == CheckStatus::Valid)
    }

    /// The text a read's body carries, put back together.
    fn text_of(body: &Map<String, Value>) -> String {
        let s = |k: &str| match body.get(k) {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            _ => String::new(),
        };
        let joined = format!(
            "{}{}{}{}",
            s("container"),
            s("owner"),
            s("number"),
            s("check_digit")
        );
        joined.replace(' ', "")
    }

    #[test]
    fn the_same_seed_gives_the_same_stream_and_another_seed_another() {
        let a = labelled(GateConfig::default(), 7, 30, start());
        let b = labelled(GateConfig::default(), 7, 30, start());
        let c = labelled(GateConfig::default(), 8, 30, start());
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_labelled_stream_has_the_passages_asked_for_with_valid_truths_in_time_order() {
        let text = labelled(GateConfig::default(), 1, 200, start());
        let mut labels = std::collections::HashSet::new();
        let mut last = String::new();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            let truth = &v["truth"];
            assert!(valid(truth["container"].as_str().unwrap()), "{line}");
            labels.insert(truth["passage"].as_str().unwrap().to_string());
            let at = v["captured_at"].as_str().unwrap().to_string();
            // RFC 3339 UTC with fixed-width fields sorts as text.
            assert!(at >= last, "{at} before {last}");
            last = at;
        }
        assert_eq!(labels.len(), 200);
    }

    #[test]
    fn noiseless_reads_are_the_truth_in_every_shape() {
        let config = GateConfig {
            lookalike_rate: 0.0,
            random_error_rate: 0.0,
            check_digit_share: 1.0,
            unreadable_rate: 0.0,
            ..GateConfig::default()
        };
        let mut gate = Gate::new(config, 3);
        let mut shapes = std::collections::HashSet::new();
        for _ in 0..100 {
            let truck = gate.next_truck();
            assert!((3..=15).contains(&truck.reads.len()));
            for read in &truck.reads {
                assert_eq!(text_of(&read.body), truck.container);
                assert_eq!(read.text, truck.container);
                let mut keys: Vec<&str> = read.body.keys().map(String::as_str).collect();
                keys.sort();
                shapes.insert(keys.join(","));
            }
        }
        // One string, a separate check digit, and owner/number apart.
        assert_eq!(shapes.len(), 3, "{shapes:?}");
    }

    #[test]
    fn look_alike_noise_only_swaps_look_alikes() {
        let config = GateConfig {
            lookalike_rate: 0.5,
            random_error_rate: 0.0,
            check_digit_share: 1.0,
            unreadable_rate: 0.0,
            ..GateConfig::default()
        };
        let mut gate = Gate::new(config, 4);
        let mut swaps = 0;
        for _ in 0..50 {
            let truck = gate.next_truck();
            for read in &truck.reads {
                for (seen, truth) in read.text.chars().zip(truck.container.chars()) {
                    if seen != truth {
                        assert_eq!(lookalike(truth), Some(seen));
                        swaps += 1;
                    }
                }
            }
        }
        assert!(swaps > 0);
    }

    #[test]
    fn unreadable_reads_have_ten_or_eleven_characters_that_cannot_be_a_number() {
        let config = GateConfig {
            unreadable_rate: 1.0,
            ..GateConfig::default()
        };
        let mut gate = Gate::new(config, 5);
        for _ in 0..50 {
            for read in gate.next_truck().reads {
                let t = read.text;
                assert!(
                    (10..=11).contains(&t.len()) && t.bytes().all(|b| b.is_ascii_alphanumeric())
                );
                let wrong_in_owner = t[..4]
                    .bytes()
                    .filter(|b| UNMAPPABLE_DIGITS.contains(b))
                    .count();
                let wrong_in_serial = t[4..10]
                    .bytes()
                    .filter(|b| UNMAPPABLE_LETTERS.contains(b))
                    .count();
                assert!(wrong_in_owner >= 2 && wrong_in_serial >= 2, "{t}");
            }
        }
    }

    #[test]
    fn twins_are_one_serial_digit_apart_and_follow_in_the_same_lane() {
        let config = GateConfig {
            twin_rate: 1.0,
            return_rate: 0.0,
            ..GateConfig::default()
        };
        let mut gate = Gate::new(config, 6);
        let mut prev = gate.next_truck();
        for _ in 0..50 {
            let next = gate.next_truck();
            assert!(valid(&next.container));
            assert_eq!(next.container[..4], prev.container[..4]);
            let serial_diff = next.container[4..10]
                .chars()
                .zip(prev.container[4..10].chars())
                .filter(|(a, b)| a != b)
                .count();
            let a: i64 = next.container[4..10].parse().unwrap();
            let b: i64 = prev.container[4..10].parse().unwrap();
            assert!(
                serial_diff == 1 || (a - b).abs() == 1,
                "{} {}",
                prev.container,
                next.container
            );
            assert_eq!(next.camera, prev.camera);
            assert!(next.reads[0].at > prev.reads.last().unwrap().at);
            prev = next;
        }
    }

    #[test]
    fn returns_come_back_after_the_window() {
        let config = GateConfig {
            twin_rate: 0.0,
            return_rate: 0.5,
            ..GateConfig::default()
        };
        let window = config.return_after;
        let mut gate = Gate::new(config, 7);
        let mut left: std::collections::HashMap<String, Duration> = Default::default();
        let mut returns = 0;
        for _ in 0..300 {
            let truck = gate.next_truck();
            if let Some(prev) = left.get(&truck.container) {
                assert!(truck.reads[0].at > *prev + window);
                returns += 1;
            }
            left.insert(truck.container.clone(), truck.reads.last().unwrap().at);
        }
        assert!(returns > 0);
    }

    #[test]
    fn the_crop_shows_the_text() {
        let svg = crop_svg("MSCU1234566");
        assert!(svg.starts_with("<svg") && svg.contains(">MSCU1234566</text>"));
        assert!(crop_svg("A<B").contains("A&lt;B"));
    }
}
