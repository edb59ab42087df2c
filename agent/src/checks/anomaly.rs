//! Streaming anomaly detector, one [`Detector`] per series.
//!
//! Each sample costs O(1) work and the whole state is a fixed-size struct (no heap).
//! Design (prototype v3):
//! 1. a small ensemble of cheap predictors (last value, fast/slow EWMA, Holt trend,
//!    hour-of-day seasonal profile), each with a robust EWMA of its absolute error;
//! 2. the surprise of a sample is its error under the predictor that has recently been most
//!    accurate, in units of that predictor's typical error;
//! 3. the rarity of that surprise is its tail probability under a decayed histogram of past
//!    log-surprises (one for the instantaneous surprise, one for a short average of it);
//! 4. a decaying "recent alarm" level suppresses repeated alarms for one event.

/// Score at or above which a sample is reported as an anomaly event (provisional, see report).
pub const DEFAULT_ANOMALY_THRESHOLD: f64 = 0.998;

/// Tunable constants. [`DetectorParams::default`] is the one parameter set used for every series.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorParams {
    /// Smoothing of the fast level.
    pub fast_alpha: f64,
    /// Smoothing of the slow level.
    pub slow_alpha: f64,
    /// Smoothing of each predictor's absolute-error scale.
    pub scale_alpha: f64,
    /// Smoothing of a seasonal bin per visit.
    pub season_alpha: f64,
    /// Short averaging of log-surprises.
    pub short_alpha: f64,
    /// Per-sample forgetting of the surprise histograms.
    pub hist_forget: f64,
    /// Samples before any score above zero is produced.
    pub warmup: u32,
    /// Per-sample decay of the recent-alarm level.
    pub alarm_decay: f64,
    /// Errors above this many scales are clipped when updating the scale.
    pub scale_clip: f64,
    /// Pseudo-count of the Pareto prior on surprises.
    pub prior_weight: f64,
    /// Weight of the short-average channel (0 disables it).
    pub short_weight: f64,
    /// Floor of a predictor's error scale, as a fraction of the long-run mean absolute change.
    pub vol_floor: f64,
    /// Mass of the upper tail modelled as exponential in log-surprise.
    pub tail_mass: f64,
    /// Excess over the remembered range, as a fraction of it, that counts as a new extreme.
    pub range_tol: f64,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self {
            fast_alpha: 0.1,
            slow_alpha: 0.01,
            scale_alpha: 0.02,
            season_alpha: 0.05,
            short_alpha: 0.2,
            hist_forget: 1.0 / 10000.0,
            warmup: 100,
            alarm_decay: 0.995,
            scale_clip: 4.0,
            prior_weight: 1.0,
            short_weight: 1.0,
            vol_floor: 0.3,
            tail_mass: 0.02,
            range_tol: 0.05,
        }
    }
}

const N_PRED: usize = 5;
const DAY_BINS: usize = 24;
const MS_PER_DAY: i64 = 86_400_000;
const H_BINS: usize = 32;
const H_LO: f64 = -2.0;
const H_W: f64 = 0.5;

/// Decayed histogram of log-surprises with O(1) lazy forgetting.
#[derive(Debug, Clone)]
struct TailHistogram {
    bins: [f32; H_BINS],
    total: f64,
    /// Weight of the next insertion; grows instead of shrinking every bin.
    gain: f64,
}

impl TailHistogram {
    fn new() -> Self {
        Self { bins: [0.0; H_BINS], total: 0.0, gain: 1.0 }
    }

    fn bin_of(u: f64) -> (usize, f64) {
        let pos = ((u - H_LO) / H_W).clamp(0.0, H_BINS as f64 - 1e-9);
        let b = pos.floor() as usize;
        (b, pos - b as f64)
    }

    /// Probability that a log-surprise is at least `u`: the empirical tail in the body, an
    /// exponential (peaks-over-threshold) tail fitted to the top `tail_mass` beyond it, and a
    /// Pareto(1) prior while little has been seen.
    fn tail(&self, u: f64, prior_weight: f64, tail_mass: f64) -> f64 {
        let prior = (-u.max(0.0)).exp();
        let n = self.total / self.gain;
        if self.total <= 0.0 {
            return prior;
        }
        // Threshold t: the (1 - tail_mass) quantile, scanning from the top.
        let want = tail_mass * self.total;
        let mut acc = 0.0;
        let mut excess = 0.0;
        let mut t = H_LO;
        let mut found = false;
        for b in (0..H_BINS).rev() {
            let c = f64::from(self.bins[b]);
            let lo = H_LO + b as f64 * H_W;
            if acc + c >= want {
                let f = if c > 0.0 { (want - acc) / c } else { 0.0 };
                t = lo + H_W * (1.0 - f);
                // Excess of the part of this bin above t (uniform within the bin).
                excess += (want - acc) * (lo + H_W - t) * 0.5;
                acc = want;
                found = true;
                break;
            }
            acc += c;
            excess += c * (lo + 0.5 * H_W);
        }
        let emp = if !found || u <= t {
            let (b, frac) = Self::bin_of(u);
            let mut above = f64::from(self.bins[b]) * (1.0 - frac);
            for c in &self.bins[b + 1..] {
                above += f64::from(*c);
            }
            above / self.total
        } else {
            // Mean excess over t of the top tail_mass of the mass.
            let mean_above = excess / want;
            let _ = mean_above;
            let beta = self.tail_beta(t, want).max(0.5 * H_W);
            tail_mass * (-(u - t) / beta).exp()
        };
        (emp * n + prior_weight * prior) / (n + prior_weight)
    }

    /// Mean excess over `t` of the histogram mass above it (bins taken at their midpoints,
    /// the bin holding `t` counted from `t` up).
    fn tail_beta(&self, t: f64, mass: f64) -> f64 {
        let mut sum = 0.0;
        for b in 0..H_BINS {
            let lo = H_LO + b as f64 * H_W;
            let hi = lo + H_W;
            if hi <= t {
                continue;
            }
            let c = f64::from(self.bins[b]);
            if lo >= t {
                sum += c * (lo + 0.5 * H_W - t);
            } else {
                let part = c * (hi - t) / H_W;
                sum += part * 0.5 * (hi - t);
            }
        }
        sum / mass
    }

    fn add(&mut self, u: f64, forget: f64) {
        let (b, _) = Self::bin_of(u);
        self.bins[b] += self.gain as f32;
        self.total += self.gain;
        self.gain /= 1.0 - forget;
        if self.gain > 1e20 {
            let k = 1.0 / self.gain;
            for c in &mut self.bins {
                *c = (f64::from(*c) * k) as f32;
            }
            self.total *= k;
            self.gain = 1.0;
        }
    }
}

/// Streaming detector state for one series.
#[derive(Debug, Clone)]
pub struct Detector {
    p: DetectorParams,
    n: u64,
    last: f64,
    fast: f64,
    slow: f64,
    trend_level: f64,
    trend: f64,
    deseason: f64,
    season: [f32; DAY_BINS],
    err_scale: [f64; N_PRED],
    abs_mean: f64,
    vol_long: f64,
    hi: f64,
    lo: f64,
    short: f64,
    h_inst: TailHistogram,
    h_short: TailHistogram,
    alarm: f64,
}

impl Detector {
    /// A fresh detector using `params`.
    pub fn new(params: &DetectorParams) -> Self {
        Self {
            p: params.clone(),
            n: 0,
            last: 0.0,
            fast: 0.0,
            slow: 0.0,
            trend_level: 0.0,
            trend: 0.0,
            deseason: 0.0,
            season: [0.0; DAY_BINS],
            err_scale: [0.0; N_PRED],
            abs_mean: 0.0,
            vol_long: 0.0,
            hi: 0.0,
            lo: 0.0,
            short: 0.0,
            h_inst: TailHistogram::new(),
            h_short: TailHistogram::new(),
            alarm: 0.0,
        }
    }

    /// Feed one sample and return its anomaly score in [0, 1].
    pub fn observe(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let x = value;
        let p = &self.p;
        if self.n == 0 {
            self.last = x;
            self.fast = x;
            self.slow = x;
            self.trend_level = x;
            self.deseason = x;
            self.abs_mean = x.abs();
            self.hi = x;
            self.lo = x;
            self.n = 1;
            return 0.0;
        }
        // Seasonal position: fractional hour-of-day, linear interpolation between bins.
        let tod = timestamp_ms.rem_euclid(MS_PER_DAY) as f64 / MS_PER_DAY as f64 * DAY_BINS as f64;
        let b0 = (tod.floor() as usize) % DAY_BINS;
        let b1 = (b0 + 1) % DAY_BINS;
        let frac = tod - tod.floor();
        let s_pred = f64::from(self.season[b0]) * (1.0 - frac) + f64::from(self.season[b1]) * frac;

        let preds = [
            self.last,
            self.fast,
            self.slow,
            self.trend_level + self.trend,
            self.deseason + s_pred,
        ];
        let floor = (1e-3 * self.abs_mean).max(self.p.vol_floor * self.vol_long) + 1e-9;
        let mut best = 0;
        for k in 1..N_PRED {
            if self.err_scale[k] < self.err_scale[best] {
                best = k;
            }
        }
        let z = (x - preds[best]).abs() / self.err_scale[best].max(floor);
        let u = (z + 1e-3).ln();
        let short = self.short + p.short_alpha * (u - self.short);

        let warm = self.n >= u64::from(p.warmup);
        let mut score = 0.0;
        if warm {
            let p_inst = self.h_inst.tail(u, p.prior_weight, p.tail_mass);
            let p_short = if p.short_weight > 0.0 {
                self.h_short.tail(short, p.prior_weight, p.tail_mass) / p.short_weight
            } else {
                1.0
            };
            let range = (self.hi - self.lo).max(floor);
            let excess = ((x - self.hi).max(self.lo - x)) / range;
            let p_range = if p.range_tol > 0.0 && excess > p.range_tol {
                let n_eff = (self.n as f64).min(1.0 / p.hist_forget);
                p.range_tol / (excess * n_eff)
            } else {
                1.0
            };
            score = -(p_inst.min(p_short).min(p_range).clamp(1e-300, 1.0)).ln();
        }
        // Update state after scoring.
        self.h_inst.add(u, p.hist_forget);
        self.h_short.add(short, p.hist_forget);
        self.short = short;
        let scale_warm = self.n > 2;
        for k in 0..N_PRED {
            let e = (x - preds[k]).abs();
            if scale_warm {
                let s = self.err_scale[k].max(floor);
                self.err_scale[k] += p.scale_alpha * (e.min(p.scale_clip * s) - self.err_scale[k]);
            } else {
                self.err_scale[k] = self.err_scale[k].max(e);
            }
        }
        self.fast += p.fast_alpha * (x - self.fast);
        self.slow += p.slow_alpha * (x - self.slow);
        let prev_level = self.trend_level;
        self.trend_level += p.fast_alpha * (x - (self.trend_level + self.trend)) + self.trend;
        self.trend += 0.2 * p.fast_alpha * ((self.trend_level - prev_level) - self.trend);
        let ds = x - s_pred;
        self.deseason += p.fast_alpha * (ds - self.deseason);
        let resid = x - self.deseason;
        let a = p.season_alpha;
        self.season[b0] += (a * (1.0 - frac) * (resid - f64::from(self.season[b0]))) as f32;
        self.season[b1] += (a * frac * (resid - f64::from(self.season[b1]))) as f32;
        self.abs_mean += p.slow_alpha * (x.abs() - self.abs_mean);
        self.vol_long += 0.1 * p.slow_alpha * ((x - self.last).abs() - self.vol_long);
        self.hi = if x > self.hi { x } else { self.hi - p.hist_forget * (self.hi - self.slow) };
        self.lo = if x < self.lo { x } else { self.lo - p.hist_forget * (self.lo - self.slow) };
        self.last = x;
        self.n += 1;

        let out = if score > self.alarm { 1.0 - (-score).exp() } else { 0.0 };
        self.alarm = (self.alarm * p.alarm_decay).max(score);
        out
    }
}
