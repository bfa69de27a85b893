//! The head's compressed sample chunks: Gorilla-style delta-of-delta timestamps and XOR
//! floats in one bit stream, as Prometheus's `tsdb/chunkenc` XOR chunk does.
//!
//! A chunk is appendable: it keeps the encoder's running state, so an in-order sample costs
//! a few bits and no re-encoding. Exporter data compresses well this way: samples on a
//! scrape grid have a delta-of-delta of 0 (one bit), constants an XOR of 0 (one bit), and
//! slowly moving gauges and counters share most of their leading and trailing bits.
//!
//! Start timestamps (most sources send none) go into a second stream, created only once a
//! chunk sees one: a counter's start time rarely changes, so it too costs one bit a sample.
//!
//! Hand-written rather than a crate: the Gorilla crates on crates.io are either
//! unmaintained (`tsz`) or tied to another product's storage format, and the codec is two
//! small bit-level loops that need Prometheus's exact float semantics (every NaN payload,
//! including the staleness marker, and -0.0 must survive bit for bit).

/// Samples a chunk takes before the head starts a new one, as Prometheus's head does.
pub const SAMPLES_PER_CHUNK: usize = 120;

/// A bit stream, written most significant bit first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    bytes: Vec<u8>,
    /// Bits used in the last byte (0 means the last byte is full or there is none).
    used: u8,
}

impl BitWriter {
    fn write_bit(&mut self, bit: bool) {
        self.write_bits(bit as u64, 1);
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64): first into the free bits of the
    /// last byte, then whole bytes at once, then the rest into a new last byte.
    fn write_bits(&mut self, value: u64, n: u8) {
        let mut n = u32::from(n);
        if n == 0 {
            return;
        }
        let value = if n == 64 {
            value
        } else {
            value & ((1u64 << n) - 1)
        };
        if self.used != 0 {
            let free = 8 - u32::from(self.used);
            let take = free.min(n);
            let chunk = (value >> (n - take)) as u8 & ((1u16 << take) - 1) as u8;
            if let Some(last) = self.bytes.last_mut() {
                *last |= chunk << (free - take);
            }
            self.used = ((u32::from(self.used) + take) % 8) as u8;
            n -= take;
        }
        let whole = (n / 8) as usize;
        if whole > 0 {
            n -= 8 * whole as u32;
            let bytes = (value >> n).to_be_bytes();
            self.bytes.extend_from_slice(&bytes[8 - whole..]);
        }
        if n > 0 {
            self.bytes.push(((value << (8 - n)) & 0xff) as u8);
            self.used = n as u8;
        }
    }

    fn shrink(&mut self) {
        self.bytes.shrink_to_fit();
    }

    fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
    }
}

/// Reads what [`BitWriter`] wrote.
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    fn read_bit(&mut self) -> bool {
        self.read_bits(1) == 1
    }

    /// Reads `n` bits (`n` ≤ 64). Past the end it reads zeros: the chunk's sample count,
    /// not the stream, says where the data ends.
    fn read_bits(&mut self, mut n: u8) -> u64 {
        let mut out = 0u64;
        while n > 0 {
            let byte = self.bytes.get(self.pos / 8).copied().unwrap_or(0);
            let offset = (self.pos % 8) as u8;
            let avail = 8 - offset;
            let take = avail.min(n);
            let bits = (byte >> (avail - take)) & ((1u16 << take) - 1) as u8;
            out = (out << take) | bits as u64;
            self.pos += take as usize;
            n -= take;
        }
        out
    }
}

/// The delta-of-delta buckets: a prefix of ones ended by a zero, then the value's bits.
/// The first catches scrape jitter (a few ms either side of the grid) in 9 bits, where
/// Prometheus's 14-bit first bucket spends 16; the others take changed intervals.
const DOD_BUCKETS: [u8; 3] = [7, 14, 20];

fn fits_in(value: i64, bits: u8) -> bool {
    let half = 1i64 << (bits - 1);
    -(half - 1) <= value && value <= half
}

fn write_dod(w: &mut BitWriter, dod: i64) {
    if dod == 0 {
        w.write_bit(false);
        return;
    }
    for (i, &bits) in DOD_BUCKETS.iter().enumerate() {
        if fits_in(dod, bits) {
            // i + 1 ones and a zero.
            w.write_bits((1u64 << (i + 2)) - 2, i as u8 + 2);
            w.write_bits(dod as u64 & ((1u64 << bits) - 1), bits);
            return;
        }
    }
    w.write_bits(0b1111, 4);
    w.write_bits(dod as u64, 64);
}

fn read_dod(r: &mut BitReader) -> i64 {
    let mut ones = 0;
    while ones < 4 && r.read_bit() {
        ones += 1;
    }
    if ones == 0 {
        return 0;
    }
    if ones == 4 {
        return r.read_bits(64) as i64;
    }
    let bits = DOD_BUCKETS[ones - 1];
    let raw = r.read_bits(bits) as i64;
    if raw > 1i64 << (bits - 1) {
        raw - (1i64 << bits)
    } else {
        raw
    }
}

/// The running state of an XOR float stream (also used for start timestamps' bits).
#[derive(Debug, Clone, Copy, Default)]
struct XorState {
    prev: u64,
    /// The meaningful-bit window of the last non-zero XOR; `None` before the first one.
    window: Option<(u8, u8)>,
}

impl XorState {
    fn write(&mut self, w: &mut BitWriter, bits: u64) {
        let xor = bits ^ self.prev;
        self.prev = bits;
        if xor == 0 {
            w.write_bit(false);
            return;
        }
        w.write_bit(true);
        // Five bits hold the leading-zero count, so it is capped at 31.
        let leading = (xor.leading_zeros() as u8).min(31);
        let trailing = xor.trailing_zeros() as u8;
        if let Some((pl, pt)) = self.window
            && leading >= pl
            && trailing >= pt
        {
            w.write_bit(false);
            w.write_bits(xor >> pt, 64 - pl - pt);
            return;
        }
        let significant = 64 - leading - trailing;
        w.write_bit(true);
        w.write_bits(leading as u64, 5);
        // 64 significant bits do not fit in six bits; 0 stands for 64 (0 never occurs).
        w.write_bits((significant % 64) as u64, 6);
        w.write_bits(xor >> trailing, significant);
        self.window = Some((leading, trailing));
    }

    fn read(&mut self, r: &mut BitReader) -> u64 {
        if !r.read_bit() {
            return self.prev;
        }
        let (leading, trailing) = if r.read_bit() {
            let leading = r.read_bits(5) as u8;
            let significant = match r.read_bits(6) as u8 {
                0 => 64,
                n => n,
            };
            let window = (leading, 64 - leading - significant);
            self.window = Some(window);
            window
        } else {
            self.window.unwrap_or((0, 0))
        };
        let significant = 64 - leading - trailing;
        let xor = r.read_bits(significant) << trailing;
        self.prev ^= xor;
        self.prev
    }
}

/// The encoder state needed to append to a chunk's streams.
#[derive(Debug, Clone, Copy, Default)]
struct AppendState {
    prev_delta: i64,
    value: XorState,
    start: XorState,
}

/// A run of one series' samples, sorted by timestamp and unique, compressed.
#[derive(Debug, Clone)]
pub struct Chunk {
    min_time: i64,
    max_time: i64,
    count: u16,
    stream: BitWriter,
    /// Start timestamps' bits, XOR-encoded; absent while every start timestamp is 0. Boxed,
    /// so chunks without any (nearly all) carry a pointer, not a second buffer's header.
    starts: Option<Box<BitWriter>>,
    /// Present while the chunk takes appends; dropped (and the streams shrunk) once closed.
    appender: Option<Box<AppendState>>,
}

impl Chunk {
    /// A chunk holding `samples` (sorted by timestamp, unique), open for appends.
    pub fn from_samples(samples: &[(i64, f64, i64)]) -> Chunk {
        const _: () = assert!(size_of::<Chunk>() <= 72, "a chunk's fixed part stays small");
        let mut chunk = Chunk {
            min_time: 0,
            max_time: 0,
            count: 0,
            stream: BitWriter::default(),
            starts: None,
            appender: Some(Box::default()),
        };
        for &(t, v, s) in samples {
            chunk.append(t, v, s);
        }
        chunk
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn min_time(&self) -> i64 {
        self.min_time
    }

    pub fn max_time(&self) -> i64 {
        self.max_time
    }

    pub fn is_open(&self) -> bool {
        self.appender.is_some()
    }

    #[cfg(test)]
    fn has_start_timestamps(&self) -> bool {
        self.starts.is_some()
    }

    /// Heap bytes the chunk holds, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.stream.heap_bytes()
            + self
                .starts
                .as_ref()
                .map_or(0, |w| size_of::<BitWriter>() + w.heap_bytes())
            + self
                .appender
                .as_ref()
                .map_or(0, |_| size_of::<AppendState>())
    }

    /// Appends a sample newer than every sample in the chunk. The chunk must be open and
    /// hold fewer than `u16::MAX` samples.
    pub fn append(&mut self, t: i64, v: f64, start: i64) {
        if self.appender.is_none() && self.count > 0 {
            // A closed chunk has lost its encoder state: encode it again, then append.
            *self = Chunk::from_samples(&self.samples());
        }
        let state = self.appender.get_or_insert_with(Box::default);
        debug_assert!(self.count == 0 || t > self.max_time);
        match self.count {
            0 => {
                self.stream.write_bits(t as u64, 64);
                self.stream.write_bits(v.to_bits(), 64);
                state.value.prev = v.to_bits();
                self.min_time = t;
            }
            _ => {
                let delta = t - self.max_time;
                write_dod(&mut self.stream, delta - state.prev_delta);
                state.prev_delta = delta;
                state.value.write(&mut self.stream, v.to_bits());
            }
        }
        if start != 0 && self.starts.is_none() {
            // Earlier samples had no start timestamp: they are zeros in the stream.
            let mut w = BitWriter::default();
            for _ in 0..self.count {
                state.start.write(&mut w, 0);
            }
            self.starts = Some(Box::new(w));
        }
        if let Some(w) = self.starts.as_mut() {
            state.start.write(w, start as u64);
        }
        self.max_time = t;
        self.count += 1;
    }

    /// Stops taking appends and gives back the slack of the streams' buffers.
    pub fn close(&mut self) {
        self.appender = None;
        self.stream.shrink();
        if let Some(s) = self.starts.as_mut() {
            s.shrink();
        }
    }

    /// Every sample, in time order.
    pub fn iter(&self) -> ChunkIter<'_> {
        ChunkIter {
            stream: BitReader::new(&self.stream.bytes),
            starts: self.starts.as_ref().map(|w| BitReader::new(&w.bytes)),
            remaining: self.count,
            first: true,
            t: 0,
            delta: 0,
            value: XorState::default(),
            start: XorState::default(),
        }
    }

    /// Every sample as `(timestamp, value, start timestamp)`.
    pub fn samples(&self) -> Vec<(i64, f64, i64)> {
        self.iter().collect()
    }
}

/// Decodes a chunk sample by sample.
pub struct ChunkIter<'a> {
    stream: BitReader<'a>,
    starts: Option<BitReader<'a>>,
    remaining: u16,
    first: bool,
    t: i64,
    delta: i64,
    value: XorState,
    start: XorState,
}

impl Iterator for ChunkIter<'_> {
    type Item = (i64, f64, i64);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let v = if self.first {
            self.first = false;
            self.t = self.stream.read_bits(64) as i64;
            self.value.prev = self.stream.read_bits(64);
            self.value.prev
        } else {
            self.delta += read_dod(&mut self.stream);
            self.t += self.delta;
            self.value.read(&mut self.stream)
        };
        let start = match self.starts.as_mut() {
            Some(r) => self.start.read(r) as i64,
            None => 0,
        };
        Some((self.t, f64::from_bits(v), start))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

impl ExactSizeIterator for ChunkIter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;

    fn round_trip(samples: &[(i64, f64, i64)]) -> Chunk {
        let chunk = Chunk::from_samples(samples);
        let back = chunk.samples();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!(a.0, b.0, "timestamp");
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value bits of {a:?} vs {b:?}");
            assert_eq!(a.2, b.2, "start timestamp");
        }
        chunk
    }

    #[test]
    fn special_floats_survive_bit_for_bit() {
        let specials = [
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::from_bits(STALE_NAN_BITS),
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            1.0,
            f64::from_bits(1),
            f64::from_bits(u64::MAX),
        ];
        let samples: Vec<(i64, f64, i64)> = specials
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * 15_000, *v, 0))
            .collect();
        round_trip(&samples);
        // Every pair in both orders, so each XOR window transition is exercised.
        let mut pairs = Vec::new();
        for a in specials {
            for b in specials {
                pairs.push(a);
                pairs.push(b);
            }
        }
        let samples: Vec<(i64, f64, i64)> = pairs
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, *v, 0))
            .collect();
        for part in samples.chunks(SAMPLES_PER_CHUNK) {
            round_trip(part);
        }
    }

    #[test]
    fn every_timestamp_bucket_and_extreme_round_trips() {
        let deltas = [
            1,
            15_000,
            15_001,
            14_999,
            15_064,
            15_065,
            14_937,
            8_192,
            8_193,
            -8_191,
            65_536,
            65_537,
            524_288,
            524_289,
            1 << 40,
            1,
            3,
            i32::MAX as i64,
        ];
        let mut t = -1_000_000_000i64;
        let mut samples = vec![(t, 1.0, 0)];
        for d in deltas {
            t += d.max(1);
            samples.push((t, t as f64, 0));
        }
        round_trip(&samples);
        round_trip(&[(i64::MIN + 1, 1.0, 0), (0, 2.0, 0), (i64::MAX - 1, 3.0, 0)]);
        round_trip(&[(42, 7.0, 0)]);
        assert_eq!(round_trip(&[]).len(), 0);
    }

    #[test]
    fn start_timestamps_cost_nothing_until_one_arrives() {
        let plain = round_trip(&[(1, 1.0, 0), (2, 2.0, 0)]);
        assert!(!plain.has_start_timestamps());
        let mixed = round_trip(&[
            (1, 1.0, 0),
            (2, 2.0, 0),
            (3, 3.0, 100),
            (4, 4.0, 100),
            (5, 0.0, 5),
        ]);
        assert!(mixed.has_start_timestamps());
    }

    #[test]
    fn appending_after_decoding_state_matches_encoding_at_once() {
        let samples: Vec<(i64, f64, i64)> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| (i * 15_000 + (i % 7) * 3, (i as f64 * 0.37).sin() * 1e3, 0))
            .collect();
        let mut a = Chunk::from_samples(&samples[..50]);
        for &(t, v, s) in &samples[50..] {
            a.append(t, v, s);
        }
        a.close();
        assert!(!a.is_open());
        assert_eq!(a.samples(), Chunk::from_samples(&samples).samples());
        assert_eq!(a.min_time(), 0);
        assert_eq!(a.max_time(), samples.last().unwrap().0);
    }

    #[test]
    fn exporter_like_data_compresses_to_a_few_bytes_a_sample() {
        // A counter on a 15 s grid with scrape jitter, a constant, and a slow gauge.
        let mut counter = Vec::new();
        let mut constant = Vec::new();
        let mut gauge = Vec::new();
        let mut c = 1000.0;
        for i in 0..SAMPLES_PER_CHUNK as i64 {
            let t = 1_700_000_000_000 + i * 15_000 + (i * 7919 % 11) - 5;
            c += ((i * 31) % 17) as f64;
            counter.push((t, c, 0));
            constant.push((t, 1.0, 0));
            gauge.push((t, 512.0 * 1024.0 * 1024.0 + ((i / 10) * 4096) as f64, 0));
        }
        // Raw, a sample is 16 bytes. The jittered timestamps cost 9 bits each in all three.
        for (name, samples, most) in [
            ("counter", &counter, 2.5),
            ("constant", &constant, 1.5),
            ("gauge", &gauge, 1.5),
        ] {
            let mut chunk = round_trip(samples);
            chunk.close();
            let per_sample = chunk.heap_bytes() as f64 / samples.len() as f64;
            println!("{name}: {per_sample:.2} bytes a sample");
            assert!(per_sample < most, "{name}: {per_sample:.2} bytes a sample");
        }
    }

    #[test]
    fn random_streams_round_trip() {
        // A small deterministic generator: no test dependency for randomness.
        let mut next = crate::testutil::xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200 {
            let mut t = (next() % 1_000_000) as i64;
            let n = (next() % 300) as usize;
            let samples: Vec<(i64, f64, i64)> = (0..n)
                .map(|_| {
                    t += 1 + (next() % 100_000) as i64;
                    let v = match next() % 4 {
                        0 => f64::from_bits(next()),
                        1 => (next() % 100) as f64,
                        2 => 0.5,
                        _ => -((next() % 1000) as f64) / 7.0,
                    };
                    let s = if next().is_multiple_of(3) {
                        (next() % 1000) as i64
                    } else {
                        0
                    };
                    (t, v, s)
                })
                .collect();
            round_trip(&samples);
        }
    }
}
