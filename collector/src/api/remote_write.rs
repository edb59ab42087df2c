//! Prometheus remote_write 1.0 wire types (protobuf `prometheus.WriteRequest`, snappy block
//! compressed), declared with prost's derive so no code generation step is needed, plus the
//! conversion into Vigil series. The same types serve remote_write out.

use vigil_shared::model::{Labels, Point, Series};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

/// Largest decompressed remote_write body accepted.
pub const MAX_DECODED_BYTES: usize = 64 * 1024 * 1024;

/// Why a remote_write body was refused.
#[derive(Debug, thiserror::Error)]
pub enum RemoteWriteError {
    /// The body is not snappy block-compressed data.
    #[error("snappy decompression failed: {0}")]
    Snappy(#[from] snap::Error),
    /// The decompressed body is larger than [`MAX_DECODED_BYTES`].
    #[error("decompressed body of {0} bytes exceeds the limit of {MAX_DECODED_BYTES} bytes")]
    TooLarge(usize),
    /// The body is not a WriteRequest.
    #[error("protobuf decoding failed: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A series has no metric name or an invalid label name.
    #[error("series {index}: {problem}")]
    InvalidSeries { index: usize, problem: String },
    /// A metadata entry has no family name or an unknown type.
    #[error("metadata {index}: {problem}")]
    InvalidMetadata { index: usize, problem: String },
}

fn valid_label_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The metric type names of `prometheus.MetricMetadata.MetricType`, by enum value.
const METRIC_TYPES: [&str; 8] = [
    "unknown",
    "counter",
    "gauge",
    "histogram",
    "gaugehistogram",
    "summary",
    "info",
    "stateset",
];

/// One family's metadata from a WriteRequest, with the type as Prometheus's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyMetadata {
    pub family: String,
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// A decoded WriteRequest: series and metric metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Decoded {
    pub series: Vec<Series>,
    pub metadata: Vec<FamilyMetadata>,
}

/// Decodes a snappy-compressed WriteRequest body into series, ignoring metadata.
pub fn decode(body: &[u8]) -> Result<Vec<Series>, RemoteWriteError> {
    decode_request(body).map(|d| d.series)
}

/// Decodes a snappy-compressed WriteRequest body into series and metric metadata. A
/// metadata entry with an unknown type value is an error naming it.
pub fn decode_request(body: &[u8]) -> Result<Decoded, RemoteWriteError> {
    let len = snap::raw::decompress_len(body)?;
    if len > MAX_DECODED_BYTES {
        return Err(RemoteWriteError::TooLarge(len));
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    let req = <WriteRequest as prost::Message>::decode(raw.as_slice())?;
    let mut metadata = Vec::with_capacity(req.metadata.len());
    for (index, m) in req.metadata.into_iter().enumerate() {
        let kind = usize::try_from(m.r#type)
            .ok()
            .and_then(|t| METRIC_TYPES.get(t))
            .ok_or_else(|| RemoteWriteError::InvalidMetadata {
                index,
                problem: format!("unknown metric type {}", m.r#type),
            })?;
        if m.metric_family_name.is_empty() {
            return Err(RemoteWriteError::InvalidMetadata {
                index,
                problem: "empty metric_family_name".into(),
            });
        }
        metadata.push(FamilyMetadata {
            family: m.metric_family_name,
            kind,
            help: m.help,
            unit: m.unit,
        });
    }
    let mut out = Vec::with_capacity(req.timeseries.len());
    for (index, ts) in req.timeseries.into_iter().enumerate() {
        if let Some(l) = ts.labels.iter().find(|l| !valid_label_name(&l.name)) {
            return Err(RemoteWriteError::InvalidSeries {
                index,
                problem: format!("invalid label name {:?}", l.name),
            });
        }
        let labels = Labels::new(ts.labels.into_iter().map(|l| (l.name, l.value)).collect());
        if labels.name().is_empty() {
            return Err(RemoteWriteError::InvalidSeries {
                index,
                problem: "missing __name__ label".into(),
            });
        }
        let points = ts
            .samples
            .into_iter()
            .map(|s| Point {
                timestamp_ms: s.timestamp,
                value: s.value,
            })
            .collect();
        out.push(Series { labels, points });
    }
    Ok(Decoded {
        series: out,
        metadata,
    })
}

/// Encodes series as a snappy-compressed WriteRequest body (for remote_write out and tests).
pub fn encode(series: &[Series]) -> Vec<u8> {
    let req = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| TimeSeries {
                labels: s
                    .labels
                    .iter()
                    .map(|(n, v)| Label {
                        name: n.into(),
                        value: v.into(),
                    })
                    .collect(),
                samples: s
                    .points
                    .iter()
                    .map(|p| Sample {
                        value: p.value,
                        timestamp: p.timestamp_ms,
                    })
                    .collect(),
            })
            .collect(),
        metadata: vec![],
    };
    let raw = prost::Message::encode_to_vec(&req);
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .expect("snappy compression of an in-memory buffer cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_bodies() {
        let s = vec![Series {
            labels: Labels::metric("up", &[("job", "a")]),
            points: vec![
                Point {
                    timestamp_ms: 5,
                    value: f64::NAN,
                },
                Point {
                    timestamp_ms: 6,
                    value: 1.0,
                },
            ],
        }];
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back[0].labels, s[0].labels);
        assert!(back[0].points[0].value.is_nan());
        assert!(matches!(
            decode(b"not snappy at all"),
            Err(RemoteWriteError::Snappy(_)) | Err(RemoteWriteError::Protobuf(_))
        ));
        let nameless = vec![Series {
            labels: Labels::new(vec![("job".into(), "a".into())]),
            points: vec![],
        }];
        assert!(matches!(
            decode(&encode(&nameless)),
            Err(RemoteWriteError::InvalidSeries { .. })
        ));
    }

    fn with_metadata(metadata: Vec<MetricMetadata>) -> Vec<u8> {
        let raw = prost::Message::encode_to_vec(&WriteRequest {
            timeseries: vec![],
            metadata,
        });
        snap::raw::Encoder::new().compress_vec(&raw).unwrap()
    }

    #[test]
    fn metadata_is_decoded_and_bad_types_are_named() {
        let d = decode_request(&with_metadata(vec![MetricMetadata {
            r#type: 3,
            metric_family_name: "req_seconds".into(),
            help: "Latency.".into(),
            unit: "seconds".into(),
        }]))
        .unwrap();
        assert_eq!(
            d.metadata,
            vec![FamilyMetadata {
                family: "req_seconds".into(),
                kind: "histogram",
                help: "Latency.".into(),
                unit: "seconds".into(),
            }]
        );
        let err = decode_request(&with_metadata(vec![MetricMetadata {
            r#type: 42,
            metric_family_name: "x".into(),
            help: String::new(),
            unit: String::new(),
        }]))
        .unwrap_err();
        assert_eq!(err.to_string(), "metadata 0: unknown metric type 42");
    }
}
