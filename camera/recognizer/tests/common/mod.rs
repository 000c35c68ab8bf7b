//! The synthetic frame the tests read (tests/fixtures/make_fixture.py; no photograph), shared by
//! the test files that use it.

use std::path::Path;

use anpr_recognizer::{BBox, open_image};

/// The 640×360 synthetic frame: a plate reading ABC1234 drawn at x 230..410, y 180..232, and a
/// dealer sticker "AUTO CENTER" written from (150, 110).
pub fn synthetic_frame() -> image::DynamicImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/synthetic_plate.jpg");
    open_image(&path).expect("fixture image")
}

/// Asserts that `bbox` is centred on the synthetic frame's plate.
pub fn assert_on_the_plate(bbox: &BBox) {
    let (cx, cy) = bbox.center();
    assert!(
        (230.0..410.0).contains(&cx) && (180.0..232.0).contains(&cy),
        "box {bbox:?}"
    );
}
