//! Image references (`berth::image::reference`): parse, and a parsed reference prints back to
//! a string that parses to the same reference.
#![no_main]

use berth::image::reference::{Digest, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(d) = Digest::parse(s) {
        assert_eq!(d.hex().len(), 64);
        assert_eq!(Digest::parse(d.as_str()).ok(), Some(d));
    }
    let Ok(r) = Reference::parse(s) else {
        return;
    };
    let _ = (r.name(), r.tagged(), r.manifest_reference());
    let printed = r.to_string();
    match Reference::parse(&printed) {
        Ok(again) => assert_eq!(again, r, "{s:?} printed as {printed:?}"),
        Err(e) => panic!("{s:?} parsed, but its printed form {printed:?} does not: {e}"),
    }
});
