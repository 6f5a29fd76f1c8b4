//! The query string of `GET /api/v1/logs`: filters, limit, order and
//! cursors, through `routes::logs::parse_filter`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gatelog_fuzz::properties::query_string(data));
