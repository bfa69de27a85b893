//! Remote-write bodies: snappy, then the in-place protobuf readers the receiver uses. They
//! must never panic; the 1.0 reader must agree with prost's derived decoder (the same
//! requests accepted, the same series, labels and samples read), and the 2.0 reader's series
//! must point inside what it read.
#![no_main]

#[path = "../../src/prompb/mod.rs"]
#[allow(dead_code)]
mod prompb;

use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    // Half the inputs are snappy frames, as a sender's body; all are tried as protobuf too.
    if let Ok(body) = snap::raw::Decoder::new().decompress_vec(data) {
        check(&body);
    }
    check(data);
});

fn check(body: &[u8]) {
    if let Ok(view) = prompb::view_v2::decode(body) {
        for s in &view.series {
            assert!(s.labels.end <= view.labels.len() && s.samples.end <= view.samples.len());
        }
    }
    let view = prompb::view::WriteRequestView::decode(body);
    let derived = prompb::WriteRequest::decode(body);
    let (Ok(view), Ok(derived)) = (view, derived) else {
        // prost's decoder also checks UTF-8 in labels and fields the view skips; the view
        // may accept what it refuses, never the other way round.
        if let (Err(_), Ok(derived)) = (
            prompb::view::WriteRequestView::decode(body),
            prompb::WriteRequest::decode(body),
        ) {
            panic!("the view refused a request prost decodes: {derived:?}");
        }
        return;
    };
    assert_eq!(view.series.len(), derived.timeseries.len());
    for (series, ts) in view.series.iter().zip(&derived.timeseries) {
        let labels = view.labels_of(series);
        assert_eq!(labels.len(), ts.labels.len());
        for ((name, value), label) in labels.iter().zip(&ts.labels) {
            assert_eq!(*name, label.name.as_bytes());
            assert_eq!(*value, label.value.as_bytes());
        }
        let samples = view.samples_of(series);
        assert_eq!(samples.len(), ts.samples.len());
        for ((t, v), s) in samples.iter().zip(&ts.samples) {
            assert_eq!(*t, s.timestamp);
            assert_eq!(v.to_bits(), s.value.to_bits());
        }
    }
}
