//! Offline driver for the anomaly detector over Numenta Anomaly Benchmark (NAB) files.
//!
//! Reads a NAB CSV (`timestamp,value`, timestamps like `2014-04-01 00:00:00`, optionally with
//! fractional seconds), feeds every row in order to one [`Detector`], and writes
//! `timestamp,value,anomaly_score`. This is what `vigil-agent detect` runs, and what
//! `scripts/nab-score.sh` measures, so the benchmark exercises exactly the live detector.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use vigil_shared::calendar::days_from_civil;

use super::anomaly::{Detector, DetectorParams};

/// What went wrong reading or writing a NAB file.
#[derive(Debug, thiserror::Error)]
pub enum NabError {
    /// The input file could not be opened or read.
    #[error("reading {path}: {source}")]
    Read {
        /// The input file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The output file could not be created or written.
    #[error("writing {path}: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The input has no header line.
    #[error("{path}: empty file, expected the header `timestamp,value`")]
    Empty {
        /// The input file.
        path: PathBuf,
    },
    /// The header is not `timestamp,value`.
    #[error("{path}: line 1: expected the header `timestamp,value`, found `{found}`")]
    BadHeader {
        /// The input file.
        path: PathBuf,
        /// The header line as read.
        found: String,
    },
    /// A data row does not have exactly two comma-separated fields.
    #[error("{path}: line {line}: expected `timestamp,value`, found `{found}`")]
    BadRow {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The row as read.
        found: String,
    },
    /// A timestamp is not `YYYY-MM-DD HH:MM:SS[.ffffff]`.
    #[error("{path}: line {line}: bad timestamp `{found}`, expected e.g. `2014-04-01 00:00:00`")]
    BadTimestamp {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The timestamp field as read.
        found: String,
    },
    /// A value is not a number.
    #[error("{path}: line {line}: bad value `{found}`, expected a number")]
    BadValue {
        /// The input file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The value field as read.
        found: String,
    },
}

/// What one run over a file produced.
#[derive(Debug, Clone, PartialEq)]
pub struct NabSummary {
    /// Data rows scored.
    pub rows: usize,
    /// Highest anomaly score written.
    pub max_score: f64,
    /// Rows whose score reached [`super::anomaly::DEFAULT_ANOMALY_THRESHOLD`].
    pub alarms: usize,
}

/// Score every row of the NAB CSV `input` with one fresh [`Detector`] built from `params`,
/// writing `timestamp,value,anomaly_score` rows to `output`.
pub fn run_nab_file(
    input: &Path,
    output: &Path,
    params: &DetectorParams,
) -> Result<NabSummary, NabError> {
    let read_err = |source| NabError::Read {
        path: input.to_path_buf(),
        source,
    };
    let write_err = |source| NabError::Write {
        path: output.to_path_buf(),
        source,
    };
    let reader = BufReader::new(File::open(input).map_err(read_err)?);
    let mut lines = reader.lines();
    let header = match lines.next() {
        None => {
            return Err(NabError::Empty {
                path: input.to_path_buf(),
            })
        }
        Some(line) => line.map_err(read_err)?,
    };
    let header_fields: Vec<&str> = header.trim_start_matches('\u{feff}').split(',').collect();
    if header_fields.len() != 2
        || header_fields[0].trim() != "timestamp"
        || header_fields[1].trim() != "value"
    {
        return Err(NabError::BadHeader {
            path: input.to_path_buf(),
            found: header,
        });
    }
    let mut out = BufWriter::new(File::create(output).map_err(write_err)?);
    writeln!(out, "timestamp,value,anomaly_score").map_err(write_err)?;
    let mut detector = Detector::new(params);
    let mut summary = NabSummary {
        rows: 0,
        max_score: 0.0,
        alarms: 0,
    };
    for (idx, line) in lines.enumerate() {
        let line_no = idx + 2;
        let line = line.map_err(read_err)?;
        if line.trim().is_empty() {
            continue;
        }
        let (ts_text, value_text) = match line.split_once(',') {
            Some((t, v)) if !v.contains(',') => (t.trim(), v.trim()),
            _ => {
                return Err(NabError::BadRow {
                    path: input.to_path_buf(),
                    line: line_no,
                    found: line,
                })
            }
        };
        let ts = parse_nab_timestamp(ts_text).ok_or_else(|| NabError::BadTimestamp {
            path: input.to_path_buf(),
            line: line_no,
            found: ts_text.to_string(),
        })?;
        let value: f64 = value_text.parse().map_err(|_| NabError::BadValue {
            path: input.to_path_buf(),
            line: line_no,
            found: value_text.to_string(),
        })?;
        let score = detector.observe(ts, value);
        summary.rows += 1;
        summary.max_score = summary.max_score.max(score);
        if score >= super::anomaly::DEFAULT_ANOMALY_THRESHOLD {
            summary.alarms += 1;
        }
        writeln!(out, "{ts_text},{value_text},{score}").map_err(write_err)?;
    }
    out.flush().map_err(write_err)?;
    Ok(summary)
}

/// Milliseconds since the Unix epoch (taken as UTC) of `YYYY-MM-DD HH:MM:SS[.fraction]`
/// (a `T` separator is accepted too); `None` if malformed or out of range.
pub fn parse_nab_timestamp(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || (b[10] != b' ' && b[10] != b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        if !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut millis = 0;
    if b.len() > 19 {
        if b[19] != b'.' || b.len() == 20 {
            return None;
        }
        let frac = text.get(20..)?;
        if !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = digits.parse::<i64>().ok()?;
    }
    let days = days_from_civil(year, month, day);
    Some(((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + millis)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vigil-nab-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        dir
    }

    #[test]
    fn timestamps_parse_as_utc() {
        assert_eq!(parse_nab_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(
            parse_nab_timestamp("2014-04-01 00:00:00"),
            Some(1_396_310_400_000)
        );
        assert_eq!(
            parse_nab_timestamp("2014-04-01T00:00:01.5"),
            Some(1_396_310_401_500)
        );
        assert_eq!(
            parse_nab_timestamp("2016-02-29 23:59:59.000000"),
            Some(1_456_790_399_000)
        );
        for bad in [
            "",
            "2014-04-01",
            "2014-13-01 00:00:00",
            "2015-02-29 00:00:00",
            "2014-04-01 24:00:00",
            "2014-04-01 00:00:00.",
            "2014-04-01 00:00:0x",
            "+014-04-01 00:00:00",
        ] {
            assert_eq!(parse_nab_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn scores_every_row_and_keeps_columns() {
        let dir = scratch("ok");
        let input = dir.join("in.csv");
        let output = dir.join("out.csv");
        let mut text = String::from("timestamp,value\n");
        for i in 0..500 {
            let v = if i == 400 { 100.0 } else { (i % 7) as f64 };
            text.push_str(&format!(
                "2014-04-01 {:02}:{:02}:00,{v}\n",
                (i / 60) % 24,
                i % 60
            ));
        }
        std::fs::write(&input, text).expect("write input");
        let summary = run_nab_file(&input, &output, &DetectorParams::default()).expect("run");
        assert_eq!(summary.rows, 500);
        let out = std::fs::read_to_string(&output).expect("read output");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 500);
        assert_eq!(rows[400][0], "2014-04-01 06:40:00");
        assert_eq!(rows[400][1], "100");
        let spike: f64 = rows[400][2].parse().expect("score");
        assert!(spike > 0.9, "spike scored {spike}");
        assert!(rows.iter().all(|r| r.len() == 3));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn bad_rows_name_the_line() {
        let dir = scratch("bad");
        let output = dir.join("out.csv");
        let cases = [
            ("", "empty file"),
            ("time,value\n", "line 1: expected the header"),
            (
                "timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:05:00\n",
                "line 3: expected `timestamp,value`",
            ),
            (
                "timestamp,value\n2014-04-01 00:00:00,1,2\n",
                "line 2: expected",
            ),
            (
                "timestamp,value\n2014-04-01 00:00:00,1\n01/04/2014,2\n",
                "line 3: bad timestamp `01/04/2014`",
            ),
            (
                "timestamp,value\n2014-04-01 00:00:00,abc\n",
                "line 2: bad value `abc`",
            ),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let input = dir.join(format!("in{i}.csv"));
            std::fs::write(&input, text).expect("write input");
            let err = run_nab_file(&input, &output, &DetectorParams::default())
                .expect_err("bad input must fail")
                .to_string();
            assert!(err.contains(want), "case {i}: {err}");
            assert!(
                err.contains(&input.display().to_string()),
                "case {i}: {err}"
            );
        }
        let missing = run_nab_file(&dir.join("nope.csv"), &output, &DetectorParams::default())
            .expect_err("missing input");
        assert!(missing.to_string().starts_with("reading "), "{missing}");
        std::fs::remove_dir_all(dir).ok();
    }
}
