//! Go's value formatting as templates print it: `%v`/`%g`/`%e` of floats, `fmt.Sprintf`'s
//! verbs, `strings.Title`, and Prometheus's `humanize*` functions.

use super::*;

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
pub(super) fn go_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

/// Splits `v` into shortest or `prec`-significant decimal digits and a decimal exponent
/// (`0.d1d2… × 10^dp`), trailing zeros removed.
pub(super) fn decimal_digits(v: f64, prec: Option<usize>) -> (String, i32) {
    let s = match prec {
        Some(p) => format!("{:.*e}", p.saturating_sub(1), v.abs()),
        None => format!("{:e}", v.abs()),
    };
    let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let mut digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    while digits.len() > 1 && digits.ends_with('0') {
        digits.pop();
    }
    if digits == "0" {
        return (digits, 1);
    }
    (digits, exp + 1)
}

pub(super) fn fmt_exp(neg: bool, digits: &str, dp: i32, upper: bool) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    let e = if digits == "0" { 0 } else { dp - 1 };
    out.push(if upper { 'E' } else { 'e' });
    out.push(if e < 0 { '-' } else { '+' });
    out.push_str(&format!("{:02}", e.abs()));
    out
}

pub(super) fn fmt_fixed(neg: bool, digits: &str, dp: i32) -> String {
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if dp <= 0 {
        out.push_str("0.");
        out.push_str(&"0".repeat((-dp) as usize));
        out.push_str(digits);
    } else if dp as usize >= digits.len() {
        out.push_str(digits);
        out.push_str(&"0".repeat(dp as usize - digits.len()));
    } else {
        out.push_str(&digits[..dp as usize]);
        out.push('.');
        out.push_str(&digits[dp as usize..]);
    }
    out
}

pub(super) fn special(v: f64) -> Option<String> {
    if v.is_nan() {
        Some("NaN".into())
    } else if v.is_infinite() {
        Some(if v > 0.0 { "+Inf" } else { "-Inf" }.into())
    } else {
        None
    }
}

/// Go's `%.{prec}g`.
pub fn go_fmt_g(v: f64, prec: usize) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, Some(prec.max(1)));
    let mut eprec = prec.max(1) as i32;
    if eprec > digits.len() as i32 && digits.len() as i32 >= dp {
        eprec = digits.len() as i32;
    }
    let exp = dp - 1;
    if digits != "0" && (exp < -4 || exp >= eprec) {
        fmt_exp(neg, &digits, dp, false)
    } else {
        fmt_fixed(neg, &digits, dp)
    }
}

/// Go's `%v` for a float64 (shortest `%g`: exponent form from 1e6 and below 1e-4).
pub fn go_float_v(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, None);
    let exp = dp - 1;
    if digits != "0" && !(-4..6).contains(&exp) {
        fmt_exp(neg, &digits, dp, false)
    } else {
        fmt_fixed(neg, &digits, dp)
    }
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`, as promtool prints sample values.
pub fn go_float_e(v: f64) -> String {
    if let Some(s) = special(v) {
        return s;
    }
    let neg = v.is_sign_negative() && v != 0.0;
    let (digits, dp) = decimal_digits(v, None);
    fmt_exp(neg, &digits, dp, true)
}

pub(super) fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_fmt_g(v, 4))
}

pub(super) fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_fmt_g(v, 4))
}

pub(super) fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_fmt_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let mut sign = "";
        if v < 0.0 {
            sign = "-";
            v = -v;
        }
        // Go converts an out-of-range float to the minimum int64 on amd64; match it.
        let d = if v >= 9.223_372_036_854_776e18 {
            i64::MIN
        } else {
            v as i64
        };
        let (s, m, h, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86400);
        if days != 0 {
            return format!("{sign}{days}d {h}h {m}m {s}s");
        }
        if h != 0 {
            return format!("{sign}{h}h {m}m {s}s");
        }
        if m != 0 {
            return format!("{sign}{m}m {s}s");
        }
        return format!("{sign}{}s", go_fmt_g(v, 4));
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_fmt_g(v, 4))
}

/// Go's `time.Time.String()` in UTC for a Unix time in seconds.
pub(super) fn humanize_timestamp(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_fmt_g(v, 4);
    }
    // Prometheus goes through model.Time: whole milliseconds, truncated.
    let ts = v * 1e9;
    if ts > i64::MAX as f64 || ts < i64::MIN as f64 {
        return format!(
            "{} cannot be represented as a nanoseconds timestamp since it overflows int64",
            go_float_v(v)
        );
    }
    let ms = (ts as i64) / 1_000_000;
    let secs = ms.div_euclid(1000);
    // In 0..1e9, so the cast is exact.
    let nanos = (ms.rem_euclid(1000) * 1_000_000) as u32;
    crate::gocompat::time::format_unix(secs, nanos, crate::gocompat::time::TIME_STRING)
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%s %v %d %f %e %g %x %q %%`, with flags,
/// width and precision.
pub(super) fn go_sprintf(fmt: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let chars: Vec<char> = fmt.chars().collect();
    let mut i = 0;
    let mut argi = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '%' {
            out.push(c);
            i += 1;
            continue;
        }
        i += 1;
        let mut minus = false;
        let mut plus = false;
        let mut zero = false;
        let mut space = false;
        while i < chars.len() && matches!(chars[i], '-' | '+' | '0' | ' ' | '#') {
            match chars[i] {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                _ => {}
            }
            i += 1;
        }
        let mut width = None;
        let mut w = 0usize;
        let mut has_w = false;
        while i < chars.len() && chars[i].is_ascii_digit() {
            w = w * 10 + chars[i].to_digit(10).unwrap_or(0) as usize;
            has_w = true;
            i += 1;
        }
        if has_w {
            width = Some(w);
        }
        let mut prec = None;
        if i < chars.len() && chars[i] == '.' {
            i += 1;
            let mut p = 0usize;
            while i < chars.len() && chars[i].is_ascii_digit() {
                p = p * 10 + chars[i].to_digit(10).unwrap_or(0) as usize;
                i += 1;
            }
            prec = Some(p);
        }
        let Some(&verb) = chars.get(i) else {
            out.push_str("%!(NOVERB)");
            break;
        };
        i += 1;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argi) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argi += 1;
        let num = match arg {
            Val::F64(f) => Some(*f),
            Val::Int(n) => Some(*n as f64),
            _ => None,
        };
        let mut s = match (verb, arg) {
            ('s' | 'v', Val::F64(f)) if verb == 'v' || prec.is_none() => {
                if verb == 's' {
                    format!("%!s(float64={})", go_float_v(*f))
                } else {
                    go_float_v(*f)
                }
            }
            ('s' | 'v', _) => {
                let mut s = arg.print();
                if let (Some(p), 's') = (prec, verb) {
                    s = s.chars().take(p).collect();
                }
                s
            }
            ('q', _) => format!("{:?}", arg.print()),
            ('d', Val::Int(n)) => n.to_string(),
            ('d', Val::F64(f)) => format!("%!d(float64={})", go_float_v(*f)),
            ('f' | 'F', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                special(f).unwrap_or_else(|| format!("{:.*}", prec.unwrap_or(6), f))
            }
            ('e' | 'E', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                special(f).unwrap_or_else(|| {
                    let neg = f.is_sign_negative() && f != 0.0;
                    let p = prec.unwrap_or(6);
                    let st = format!("{:.*e}", p, f.abs());
                    let (m, e) = st.split_once('e').unwrap_or((&st, "0"));
                    let e: i32 = e.parse().unwrap_or(0);
                    format!(
                        "{}{m}{}{}{:02}",
                        if neg { "-" } else { "" },
                        if verb == 'E' { 'E' } else { 'e' },
                        if e < 0 { '-' } else { '+' },
                        e.abs()
                    )
                })
            }
            ('g' | 'G', _) if num.is_some() => {
                let f = num.unwrap_or(0.0);
                match prec {
                    Some(p) => go_fmt_g(f, p),
                    None => {
                        let neg = f.is_sign_negative() && f != 0.0;
                        match special(f) {
                            Some(s) => s,
                            None => {
                                let (d, dp) = decimal_digits(f, None);
                                if d != "0" && !(-4..6).contains(&(dp - 1)) {
                                    fmt_exp(neg, &d, dp, false)
                                } else {
                                    fmt_fixed(neg, &d, dp)
                                }
                            }
                        }
                    }
                }
            }
            ('x', Val::Int(n)) => format!("{n:x}"),
            ('X', Val::Int(n)) => format!("{n:X}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('t', Val::Bool(b)) => b.to_string(),
            (v, a) => format!("%!{v}({}={})", a.type_name(), a.print()),
        };
        if let Some(f) = num {
            if (plus || space)
                && f >= 0.0
                && matches!(verb, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | 'v')
            {
                s.insert(0, if plus { '+' } else { ' ' });
            }
        }
        if let Some(w) = width {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && num.is_some() {
                    let (sign, rest) = if s.starts_with('-') || s.starts_with('+') {
                        s.split_at(1)
                    } else {
                        ("", s.as_str())
                    };
                    s = format!("{sign}{}{rest}", "0".repeat(pad));
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if argi < args.len() {
        out.push_str("%!(EXTRA ");
        let extra: Vec<String> = args[argi..]
            .iter()
            .map(|a| format!("{}={}", a.type_name(), a.print()))
            .collect();
        out.push_str(&extra.join(", "));
        out.push(')');
    }
    out
}
