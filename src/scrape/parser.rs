//! Parser for the Prometheus text exposition format 0.0.4 and the
//! OpenMetrics 1.0 text format.
//!
//! Design notes:
//! * Input is processed one line at a time by a forward-only cursor and
//!   nothing recurses, so parsing is linear in the size of the input however
//!   long a single line is.
//! * Syntax (turning one line into a [`Line`]) is kept apart from the rules
//!   that span lines (metadata bookkeeping, `# EOF`), which live in
//!   [`Parser`].
//! * Where the two formats differ the behaviour follows Prometheus' own
//!   parsers: 0.0.4 tolerates extra blanks and arbitrary comments, while
//!   OpenMetrics insists on single spaces, has no empty lines and must end
//!   with `# EOF`.

// Keys come from the scraped target: a seeded hasher (fast, and resistant to crafted
// collisions), not SipHash, on every exposed line.
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<K> = std::collections::HashSet<K, ahash::RandomState>;
use std::error::Error;
use std::fmt;
use std::ops::Range;

use crate::model::{Metadata, MetricType};

/// Wire format of a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    PrometheusText,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

impl MetricType {
    /// Maps a `# TYPE` keyword to a type; each format has its own vocabulary.
    fn from_keyword(keyword: &str, format: Format) -> Option<Self> {
        let open_metrics = format == Format::OpenMetrics;
        let metric_type = match keyword {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "summary" => Self::Summary,
            "untyped" if !open_metrics => Self::Unknown,
            "unknown" if open_metrics => Self::Unknown,
            "gaugehistogram" if open_metrics => Self::GaugeHistogram,
            "info" if open_metrics => Self::Info,
            "stateset" if open_metrics => Self::StateSet,
            _ => return None,
        };
        Some(metric_type)
    }

    /// Suffixes that sample names of a family of this type may append to the
    /// family name. Only counters, histograms and summaries have `_created`
    /// series, which is what identifies them as creation timestamps.
    fn sample_suffixes(self) -> &'static [&'static str] {
        match self {
            Self::Counter => &["_total", "_created"],
            Self::Histogram => &["_bucket", "_count", "_sum", "_created"],
            Self::GaugeHistogram => &["_bucket", "_gcount", "_gsum"],
            Self::Summary => &["_count", "_sum", "_created"],
            Self::Info => &["_info"],
            Self::Gauge | Self::StateSet | Self::Unknown => &[],
        }
    }
}

/// Human-readable list of the `# TYPE` keywords a format accepts, for errors.
fn type_keywords(format: Format) -> &'static str {
    match format {
        Format::PrometheusText => "counter, gauge, histogram, summary or untyped",
        Format::OpenMetrics => {
            "counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown"
        }
    }
}

/// One sample line. Labels are in input order and do not include the name.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    /// Empty when `known` (the caller has the series already).
    pub name: String,
    /// Empty when `known`.
    pub labels: Vec<(String, String)>,
    /// Where the series (name and label set) is written in the input, byte for byte: the
    /// key under which a scrape loop caches what it made of it.
    pub series: Range<usize>,
    /// The caller's `known` said it has this series: its name and labels were not parsed
    /// into strings (see [`parse_with`]).
    pub known: bool,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
    /// When the counter, histogram or summary started: its OpenMetrics `_created` sample.
    pub start_timestamp_ms: Option<i64>,
    /// The OpenMetrics exemplar after the sample (`# {trace_id="..."} 0.5 1.2`).
    pub exemplar: Option<ParsedExemplar>,
    /// A native histogram (only the protobuf format has them; `value` is then NaN).
    pub histogram: Option<std::sync::Arc<crate::model::Histogram>>,
}

/// An OpenMetrics exemplar: its labels, value and (optional) time.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedExemplar {
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// Everything a scrape response contained that is worth keeping.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Exposition {
    /// Samples in input order; duplicate series are kept as they are.
    pub samples: Vec<ParsedSample>,
    /// One entry per family that had at least one metadata line, in order of
    /// first appearance.
    pub metadata: Vec<Metadata>,
}

/// Why an exposition was rejected, with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> Self {
        Self {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Error for ParseError {}

/// Picks the parser for a scrape response from its `Content-Type` header.
///
/// Only the media type decides: Prometheus treats every OpenMetrics version
/// alike, and anything unrecognised falls back to the classic text format.
#[must_use]
pub fn format_from_content_type(content_type: &str) -> Format {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/openmetrics-text") {
        Format::OpenMetrics
    } else {
        Format::PrometheusText
    }
}

/// Parses a whole scrape response.
///
/// # Errors
///
/// The first invalid line aborts parsing with its line number: a scrape is
/// ingested entirely or not at all, as Prometheus does. OpenMetrics input
/// must also end with `# EOF`.
pub fn parse(input: &str, format: Format) -> Result<Exposition, ParseError> {
    parse_with(input, format, &mut |_| false)
}

/// [`parse`], asking `known` about each 0.0.4 sample's series text (see
/// [`ParsedSample::series`]) before its labels are parsed: for a series the caller already
/// has (a scrape loop's cache of earlier scrapes, as Prometheus's scrape cache), only the
/// name, value and timestamp are read, and the sample comes back `known`, without name and
/// labels. The label set is still checked to be well-formed up to its closing brace.
/// OpenMetrics input is always parsed whole (its `_created` lines need every label set).
pub fn parse_with(
    input: &str,
    format: Format,
    known: &mut dyn FnMut(&str) -> bool,
) -> Result<Exposition, ParseError> {
    let mut parser = Parser::new(format);
    let mut eof_seen = false;
    let mut last_line = 0;
    // The final newline terminates the last line rather than starting an
    // empty one (which OpenMetrics would reject).
    let body = input.strip_suffix('\n').unwrap_or(input);
    if !input.is_empty() {
        for (text, line_no) in body.split('\n').zip(1..) {
            last_line = line_no;
            if eof_seen {
                return Err(ParseError::new(
                    line_no,
                    "unexpected content after \"# EOF\"",
                ));
            }
            let offset = text.as_ptr() as usize - input.as_ptr() as usize;
            let line = LineParser {
                offset,
                known: Some(&mut *known),
                ..LineParser::new(text, line_no, format)
            };
            match line.parse()? {
                Line::Eof => eof_seen = true,
                line => parser.apply(line_no, line)?,
            }
        }
    }
    if format == Format::OpenMetrics && !eof_seen {
        // A missing terminator means the response was truncated.
        return Err(ParseError::new(
            last_line + 1,
            "expected \"# EOF\" at the end of OpenMetrics input, got end of input",
        ));
    }
    Ok(parser.finish())
}

/// The meaning of one syntactically valid line.
#[derive(Debug)]
enum Line<'a> {
    /// Blank line or plain comment (0.0.4 only).
    Ignored,
    Help {
        family: String,
        text: String,
    },
    Type {
        family: String,
        metric_type: MetricType,
    },
    Unit {
        family: String,
        unit: String,
    },
    Eof,
    Sample(ParsedSample),
    /// A sample of a series the caller knows (see [`parse_with`]).
    Known {
        name: &'a str,
        sample: ParsedSample,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetadataKind {
    Help,
    Type,
    Unit,
}

impl fmt::Display for MetadataKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Help => "HELP",
            Self::Type => "TYPE",
            Self::Unit => "UNIT",
        })
    }
}

/// Metadata of a family plus which of its lines have been seen, so repeated
/// lines can be rejected.
struct FamilyMetadata {
    metadata: Metadata,
    /// Position of the family's first metadata line among all families, so
    /// the result can list families in input order.
    order: usize,
    has_help: bool,
    has_type: bool,
    has_unit: bool,
}

impl FamilyMetadata {
    fn new(family: String, order: usize) -> Self {
        Self {
            order,
            metadata: Metadata {
                metric_family: family,
                metric_type: MetricType::Unknown,
                help: String::new(),
                unit: String::new(),
            },
            has_help: false,
            has_type: false,
            has_unit: false,
        }
    }
}

/// Every suffix any metric type allows on sample names.
const SAMPLE_SUFFIXES: [&str; 8] = [
    "_total", "_created", "_bucket", "_count", "_sum", "_gcount", "_gsum", "_info",
];

/// Applies the rules that span lines and accumulates the result.
struct Parser {
    format: Format,
    samples: Vec<ParsedSample>,
    families: HashMap<String, FamilyMetadata>,
    /// Families that already had a sample, to reject metadata arriving late.
    families_with_samples: HashSet<String>,
    /// OpenMetrics `_created` values (ms) by family and label set.
    created: HashMap<(String, Vec<(String, String)>), i64>,
}

impl Parser {
    fn new(format: Format) -> Self {
        Self {
            format,
            samples: Vec::new(),
            families: HashMap::default(),
            families_with_samples: HashSet::default(),
            created: HashMap::default(),
        }
    }

    fn apply(&mut self, line_no: usize, line: Line<'_>) -> Result<(), ParseError> {
        match line {
            Line::Ignored | Line::Eof => {}
            Line::Help { family, text } => {
                self.claim_metadata(line_no, family, MetadataKind::Help)?
                    .help = text;
            }
            Line::Type {
                family,
                metric_type,
            } => {
                self.claim_metadata(line_no, family, MetadataKind::Type)?
                    .metric_type = metric_type;
            }
            Line::Unit { family, unit } => {
                self.claim_metadata(line_no, family, MetadataKind::Unit)?
                    .unit = unit;
            }
            Line::Sample(sample) => self.add_sample(sample),
            Line::Known { name, sample } => self.add_known(name, sample),
        }
        Ok(())
    }

    /// Returns the metadata a HELP/TYPE/UNIT line may fill in, after checking
    /// that the line is the first of its kind for the family and does not
    /// come after the family's samples.
    fn claim_metadata(
        &mut self,
        line_no: usize,
        family: String,
        kind: MetadataKind,
    ) -> Result<&mut Metadata, ParseError> {
        // Go's expfmt (the 0.0.4 reference) accepts a late HELP but not a
        // late TYPE; OpenMetrics requires all metadata before the samples.
        let late_is_error = kind == MetadataKind::Type || self.format == Format::OpenMetrics;
        if late_is_error && self.families_with_samples.contains(&family) {
            return Err(ParseError::new(
                line_no,
                format!("{kind} line for metric name {family:?} after its samples"),
            ));
        }
        let order = self.families.len();
        let entry = self
            .families
            .entry(family)
            .or_insert_with_key(|family| FamilyMetadata::new(family.clone(), order));
        let seen = match kind {
            MetadataKind::Help => &mut entry.has_help,
            MetadataKind::Type => &mut entry.has_type,
            MetadataKind::Unit => &mut entry.has_unit,
        };
        if *seen {
            return Err(ParseError::new(
                line_no,
                format!(
                    "second {kind} line for metric name {:?}",
                    entry.metadata.metric_family
                ),
            ));
        }
        *seen = true;
        Ok(&mut entry.metadata)
    }

    /// A 0.0.4 sample of a known series: only the family's bookkeeping (no `_created`
    /// in 0.0.4, and the caller made the labels before).
    fn add_known(&mut self, name: &str, sample: ParsedSample) {
        let (family, _) = self.resolve_family(name);
        if !self.families_with_samples.contains(family) {
            self.families_with_samples.insert(family.to_owned());
        }
        self.samples.push(sample);
    }

    fn add_sample(&mut self, mut sample: ParsedSample) {
        let (family, suffix) = self.resolve_family(&sample.name);
        let metric_type = self.families.get(family).map(|f| f.metadata.metric_type);
        normalize_float_labels(metric_type, &mut sample.labels);
        if !self.families_with_samples.contains(family) {
            self.families_with_samples.insert(family.to_owned());
        }
        // In OpenMetrics a `_created` series holds the creation time of a
        // counter, histogram or summary, not a measurement: it is not stored as a
        // series but becomes the start timestamp of the family's samples.
        let is_created_series = self.format == Format::OpenMetrics && suffix == Some("_created");
        if !is_created_series {
            self.samples.push(sample);
            return;
        }
        let ms = sample.value * 1000.0;
        if ms.is_finite() && ms >= 1.0 {
            let key = (family.to_owned(), created_key(&sample.labels));
            self.created.insert(key, ms.round() as i64);
        }
    }

    /// Gives every sample of a family with a `_created` value its start timestamp: the
    /// samples whose labels, without `le` or `quantile`, are those of the `_created` line.
    fn apply_created(&mut self) {
        if self.created.is_empty() {
            return;
        }
        let mut starts = Vec::with_capacity(self.samples.len());
        for sample in &self.samples {
            let family = self.resolve_family(&sample.name).0.to_owned();
            starts.push(
                self.created
                    .get(&(family, created_key(&sample.labels)))
                    .copied(),
            );
        }
        for (sample, start) in self.samples.iter_mut().zip(starts) {
            sample.start_timestamp_ms = start;
        }
    }

    /// Finds the family a sample belongs to, and the type-specific suffix
    /// that was stripped to get there. A name that matches no declared family
    /// is a family of its own.
    fn resolve_family<'n>(&self, name: &'n str) -> (&'n str, Option<&'static str>) {
        if self.families.contains_key(name) {
            return (name, None);
        }
        for suffix in SAMPLE_SUFFIXES {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(family) = self.families.get(base)
                && family
                    .metadata
                    .metric_type
                    .sample_suffixes()
                    .contains(&suffix)
            {
                return (base, Some(suffix));
            }
        }
        (name, None)
    }

    fn finish(mut self) -> Exposition {
        self.apply_created();
        let mut families: Vec<FamilyMetadata> = self.families.into_values().collect();
        families.sort_unstable_by_key(|family| family.order);
        Exposition {
            samples: self.samples,
            metadata: families.into_iter().map(|family| family.metadata).collect(),
        }
    }
}

/// Prometheus 3 writes the `le` of histogram buckets and the `quantile` of summaries as
/// OpenMetrics floats (`1` becomes `1.0`), so the text formats and protobuf give one series.
fn normalize_float_labels(metric_type: Option<MetricType>, labels: &mut [(String, String)]) {
    let float_label = match metric_type {
        Some(MetricType::Histogram) => "le",
        Some(MetricType::Summary) => "quantile",
        _ => return,
    };
    for (_, value) in labels.iter_mut().filter(|(n, _)| n == float_label) {
        if let Ok(v) = value.parse::<f64>() {
            *value = crate::gocompat::strconv::format_openmetrics_float(v);
        }
    }
}

/// Length of a label set's text after its `{`, through its closing `}`, skipping quoted
/// strings (which may hold braces and escaped quotes); `None` when the line ends first.
fn label_set_end(rest: &str) -> Option<usize> {
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'}' => return Some(i + 1),
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// The labels that tie a sample to its family's `_created` line: sorted, without the
/// bucket and quantile labels that only the buckets and quantiles have.
fn created_key(labels: &[(String, String)]) -> Vec<(String, String)> {
    let mut key: Vec<(String, String)> = labels
        .iter()
        .filter(|(name, _)| name != "le" && name != "quantile")
        .cloned()
        .collect();
    key.sort();
    key
}

/// Whether a label set may carry the metric name as a lone quoted string
/// (Prometheus 3 UTF-8 syntax). Exemplar label sets may not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QuotedName {
    Allowed,
    Forbidden,
}

type LabelSet = (Option<String>, Vec<(String, String)>);

/// Cursor over a single line (without its newline).
///
/// The position only ever moves forward, and only to char boundaries: it
/// advances over ASCII bytes, or by `take_while` whose predicates either stop
/// at ASCII bytes or accept whole runs of non-ASCII bytes.
struct LineParser<'a, 'k> {
    text: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    /// Where the line starts in the whole input.
    offset: usize,
    /// The caller's cache probe (see [`parse_with`]).
    known: Option<&'k mut dyn FnMut(&str) -> bool>,
}

impl<'a> LineParser<'a, '_> {
    fn new(text: &'a str, line: usize, format: Format) -> Self {
        Self {
            text,
            pos: 0,
            line,
            format,
            offset: 0,
            known: None,
        }
    }

    fn parse(mut self) -> Result<Line<'a>, ParseError> {
        match self.format {
            Format::PrometheusText => {
                self.skip_blanks();
                match self.peek() {
                    None => Ok(Line::Ignored),
                    Some(b'#') => self.text_comment(),
                    Some(_) => match self.known_sample()? {
                        Some(line) => Ok(line),
                        None => self.sample().map(Line::Sample),
                    },
                }
            }
            Format::OpenMetrics => match self.peek() {
                None => Err(self.error("empty lines are not allowed in OpenMetrics")),
                Some(b'#') => self.openmetrics_comment(),
                Some(_) => self.sample().map(Line::Sample),
            },
        }
    }

    // ---- Lines -----------------------------------------------------------

    /// A 0.0.4 line starting with `#`. Like Prometheus, only `# HELP` and
    /// `# TYPE` followed by a blank mean anything; every other comment
    /// (including `#HELP` or `# UNIT`) is skipped.
    fn text_comment(&mut self) -> Result<Line<'a>, ParseError> {
        self.eat(b'#');
        if self.skip_blanks() == 0 {
            return Ok(Line::Ignored);
        }
        let kind = if self.eat_str("HELP") {
            MetadataKind::Help
        } else if self.eat_str("TYPE") {
            MetadataKind::Type
        } else {
            return Ok(Line::Ignored);
        };
        if self.skip_blanks() == 0 {
            return Ok(Line::Ignored);
        }
        self.metadata_line(kind)
    }

    /// An OpenMetrics line starting with `#`, which must be metadata or the
    /// terminator: OpenMetrics has no free-form comments.
    fn openmetrics_comment(&mut self) -> Result<Line<'a>, ParseError> {
        if self.rest() == "# EOF" {
            return Ok(Line::Eof);
        }
        let kind = if self.eat_str("# HELP ") {
            MetadataKind::Help
        } else if self.eat_str("# TYPE ") {
            MetadataKind::Type
        } else if self.eat_str("# UNIT ") {
            MetadataKind::Unit
        } else {
            return Err(self.error(format!(
                "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got {}",
                describe(self.rest())
            )));
        };
        self.metadata_line(kind)
    }

    /// The part of a metadata line after its keyword: family name and text.
    fn metadata_line(&mut self, kind: MetadataKind) -> Result<Line<'a>, ParseError> {
        let family = self.metadata_name()?;
        let text = self.metadata_text()?;
        match kind {
            MetadataKind::Help => {
                // 0.0.4 HELP only knows `\\` and `\n`; OpenMetrics adds `\"`.
                let escape_quotes = self.format == Format::OpenMetrics;
                Ok(Line::Help {
                    family,
                    text: unescape(text, escape_quotes),
                })
            }
            MetadataKind::Type => {
                let metric_type = self.metric_type(text)?;
                Ok(Line::Type {
                    family,
                    metric_type,
                })
            }
            MetadataKind::Unit => {
                // OpenMetrics requires the unit to be the family name's suffix,
                // so `foo_seconds` cannot claim to be in bytes.
                let suffix_ok = text.is_empty()
                    || family
                        .strip_suffix(text)
                        .is_some_and(|base| base.ends_with('_'));
                if !suffix_ok {
                    return Err(self.error(format!(
                        "unit {text:?} is not a suffix of metric name {family:?}"
                    )));
                }
                Ok(Line::Unit {
                    family,
                    unit: text.to_owned(),
                })
            }
        }
    }

    fn metadata_name(&mut self) -> Result<String, ParseError> {
        if self.peek() == Some(b'"') {
            return self.quoted_name("metric name");
        }
        if !self.peek().is_some_and(is_metric_name_start) {
            return Err(self.unexpected("metric name"));
        }
        Ok(self.take_while(is_metric_name_byte).to_owned())
    }

    /// Text after a metadata line's name: nothing at all, or everything after
    /// the single blank that separates it from the name.
    fn metadata_text(&mut self) -> Result<&'a str, ParseError> {
        if self.at_end() {
            return Ok("");
        }
        let separated = match self.format {
            Format::PrometheusText => self.peek().is_some_and(is_blank),
            Format::OpenMetrics => self.peek() == Some(b' '),
        };
        if !separated {
            return Err(self.unexpected("space after metric name"));
        }
        self.pos += 1;
        Ok(self.rest())
    }

    fn metric_type(&self, text: &str) -> Result<MetricType, ParseError> {
        // 0.0.4 is lenient about blanks around the keyword, OpenMetrics not.
        let keyword = match self.format {
            Format::PrometheusText => text.trim_matches([' ', '\t']),
            Format::OpenMetrics => text,
        };
        MetricType::from_keyword(keyword, self.format).ok_or_else(|| {
            self.error(format!(
                "expected metric type ({}), got {}",
                type_keywords(self.format),
                describe(keyword)
            ))
        })
    }

    /// `name{labels} value [timestamp]`, where the name may instead be a
    /// quoted string inside the braces; OpenMetrics may add an exemplar.
    fn sample(&mut self) -> Result<ParsedSample, ParseError> {
        let series_start = self.pos;
        let bare_name = match self.peek() {
            Some(byte) if is_metric_name_start(byte) => {
                Some(self.take_while(is_metric_name_byte).to_owned())
            }
            Some(b'{') => None,
            _ => return Err(self.unexpected("metric name")),
        };
        let (quoted_name, labels) = if self.opens_label_set() {
            self.label_set(QuotedName::Allowed)?
        } else {
            (None, Vec::new())
        };
        let name = match (bare_name, quoted_name) {
            (Some(name), None) | (None, Some(name)) => name,
            (Some(_), Some(_)) => {
                return Err(self.error("metric name given twice, before and inside the braces"));
            }
            (None, None) => {
                return Err(self.error(
                    "metric name missing: expected it before '{' or quoted inside the braces",
                ));
            }
        };
        let series = self.offset + series_start..self.offset + self.pos;
        let (value, timestamp_ms, exemplar) = self.value_and_timestamp()?;
        Ok(ParsedSample {
            name,
            labels,
            series,
            known: false,
            value,
            timestamp_ms,
            start_timestamp_ms: None,
            exemplar,
            histogram: None,
        })
    }

    /// A 0.0.4 sample with a bare metric name whose series text the caller knows, read
    /// without parsing its labels into strings; `None` (the cursor where it was) for any
    /// other line, which [`LineParser::sample`] then parses whole.
    fn known_sample(&mut self) -> Result<Option<Line<'a>>, ParseError> {
        if self.format != Format::PrometheusText || !self.peek().is_some_and(is_metric_name_start) {
            return Ok(None);
        }
        if self.known.is_none() {
            return Ok(None);
        }
        let start = self.pos;
        let name = self.take_while(is_metric_name_byte);
        let end = if self.opens_label_set() {
            match label_set_end(self.rest()) {
                Some(len) => self.pos + len,
                None => {
                    self.pos = start;
                    return Ok(None);
                }
            }
        } else {
            self.pos
        };
        let text = self.text;
        if !self
            .known
            .as_mut()
            .is_some_and(|known| known(&text[start..end]))
        {
            self.pos = start;
            return Ok(None);
        }
        self.pos = end;
        let (value, timestamp_ms, exemplar) = self.value_and_timestamp()?;
        Ok(Some(Line::Known {
            name,
            sample: ParsedSample {
                name: String::new(),
                labels: Vec::new(),
                series: self.offset + start..self.offset + end,
                known: true,
                value,
                timestamp_ms,
                start_timestamp_ms: None,
                exemplar,
                histogram: None,
            },
        }))
    }

    /// What follows the series: the value, then the format's tail (a timestamp, and in
    /// OpenMetrics an exemplar).
    fn value_and_timestamp(
        &mut self,
    ) -> Result<(f64, Option<i64>, Option<ParsedExemplar>), ParseError> {
        self.separator("value")?;
        let value = self.float_token("float value")?;
        let (timestamp_ms, exemplar) = match self.format {
            Format::PrometheusText => (self.text_timestamp()?, None),
            Format::OpenMetrics => self.openmetrics_trailer()?,
        };
        Ok((value, timestamp_ms, exemplar))
    }

    /// Consumes `{`, allowing blanks before it in 0.0.4 (`name {a="b"}`).
    fn opens_label_set(&mut self) -> bool {
        let start = self.pos;
        if self.format == Format::PrometheusText {
            self.skip_blanks();
        }
        if self.eat(b'{') {
            return true;
        }
        self.pos = start;
        false
    }

    /// The contents of a label set up to and including `}` (the `{` has been
    /// consumed). Returns a quoted metric name found in it, if any.
    fn label_set(&mut self, quoted_name: QuotedName) -> Result<LabelSet, ParseError> {
        let mut metric_name = None;
        let mut labels: Vec<(String, String)> = Vec::new();
        loop {
            self.skip_inner_blanks();
            if self.eat(b'}') {
                break;
            }
            let (key, key_was_quoted) = self.label_key()?;
            self.skip_inner_blanks();
            // A quoted string not followed by `=` is the metric name.
            let is_metric_name = key_was_quoted
                && quoted_name == QuotedName::Allowed
                && matches!(self.peek(), Some(b',' | b'}'));
            if is_metric_name {
                if metric_name.is_some() {
                    return Err(self.error("metric name given twice inside the braces"));
                }
                metric_name = Some(self.non_empty(key, "metric name")?);
            } else {
                let key = self.non_empty(key, "label name")?;
                let value = self.label_value(&key)?;
                labels.push((key, value));
            }
            self.skip_inner_blanks();
            // A trailing comma before `}` is allowed, as in Prometheus.
            if !self.eat(b',') {
                if self.eat(b'}') {
                    break;
                }
                return Err(self.unexpected("',' or '}' after label"));
            }
        }
        if let Some(name) = find_duplicate_label(&labels) {
            return Err(self.error(format!("duplicate label name {name:?}")));
        }
        Ok((metric_name, labels))
    }

    /// A label name, bare or quoted; also says whether it was quoted. A
    /// quoted key may turn out to be the metric name, so it is not yet
    /// checked for emptiness.
    fn label_key(&mut self) -> Result<(String, bool), ParseError> {
        if self.peek() == Some(b'"') {
            return Ok((self.quoted("label name")?, true));
        }
        if !self.peek().is_some_and(is_label_name_start) {
            return Err(self.unexpected("label name or '}'"));
        }
        let name = self.take_while(is_label_name_byte);
        // Storage keys the metric name as `__name__`; a label of that name
        // would silently rename the series.
        if name == "__name__" {
            return Err(self.error("label name \"__name__\" is reserved for the metric name"));
        }
        Ok((name.to_owned(), false))
    }

    /// `="value"` following a label name.
    fn label_value(&mut self, key: &str) -> Result<String, ParseError> {
        if !self.eat(b'=') {
            return Err(self.unexpected(&format!("'=' after label name {key:?}")));
        }
        self.skip_inner_blanks();
        self.quoted("label value")
    }

    /// 0.0.4 tail after the value: an optional integer timestamp in
    /// milliseconds, surrounded by optional blanks.
    fn text_timestamp(&mut self) -> Result<Option<i64>, ParseError> {
        self.skip_blanks();
        if self.at_end() {
            return Ok(None);
        }
        let token = self.token();
        let timestamp = parse_millis(token).ok_or_else(|| {
            self.error(format!(
                "expected timestamp in integer milliseconds or end of line, got {}",
                describe(token)
            ))
        })?;
        self.skip_blanks();
        self.expect_end("timestamp")?;
        Ok(Some(timestamp))
    }

    /// OpenMetrics tail after the value: ` [timestamp] [# exemplar]`, with
    /// the timestamp in (possibly fractional) seconds.
    fn openmetrics_trailer(&mut self) -> Result<(Option<i64>, Option<ParsedExemplar>), ParseError> {
        let mut timestamp_ms = None;
        let mut exemplar = None;
        while !self.at_end() {
            // Tokens end at a space, so one is next; more than one is not.
            self.eat(b' ');
            if self.at_end() || self.peek() == Some(b' ') {
                return Err(self.unexpected("timestamp or exemplar after a single space"));
            }
            if self.eat_str("# ") {
                exemplar = Some(self.exemplar()?);
                break;
            }
            if timestamp_ms.is_some() {
                return Err(self.unexpected("exemplar (\"# {...}\") or end of line"));
            }
            timestamp_ms = Some(self.seconds_timestamp()?);
        }
        Ok((timestamp_ms, exemplar))
    }

    /// `{labels} value [timestamp]` after ` # `.
    fn exemplar(&mut self) -> Result<ParsedExemplar, ParseError> {
        if !self.eat(b'{') {
            return Err(self.unexpected("'{' opening the exemplar labels"));
        }
        let (_, labels) = self.label_set(QuotedName::Forbidden)?;
        self.separator("exemplar value")?;
        let value = self.float_token("float exemplar value")?;
        let mut exemplar = ParsedExemplar {
            labels,
            value,
            timestamp_ms: None,
        };
        if self.at_end() {
            return Ok(exemplar);
        }
        self.separator("exemplar timestamp")?;
        exemplar.timestamp_ms = Some(self.seconds_timestamp()?);
        self.expect_end("exemplar")?;
        Ok(exemplar)
    }

    // ---- Tokens ----------------------------------------------------------

    /// Consumes the whitespace between two tokens: any run of blanks in 0.0.4,
    /// exactly one space in OpenMetrics. `next` names the expected token.
    fn separator(&mut self, next: &str) -> Result<(), ParseError> {
        let found = match self.format {
            Format::PrometheusText => self.skip_blanks() > 0,
            Format::OpenMetrics => self.eat(b' '),
        };
        if self.at_end() {
            return Err(self.error(format!("expected {next}, got end of line")));
        }
        if !found {
            return Err(self.unexpected(&format!("space before {next}")));
        }
        if self.peek() == Some(b' ') {
            return Err(self.unexpected(&format!("{next} after a single space")));
        }
        Ok(())
    }

    /// Checks that nothing but the end of the line follows `after`.
    fn expect_end(&self, after: &str) -> Result<(), ParseError> {
        if self.at_end() {
            return Ok(());
        }
        // Quote the leftover text itself: a lone stray blank would otherwise
        // be reported as an unhelpful `" "`.
        Err(self.error(format!(
            "expected end of line after {after}, got {}",
            describe(self.rest())
        )))
    }

    /// Blanks inside braces are tolerated in 0.0.4 only.
    fn skip_inner_blanks(&mut self) {
        if self.format == Format::PrometheusText {
            self.skip_blanks();
        }
    }

    /// A value-like token: everything up to the next separator.
    fn token(&mut self) -> &'a str {
        match self.format {
            Format::PrometheusText => self.take_while(|b| !is_blank(b)),
            Format::OpenMetrics => self.take_while(|b| b != b' '),
        }
    }

    fn float_token(&mut self, what: &str) -> Result<f64, ParseError> {
        let token = self.token();
        parse_float(token)
            .ok_or_else(|| self.error(format!("expected {what}, got {}", describe(token))))
    }

    /// An OpenMetrics timestamp: float seconds, converted to milliseconds.
    fn seconds_timestamp(&mut self) -> Result<i64, ParseError> {
        let token = self.token();
        parse_float(token)
            .and_then(seconds_to_millis)
            .ok_or_else(|| {
                self.error(format!(
                    "expected timestamp in seconds (a finite float), got {}",
                    describe(token)
                ))
            })
    }

    /// A double-quoted string with its escapes resolved.
    fn quoted(&mut self, what: &str) -> Result<String, ParseError> {
        if !self.eat(b'"') {
            return Err(self.unexpected(&format!("{what} in double quotes")));
        }
        let start = self.pos;
        let bytes = self.text.as_bytes();
        let mut i = start;
        while let Some(&byte) = bytes.get(i) {
            match byte {
                b'"' => {
                    let raw = self.text.get(start..i).unwrap_or_default();
                    self.pos = i + 1;
                    return Ok(unescape(raw, true));
                }
                // Whatever follows a backslash cannot close the string.
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        Err(self.error(format!("missing closing '\"' for {what}")))
    }

    /// A quoted metric name in a metadata line.
    fn quoted_name(&mut self, what: &str) -> Result<String, ParseError> {
        let name = self.quoted(what)?;
        self.non_empty(name, what)
    }

    /// Names, unlike label values, must not be empty; only a quoted name can
    /// be.
    fn non_empty(&self, name: String, what: &str) -> Result<String, ParseError> {
        if name.is_empty() {
            return Err(self.error(format!("quoted {what} must not be empty")));
        }
        Ok(name)
    }

    // ---- Cursor primitives -------------------------------------------------

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or_default()
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let matched = self.peek() == Some(byte);
        if matched {
            self.pos += 1;
        }
        matched
    }

    fn eat_str(&mut self, prefix: &str) -> bool {
        let matched = self.rest().starts_with(prefix);
        if matched {
            self.pos += prefix.len();
        }
        matched
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        self.pos += self.rest().bytes().take_while(|&b| accept(b)).count();
        self.text.get(start..self.pos).unwrap_or_default()
    }

    /// Skips spaces and tabs, returning how many there were.
    fn skip_blanks(&mut self) -> usize {
        self.take_while(is_blank).len()
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line, message)
    }

    /// "expected X, got Y" where Y is the token at the cursor.
    fn unexpected(&self, expected: &str) -> ParseError {
        self.error(format!(
            "expected {expected}, got {}",
            describe(next_token(self.rest()))
        ))
    }
}

/// Longest text quoted in an error message; lines can be megabytes long.
const SNIPPET_CHARS: usize = 32;

/// Quotes offending input for an error message, truncating long input.
fn describe(text: &str) -> String {
    if text.is_empty() {
        return "end of line".to_owned();
    }
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{:?}...", text.get(..cut).unwrap_or_default()),
        None => format!("{text:?}"),
    }
}

/// The token at the start of `text`, so errors quote just the offending
/// word rather than the rest of the line. A delimiter is a token by itself.
fn next_token(text: &str) -> &str {
    let is_delimiter = |c: char| matches!(c, ' ' | '\t' | ',' | '=' | '{' | '}' | '"');
    let end = match text.find(is_delimiter) {
        Some(0) => text.chars().next().map_or(0, char::len_utf8),
        Some(end) => end,
        None => text.len(),
    };
    text.get(..end).unwrap_or_default()
}

/// Resolves `\\`, `\n` and (if `escape_quotes`) `\"`. Other backslashes
/// are kept literally, as Prometheus does.
fn unescape(raw: &str, escape_quotes: bool) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(index) = rest.find('\\') {
        out.push_str(rest.get(..index).unwrap_or_default());
        let after = rest.get(index + 1..).unwrap_or_default();
        let replacement = match after.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if escape_quotes => Some('"'),
            _ => None,
        };
        match replacement {
            Some(c) => {
                out.push(c);
                rest = after.get(1..).unwrap_or_default();
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Parses a float the way Go's `strconv.ParseFloat` (used by Prometheus)
/// does for decimal input: case-insensitive `NaN`/`Inf`/`Infinity`, exponent
/// forms, no hex, no digit separators.
fn parse_float(token: &str) -> Option<f64> {
    let unsigned = token.strip_prefix(['+', '-']).unwrap_or(token);
    let signed = unsigned.len() != token.len();
    // Rust accepts a signed NaN; Go does not.
    if signed && unsigned.starts_with(['n', 'N']) {
        return None;
    }
    let value: f64 = token.parse().ok()?;
    // Rust rounds an overflowing literal such as 1e400 to infinity where Go
    // reports a range error; only spelled-out infinities are accepted.
    if value.is_infinite() && !unsigned.starts_with(['i', 'I']) {
        return None;
    }
    Some(value)
}

/// A 0.0.4 timestamp: unsigned decimal milliseconds, as Prometheus' lexer
/// only accepts digits there.
fn parse_millis(token: &str) -> Option<i64> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    token.parse().ok()
}

fn seconds_to_millis(seconds: f64) -> Option<i64> {
    let millis = (seconds * 1000.0).round();
    // `as` would silently saturate, so reject what does not fit (and NaN).
    let in_range = millis >= i64::MIN as f64 && millis < i64::MAX as f64;
    in_range.then_some(millis as i64)
}

/// Labels at or below this count are checked pairwise, which beats hashing
/// for the handful of labels real series carry.
const PAIRWISE_DUPLICATE_CHECK_LIMIT: usize = 16;

/// The first label name that occurs twice, in time linear in the number of
/// labels even for pathological lines.
fn find_duplicate_label(labels: &[(String, String)]) -> Option<&str> {
    if labels.len() <= PAIRWISE_DUPLICATE_CHECK_LIMIT {
        return labels.iter().enumerate().find_map(|(index, (name, _))| {
            labels
                .iter()
                .take(index)
                .any(|(earlier, _)| earlier == name)
                .then_some(name.as_str())
        });
    }
    let mut seen = HashSet::with_capacity_and_hasher(labels.len(), Default::default());
    labels
        .iter()
        .map(|(name, _)| name.as_str())
        .find(|name| !seen.insert(*name))
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn is_metric_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_' || byte == b':'
}

fn is_metric_name_byte(byte: u8) -> bool {
    is_metric_name_start(byte) || byte.is_ascii_digit()
}

fn is_label_name_start(byte: u8) -> bool {
    byte.is_ascii_alphabetic() || byte == b'_'
}

fn is_label_name_byte(byte: u8) -> bool {
    is_label_name_start(byte) || byte.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(input: &str) -> Exposition {
        parse(input, Format::PrometheusText).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_om(input: &str) -> Exposition {
        parse(input, Format::OpenMetrics).unwrap_or_else(|e| panic!("{e}"))
    }

    fn text_error(input: &str) -> ParseError {
        match parse(input, Format::PrometheusText) {
            Ok(exposition) => panic!("expected an error, parsed {exposition:?}"),
            Err(error) => error,
        }
    }

    fn om_error(input: &str) -> ParseError {
        match parse(input, Format::OpenMetrics) {
            Ok(exposition) => panic!("expected an error, parsed {exposition:?}"),
            Err(error) => error,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    /// The samples, without where their series were written (compared separately).
    fn positionless(exposition: &Exposition) -> Vec<ParsedSample> {
        let mut samples = exposition.samples.clone();
        for s in &mut samples {
            s.series = 0..0;
        }
        samples
    }

    fn sample(name: &str, pairs: &[(&str, &str)], value: f64, ts: Option<i64>) -> ParsedSample {
        ParsedSample {
            name: name.to_string(),
            labels: labels(pairs),
            series: 0..0,
            known: false,
            exemplar: None,
            histogram: None,
            value,
            timestamp_ms: ts,
            start_timestamp_ms: None,
        }
    }

    #[test]
    fn known_series_are_read_without_their_labels() {
        let input = "# TYPE m counter\nm{a=\"x}\\\"y\",b=\"2\"} 3 1000\nm 4\nn { c=\"1\" } 5\nother{d=\"1\"} 6\n";
        let whole = parse_text(input);
        let series: Vec<&str> = whole
            .samples
            .iter()
            .map(|s| &input[s.series.clone()])
            .collect();
        assert_eq!(
            series,
            [
                "m{a=\"x}\\\"y\",b=\"2\"}",
                "m",
                "n { c=\"1\" }",
                "other{d=\"1\"}"
            ]
        );
        let mut asked = Vec::new();
        let cached = parse_with(input, Format::PrometheusText, &mut |s| {
            asked.push(s.to_string());
            s != "other{d=\"1\"}"
        })
        .unwrap();
        assert_eq!(asked, series);
        let known: Vec<bool> = cached.samples.iter().map(|s| s.known).collect();
        assert_eq!(known, [true, true, true, false]);
        assert!(cached.samples[0].name.is_empty() && cached.samples[0].labels.is_empty());
        for (a, b) in whole.samples.iter().zip(&cached.samples) {
            assert_eq!(
                (&a.series, a.value, a.timestamp_ms),
                (&b.series, b.value, b.timestamp_ms)
            );
        }
        assert_eq!(cached.samples[3], whole.samples[3]);
        assert_eq!(cached.metadata, whole.metadata);
        // A known series' line is still checked, and so are the rules across lines.
        for bad in ["m{a=\"1\"} x\n", "m 1\n# TYPE m gauge\n", "m{a=\"1\"\n"] {
            let whole = text_error(bad);
            let cached = parse_with(bad, Format::PrometheusText, &mut |_| true).unwrap_err();
            assert_eq!(cached, whole, "{bad}");
        }
        // OpenMetrics is always parsed whole.
        let om = parse_with("m 1\n# EOF\n", Format::OpenMetrics, &mut |_| true).unwrap();
        assert!(!om.samples[0].known);
    }

    #[test]
    fn created_lines_become_start_timestamps() {
        let input = "\
# TYPE rpc_seconds histogram
rpc_seconds_bucket{le=\"1\",path=\"/a\"} 3
rpc_seconds_bucket{le=\"+Inf\",path=\"/a\"} 4
rpc_seconds_count{path=\"/a\"} 4
rpc_seconds_sum{path=\"/a\"} 2.5
rpc_seconds_created{path=\"/a\"} 1605281325.5
rpc_seconds_count{path=\"/b\"} 1
# TYPE jobs counter
jobs_total{kind=\"x\"} 7
jobs_created{kind=\"x\"} 1.6e9
# TYPE temperature gauge
temperature 21
# EOF
";
        let starts: Vec<(String, Option<i64>)> = parse_om(input)
            .samples
            .into_iter()
            .map(|s| (s.name, s.start_timestamp_ms))
            .collect();
        let a = Some(1_605_281_325_500);
        let expected = [
            ("rpc_seconds_bucket", a),
            ("rpc_seconds_bucket", a),
            ("rpc_seconds_count", a),
            ("rpc_seconds_sum", a),
            ("rpc_seconds_count", None),
            ("jobs_total", Some(1_600_000_000_000)),
            ("temperature", None),
        ];
        assert_eq!(
            starts,
            expected
                .iter()
                .map(|(n, s)| (n.to_string(), *s))
                .collect::<Vec<_>>()
        );
    }

    fn metadata(family: &str, metric_type: MetricType, help: &str, unit: &str) -> Metadata {
        Metadata {
            metric_family: family.to_string(),
            metric_type,
            help: help.to_string(),
            unit: unit.to_string(),
        }
    }

    fn names(exposition: &Exposition) -> Vec<&str> {
        exposition.samples.iter().map(|s| s.name.as_str()).collect()
    }

    // ---- Prometheus text 0.0.4 -------------------------------------------

    #[test]
    fn parses_sample_without_labels() {
        let exposition = parse_text("up 1\n");
        assert_eq!(
            positionless(&exposition),
            vec![sample("up", &[], 1.0, None)]
        );
        assert!(exposition.metadata.is_empty());
    }

    #[test]
    fn parses_labels_in_input_order() {
        let exposition = parse_text("http_requests{method=\"GET\",code=\"200\"} 1027\n");
        assert_eq!(
            positionless(&exposition),
            vec![sample(
                "http_requests",
                &[("method", "GET"), ("code", "200")],
                1027.0,
                None
            )]
        );
    }

    #[test]
    fn accepts_empty_label_set_and_empty_values() {
        let exposition = parse_text("a{} 1\nb{x=\"\"} 2\n");
        assert_eq!(
            positionless(&exposition),
            vec![
                sample("a", &[], 1.0, None),
                sample("b", &[("x", "")], 2.0, None)
            ]
        );
    }

    #[test]
    fn unescapes_label_values() {
        let exposition = parse_text(r#"m{path="C:\\dir",quote="say \"hi\"",nl="a\nb"} 1"#);
        assert_eq!(
            exposition.samples[0].labels,
            labels(&[("path", "C:\\dir"), ("quote", "say \"hi\""), ("nl", "a\nb")])
        );
    }

    #[test]
    fn keeps_unknown_escapes_literally() {
        let exposition = parse_text(r#"m{a="\x\t\u00e9",b="end\\"} 1"#);
        assert_eq!(
            exposition.samples[0].labels,
            labels(&[("a", r"\x\t\u00e9"), ("b", "end\\")])
        );
    }

    #[test]
    fn label_values_may_contain_delimiters_and_unicode() {
        let exposition = parse_text(r#"m{a="x,y=z}{ w",b="héllo wörld ✓"} 1"#);
        assert_eq!(
            exposition.samples[0].labels,
            labels(&[("a", "x,y=z}{ w"), ("b", "héllo wörld ✓")])
        );
    }

    #[test]
    fn accepts_trailing_comma_in_label_set() {
        let exposition = parse_text("m{a=\"1\",b=\"2\",} 3\n");
        assert_eq!(
            positionless(&exposition),
            vec![sample("m", &[("a", "1"), ("b", "2")], 3.0, None)]
        );
    }

    #[test]
    fn tolerates_blanks_around_tokens() {
        let input = "  m \t{ a = \"1\" ,\tb=\"2\" , } \t 3 \t 1700000000000 \t\n\tn 4\t\n";
        let exposition = parse_text(input);
        assert_eq!(
            positionless(&exposition),
            vec![
                sample("m", &[("a", "1"), ("b", "2")], 3.0, Some(1_700_000_000_000)),
                sample("n", &[], 4.0, None),
            ]
        );
    }

    #[test]
    fn parses_special_and_exponent_values() {
        let input = "a NaN\nb nan\nc +Inf\nd -Inf\ne Inf\nf inf\ng Infinity\nh -1.5E-3\ni 1e3\nj .5\nk 5.\nl -0\nm +7\n";
        let values: Vec<f64> = parse_text(input).samples.iter().map(|s| s.value).collect();
        assert!(values[0].is_nan() && values[1].is_nan());
        assert_eq!(
            values[2..],
            [
                f64::INFINITY,
                f64::NEG_INFINITY,
                f64::INFINITY,
                f64::INFINITY,
                f64::INFINITY,
                -0.0015,
                1000.0,
                0.5,
                5.0,
                0.0,
                7.0
            ]
        );
    }

    #[test]
    fn rejects_malformed_values() {
        for value in [
            "abc", "1.0.0", "0x10", "1_000", "+NaN", "-nan", "1e400", "1e", "--1", "1,5",
        ] {
            let error = text_error(&format!("m {value}\n"));
            assert_eq!(error.line, 1, "{value}");
            assert!(
                error.message.starts_with("expected float value, got"),
                "{value}: {error}"
            );
        }
    }

    #[test]
    fn parses_integer_millisecond_timestamps() {
        let exposition = parse_text("a 1 1395066363000\nb 2 0\n");
        assert_eq!(exposition.samples[0].timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(exposition.samples[1].timestamp_ms, Some(0));
    }

    #[test]
    fn rejects_non_integer_timestamps_in_text_format() {
        for timestamp in ["1.5", "-5", "+5", "1e3", "99999999999999999999", "abc"] {
            let error = text_error(&format!("a 1 {timestamp}\n"));
            assert!(
                error
                    .message
                    .starts_with("expected timestamp in integer milliseconds"),
                "{timestamp}: {error}"
            );
        }
    }

    #[test]
    fn samples_without_type_have_no_metadata() {
        let exposition = parse_text("foo 1\nbar{a=\"b\"} 2\n");
        assert_eq!(names(&exposition), ["foo", "bar"]);
        assert!(exposition.metadata.is_empty());
    }

    #[test]
    fn collects_help_and_type_per_family() {
        let input = "\
# HELP http_requests_total Total requests.\\nSecond line with \\\\ and \\\" kept.
# TYPE http_requests_total counter
http_requests_total 5
# TYPE temp gauge
temp 21.5
# HELP only_help Just help.
only_help 3
# TYPE legacy untyped
legacy 1
";
        let exposition = parse_text(input);
        assert_eq!(
            exposition.metadata,
            vec![
                metadata(
                    "http_requests_total",
                    MetricType::Counter,
                    "Total requests.\nSecond line with \\ and \\\" kept.",
                    ""
                ),
                metadata("temp", MetricType::Gauge, "", ""),
                metadata("only_help", MetricType::Unknown, "Just help.", ""),
                metadata("legacy", MetricType::Unknown, "", ""),
            ]
        );
        assert_eq!(exposition.samples.len(), 4);
    }

    #[test]
    fn help_text_keeps_everything_after_one_separator() {
        let exposition = parse_text("# HELP a  two  spaces \n# HELP b\n");
        assert_eq!(exposition.metadata[0].help, " two  spaces ");
        assert_eq!(exposition.metadata[1].help, "");
    }

    #[test]
    fn type_keyword_vocabulary_depends_on_format() {
        let error = text_error("# TYPE a gaugehistogram\n");
        assert_eq!(
            error.message,
            "expected metric type (counter, gauge, histogram, summary or untyped), got \"gaugehistogram\""
        );
        assert!(text_error("# TYPE a unknown\n").message.contains("untyped"));
        assert!(
            text_error("# TYPE a Counter\n")
                .message
                .contains("\"Counter\"")
        );
        assert!(
            text_error("# TYPE a\n")
                .message
                .ends_with("got end of line")
        );
        let error = om_error("# TYPE a untyped\n# EOF\n");
        assert!(error.message.contains("stateset or unknown"), "{error}");
        // Blanks around the keyword are fine in 0.0.4.
        assert_eq!(
            parse_text("# TYPE a \t gauge \n").metadata[0].metric_type,
            MetricType::Gauge
        );
    }

    #[test]
    fn ignores_plain_comments_and_blank_lines() {
        let input = "\
# just a comment
#HELP not_metadata really
# HELPER x y
# UNIT a_seconds seconds
# EOF

   \t
#
a 1
# EOF
b 2
";
        let exposition = parse_text(input);
        assert_eq!(names(&exposition), ["a", "b"]);
        assert!(exposition.metadata.is_empty());
    }

    #[test]
    fn returns_duplicate_series_unchanged() {
        let exposition = parse_text("a{x=\"1\"} 1\na{x=\"1\"} 2\n");
        assert_eq!(
            positionless(&exposition),
            vec![
                sample("a", &[("x", "1")], 1.0, None),
                sample("a", &[("x", "1")], 2.0, None)
            ]
        );
    }

    #[test]
    fn rejects_second_type_line() {
        let error = text_error("# TYPE a gauge\n# TYPE a counter\n");
        assert_eq!(error.line, 2);
        assert_eq!(error.message, "second TYPE line for metric name \"a\"");
    }

    #[test]
    fn rejects_second_help_line() {
        let error = text_error("# HELP a one\n# TYPE a gauge\n# HELP a two\n");
        assert_eq!(error.line, 3);
        assert_eq!(error.message, "second HELP line for metric name \"a\"");
    }

    #[test]
    fn rejects_type_after_samples_but_allows_late_help_in_text_format() {
        let error = text_error("a 1\n# TYPE a gauge\n");
        assert_eq!(error.line, 2);
        assert_eq!(
            error.message,
            "TYPE line for metric name \"a\" after its samples"
        );
        let exposition = parse_text("a 1\n# HELP a late help\n");
        assert_eq!(exposition.metadata[0].help, "late help");
        // Suffixed samples count towards their declared family.
        let error = text_error(
            "# HELP h x\n# TYPE s summary\ns_sum 1\n# TYPE s_count gauge\n# TYPE s gauge\n",
        );
        assert_eq!(error.line, 5, "{error}");
    }

    #[test]
    fn rejects_duplicate_label_names() {
        let error = text_error("ok 1\nm{a=\"1\",b=\"2\",a=\"3\"} 1\n");
        assert_eq!(error.line, 2);
        assert_eq!(error.message, "duplicate label name \"a\"");
    }

    #[test]
    fn rejects_duplicate_names_among_many_labels() {
        let mut line = String::from("m{");
        for i in 0..1000 {
            line.push_str(&format!("l{i}=\"v\","));
        }
        line.push_str("l500=\"again\"} 1\n");
        assert_eq!(text_error(&line).message, "duplicate label name \"l500\"");
    }

    #[test]
    fn rejects_reserved_name_label() {
        let error = text_error("m{__name__=\"x\"} 1\n");
        assert_eq!(
            error.message,
            "label name \"__name__\" is reserved for the metric name"
        );
    }

    #[test]
    fn rejects_sample_without_value() {
        for input in ["m\n", "m \n", "m{a=\"b\"}\n", "m{a=\"b\"} \t\n"] {
            let error = text_error(input);
            assert_eq!(
                error.to_string(),
                "line 1: expected value, got end of line",
                "{input:?}"
            );
        }
    }

    #[test]
    fn reports_broken_lines_with_their_line_number() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "a{b=foo} 1\n",
                1,
                "expected label value in double quotes, got \"foo\"",
            ),
            (
                "ok 1\na{b=\"c\" d=\"e\"} 1\n",
                2,
                "expected ',' or '}' after label, got \"d\"",
            ),
            (
                "ok 1\n\n# HELP x y\nbad\n",
                4,
                "expected value, got end of line",
            ),
            (
                "a 1 2 3\n",
                1,
                "expected end of line after timestamp, got \"3\"",
            ),
            (
                "a{1b=\"c\"} 1\n",
                1,
                "expected label name or '}', got \"1b\"",
            ),
            ("a{b=\"c} 1\n", 1, "missing closing '\"' for label value"),
            (
                "a{b=\"c\\\"} 1\n",
                1,
                "missing closing '\"' for label value",
            ),
            ("ok 1\nok 2\n1a 1\n", 3, "expected metric name, got \"1a\""),
            (
                "a{b} 1\n",
                1,
                "expected '=' after label name \"b\", got \"}\"",
            ),
            ("a{,} 1\n", 1, "expected label name or '}', got \",\""),
            (
                "a{b=\"c\",,} 1\n",
                1,
                "expected label name or '}', got \",\"",
            ),
            (
                "a{b=\"c\"\n",
                1,
                "expected ',' or '}' after label, got end of line",
            ),
            ("a-b 1\n", 1, "expected space before value, got \"-b\""),
            (
                "{b=\"c\"} 1\n",
                1,
                "metric name missing: expected it before '{' or quoted inside the braces",
            ),
            (
                "a{\"x\"} 1\n",
                1,
                "metric name given twice, before and inside the braces",
            ),
            (
                "{\"x\",\"y\"} 1\n",
                1,
                "metric name given twice inside the braces",
            ),
            ("{\"\"} 1\n", 1, "quoted metric name must not be empty"),
            (
                "{\"a\",\"\"=\"x\"} 1\n",
                1,
                "quoted label name must not be empty",
            ),
            (
                "# HELP 9lives x\n",
                1,
                "expected metric name, got \"9lives\"",
            ),
            (
                "# HELP a{b} x\n",
                1,
                "expected space after metric name, got \"{\"",
            ),
            (
                "ok 1\n\"quoted\" 1\n",
                2,
                "expected metric name, got \"\\\"\"",
            ),
            ("a 1\n=\n", 2, "expected metric name, got \"=\""),
        ];
        for (input, line, message) in cases {
            let error = text_error(input);
            assert_eq!(
                (error.line, error.message.as_str()),
                (*line, *message),
                "{input:?}"
            );
        }
    }

    #[test]
    fn error_display_and_source() {
        let error = text_error("a{b=foo} 1\n");
        assert_eq!(
            error.to_string(),
            "line 1: expected label value in double quotes, got \"foo\""
        );
        let as_dyn: &dyn Error = &error;
        assert!(as_dyn.source().is_none());
    }

    #[test]
    fn error_snippets_are_truncated() {
        let garbage = "x".repeat(100_000);
        let error = text_error(&format!("a{{b={garbage}}} 1\n"));
        assert!(error.message.len() < 120, "{}", error.message);
        assert!(error.message.ends_with("..."));
    }

    #[test]
    fn parses_huge_label_value() {
        let value = "v\\\"é".repeat(350_000); // ~1.75 MB raw
        let input = format!("big{{a=\"{value}\",b=\"x\"}} 1 1000\nsmall 2\n");
        let exposition = parse_text(&input);
        assert_eq!(exposition.samples.len(), 2);
        let parsed = &exposition.samples[0].labels[0].1;
        assert_eq!(parsed.len(), "v\"é".len() * 350_000);
        assert!(parsed.starts_with("v\"év\"é"));
        assert_eq!(
            exposition.samples[0].labels[1],
            ("b".to_string(), "x".to_string())
        );
        assert_eq!(exposition.samples[0].timestamp_ms, Some(1000));
    }

    #[test]
    fn parses_line_with_many_labels() {
        let mut line = String::from("wide{");
        for i in 0..50_000 {
            line.push_str(&format!("l{i}=\"{i}\","));
        }
        line.push_str("} 1\n");
        let exposition = parse_text(&line);
        assert_eq!(exposition.samples[0].labels.len(), 50_000);
    }

    #[test]
    fn accepts_last_line_without_newline_and_empty_input() {
        assert_eq!(names(&parse_text("a 1\nb 2")), ["a", "b"]);
        assert_eq!(parse_text(""), Exposition::default());
        assert_eq!(parse_text("\n\n"), Exposition::default());
    }

    #[test]
    fn rejects_carriage_returns_like_prometheus() {
        let error = text_error("a 1\r\n");
        assert_eq!(error.message, "expected float value, got \"1\\r\"");
    }

    #[test]
    fn parses_utf8_quoted_names() {
        let input = "\
# HELP \"my.metric\" Dotted name.
# TYPE \"my.metric\" gauge
{\"my.metric\", \"label.name\"=\"v\", plain=\"p\"} 1
{\"label.first\"=\"x\", \"my.metric\"} 2
name_outside{\"quoted.label\"=\"q\"} 3
{\"esc\\\"aped\\\\\"} 4
{\"ünïcödé\"} 5 10
";
        let exposition = parse_text(input);
        assert_eq!(
            positionless(&exposition),
            vec![
                sample(
                    "my.metric",
                    &[("label.name", "v"), ("plain", "p")],
                    1.0,
                    None
                ),
                sample("my.metric", &[("label.first", "x")], 2.0, None),
                sample("name_outside", &[("quoted.label", "q")], 3.0, None),
                sample("esc\"aped\\", &[], 4.0, None),
                sample("ünïcödé", &[], 5.0, Some(10)),
            ]
        );
        assert_eq!(
            exposition.metadata,
            vec![metadata("my.metric", MetricType::Gauge, "Dotted name.", "")]
        );
    }

    #[test]
    fn parses_node_exporter_output() {
        let input = r##"# HELP go_gc_duration_seconds A summary of the pause duration of garbage collection cycles.
# TYPE go_gc_duration_seconds summary
go_gc_duration_seconds{quantile="0"} 2.1443e-05
go_gc_duration_seconds{quantile="0.25"} 3.2791e-05
go_gc_duration_seconds{quantile="0.5"} 4.0413e-05
go_gc_duration_seconds{quantile="0.75"} 5.8297e-05
go_gc_duration_seconds{quantile="1"} 0.000671355
go_gc_duration_seconds_sum 0.095419512
go_gc_duration_seconds_count 1421
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 8
# HELP go_info Information about the Go environment.
# TYPE go_info gauge
go_info{version="go1.21.6"} 1
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu="0",mode="idle"} 2.15283946e+06
node_cpu_seconds_total{cpu="0",mode="iowait"} 1107.42
node_cpu_seconds_total{cpu="0",mode="system"} 9834.53
node_cpu_seconds_total{cpu="0",mode="user"} 22771.08
node_cpu_seconds_total{cpu="1",mode="idle"} 2.15409227e+06
# HELP node_disk_io_time_seconds_total Total seconds spent doing I/Os.
# TYPE node_disk_io_time_seconds_total counter
node_disk_io_time_seconds_total{device="nvme0n1"} 1735.1
node_disk_io_time_seconds_total{device="sda"} 0
# HELP node_filesystem_avail_bytes Filesystem space available to non-root users in bytes.
# TYPE node_filesystem_avail_bytes gauge
node_filesystem_avail_bytes{device="/dev/nvme0n1p2",fstype="ext4",mountpoint="/"} 3.4262732800e+10
node_filesystem_avail_bytes{device="tmpfs",fstype="tmpfs",mountpoint="/run"} 1.6588288e+09
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.52
# HELP node_network_receive_bytes_total Network device statistic receive_bytes.
# TYPE node_network_receive_bytes_total counter
node_network_receive_bytes_total{device="eth0"} 8.3424915621e+10
node_network_receive_bytes_total{device="lo"} 2.0386232e+07
# HELP node_scrape_collector_success node_exporter: Whether a collector succeeded.
# TYPE node_scrape_collector_success gauge
node_scrape_collector_success{collector="cpu"} 1
node_scrape_collector_success{collector="thermal_zone"} 0
# HELP node_uname_info Labeled system information as provided by the uname system call.
# TYPE node_uname_info gauge
node_uname_info{domainname="(none)",machine="x86_64",nodename="web-1",release="6.1.0-18-amd64",sysname="Linux",version="#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"} 1
# HELP promhttp_metric_handler_request_duration_seconds Histogram of handler latency.
# TYPE promhttp_metric_handler_request_duration_seconds histogram
promhttp_metric_handler_request_duration_seconds_bucket{le="0.005"} 12
promhttp_metric_handler_request_duration_seconds_bucket{le="0.1"} 15
promhttp_metric_handler_request_duration_seconds_bucket{le="+Inf"} 15
promhttp_metric_handler_request_duration_seconds_sum 0.0873
promhttp_metric_handler_request_duration_seconds_count 15
# HELP promhttp_metric_handler_requests_total Total number of scrapes by HTTP status code.
# TYPE promhttp_metric_handler_requests_total counter
promhttp_metric_handler_requests_total{code="200"} 1421
promhttp_metric_handler_requests_total{code="500"} 0
"##;
        let exposition = parse_text(input);
        assert_eq!(exposition.samples.len(), 31);
        assert_eq!(exposition.metadata.len(), 12);
        let families: Vec<(&str, MetricType)> = exposition
            .metadata
            .iter()
            .map(|m| (m.metric_family.as_str(), m.metric_type))
            .collect();
        assert_eq!(families[0], ("go_gc_duration_seconds", MetricType::Summary));
        assert_eq!(
            families[11],
            (
                "promhttp_metric_handler_requests_total",
                MetricType::Counter
            )
        );
        let uname = exposition
            .samples
            .iter()
            .find(|s| s.name == "node_uname_info")
            .map(|s| s.labels.clone());
        assert_eq!(
            uname.and_then(|l| l.last().cloned()),
            Some((
                "version".to_string(),
                "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)".to_string()
            ))
        );
        let inf_bucket = &exposition.samples[26];
        assert_eq!(inf_bucket.labels, labels(&[("le", "+Inf")]));
        assert_eq!(inf_bucket.value, 15.0);
        assert_eq!(exposition.samples[16].value, 3.42627328e10);
    }

    // ---- OpenMetrics ---------------------------------------------------------

    #[test]
    fn parses_openmetrics_families() {
        let input = "\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency \\\"quoted\\\" \\\\ \\n.
acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32
acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0
acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0
# TYPE go_goroutines gauge
go_goroutines 69
# TYPE process_cpu_seconds counter
# UNIT process_cpu_seconds seconds
process_cpu_seconds_total 4.20072246e+06
process_cpu_seconds_created 1.6e9
# TYPE build info
build_info{version=\"1.2\"} 1
# TYPE door stateset
door{door=\"open\"} 1
door{door=\"closed\"} 0
# TYPE queue gaugehistogram
queue_bucket{le=\"+Inf\"} 4
queue_gcount 4
queue_gsum 11
# TYPE mystery unknown
mystery 2
# EOF
";
        let exposition = parse_om(input);
        assert_eq!(
            names(&exposition),
            [
                "acme_http_router_request_seconds_sum",
                "acme_http_router_request_seconds_count",
                "go_goroutines",
                "process_cpu_seconds_total",
                "build_info",
                "door",
                "door",
                "queue_bucket",
                "queue_gcount",
                "queue_gsum",
                "mystery",
            ]
        );
        assert_eq!(
            exposition.metadata,
            vec![
                metadata(
                    "acme_http_router_request_seconds",
                    MetricType::Summary,
                    "Latency \"quoted\" \\ \n.",
                    "seconds"
                ),
                metadata("go_goroutines", MetricType::Gauge, "", ""),
                metadata("process_cpu_seconds", MetricType::Counter, "", "seconds"),
                metadata("build", MetricType::Info, "", ""),
                metadata("door", MetricType::StateSet, "", ""),
                metadata("queue", MetricType::GaugeHistogram, "", ""),
                metadata("mystery", MetricType::Unknown, "", ""),
            ]
        );
    }

    #[test]
    fn drops_created_series_only_where_they_are_timestamps() {
        let input = "\
# TYPE h histogram
h_bucket{le=\"+Inf\"} 1
h_count 1
h_sum 2
h_created 1.6e9
# TYPE g gauge
g_created 5
untyped_created 6
# TYPE c_created gauge
c_created 7
# EOF
";
        assert_eq!(
            names(&parse_om(input)),
            [
                "h_bucket",
                "h_count",
                "h_sum",
                "g_created",
                "untyped_created",
                "c_created"
            ]
        );
        // 0.0.4 has no such convention, so the series is kept there.
        let text = "# TYPE c counter\nc_total 1\nc_created 2\n";
        assert_eq!(names(&parse_text(text)), ["c_total", "c_created"]);
    }

    #[test]
    fn parses_openmetrics_timestamps_as_seconds() {
        let input = "a 1 1520879607.789\nb 2 1520879607\nc 3 0.0004\nd 4 -1.5\ne 5 1.5e3\n# EOF\n";
        let timestamps: Vec<Option<i64>> = parse_om(input)
            .samples
            .iter()
            .map(|s| s.timestamp_ms)
            .collect();
        assert_eq!(
            timestamps,
            [
                Some(1_520_879_607_789),
                Some(1_520_879_607_000),
                Some(0),
                Some(-1500),
                Some(1_500_000)
            ]
        );
    }

    #[test]
    fn rejects_invalid_openmetrics_timestamps() {
        for timestamp in ["NaN", "+Inf", "abc", "1e300", "1,5"] {
            let error = om_error(&format!("a 1 {timestamp}\n# EOF\n"));
            assert!(
                error.message.starts_with("expected timestamp in seconds"),
                "{timestamp}: {error}"
            );
        }
    }

    #[test]
    fn bucket_and_quantile_values_are_written_as_openmetrics_floats() {
        let input = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"0.25\"} 1\nh_bucket{le=\"+Inf\"} 2\n# TYPE s summary\ns{quantile=\"0\"} 1\ns{quantile=\"1\"} 2\n# TYPE g gauge\ng{le=\"1\"} 3\n";
        let labels: Vec<String> = parse_text(input)
            .samples
            .iter()
            .map(|s| format!("{}{:?}", s.name, s.labels))
            .collect();
        assert_eq!(
            labels,
            [
                r#"h_bucket[("le", "1.0")]"#,
                r#"h_bucket[("le", "0.25")]"#,
                r#"h_bucket[("le", "+Inf")]"#,
                r#"s[("quantile", "0.0")]"#,
                r#"s[("quantile", "1.0")]"#,
                // Only a histogram's le and a summary's quantile are numbers.
                r#"g[("le", "1")]"#,
            ]
        );
    }

    #[test]
    fn reads_exemplars() {
        let input = "\
# TYPE foo histogram
foo_bucket{le=\"0.01\"} 0
foo_bucket{le=\"0.1\"} 8 # {} 0.054
foo_bucket{le=\"1\"} 11 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_bucket{le=\"10\"} 17 # {trace_id=\"oHg5SJYRHA0\",span=\"x y\"} 9.8 1520879607.789
foo_bucket{le=\"+Inf\"} 17 1520879607.7 # {trace_id=\"a\"} 9.8 1520879607.789
foo_count 17
foo_sum 324789.3
# TYPE bar counter
bar_total 5 # {\"utf8.label\"=\"v\"} 1
# EOF
";
        let exposition = parse_om(input);
        assert_eq!(exposition.samples.len(), 8);
        let exemplar = |i: usize| exposition.samples[i].exemplar.clone();
        let with = |pairs: &[(&str, &str)], value: f64, timestamp_ms: Option<i64>| {
            Some(ParsedExemplar {
                labels: labels(pairs),
                value,
                timestamp_ms,
            })
        };
        assert_eq!(exemplar(0), None);
        assert_eq!(exemplar(1), with(&[], 0.054, None));
        assert_eq!(
            exemplar(2),
            with(&[("trace_id", "KOO5S4vxi0o")], 0.67, None)
        );
        assert_eq!(
            exemplar(3),
            with(
                &[("trace_id", "oHg5SJYRHA0"), ("span", "x y")],
                9.8,
                Some(1_520_879_607_789)
            )
        );
        assert_eq!(exemplar(7), with(&[("utf8.label", "v")], 1.0, None));
        // The samples themselves are as without exemplars.
        let mut plain = positionless(&exposition);
        for s in &mut plain {
            s.exemplar = None;
        }
        assert_eq!(plain[2], sample("foo_bucket", &[("le", "1.0")], 11.0, None));
        assert_eq!(
            plain[4],
            sample(
                "foo_bucket",
                &[("le", "+Inf")],
                17.0,
                Some(1_520_879_607_700)
            )
        );
        assert_eq!(plain[7], sample("bar_total", &[], 5.0, None));
    }

    #[test]
    fn rejects_malformed_exemplars() {
        let cases: &[(&str, &str)] = &[
            (
                "a_total 1 # trace 1\n",
                "expected '{' opening the exemplar labels, got \"trace\"",
            ),
            (
                "a_total 1 # {a=\"b\"}\n",
                "expected exemplar value, got end of line",
            ),
            (
                "a_total 1 # {a=\"b\"} x\n",
                "expected float exemplar value, got \"x\"",
            ),
            (
                "a_total 1 # {a=\"b\"} 1 2 3\n",
                "expected end of line after exemplar, got \" 3\"",
            ),
            (
                "a_total 1 # {a=b} 1\n",
                "expected label value in double quotes, got \"b\"",
            ),
            (
                "a_total 1 # {a=\"1\",a=\"2\"} 1\n",
                "duplicate label name \"a\"",
            ),
            (
                "a_total 1 # {\"name\"} 1\n",
                "expected '=' after label name \"name\", got \"}\"",
            ),
            (
                "a_total 1 # {a=\"b\"} 1 NaN\n",
                "expected timestamp in seconds (a finite float), got \"NaN\"",
            ),
            (
                "a_total 1 2 3\n",
                "expected exemplar (\"# {...}\") or end of line, got \"3\"",
            ),
        ];
        for (line, message) in cases {
            let error = om_error(&format!("# TYPE a counter\n{line}# EOF\n"));
            assert_eq!(
                (error.line, error.message.as_str()),
                (2, *message),
                "{line:?}"
            );
        }
    }

    #[test]
    fn requires_eof_marker() {
        let error = om_error("a 1\nb 2\n");
        assert_eq!(error.line, 3);
        assert_eq!(
            error.message,
            "expected \"# EOF\" at the end of OpenMetrics input, got end of input"
        );
        assert_eq!(om_error("").line, 1);
        assert_eq!(om_error("a 1").line, 2);
    }

    #[test]
    fn accepts_eof_with_or_without_final_newline() {
        assert_eq!(names(&parse_om("a 1\n# EOF")), ["a"]);
        assert_eq!(names(&parse_om("a 1\n# EOF\n")), ["a"]);
        assert_eq!(parse_om("# EOF\n"), Exposition::default());
    }

    #[test]
    fn rejects_content_after_eof() {
        let error = om_error("a 1\n# EOF\nb 2\n");
        assert_eq!(
            (error.line, error.message.as_str()),
            (3, "unexpected content after \"# EOF\"")
        );
        assert_eq!(om_error("# EOF\n\n").line, 2);
        assert_eq!(om_error("# EOF\n# EOF\n").line, 2);
    }

    #[test]
    fn rejects_empty_lines_and_free_comments_in_openmetrics() {
        let error = om_error("a 1\n\nb 2\n# EOF\n");
        assert_eq!(
            (error.line, error.message.as_str()),
            (2, "empty lines are not allowed in OpenMetrics")
        );
        let error = om_error("a 1\n# hello world\n# EOF\n");
        assert_eq!(error.line, 2);
        assert_eq!(
            error.message,
            "expected \"# HELP\", \"# TYPE\", \"# UNIT\" or \"# EOF\", got \"# hello world\""
        );
        assert_eq!(om_error("#EOF\n").line, 1);
        assert_eq!(om_error("# EOF \n").line, 1);
    }

    #[test]
    fn openmetrics_is_strict_about_whitespace() {
        let cases: &[(&str, &str)] = &[
            ("a  1\n", "expected value after a single space, got \" \""),
            ("a\t1\n", "expected space before value, got \"\\t\""),
            (
                "a{b=\"c\", d=\"e\"} 1\n",
                "expected label name or '}', got \" \"",
            ),
            (
                "a {b=\"c\"} 1\n",
                "expected float value, got \"{b=\\\"c\\\"}\"",
            ),
            (
                "a 1 \n",
                "expected timestamp or exemplar after a single space, got end of line",
            ),
            (
                "a 1  5\n",
                "expected timestamp or exemplar after a single space, got \" \"",
            ),
            (" a 1\n", "expected metric name, got \" \""),
            (
                "# TYPE a  gauge\n",
                "expected metric type (counter, gauge, histogram, gaugehistogram, summary, info, stateset or unknown), got \" gauge\"",
            ),
        ];
        for (line, message) in cases {
            let error = om_error(&format!("{line}# EOF\n"));
            assert_eq!(
                (error.line, error.message.as_str()),
                (1, *message),
                "{line:?}"
            );
        }
    }

    #[test]
    fn openmetrics_metadata_must_precede_samples() {
        let error = om_error("# TYPE a counter\na_total 1\n# HELP a late\n# EOF\n");
        assert_eq!(
            (error.line, error.message.as_str()),
            (3, "HELP line for metric name \"a\" after its samples")
        );
        let error = om_error("a 1\n# TYPE a gauge\n# EOF\n");
        assert_eq!(
            (error.line, error.message.as_str()),
            (2, "TYPE line for metric name \"a\" after its samples")
        );
        let error = om_error("# TYPE a gauge\n# UNIT a_bytes bytes\n# UNIT a_bytes bytes\n# EOF\n");
        assert_eq!(
            (error.line, error.message.as_str()),
            (3, "second UNIT line for metric name \"a_bytes\"")
        );
    }

    #[test]
    fn unit_must_be_a_suffix_of_the_family_name() {
        let error = om_error("# UNIT latency_seconds bytes\n# EOF\n");
        assert_eq!(
            error.message,
            "unit \"bytes\" is not a suffix of metric name \"latency_seconds\""
        );
        // "seconds" must be a whole suffix, not part of a word.
        assert!(
            om_error("# UNIT halfseconds seconds\n# EOF\n")
                .message
                .starts_with("unit")
        );
        assert_eq!(parse_om("# UNIT a \n# EOF\n").metadata[0].unit, "");
    }

    #[test]
    fn parses_utf8_names_in_openmetrics() {
        let input = "\
# TYPE \"http.requests\" counter
# HELP \"http.requests\" Requests.
{\"http.requests_total\",\"http.method\"=\"GET\"} 3 1.5
# EOF
";
        let exposition = parse_om(input);
        assert_eq!(
            positionless(&exposition),
            vec![sample(
                "http.requests_total",
                &[("http.method", "GET")],
                3.0,
                Some(1500)
            )]
        );
        assert_eq!(
            exposition.metadata,
            vec![metadata(
                "http.requests",
                MetricType::Counter,
                "Requests.",
                ""
            )]
        );
    }

    // ---- Content type and robustness ----------------------------------------

    #[test]
    fn detects_format_from_content_type() {
        let cases = [
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                Format::OpenMetrics,
            ),
            (
                "application/openmetrics-text;version=0.0.1",
                Format::OpenMetrics,
            ),
            ("Application/OpenMetrics-Text", Format::OpenMetrics),
            (
                "text/plain; version=0.0.4; charset=utf-8",
                Format::PrometheusText,
            ),
            ("text/plain", Format::PrometheusText),
            ("application/json", Format::PrometheusText),
            ("", Format::PrometheusText),
            (";;;", Format::PrometheusText),
        ];
        for (content_type, format) in cases {
            assert_eq!(
                format_from_content_type(content_type),
                format,
                "{content_type:?}"
            );
        }
    }

    #[test]
    fn never_panics_on_garbage() {
        const FRAGMENTS: [&str; 34] = [
            "m", "_total", "_created", "{", "}", "\"", "\\", "=", ",", " ", "  ", "\t", "1", "1.5",
            "NaN", "+Inf", "-", "e", "# ", "#", "HELP ", "TYPE ", "UNIT ", "EOF", "counter",
            "gauge ", "\n", "\r", "é", "✓", "le", "\"a.b\"", "# {", "0x",
        ];
        let mut next = crate::testutil::xorshift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let length = next() % 24;
            let input: String = (0..length)
                .map(|_| FRAGMENTS[(next() % FRAGMENTS.len() as u64) as usize])
                .collect();
            for format in [Format::PrometheusText, Format::OpenMetrics] {
                if let Err(error) = parse(&input, format) {
                    assert!(error.line >= 1);
                    assert!(!error.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn errors_on_every_prefix_or_parses() {
        // Truncating a valid exposition anywhere must not panic, whatever the
        // cut splits (including inside multi-byte characters' neighbours).
        let input = "# HELP a Hé\\n\n# TYPE a counter\na_total{l=\"v\\\"é\",} 1 1.5 # {t=\"x\"} 2 3\n# EOF\n";
        for (cut, _) in input.char_indices() {
            let prefix = &input[..cut];
            let _ = parse(prefix, Format::OpenMetrics);
            let _ = parse(prefix, Format::PrometheusText);
        }
        assert_eq!(parse_om(input).samples.len(), 1);
    }
}
