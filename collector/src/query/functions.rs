//! The arithmetic behind PromQL's functions, as pure functions over points and values:
//! `extrapolatedRate` for rate/increase/delta, irate/idelta, linear regression for deriv and
//! predict_linear, the `*_over_time` reductions, quantiles, classic-histogram bucket
//! quantiles and calendar fields. The engine picks the arguments; these do the maths exactly
//! as Prometheus 2.x does, including its Kahan summation and NaN/Inf handling.

use vigil_shared::model::Point;

/// Neumaier-compensated summation step: returns the new sum and compensation.
pub fn kahan_sum_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `extrapolatedRate`: the increase over the window, extrapolated towards the
/// window bounds, as used by `rate` (`is_rate`), `increase` and `delta` (`!is_counter`).
/// `None` when there are fewer than two points.
pub fn extrapolated_rate(
    points: &[Point],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    extrapolated_rate_scan(
        points,
        range_start_ms,
        range_end_ms,
        is_counter,
        is_rate,
        true,
    )
}

/// [`extrapolated_rate`] that skips the search for counter resets when `scan_resets` is
/// false: the same result, bit for bit, for points known to have none (the search adds
/// nothing then), at a fraction of the cost for long windows.
pub fn extrapolated_rate_scan(
    points: &[Point],
    range_start_ms: i64,
    range_end_ms: i64,
    is_counter: bool,
    is_rate: bool,
    scan_resets: bool,
) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let first = points[0];
    let last = points[points.len() - 1];
    let mut result = last.value - first.value;
    if is_counter && scan_resets {
        let mut prev_value = first.value;
        for p in &points[1..] {
            if p.value < prev_value {
                result += prev_value;
            }
            prev_value = p.value;
        }
    }
    let mut duration_to_start = (first.timestamp_ms - range_start_ms) as f64 / 1000.0;
    let duration_to_end = (range_end_ms - last.timestamp_ms) as f64 / 1000.0;
    let sampled_interval = (last.timestamp_ms - first.timestamp_ms) as f64 / 1000.0;
    let average_between = sampled_interval / (points.len() - 1) as f64;
    if is_counter && result > 0.0 && first.value >= 0.0 {
        let duration_to_zero = sampled_interval * (first.value / result);
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    let threshold = average_between * 1.1;
    let mut extrapolate_to = sampled_interval;
    if duration_to_start < threshold {
        extrapolate_to += duration_to_start;
    } else {
        extrapolate_to += average_between / 2.0;
    }
    if duration_to_end < threshold {
        extrapolate_to += duration_to_end;
    } else {
        extrapolate_to += average_between / 2.0;
    }
    // One factor, divided by the range first and applied once, as Prometheus 2.42 does:
    // `result * (e / s) / range` rounds differently from `result * ((e / s) / range)`.
    let mut factor = extrapolate_to / sampled_interval;
    if is_rate {
        factor /= duration_seconds(range_end_ms - range_start_ms);
    }
    result *= factor;
    Some(result)
}

/// Go's `time.Duration.Seconds()` for a duration of `ms` milliseconds: whole seconds plus
/// the nanoseconds divided by 1e9, which is not always `ms / 1000.0` to the last bit.
pub fn duration_seconds(ms: i64) -> f64 {
    let sec = ms / 1000;
    let nsec = (ms % 1000) * 1_000_000;
    sec as f64 + nsec as f64 / 1e9
}

/// `irate` (`is_rate`) and `idelta`: from the last two points. `None` with fewer than two
/// points or when they share a timestamp.
pub fn instant_value(points: &[Point], is_rate: bool) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let last = points[points.len() - 1];
    let prev = points[points.len() - 2];
    let mut result = if is_rate && last.value < prev.value {
        last.value
    } else {
        last.value - prev.value
    };
    let interval = last.timestamp_ms - prev.timestamp_ms;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit of value against time (seconds relative to `intercept_ms`): returns
/// `(slope, intercept)`.
pub fn linear_regression(points: &[Point], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut cx, mut sum_y, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut cxy, mut sum_x2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let Some(init_y) = points.first().map(|p| p.value) else {
        return (f64::NAN, f64::NAN);
    };
    let mut const_y = true;
    for (i, p) in points.iter().enumerate() {
        if const_y && i > 0 && p.value != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (p.timestamp_ms - intercept_ms) as f64 / 1000.0;
        (sum_x, cx) = kahan_sum_inc(x, sum_x, cx);
        (sum_y, cy) = kahan_sum_inc(p.value, sum_y, cy);
        (sum_xy, cxy) = kahan_sum_inc(x * p.value, sum_xy, cxy);
        (sum_x2, cx2) = kahan_sum_inc(x * x, sum_x2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sum_x, sum_y, sum_xy, sum_x2) = (sum_x + cx, sum_y + cy, sum_xy + cxy, sum_x2 + cx2);
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// `holt_winters` / `double_exponential_smoothing` with smoothing factor `sf` and trend
/// factor `tf` (both must be in (0, 1), checked by the caller). `None` with fewer than two
/// points.
pub fn holt_winters(points: &[Point], sf: f64, tf: f64) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, points[0].value);
    let mut b = points[1].value - points[0].value;
    for (i, p) in points.iter().enumerate().skip(1) {
        let x = sf * p.value;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = x + y;
    }
    Some(s1)
}

/// `avg_over_time`: incremental mean, Kahan-compensated, with Prometheus 2.42's handling of
/// infinities.
pub fn avg_over_time(points: &[Point]) -> f64 {
    let (mut mean, mut count, mut c): (f64, f64, f64) = (0.0, 0.0, 0.0);
    for p in points {
        count += 1.0;
        if mean.is_infinite() {
            if p.value.is_infinite() && (mean > 0.0) == (p.value > 0.0) {
                continue;
            }
            if !p.value.is_infinite() && !p.value.is_nan() {
                continue;
            }
        }
        (mean, c) = kahan_sum_inc(p.value / count - mean / count, mean, c);
    }
    if mean.is_infinite() {
        mean
    } else {
        mean + c
    }
}

/// `sum_over_time` with compensated summation.
pub fn sum_over_time(points: &[Point]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for p in points {
        (sum, c) = kahan_sum_inc(p.value, sum, c);
    }
    if sum.is_infinite() {
        sum
    } else {
        sum + c
    }
}

/// `min_over_time`: NaN only when every value is NaN.
pub fn min_over_time(points: &[Point]) -> f64 {
    let mut min = points.first().map_or(f64::NAN, |p| p.value);
    for p in points {
        if p.value < min || min.is_nan() {
            min = p.value;
        }
    }
    min
}

/// `max_over_time`: NaN only when every value is NaN.
pub fn max_over_time(points: &[Point]) -> f64 {
    let mut max = points.first().map_or(f64::NAN, |p| p.value);
    for p in points {
        if p.value > max || max.is_nan() {
            max = p.value;
        }
    }
    max
}

/// `stdvar_over_time` (population variance, compensated).
pub fn stdvar_over_time(points: &[Point]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for p in points {
        count += 1.0;
        let delta = p.value - (mean + c_mean);
        (mean, c_mean) = kahan_sum_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_sum_inc(delta * (p.value - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// `quantile` and `quantile_over_time`: linear interpolation between closest ranks;
/// -Inf for q < 0, +Inf for q > 1, NaN for NaN q or no values.
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| a.partial_cmp(b).unwrap_or_else(|| nan_first(*a, *b)));
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Go's `sort.Float64s` order: NaN sorts before every number.
fn nan_first(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        _ => std::cmp::Ordering::Greater,
    }
}

/// A classic histogram bucket: upper bound and cumulative count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub upper_bound: f64,
    pub count: f64,
}

/// `histogram_quantile` over classic buckets, as Prometheus's `bucketQuantile`.
pub fn bucket_quantile(q: f64, buckets: &mut [Bucket]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| {
        a.upper_bound
            .partial_cmp(&b.upper_bound)
            .unwrap_or_else(|| nan_first(a.upper_bound, b.upper_bound))
    });
    match buckets.last() {
        Some(b) if b.upper_bound == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce buckets with the same upper bound.
    let mut coalesced: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.iter() {
        match coalesced.last_mut() {
            Some(last) if last.upper_bound == b.upper_bound => last.count += b.count,
            _ => coalesced.push(*b),
        }
    }
    // Make counts monotonic.
    let mut max = coalesced[0].count;
    for b in coalesced.iter_mut().skip(1) {
        if b.count > max {
            max = b.count;
        } else if b.count < max {
            b.count = max;
        }
    }
    if coalesced.len() < 2 {
        return f64::NAN;
    }
    let observations = coalesced[coalesced.len() - 1].count;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let n = coalesced.len() - 1;
    let b = coalesced[..n].partition_point(|b| b.count < rank);
    if b == n {
        return coalesced[n - 1].upper_bound;
    }
    if b == 0 && coalesced[0].upper_bound <= 0.0 {
        return coalesced[0].upper_bound;
    }
    let mut bucket_start = 0.0;
    let bucket_end = coalesced[b].upper_bound;
    let mut count = coalesced[b].count;
    if b > 0 {
        bucket_start = coalesced[b - 1].upper_bound;
        count -= coalesced[b - 1].count;
        rank -= coalesced[b - 1].count;
    }
    bucket_start + (bucket_end - bucket_start) * (rank / count)
}

/// Calendar fields of a Unix time in seconds (UTC): (year, month 1-12, day 1-31,
/// hour, minute, weekday 0=Sunday, day of year 1-366, days in month).
pub fn calendar(secs: f64) -> Option<Calendar> {
    if !secs.is_finite() {
        return None;
    }
    let secs = secs.floor() as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = vigil_shared::calendar::civil_from_days(days);
    let (m, d) = (i64::from(m), i64::from(d));
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let yday: i64 = month_days[..(m - 1) as usize].iter().sum::<i64>() + d;
    Some(Calendar {
        year: y,
        month: m,
        day: d,
        hour: rem / 3600,
        minute: (rem % 3600) / 60,
        weekday: (days + 4).rem_euclid(7),
        yday,
        days_in_month: month_days[(m - 1) as usize],
    })
}

/// Calendar fields, see [`calendar`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    pub year: i64,
    pub month: i64,
    pub day: i64,
    pub hour: i64,
    pub minute: i64,
    pub weekday: i64,
    pub yday: i64,
    pub days_in_month: i64,
}

/// Go's `math.Log10`: the natural logarithm times `1/ln 10` (not a correctly rounded log10).
pub fn go_log10(x: f64) -> f64 {
    x.ln() * std::f64::consts::LOG10_E
}

/// Go's `math.Log2`: exact for powers of two, else `ln(frac) / ln 2 + exp` from `Frexp`.
pub fn go_log2(x: f64) -> f64 {
    let (frac, exp) = frexp(x);
    if frac == 0.5 {
        return (exp - 1) as f64;
    }
    frac.ln() * std::f64::consts::LOG2_E + exp as f64
}

/// Go's `math.Frexp`: `x = frac × 2^exp` with `|frac|` in [0.5, 1); 0, ±Inf and NaN are
/// returned as they are with exponent 0.
fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let (mut x, mut exp) = (x, 0);
    if x.abs() < f64::MIN_POSITIVE {
        x *= (1u64 << 52) as f64;
        exp = -52;
    }
    let bits = x.to_bits();
    exp += ((bits >> 52) & 0x7ff) as i32 - 1022;
    let bits = (bits & !(0x7ff << 52)) | (1022 << 52);
    (f64::from_bits(bits), exp)
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` with Prometheus's spelling of infinities.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        shortest_round_half_even(v)
    }
}

/// The shortest decimal that reads back as `v`, as Go's `strconv.FormatFloat(v, 'f', -1, 64)`
/// spells it.
fn shortest_round_half_even(v: f64) -> String {
    if v == 0.0 {
        return format!("{v}");
    }
    let (negative, digits, exp) = shortest_digits(v);
    plain_decimal(negative, &digits, exp)
}

/// The shortest significant digits (no trailing zeros) and decimal exponent of a finite,
/// non-zero `v` (`v = ±d.ddd × 10^exp`) that read back as `v`, chosen as Go's `strconv`
/// chooses them. Rust's `{}`/`{:e}` also give the shortest digits closest to `v`, but when
/// two such digit strings are exactly equally close (`1476.22076416015625` → `…562` or
/// `…563`) Rust rounds the tie up where Go rounds it to even; this redoes the last digit from
/// `v`'s exact decimal expansion with ties to even.
pub fn shortest_digits(v: f64) -> (bool, Vec<u8>, i32) {
    let rust = format!("{:e}", v.abs());
    let (mantissa, exp) = rust.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent digits");
    let shortest: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let n = shortest.len();
    // Every f64 has an exact decimal expansion of at most 767 significant digits.
    let exact = format!("{:.800e}", v.abs());
    let (exact_mantissa, exact_exp) = exact.split_once('e').expect("exponent");
    let mut exp2: i32 = exact_exp.parse().expect("exponent digits");
    let all: Vec<u8> = exact_mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let (kept, rest) = all.split_at(n);
    let mut kept = kept.to_vec();
    let round_up = match rest.first() {
        Some(d) if *d > b'5' => true,
        Some(b'5') => rest[1..].iter().any(|d| *d != b'0') || (kept[n - 1] - b'0') % 2 == 1,
        _ => false,
    };
    if round_up {
        let mut i = n;
        loop {
            if i == 0 {
                kept.insert(0, b'1');
                kept.pop();
                exp2 += 1;
                break;
            }
            i -= 1;
            if kept[i] == b'9' {
                kept[i] = b'0';
            } else {
                kept[i] += 1;
                break;
            }
        }
    }
    while kept.len() > 1 && kept.last() == Some(&b'0') {
        kept.pop();
    }
    let candidate = plain_decimal(false, &kept, exp2);
    if candidate.parse::<f64>() == Ok(v.abs()) {
        (v < 0.0, kept, exp2)
    } else {
        (v < 0.0, shortest, exp)
    }
}

/// `d.ddd × 10^exp` (digits `d…`, no trailing zeros) written without an exponent.
fn plain_decimal(negative: bool, digits: &[u8], exp: i32) -> String {
    let mut out = String::new();
    if negative {
        out.push('-');
    }
    let point = exp + 1; // digits before the decimal point
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-point) as usize));
        out.extend(digits.iter().map(|d| *d as char));
    } else {
        let point = point as usize;
        for i in 0..point.max(digits.len()) {
            if i == point {
                out.push('.');
            }
            out.push(digits.get(i).map_or('0', |d| *d as char));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pts(v: &[(i64, f64)]) -> Vec<Point> {
        v.iter()
            .map(|&(t, value)| Point {
                timestamp_ms: t,
                value,
            })
            .collect()
    }

    #[test]
    fn rate_extrapolates_to_window_and_handles_resets() {
        // Samples every 10s over a 60s window, counter 0..50 but with a reset at 30s.
        let p = pts(&[
            (10_000, 10.0),
            (20_000, 20.0),
            (30_000, 5.0),
            (40_000, 15.0),
        ]);
        // Increase = 15 - 10 + 20 (reset) = 25 over 30s sampled; extrapolate 10s each side
        // (within 1.1 * 10s), but start limited by duration to zero = 30 * 10/25 = 12 > 10.
        let inc = extrapolated_rate(&p, 0, 50_000, true, false).unwrap();
        assert!((inc - 25.0 * 50.0 / 30.0).abs() < 1e-12, "{inc}");
        let rate = extrapolated_rate(&p, 0, 50_000, true, true).unwrap();
        assert!((rate - inc / 50.0).abs() < 1e-12);
        assert_eq!(extrapolated_rate(&p[..1], 0, 50_000, true, true), None);
        // delta is not a counter: plain difference extrapolated.
        let d = extrapolated_rate(&p, 0, 50_000, false, false).unwrap();
        assert!((d - 5.0 * 50.0 / 30.0).abs() < 1e-12);
    }

    /// Regression: Vigil multiplied the increase by `extrapolated / sampled` and then divided
    /// by the range; Prometheus 2.42 divides the factor by the range and multiplies once.
    /// `promtool test rules` on `1 2 11.9 18.5 27.2 30` every 15s, `rate(c_total[1m])` at
    /// 80s (the window holds 30s..60s), prints `4.0375E-01`; the old order gave
    /// 0.40374999999999994.
    #[test]
    fn rate_applies_one_factor_as_prometheus_does() {
        let p = pts(&[(30_000, 11.9), (45_000, 18.5), (60_000, 27.2)]);
        let rate = extrapolated_rate(&p, 20_000, 80_000, true, true).unwrap();
        assert_eq!(rate.to_bits(), 0.40375f64.to_bits(), "{rate}");
        let increase: f64 = 27.2 - 11.9;
        let old = increase * ((30.0 + 10.0 + 7.5) / 30.0) / 60.0;
        assert_ne!(
            old.to_bits(),
            rate.to_bits(),
            "the case must tell the orders apart"
        );
        assert_eq!(duration_seconds(300_000), 300.0);
        assert_eq!(duration_seconds(1_100), 1.0 + 0.1);
    }

    #[test]
    fn irate_uses_last_two_points_and_resets() {
        let p = pts(&[(0, 5.0), (10_000, 8.0), (20_000, 2.0)]);
        assert_eq!(instant_value(&p, true), Some(0.2));
        assert_eq!(instant_value(&p, false), Some(-6.0));
    }

    #[test]
    fn holt_winters_follows_a_linear_trend() {
        let p = pts(&[(0, 1.0), (1000, 2.0), (2000, 3.0), (3000, 4.0)]);
        let v = holt_winters(&p, 0.5, 0.5).unwrap();
        assert!((v - 4.0).abs() < 1e-12, "{v}");
        assert_eq!(holt_winters(&p[..1], 0.5, 0.5), None);
    }

    #[test]
    fn regression_fits_a_line() {
        let p = pts(&[(0, 1.0), (1000, 3.0), (2000, 5.0)]);
        let (slope, intercept) = linear_regression(&p, 0);
        assert!((slope - 2.0).abs() < 1e-12 && (intercept - 1.0).abs() < 1e-12);
        let constant = pts(&[(0, f64::INFINITY), (1000, f64::INFINITY)]);
        assert!(linear_regression(&constant, 0).0.is_nan());
    }

    #[test]
    fn quantile_interpolates_and_bounds() {
        assert_eq!(quantile(0.5, &mut [1.0, 3.0, 2.0, 4.0]), 2.5);
        assert_eq!(quantile(-1.0, &mut [1.0]), f64::NEG_INFINITY);
        assert_eq!(quantile(2.0, &mut [1.0]), f64::INFINITY);
        assert!(quantile(0.5, &mut []).is_nan());
    }

    #[test]
    fn bucket_quantile_matches_prometheus_cases() {
        let b = |u: f64, c: f64| Bucket {
            upper_bound: u,
            count: c,
        };
        let mut buckets = vec![
            b(0.1, 10.0),
            b(0.5, 20.0),
            b(1.0, 30.0),
            b(f64::INFINITY, 40.0),
        ];
        assert!((bucket_quantile(0.5, &mut buckets) - 0.5).abs() < 1e-12);
        // Rank falls into the +Inf bucket: the second highest bound is returned.
        assert_eq!(bucket_quantile(0.99, &mut buckets), 1.0);
        // Missing +Inf bucket gives NaN.
        assert!(bucket_quantile(0.5, &mut [b(1.0, 1.0), b(2.0, 2.0)]).is_nan());
        // Non-monotonic counts are fixed up.
        let mut nm = [b(1.0, 10.0), b(2.0, 5.0), b(f64::INFINITY, 10.0)];
        assert!((bucket_quantile(0.5, &mut nm) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn logs_follow_go_math() {
        assert_eq!(go_log2(8.0), 3.0);
        assert_eq!(go_log2(0.25), -2.0);
        assert_eq!(go_log2(0.0), f64::NEG_INFINITY);
        assert_eq!(frexp(3.0), (0.75, 2));
        assert_eq!(frexp(f64::MIN_POSITIVE / 4.0), (0.5, -1023));
        assert_eq!(go_log10(1000.0), 1000f64.ln() * std::f64::consts::LOG10_E);
    }

    #[test]
    fn calendar_fields() {
        // 2024-02-29T13:45:00Z is a Thursday, day 60 of a leap year.
        let c = calendar(1_709_214_300.0).unwrap();
        assert_eq!(
            (
                c.year,
                c.month,
                c.day,
                c.hour,
                c.minute,
                c.weekday,
                c.yday,
                c.days_in_month
            ),
            (2024, 2, 29, 13, 45, 4, 60, 29)
        );
    }

    #[test]
    fn floats_format_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(-0.000125), "-0.000125");
        assert_eq!(format_float(123.5), "123.5");
        assert_eq!(format_float(1e-7), "0.0000001");
    }

    #[test]
    fn float_format_ties_round_to_even_like_go() {
        // 1547929664 / 2^20 = 1476.22076416015625 exactly: the two 17-digit candidates are
        // equally close and Go (so Prometheus) keeps the even one.
        assert_eq!(format_float(1547929664.0 / 1048576.0), "1476.2207641601562");
        assert_eq!(
            format_float(-1547929664.0 / 1048576.0),
            "-1476.2207641601562"
        );
    }
}
