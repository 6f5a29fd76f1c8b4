//! The reads the loads post: one distinct, valid container number each.
//!
//! Read `n` has owner code `OWNERS[n % 20]` and the serial
//! `(n / 20 × 104729 + 12345) mod 1,000,000`. The multiplier is prime to
//! 1,000,000, so serials do not repeat within 20,000,000 reads, and
//! consecutive reads land far apart: a real gate sees unrelated
//! containers, not numbers one digit apart, which the fold rule would
//! take for near misses of one another. The wrk script
//! ([`WRK_SCRIPT`]) computes the same numbers.

use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};

/// Owner codes of the generated reads and passages.
pub const OWNERS: [&str; 20] = [
    "MSCU", "MAEU", "CMAU", "HLXU", "OOLU", "EGHU", "TGHU", "CSQU", "SEGU", "TCLU", "TRHU", "FCIU",
    "GESU", "BMOU", "CAIU", "DFSU", "HASU", "ONEU", "YMLU", "ZIMU",
];

/// The container number of read `n`, with its check digit.
pub fn container(n: u64) -> String {
    let owner = OWNERS[(n % OWNERS.len() as u64) as usize];
    let serial = format!(
        "{:06}",
        ((n / OWNERS.len() as u64) * 104_729 + 12_345) % 1_000_000
    );
    let d = CheckDigit::compute(
        &OwnerCode::parse(owner).expect("valid owner code"),
        &SerialNumber::parse(&serial).expect("six digits"),
    );
    format!("{owner}{serial}{}", d.value())
}

/// The JSON body of read `n`, captured now.
pub fn body(n: u64) -> serde_json::Value {
    serde_json::json!({
        "container": container(n),
        "captured_at": chrono::Utc::now().to_rfc3339(),
        "camera_id": "bench",
    })
}

/// A wrk script that posts read `base + thread × stride + k` as its k-th
/// request on each thread, and prints one line the bench parses.
pub const WRK_SCRIPT: &str = r#"
-- gatelog-bench: one distinct, valid read per request (see reads.rs).
local owners = {"MSCU","MAEU","CMAU","HLXU","OOLU","EGHU","TGHU","CSQU","SEGU","TCLU",
                "TRHU","FCIU","GESU","BMOU","CAIU","DFSU","HASU","ONEU","YMLU","ZIMU"}
local values = {}
local v = 10
for c = string.byte("A"), string.byte("Z") do
  if v % 11 == 0 then v = v + 1 end
  values[string.char(c)] = v
  v = v + 1
end
for d = 0, 9 do values[tostring(d)] = d end

local function container(n)
  local owner = owners[(n % 20) + 1]
  local serial = string.format("%06d", (math.floor(n / 20) * 104729 + 12345) % 1000000)
  local s = owner .. serial
  local sum = 0
  for i = 1, 10 do sum = sum + values[s:sub(i, i)] * 2 ^ (i - 1) end
  return s .. tostring(math.floor(sum % 11) % 10)
end

local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

local base, stride, k = 0, 0, 0
function init(args)
  base = tonumber(args[1])
  stride = tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  local n = base + id * stride + k
  k = k + 1
  local body = string.format(
    '{"container":"%s","captured_at":"%s","camera_id":"bench"}',
    container(n), os.date("!%Y-%m-%dT%H:%M:%SZ"))
  return wrk.format(nil, nil, nil, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "gatelog-bench: requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reads_are_distinct_and_valid() {
        let numbers: HashSet<String> = (0..100_000).map(container).collect();
        assert_eq!(numbers.len(), 100_000);
        for c in numbers.iter().take(1000) {
            gatelog_core::ContainerNumber::parse(c).expect("a valid number");
        }
        // The known first read: MSCU 012345 and its check digit.
        assert!(container(0).starts_with("MSCU012345"));
    }
}
