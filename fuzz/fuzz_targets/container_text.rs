//! Container-number parsing and correction: `ContainerNumber::parse`,
//! `recognize::interpret` and `Read::interpret` on any text.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| gatelog_fuzz::properties::container_text(data));
