//! The head's compressed sample chunks: Gorilla-style delta-of-delta timestamps and XOR
//! floats in one bit stream, as Prometheus's `tsdb/chunkenc` XOR chunk does.
//!
//! A chunk is appendable: it keeps the encoder's running state, so an in-order sample costs
//! a few bits and no re-encoding. Exporter data compresses well this way: samples on a
//! scrape grid have a delta-of-delta of 0 (one bit), constants an XOR of 0 (one bit), and
//! slowly moving gauges and counters share most of their leading and trailing bits.
//!
//! A chunk that closes is coded again if that is smaller: exporters' values are mostly
//! decimals written as text (counters of whole requests or bytes, gauges with two decimals),
//! and such a value is an integer `n` over a power of ten. The closed chunk then keeps the
//! integers' deltas (or deltas of deltas) in buckets of 8, 16 or 32 bits, where XOR spends
//! 20 to 50 bits on a counter's or a noisy gauge's changing mantissa. A value off the scale
//! (NaN, staleness markers, infinities, -0.0) is written raw in place. The decoder divides
//! `n` by the power of ten, which gives back the very bits (IEEE division is correctly
//! rounded); each value is checked that way before it is coded so.
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
    #[inline]
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
            if n <= free {
                // The common case (a bit or a few): they fit in the last byte.
                if let Some(last) = self.bytes.last_mut() {
                    *last |= (value << (free - n)) as u8;
                }
                self.used = ((u32::from(self.used) + n) % 8) as u8;
                return;
            }
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
    /// The first byte of `bytes` not yet loaded into `buf`.
    next: usize,
    /// The bits not yet read, the next one highest; the top `avail` are loaded. The bits
    /// below them are zero or, after a whole-word load, the bytes from `next` on, which the
    /// next load puts in the same places again.
    buf: u64,
    avail: u32,
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader {
            bytes,
            next: 0,
            buf: 0,
            avail: 0,
        }
    }

    /// Loads whole bytes until at least 57 bits are loaded: eight bytes at once where the
    /// stream has them, else byte by byte, zeros past the end.
    fn refill(&mut self) {
        let room = (64 - self.avail) / 8;
        match self
            .bytes
            .get(self.next..)
            .and_then(|b| b.first_chunk::<8>())
        {
            Some(word) if self.avail < 64 => {
                self.buf |= u64::from_be_bytes(*word) >> self.avail;
                self.next += room as usize;
                self.avail += room * 8;
            }
            _ => {
                for _ in 0..room {
                    let byte = self.bytes.get(self.next).copied().unwrap_or(0);
                    self.buf |= u64::from(byte) << (56 - self.avail);
                    self.next += 1;
                    self.avail += 8;
                }
            }
        }
    }

    /// Drops the next `n` (≤ `avail`) bits.
    fn consume(&mut self, n: u32) {
        self.buf = self.buf.checked_shl(n).unwrap_or(0);
        self.avail -= n;
    }

    fn read_bit(&mut self) -> bool {
        if self.avail == 0 {
            self.refill();
        }
        let bit = self.buf >> 63;
        self.consume(1);
        bit == 1
    }

    /// Reads `n` bits (`n` ≤ 64). Past the end it reads zeros: the chunk's sample count,
    /// not the stream, says where the data ends.
    fn read_bits(&mut self, n: u8) -> u64 {
        let n = u32::from(n.min(64));
        if n > 56 {
            // More than a load guarantees: in two parts.
            let high = self.read_bits((n - 32) as u8);
            return (high << 32) | self.read_bits(32);
        }
        if n == 0 {
            return 0;
        }
        if self.avail < n {
            self.refill();
        }
        let bits = self.buf >> (64 - n);
        self.consume(n);
        bits
    }

    /// Reads a prefix of up to `most` (< 8) ones, and the zero that ends it when there are
    /// fewer: the bucket prefixes of the streams' variable-length integers.
    fn read_ones(&mut self, most: u32) -> usize {
        if self.avail <= most {
            self.refill();
        }
        let ones = self.buf.leading_ones().min(most);
        self.consume(ones + u32::from(ones < most));
        ones as usize
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

/// Bits [`write_dod`] spends on `dod`.
fn dod_bits(dod: i64) -> usize {
    if dod == 0 {
        return 1;
    }
    match DOD_BUCKETS.iter().position(|&bits| fits_in(dod, bits)) {
        Some(i) => i + 2 + DOD_BUCKETS[i] as usize,
        None => 4 + 64,
    }
}

fn read_dod(r: &mut BitReader) -> i64 {
    let ones = r.read_ones(4);
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

/// How a chunk's values are coded in its stream, between the timestamps' deltas of deltas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Values {
    /// Gorilla's XOR of each value's bits with the previous one's.
    Xor,
    /// Each value is `n / 10^scale` with `n` an integer; the stream holds `n`'s deltas
    /// (`second_order`: deltas of deltas), or a raw value that is not on the scale.
    Decimal { scale: u8, second_order: bool },
}

/// The largest power of ten a decimal chunk divides by.
const MAX_SCALE: usize = 9;

const POW10: [f64; MAX_SCALE + 1] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/// Integers up to this magnitude are exact in an f64, so `n / 10^scale` is correctly rounded.
const MAX_EXACT: f64 = (1u64 << 53) as f64;

/// `n` if `v` is exactly `n / 10^scale`, bit for bit (so never -0.0, NaN or an infinity).
fn on_scale(v: f64, scale: usize) -> Option<i64> {
    let pow = POW10[scale];
    let n = (v * pow).round();
    if n.is_nan() || n.abs() >= MAX_EXACT {
        return None;
    }
    let n = n as i64;
    ((n as f64 / pow).to_bits() == v.to_bits()).then_some(n)
}

/// The integer buckets of decimal values: a prefix of ones ended by a zero, then the
/// value's bits; `0` alone is 0. Five ones: a raw 64-bit float follows.
const INT_BUCKETS: [u8; 4] = [8, 16, 32, 64];

fn write_int(w: &mut BitWriter, d: i64) {
    if d == 0 {
        w.write_bit(false);
        return;
    }
    for (i, &bits) in INT_BUCKETS.iter().enumerate() {
        if bits == 64 || fits_in(d, bits) {
            w.write_bits((1u64 << (i + 2)) - 2, i as u8 + 2);
            w.write_bits(d as u64, bits);
            return;
        }
    }
}

/// Bits [`write_int`] spends on `d`.
fn int_bits(d: i64) -> usize {
    if d == 0 {
        return 1;
    }
    let i = INT_BUCKETS
        .iter()
        .position(|&bits| bits == 64 || fits_in(d, bits))
        .unwrap_or(INT_BUCKETS.len() - 1);
    i + 2 + INT_BUCKETS[i] as usize
}

/// Bits [`write_raw`] spends.
const RAW_BITS: usize = 5 + 64;

fn write_raw(w: &mut BitWriter, v: f64) {
    w.write_bits(0b11111, 5);
    w.write_bits(v.to_bits(), 64);
}

/// An integer step, or `Err` with the bits of a raw value.
fn read_int(r: &mut BitReader) -> Result<i64, u64> {
    match r.read_ones(5) {
        0 => Ok(0),
        5 => Err(r.read_bits(64)),
        ones => {
            let bits = INT_BUCKETS[ones - 1];
            let raw = r.read_bits(bits);
            if bits == 64 {
                return Ok(raw as i64);
            }
            let raw = raw as i64;
            Ok(if raw > 1i64 << (bits - 1) {
                raw - (1i64 << bits)
            } else {
                raw
            })
        }
    }
}

/// The running state of decimal values, on both sides of the stream.
#[derive(Debug, Clone, Copy, Default)]
struct DecimalState {
    n: i64,
    delta: i64,
}

impl DecimalState {
    /// The integer step that codes `n` (`None`: a value off the scale, written raw and
    /// leaving the state as it was), and the state moved past it.
    fn step(&mut self, n: Option<i64>, second_order: bool) -> Option<i64> {
        let n = n?;
        let delta = n.wrapping_sub(self.n);
        let step = match second_order {
            true => delta.wrapping_sub(self.delta),
            false => delta,
        };
        self.n = n;
        self.delta = delta;
        Some(step)
    }

    fn write(&mut self, w: &mut BitWriter, n: Option<i64>, v: f64, second_order: bool) {
        match self.step(n, second_order) {
            Some(step) => write_int(w, step),
            None => write_raw(w, v),
        }
    }

    fn read(&mut self, r: &mut BitReader, scale: usize, second_order: bool) -> u64 {
        match read_int(r) {
            Err(raw) => raw,
            Ok(step) => {
                let delta = match second_order {
                    true => self.delta.wrapping_add(step),
                    false => step,
                };
                self.n = self.n.wrapping_add(delta);
                self.delta = delta;
                (self.n as f64 / POW10[scale]).to_bits()
            }
        }
    }
}

/// The timestamps of `samples` and their values as decimals (`on_scale`: each value's
/// integer, or `None` to write it raw), in one stream.
fn encode_decimal(
    samples: &[(i64, f64, i64)],
    on_scale: &[Option<i64>],
    second_order: bool,
) -> BitWriter {
    let mut w = BitWriter::default();
    let (mut prev_t, mut prev_delta) = (0, 0);
    let mut values = DecimalState::default();
    for (i, (&(t, v, _), &n)) in samples.iter().zip(on_scale).enumerate() {
        match i {
            0 => w.write_bits(t as u64, 64),
            _ => {
                let delta = t - prev_t;
                write_dod(&mut w, delta - prev_delta);
                prev_delta = delta;
            }
        }
        prev_t = t;
        values.write(&mut w, n, v, second_order);
    }
    w
}

/// The smallest scale that puts every value that can be on one on it; `None` when more
/// than one value in eight can be on none (raw values would cost more than XOR saves).
fn decimal_scale(samples: &[(i64, f64, i64)]) -> Option<usize> {
    let (mut scale, mut off) = (0, 0);
    for &(_, v, _) in samples {
        if on_scale(v, scale).is_some() {
            continue;
        }
        match (scale + 1..=MAX_SCALE).find(|&s| on_scale(v, s).is_some()) {
            Some(s) => scale = s,
            None => off += 1,
        }
        if off * 8 > samples.len() {
            return None;
        }
    }
    Some(scale)
}

/// A run of one series' samples, sorted by timestamp and unique, compressed.
#[derive(Debug, Clone)]
pub struct Chunk {
    min_time: i64,
    max_time: i64,
    count: u16,
    values: Values,
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
            values: Values::Xor,
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

    /// Whether any sample has a start timestamp (the others' are 0).
    pub fn has_start_timestamps(&self) -> bool {
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

    /// Stops taking appends, codes the values again as decimals when that is smaller, and
    /// gives back the slack of the streams' buffers.
    pub fn close(&mut self) {
        if self.appender.take().is_some() && self.count > 1 {
            self.recode();
        }
        self.stream.shrink();
        if let Some(s) = self.starts.as_mut() {
            s.shrink();
        }
    }

    /// Keeps the smallest of the XOR stream and the decimal ones (by deltas and by deltas
    /// of deltas), when every value or all but a few are decimals.
    fn recode(&mut self) {
        let samples = self.samples();
        let Some(scale) = decimal_scale(&samples) else {
            return;
        };
        let on_scale: Vec<Option<i64>> = samples.iter().map(|s| on_scale(s.1, scale)).collect();
        // Sizes first, so that at most the winner is written.
        let mut time_bits = 64;
        let mut prev_delta = 0;
        for pair in samples.windows(2) {
            let delta = pair[1].0 - pair[0].0;
            time_bits += dod_bits(delta - prev_delta);
            prev_delta = delta;
        }
        let value_bits = |second_order| {
            let mut state = DecimalState::default();
            on_scale
                .iter()
                .map(|&n| state.step(n, second_order).map_or(RAW_BITS, int_bits))
                .sum::<usize>()
        };
        let (bits, second_order) = [false, true]
            .into_iter()
            .map(|second_order| (time_bits + value_bits(second_order), second_order))
            .min()
            .unwrap_or((usize::MAX, false));
        if bits.div_ceil(8) >= self.stream.bytes.len() {
            return;
        }
        self.stream = encode_decimal(&samples, &on_scale, second_order);
        debug_assert_eq!(self.stream.bytes.len(), bits.div_ceil(8));
        self.values = Values::Decimal {
            scale: scale as u8,
            second_order,
        };
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
            values: self.values,
            decimal: DecimalState::default(),
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
    values: Values,
    decimal: DecimalState,
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
        if self.first {
            self.t = self.stream.read_bits(64) as i64;
        } else {
            self.delta += read_dod(&mut self.stream);
            self.t += self.delta;
        }
        let v = match self.values {
            Values::Xor if self.first => {
                self.value.prev = self.stream.read_bits(64);
                self.value.prev
            }
            Values::Xor => self.value.read(&mut self.stream),
            Values::Decimal {
                scale,
                second_order,
            } => self
                .decimal
                .read(&mut self.stream, scale as usize, second_order),
        };
        self.first = false;
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

    fn assert_holds(chunk: &Chunk, samples: &[(i64, f64, i64)]) {
        let back = chunk.samples();
        assert_eq!(back.len(), samples.len());
        for (a, b) in samples.iter().zip(&back) {
            assert_eq!(a.0, b.0, "timestamp");
            assert_eq!(a.1.to_bits(), b.1.to_bits(), "value bits of {a:?} vs {b:?}");
            assert_eq!(a.2, b.2, "start timestamp");
        }
    }

    /// Checks `samples` come back bit for bit from the open chunk and once it is closed
    /// (and so perhaps coded as decimals); returns the open chunk.
    fn round_trip(samples: &[(i64, f64, i64)]) -> Chunk {
        let chunk = Chunk::from_samples(samples);
        assert_holds(&chunk, samples);
        let mut closed = chunk.clone();
        closed.close();
        assert_holds(&closed, samples);
        assert!(closed.heap_bytes() <= chunk.heap_bytes());
        chunk
    }

    fn closed(samples: &[(i64, f64, i64)]) -> Chunk {
        let mut chunk = round_trip(samples);
        chunk.close();
        chunk
    }

    /// A 15 s grid with a few milliseconds of scrape jitter.
    fn grid(i: i64) -> i64 {
        1_700_000_000_000 + i * 15_000 + (i * 7919 % 11) - 5
    }

    #[test]
    fn decimal_values_close_into_fewer_bytes_than_xor() {
        // Exporters' text: whole counters, and gauges with two decimals (CPU percentages).
        let mut next = crate::testutil::xorshift(7);
        let mut c = 1_000_000.0;
        let counter: Vec<_> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| {
                c += (next() % 100) as f64;
                (grid(i), c, 0)
            })
            .collect();
        let noisy: Vec<_> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| (grid(i), (next() % 10_000) as f64 / 100.0, 0))
            .collect();
        let steady: Vec<_> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| (grid(i), 3600.0 + 15.25 * i as f64, 0))
            .collect();
        for (name, samples, most) in [
            ("counter", &counter, 2.4),
            ("noisy gauge", &noisy, 3.7),
            ("steady counter", &steady, 1.4),
        ] {
            let open = Chunk::from_samples(samples);
            let chunk = closed(samples);
            assert!(
                matches!(chunk.values, Values::Decimal { .. }),
                "{name} stays XOR"
            );
            let per_sample = chunk.heap_bytes() as f64 / samples.len() as f64;
            println!(
                "{name}: {per_sample:.2} bytes a sample ({:.2} as XOR)",
                open.stream.bytes.len() as f64 / samples.len() as f64
            );
            assert!(per_sample < most, "{name}: {per_sample:.2} bytes a sample");
        }
        // Deltas of deltas for the steady counter, deltas for the others.
        assert_eq!(
            closed(&steady).values,
            Values::Decimal {
                scale: 2,
                second_order: true
            }
        );
        assert_eq!(
            closed(&counter).values,
            Values::Decimal {
                scale: 0,
                second_order: false
            }
        );
    }

    #[test]
    fn values_off_the_decimal_scale_are_kept_raw_in_a_decimal_chunk() {
        let mut samples: Vec<_> = (0..SAMPLES_PER_CHUNK as i64)
            .map(|i| (grid(i), i as f64 * 2.5, 0))
            .collect();
        let specials = [
            f64::from_bits(STALE_NAN_BITS),
            f64::NAN,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
            1e300,
            -(2f64.powi(60)),
        ];
        for (k, v) in specials.into_iter().enumerate() {
            samples[10 + 13 * k].1 = v;
        }
        let chunk = closed(&samples);
        assert!(matches!(chunk.values, Values::Decimal { scale: 1, .. }));
        // Extremes of the integer buckets, both ways, and the largest exact integers.
        let extremes = [
            0.0,
            127.0,
            -127.0,
            128.0,
            -128.0,
            32_768.0,
            -32_768.0,
            2f64.powi(31),
            -(2f64.powi(31)),
            2f64.powi(53) - 1.0,
            -(2f64.powi(53) - 1.0),
            0.0,
            1.0,
            0.0,
        ];
        let samples: Vec<_> = extremes
            .iter()
            .enumerate()
            .map(|(i, &v)| (grid(i as i64), v, 0))
            .collect();
        closed(&samples);
        // Scales up to the largest: a value with nine decimals, and one with ten (raw).
        let samples: Vec<_> = [0.123456789, 1.5, 0.1234567891, 2.0]
            .iter()
            .enumerate()
            .map(|(i, &v)| (grid(i as i64), v, 0))
            .collect();
        closed(&samples);
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
            let chunk = closed(samples);
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
