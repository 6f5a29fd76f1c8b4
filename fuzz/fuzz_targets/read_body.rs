//! The JSON body of `POST /api/v1/recognitions`, single or batch, taken
//! apart as the route does and read with `wire::raw_read`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gatelog_fuzz::properties::read_body(data));
