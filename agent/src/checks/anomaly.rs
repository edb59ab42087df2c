//! Streaming anomaly detector: one [`Detector`] per series, O(1) work per sample, a fixed-size
//! state of under 1 KiB with no heap allocation, and one parameter set
//! ([`DetectorParams::default`]) for every series.
//!
//! How a sample is scored:
//! 1. **Prediction.** Five cheap predictors run side by side: the last value, a fast and a slow
//!    EWMA, a damped Holt trend, and an hour-of-day seasonal profile on top of a level
//!    (24 interpolated bins keyed by the timestamp). Each keeps a robust EWMA of its absolute
//!    error. The predictor with the smallest recent error makes the prediction, so trends,
//!    daily seasonality and level shifts are absorbed by whichever model explains them.
//! 2. **Surprise.** `u = ln(|error| / scale)` under that predictor. The scale has a floor tied to
//!    the series' long-run mean absolute change, so flat stretches do not make every blip
//!    infinitely surprising.
//! 3. **Rarity, not size.** Each evidence channel keeps a slowly forgetting histogram of its own
//!    past values and turns the current value into a tail probability: empirical in the body,
//!    an exponential (peaks-over-threshold) tail fitted to the top few percent beyond it, and a
//!    Pareto prior while little has been seen. Two channels work this way: the instantaneous
//!    surprise, and a short average of surprises (HTM-style "anomaly likelihood", for sustained
//!    changes). A third flags new extremes (the "spatial anomaly" of NAB's HTM detector): a value
//!    beyond the remembered range by more than `range_tol` of that range gets probability
//!    `range_tol / (excess · samples seen)`. A fourth does the same for a smoothed level
//!    (`level_alpha`), whose range one-sample spikes barely widen, so a sustained shift to
//!    an unusual level is caught even inside the range that past spikes have stretched.
//!    The two histogram channels' probabilities are multiplied by `sqrt(n / 10_000)` for `n`
//!    remembered samples (a partial multiple-comparison correction, so long and short series
//!    alarm at comparable rates under one global threshold).
//!    The two new-extreme channels' probabilities are multiplied by `1 + range_youth / n` for
//!    `n` samples seen (`range_youth` = 3000): a young range has not yet seen the series'
//!    ordinary excursions.
//! 4. **Score.** With `p` the smallest channel probability, the score is `1 - p`. A decaying
//!    "recent alarm" level then suppresses the repeats of one event: a sample only scores if
//!    its evidence `-ln p` exceeds the decayed evidence of earlier samples; otherwise it scores 0.
//!    After a score at or above [`DEFAULT_ANOMALY_THRESHOLD`], the next `alarm_mute` samples
//!    score 0, so one incident raises one alarm. An alarm-level event at a time of day (hour
//!    bin, or an adjacent one) that already had such events on two recent days is routine
//!    (a daily job, see [`DetectorParams::recur_days`]) and scores 0.
//!
//! Non-finite inputs are ignored (score 0, state untouched). Finite values are clamped to ±1e30,
//! and what the levels and the range learn from is winsorized a bounded number of ranges beyond
//! the remembered range, so one absurd sample neither overflows nor blinds the detector.

/// Score at or above which a sample is reported as an anomaly event.
///
/// Chosen from the NAB sweep (`scripts/nab-score.sh` on the public half of NAB, default
/// parameters): the corpus-wide optimal threshold was 0.99897 for all three profiles
/// (standard 72.4, reward_low_FP 63.7, reward_low_FN 76.9 before `range_youth`; 0.99897 and
/// standard 73.5 with it, and 0.99899 on fold A alone, see BENCHMARKS.md). The optimum is narrow, partly by
/// design: an alarm at this level mutes the next `alarm_mute` samples and feeds the
/// daily-recurrence rule, so lower thresholds let through repeats those rules would have
/// absorbed (standard 60.0 at 0.998, 57.5 at 0.9995). Change it together with the
/// parameters, never alone. 0.999 means an alarm when the corrected evidence is rarer than
/// about 1 in 1000.
pub const DEFAULT_ANOMALY_THRESHOLD: f64 = 0.999;

/// The detector's constants. [`DetectorParams::default`] is the one parameter set used for every
/// series; nothing here is meant to be tuned per series.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectorParams {
    /// Smoothing of the fast level, Holt level and seasonal level (per sample).
    pub fast_alpha: f64,
    /// Smoothing of the slow level and of the magnitude used for the scale floor (per sample).
    pub slow_alpha: f64,
    /// Smoothing of each predictor's absolute-error scale (per sample).
    pub scale_alpha: f64,
    /// Smoothing of a seasonal bin per visit.
    pub season_alpha: f64,
    /// Errors beyond this many scales are clipped when updating a scale, so spikes do not
    /// inflate it.
    pub scale_clip: f64,
    /// Floor of an error scale, as a fraction of the long-run mean absolute change.
    pub vol_floor: f64,
    /// Smoothing of the short average of surprises.
    pub short_alpha: f64,
    /// Per-sample forgetting of the histograms and of the remembered range.
    pub forget: f64,
    /// Upper-tail mass of each histogram that is modelled as exponential.
    pub tail_mass: f64,
    /// Pseudo-count of the Pareto(1) prior on surprises.
    pub prior_weight: f64,
    /// Excess over the remembered range, as a fraction of it, that counts as a new extreme.
    pub range_tol: f64,
    /// Smoothing of the level whose new extremes form the sustained-shift channel (per sample).
    pub level_alpha: f64,
    /// Samples after which the two new-extreme channels are taken at face value: with `n`
    /// samples seen, their probabilities are multiplied by `1 + range_youth / n`. A range
    /// learned from a few hundred samples has not yet seen the series' ordinary excursions (a
    /// weekly cycle, the first busy day), and its "new extremes" were the main source of false
    /// alarms just after NAB's probationary period. Chosen on one fold of the public half of
    /// NAB and checked on the other (BENCHMARKS.md): tuned separately over
    /// {0, 100, 300, 1000, 3000, 10000}, both folds picked 3000 (about ten days of five-minute
    /// samples).
    pub range_youth: f64,
    /// Per-sample decay of the recent-alarm evidence.
    pub alarm_decay: f64,
    /// Samples after a score at or above [`DEFAULT_ANOMALY_THRESHOLD`] during which every
    /// sample scores 0: one incident raises one alarm.
    pub alarm_mute: u32,
    /// Days within which an alarm-level event at the same time of day (same or adjacent hour)
    /// counts as recurring: the third such event within twice this span, each at least half
    /// a day after the previous one, is treated as routine (a daily job) and scores 0.
    pub recur_days: f64,
    /// Samples scored 0 while the detector learns the series.
    pub warmup: u32,
}

impl Default for DetectorParams {
    fn default() -> Self {
        Self {
            fast_alpha: 0.1,
            slow_alpha: 0.01,
            scale_alpha: 0.02,
            season_alpha: 0.05,
            scale_clip: 4.0,
            vol_floor: 0.3,
            short_alpha: 0.2,
            forget: 1.0 / 20_000.0,
            tail_mass: 0.02,
            prior_weight: 1.0,
            range_tol: 0.025,
            level_alpha: 0.05,
            range_youth: 3000.0,
            alarm_decay: 0.997,
            alarm_mute: 50,
            recur_days: 3.0,
            warmup: 100,
        }
    }
}

impl DetectorParams {
    /// These parameters forced into their meaningful ranges (smoothing factors and rates in
    /// (0, 1], positive sizes), so no choice can make the state non-finite.
    fn sanitized(&self) -> Self {
        let rate = |r: f64, max: f64| {
            if r.is_finite() {
                r.clamp(1e-9, max)
            } else {
                max
            }
        };
        let positive = |v: f64, default: f64| if v.is_finite() && v > 0.0 { v } else { default };
        let d = Self::default();
        Self {
            fast_alpha: rate(self.fast_alpha, 1.0),
            slow_alpha: rate(self.slow_alpha, 1.0),
            scale_alpha: rate(self.scale_alpha, 1.0),
            season_alpha: rate(self.season_alpha, 1.0),
            scale_clip: positive(self.scale_clip, d.scale_clip),
            vol_floor: positive(self.vol_floor, d.vol_floor),
            short_alpha: rate(self.short_alpha, 1.0),
            forget: rate(self.forget, 0.5),
            tail_mass: rate(self.tail_mass, 0.5),
            prior_weight: positive(self.prior_weight, d.prior_weight),
            range_tol: positive(self.range_tol, d.range_tol),
            level_alpha: rate(self.level_alpha, 1.0),
            range_youth: if self.range_youth.is_finite() {
                self.range_youth.max(0.0)
            } else {
                d.range_youth
            },
            alarm_decay: if self.alarm_decay.is_finite() {
                self.alarm_decay.clamp(0.0, 1.0)
            } else {
                d.alarm_decay
            },
            alarm_mute: self.alarm_mute,
            recur_days: if self.recur_days.is_finite() {
                self.recur_days.max(0.0)
            } else {
                d.recur_days
            },
            warmup: self.warmup,
        }
    }
}

/// Number of predictors in the ensemble.
const N_PRED: usize = 5;
/// Seasonal bins per day.
const DAY_BINS: usize = 24;
const MS_PER_DAY: i64 = 86_400_000;
/// Alarm-level events less than this many days apart are one occurrence for the recurrence
/// rule (see [`DetectorParams::recur_days`]).
const RECUR_MIN_GAP_DAYS: f64 = 0.5;
/// Damping of the Holt trend update relative to `fast_alpha`.
const TREND_GAIN: f64 = 0.2;
/// The mean absolute change is tracked this much slower than `slow_alpha`.
const VOL_RATE: f64 = 0.1;
/// Histogram bins over `ln` of the evidence: [-2, 14) in steps of 0.5.
const H_BINS: usize = 32;
const H_LO: f64 = -2.0;
const H_W: f64 = 0.5;
/// How far beyond the remembered range, in ranges, a value may pull the learned levels.
const WINSOR_SPANS: f64 = 4.0;
/// How far beyond the remembered range, in ranges, a value may pull the predictors.
const PREDICT_SPANS: f64 = 1e3;
/// Largest magnitude stored in an `f32` field.
const F32_LIMIT: f64 = f32::MAX as f64;
/// Samples of history at which a histogram channel's tail probability is taken at face value.
/// With `n` samples remembered, the probability is multiplied by `sqrt(n / HISTORY_REF)`: a
/// partial multiple-comparison correction, since a longer history has had more chances to
/// produce a rare value by luck (a full `n / HISTORY_REF` correction over-penalises short
/// series: with it, NAB standard dropped from 65.7 to about 62 when this was introduced).
const HISTORY_REF: f64 = 10_000.0;
/// Evidence is capped at `-ln` of this, so one absurd sample cannot silence later alarms for
/// long through the decaying alarm level (scores saturate at 1.0 well before it anyway).
const MIN_PROBABILITY: f64 = 1e-20;
/// Largest magnitude fed to the state.
const VALUE_LIMIT: f64 = 1e30;

/// Slowly forgetting histogram of log-evidence, with O(1) insertion (forgetting is done by
/// growing the weight of new insertions and renormalizing rarely).
#[derive(Debug, Clone)]
struct TailHistogram {
    bins: [f32; H_BINS],
    total: f64,
    gain: f64,
}

impl TailHistogram {
    fn new() -> Self {
        Self {
            bins: [0.0; H_BINS],
            total: 0.0,
            gain: 1.0,
        }
    }

    fn position(u: f64) -> (usize, f64) {
        let pos = ((u - H_LO) / H_W).clamp(0.0, H_BINS as f64 - 1e-9);
        let bin = pos as usize;
        (bin, pos - bin as f64)
    }

    /// Probability of log-evidence at least `u`: the empirical tail where at least
    /// `tail_mass` of the mass lies above `u`, beyond that an exponential tail fitted to the top
    /// `tail_mass` by its mean excess; shrunk towards a Pareto(1) prior with `prior_weight`
    /// pseudo-samples.
    fn tail(&self, u: f64, params: &DetectorParams) -> f64 {
        let prior = (-u.max(0.0)).exp();
        if self.total <= 0.0 {
            return prior;
        }
        let (ubin, ufrac) = Self::position(u);
        let want = params.tail_mass * self.total;
        // One pass from the top down to `u`'s bin (and on to the quantile if it lies lower):
        // the mass above `u`, and the `tail_mass` quantile with the first moment of the mass
        // above it.
        let mut above_u = 0.0;
        let mut acc = 0.0;
        let mut moment = 0.0;
        let mut quantile = None;
        for bin in (0..H_BINS).rev() {
            let c = f64::from(self.bins[bin]);
            if bin > ubin {
                above_u += c;
            } else if bin == ubin {
                above_u += c * (1.0 - ufrac);
            }
            if quantile.is_none() {
                let lo = H_LO + bin as f64 * H_W;
                if acc + c >= want && c > 0.0 {
                    let part = want - acc;
                    let t = lo + H_W * (1.0 - part / c);
                    moment += part * 0.5 * (t + lo + H_W);
                    quantile = Some(t);
                } else {
                    acc += c;
                    moment += c * (lo + 0.5 * H_W);
                }
            }
            if bin <= ubin && quantile.is_some() {
                break;
            }
        }
        let empirical = match quantile {
            Some(t) if u > t && above_u < want => {
                let beta = (moment / want - t).max(0.5 * H_W);
                params.tail_mass * (-(u - t) / beta).exp()
            }
            _ => above_u / self.total,
        };
        let n = self.total / self.gain;
        (empirical * n + params.prior_weight * prior) / (n + params.prior_weight)
    }

    fn add(&mut self, u: f64, forget: f64) {
        let (bin, _) = Self::position(u);
        self.bins[bin] += self.gain as f32;
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

/// Day number of `timestamp_ms` (days since the Unix epoch, fractional).
fn epoch_days(timestamp_ms: i64) -> f64 {
    timestamp_ms as f64 / MS_PER_DAY as f64
}

/// Streaming detector state for one series. See the module documentation for the method.
#[derive(Debug, Clone)]
pub struct Detector {
    params: DetectorParams,
    /// Finite samples seen.
    n: u64,
    last: f64,
    fast: f64,
    slow: f64,
    holt_level: f64,
    holt_trend: f64,
    season_level: f64,
    season: [f32; DAY_BINS],
    err_scale: [f64; N_PRED],
    abs_mean: f64,
    abs_change: f64,
    hi: f64,
    lo: f64,
    /// Smoothed level (`level_alpha`) and its remembered range.
    level: f64,
    level_hi: f64,
    level_lo: f64,
    short: f64,
    h_surprise: TailHistogram,
    h_short: TailHistogram,
    alarm: f64,
    /// No sample scores before this sample count (set by an alarm, see `alarm_mute`).
    mute_until: u64,
    /// Per hour-of-day bin, the day (since the Unix epoch) of the latest and the previous
    /// alarm-level event in that bin.
    recur_last: [f32; DAY_BINS],
    recur_prev: [f32; DAY_BINS],
}

impl Detector {
    /// A fresh detector using `params`.
    pub fn new(params: &DetectorParams) -> Self {
        Self {
            params: params.sanitized(),
            n: 0,
            last: 0.0,
            fast: 0.0,
            slow: 0.0,
            holt_level: 0.0,
            holt_trend: 0.0,
            season_level: 0.0,
            season: [0.0; DAY_BINS],
            err_scale: [0.0; N_PRED],
            abs_mean: 0.0,
            abs_change: 0.0,
            hi: 0.0,
            lo: 0.0,
            level: 0.0,
            level_hi: 0.0,
            level_lo: 0.0,
            short: 0.0,
            h_surprise: TailHistogram::new(),
            h_short: TailHistogram::new(),
            alarm: 0.0,
            mute_until: 0,
            recur_last: [f32::MIN; DAY_BINS],
            recur_prev: [f32::MIN; DAY_BINS],
        }
    }

    /// Bytes of state this detector holds: the struct itself, as it owns no heap memory.
    pub fn state_bytes(&self) -> usize {
        std::mem::size_of_val(self)
    }

    /// Record an alarm-level event at `timestamp_ms` in hour bin `bin`, and say whether it is
    /// routine: the same or an adjacent hour bin already saw two earlier occurrences, the
    /// latest at least [`RECUR_MIN_GAP_DAYS`] and at most `recur_days` ago and the one before
    /// it at most twice `recur_days` ago.
    fn recurring_event(&mut self, timestamp_ms: i64, bin: usize) -> bool {
        let now = epoch_days(timestamp_ms);
        let window = self.params.recur_days;
        let routine = [DAY_BINS - 1, 0, 1].iter().any(|&offset| {
            let b = (bin + offset) % DAY_BINS;
            let last = now - f64::from(self.recur_last[b]);
            let prev = now - f64::from(self.recur_prev[b]);
            (RECUR_MIN_GAP_DAYS..=window).contains(&last) && prev <= 2.0 * window
        });
        if now - f64::from(self.recur_last[bin]) >= RECUR_MIN_GAP_DAYS {
            self.recur_prev[bin] = self.recur_last[bin];
        }
        self.recur_last[bin] = now.clamp(-F32_LIMIT, F32_LIMIT) as f32;
        routine
    }

    /// Feed one sample and return its anomaly score in [0, 1] (0 for non-finite values, during
    /// warm-up, and for repeats of an event already reported).
    pub fn observe(&mut self, timestamp_ms: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let x = value.clamp(-VALUE_LIMIT, VALUE_LIMIT);
        if self.n == 0 {
            self.last = x;
            self.fast = x;
            self.slow = x;
            self.holt_level = x;
            self.season_level = x;
            self.abs_mean = x.abs();
            self.hi = x;
            self.lo = x;
            self.level = x;
            self.level_hi = x;
            self.level_lo = x;
            self.n = 1;
            return 0.0;
        }
        let p = &self.params;

        // Seasonal position: fractional hour of the day, interpolated between two bins.
        let day_pos = timestamp_ms.rem_euclid(MS_PER_DAY) as f64 / MS_PER_DAY as f64;
        let bin_pos = day_pos * DAY_BINS as f64;
        let b0 = (bin_pos as usize).min(DAY_BINS - 1);
        let b1 = (b0 + 1) % DAY_BINS;
        let frac = bin_pos - b0 as f64;
        let seasonal =
            f64::from(self.season[b0]) * (1.0 - frac) + f64::from(self.season[b1]) * frac;

        let predictions = [
            self.last,
            self.fast,
            self.slow,
            self.holt_level + self.holt_trend,
            self.season_level + seasonal,
        ];
        let floor = (1e-3 * self.abs_mean).max(p.vol_floor * self.abs_change) + 1e-12;
        let mut best = 0;
        for k in 1..N_PRED {
            if self.err_scale[k] < self.err_scale[best] {
                best = k;
            }
        }
        let z = (x - predictions[best]).abs() / self.err_scale[best].max(floor);
        let surprise = (z + 1e-3).ln();
        let short = self.short + p.short_alpha * (surprise - self.short);

        let span = (self.hi - self.lo).max(floor);

        let mut evidence = 0.0;
        if self.n >= u64::from(p.warmup) {
            let samples = (self.n as f64).min(1.0 / p.forget);
            let excess = (x - self.hi).max(self.lo - x) / span;
            let p_range = if excess > p.range_tol {
                p.range_tol / (excess * samples)
            } else {
                1.0
            };
            let p_hist = self
                .h_surprise
                .tail(surprise, p)
                .min(self.h_short.tail(short, p))
                * (samples / HISTORY_REF).sqrt();
            let level = self.level + p.level_alpha * (x - self.level);
            let level_span = (self.level_hi - self.level_lo).max(floor);
            let level_excess = (level - self.level_hi).max(self.level_lo - level) / level_span;
            let p_level = if level_excess > p.range_tol {
                p.range_tol / (level_excess * samples)
            } else {
                1.0
            };
            // A young range has seen too little of the series to bound it (a weekly cycle, the
            // first busy day): its new extremes are discounted until `range_youth` samples.
            let youth = 1.0 + p.range_youth / self.n as f64;
            let p_min = p_hist.min(p_range * youth).min(p_level * youth);
            evidence = -p_min.clamp(MIN_PROBABILITY, 1.0).ln();
        }

        // Learn from the sample only after scoring it. The levels learn from the value
        // winsorized to `WINSOR_SPANS` ranges beyond the remembered range: a lone absurd value
        // cannot drag them for long, while a real shift is still reached, as the range at least
        // doubles per sample.
        let xw = x
            .max(self.lo - WINSOR_SPANS * span)
            .min(self.hi + WINSOR_SPANS * span);
        let x = x
            .max(self.lo - PREDICT_SPANS * span)
            .min(self.hi + PREDICT_SPANS * span);
        self.h_surprise.add(surprise, p.forget);
        self.h_short.add(short, p.forget);
        self.short = short;

        for (k, prediction) in predictions.iter().enumerate() {
            let err = (x - prediction).abs();
            if self.n > 2 {
                let clip = p.scale_clip * self.err_scale[k].max(floor);
                self.err_scale[k] += p.scale_alpha * (err.min(clip) - self.err_scale[k]);
            } else {
                self.err_scale[k] = self.err_scale[k].max(err);
            }
        }
        self.fast += p.fast_alpha * (x - self.fast);
        self.slow += p.slow_alpha * (xw - self.slow);
        let prev_level = self.holt_level;
        self.holt_level +=
            p.fast_alpha * (x - (self.holt_level + self.holt_trend)) + self.holt_trend;
        self.holt_trend +=
            TREND_GAIN * p.fast_alpha * ((self.holt_level - prev_level) - self.holt_trend);
        self.season_level += p.fast_alpha * (x - seasonal - self.season_level);
        let detrended = x - self.season_level;
        let a = p.season_alpha;
        for (bin, weight) in [(b0, 1.0 - frac), (b1, frac)] {
            let old = f64::from(self.season[bin]);
            let new = old + a * weight * (detrended - old);
            self.season[bin] = new.clamp(-F32_LIMIT, F32_LIMIT) as f32;
        }
        self.abs_mean += p.slow_alpha * (xw.abs() - self.abs_mean);
        self.abs_change += VOL_RATE * p.slow_alpha * ((xw - self.last).abs() - self.abs_change);
        // The remembered range relaxes towards the slow level but always contains `xw`.
        self.level += p.level_alpha * (xw - self.level);
        self.level_hi = (self.level_hi - p.forget * (self.level_hi - self.slow)).max(self.level);
        self.level_lo = (self.level_lo - p.forget * (self.level_lo - self.slow)).min(self.level);
        self.hi = (self.hi - p.forget * (self.hi - self.slow)).max(xw);
        self.lo = (self.lo - p.forget * (self.lo - self.slow)).min(xw);
        self.last = x;
        self.n += 1;

        let (alarm_mute, alarm_decay) = (p.alarm_mute, p.alarm_decay);
        let routine = evidence >= -(1.0 - DEFAULT_ANOMALY_THRESHOLD).ln()
            && self.recurring_event(timestamp_ms, b0);
        let score = if evidence > self.alarm && self.n > self.mute_until && !routine {
            1.0 - (-evidence).exp()
        } else {
            0.0
        };
        if score >= DEFAULT_ANOMALY_THRESHOLD {
            self.mute_until = self.n + u64::from(alarm_mute);
        }
        self.alarm = (self.alarm * alarm_decay).max(evidence);
        score
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN_MS: i64 = 300_000;

    /// Deterministic standard-normal noise (xorshift + Box-Muller), so tests need no RNG crate.
    struct Noise(u64);

    impl Noise {
        fn uniform(&mut self) -> f64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self) -> f64 {
            let (a, b) = (self.uniform(), self.uniform());
            (-2.0 * a.ln()).sqrt() * (std::f64::consts::TAU * b).cos()
        }
    }

    fn run(values: &[f64]) -> Vec<f64> {
        let mut d = Detector::new(&DetectorParams::default());
        values
            .iter()
            .enumerate()
            .map(|(i, v)| d.observe(i as i64 * FIVE_MIN_MS, *v))
            .collect()
    }

    fn alarms(scores: &[f64]) -> Vec<usize> {
        (0..scores.len())
            .filter(|&i| scores[i] >= DEFAULT_ANOMALY_THRESHOLD)
            .collect()
    }

    fn noisy(n: usize, seed: u64, level: f64, sd: f64) -> Vec<f64> {
        let mut noise = Noise(seed);
        (0..n).map(|_| level + sd * noise.normal()).collect()
    }

    /// Daily sine (5-minute samples) with a slow upward trend and noise.
    fn seasonal(n: usize, seed: u64) -> Vec<f64> {
        let mut noise = Noise(seed);
        (0..n)
            .map(|i| {
                let day = i as f64 / 288.0;
                100.0
                    + 0.5 * day * 10.0
                    + 30.0 * (std::f64::consts::TAU * day).sin()
                    + noise.normal()
            })
            .collect()
    }

    #[test]
    fn scores_stay_in_unit_interval() {
        let mut values = seasonal(3000, 7);
        for (i, v) in values.iter_mut().enumerate() {
            match i % 97 {
                0 => *v *= 50.0,
                1 => *v = -*v,
                2 => *v = 0.0,
                _ => {}
            }
        }
        values.extend(noisy(500, 3, 1e12, 1e11));
        values.extend([5.0; 500]);
        for s in run(&values) {
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "score {s}");
        }
    }

    #[test]
    fn non_finite_values_do_not_touch_state() {
        let values = seasonal(1500, 11);
        let mut a = Detector::new(&DetectorParams::default());
        for (i, v) in values[..1000].iter().enumerate() {
            a.observe(i as i64 * FIVE_MIN_MS, *v);
        }
        let mut b = a.clone();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -f64::NAN] {
            assert_eq!(b.observe(1000 * FIVE_MIN_MS, bad), 0.0);
        }
        for (i, v) in values[1000..].iter().enumerate() {
            let t = (1000 + i) as i64 * FIVE_MIN_MS;
            assert_eq!(a.observe(t, *v).to_bits(), b.observe(t, *v).to_bits());
        }
    }

    /// Regression: an `f64::MAX` sample overflowed the `f32` seasonal bins to infinity, and the
    /// next update turned them into NaN for good.
    #[test]
    fn extreme_finite_values_do_not_poison_state() {
        let mut d = Detector::new(&DetectorParams::default());
        let values = noisy(3000, 5, 10.0, 1.0);
        for (i, v) in values.iter().enumerate() {
            let v = match i {
                500 => f64::MAX,
                501 => -f64::MAX,
                502 => f64::MIN_POSITIVE,
                _ => *v,
            };
            let s = d.observe(i as i64 * FIVE_MIN_MS, v);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "sample {i}: {s}");
        }
        // Still able to flag a later spike.
        let state = format!("{d:?}");
        assert!(!state.contains("NaN") && !state.contains("inf"), "{state}");
        let s = d.observe(3000 * FIVE_MIN_MS, 1e6);
        assert!(s >= DEFAULT_ANOMALY_THRESHOLD, "{s}");
    }

    #[test]
    fn nonsense_parameters_cannot_break_the_state() {
        let bad = DetectorParams {
            fast_alpha: f64::NAN,
            slow_alpha: 0.0,
            scale_alpha: -1.0,
            season_alpha: 7.0,
            scale_clip: 0.0,
            vol_floor: f64::INFINITY,
            short_alpha: f64::NEG_INFINITY,
            forget: 1.0,
            tail_mass: 0.0,
            prior_weight: -3.0,
            range_tol: f64::NAN,
            level_alpha: f64::INFINITY,
            range_youth: f64::NAN,
            alarm_decay: 2.0,
            alarm_mute: u32::MAX,
            recur_days: f64::NAN,
            warmup: 0,
        };
        let mut d = Detector::new(&bad);
        for (i, v) in seasonal(2000, 3).iter().enumerate() {
            let s = d.observe(i as i64 * FIVE_MIN_MS, *v);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s), "sample {i}: {s}");
        }
        let state = format!("{d:?}");
        assert!(!state.contains("NaN") && !state.contains("inf"), "{state}");
    }

    #[test]
    fn state_is_bounded_and_on_the_stack() {
        let d = Detector::new(&DetectorParams::default());
        // Every field is a scalar or a fixed array: no heap, so the struct size is the state.
        assert_eq!(d.state_bytes(), std::mem::size_of::<Detector>());
        assert!(
            std::mem::size_of::<Detector>() <= 1024,
            "{} bytes",
            std::mem::size_of::<Detector>()
        );
    }

    #[test]
    fn same_input_same_scores() {
        let mut values = seasonal(4000, 9);
        values[3000] += 500.0;
        let a = run(&values);
        let b = run(&values);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
    }

    #[test]
    fn spike_scores_higher_than_steady_noise() {
        let mut values = noisy(4000, 42, 50.0, 2.0);
        values[3000] = 50.0 + 2.0 * 12.0;
        let scores = run(&values);
        let spike = scores[3000];
        assert!(spike >= DEFAULT_ANOMALY_THRESHOLD, "spike scored {spike}");
        let noise_max = scores[200..3000].iter().copied().fold(0.0, f64::max);
        assert!(spike > noise_max, "spike {spike} vs noise max {noise_max}");
        let noise_alarms = alarms(&scores[..3000]).len();
        assert!(noise_alarms <= 3, "{noise_alarms} alarms on pure noise");
    }

    #[test]
    fn level_shift_is_detected_then_adapted_to() {
        let mut values = noisy(6000, 17, 10.0, 1.0);
        for v in &mut values[3000..] {
            *v += 15.0;
        }
        let scores = run(&values);
        let at_shift = scores[3000..3010].iter().copied().fold(0.0, f64::max);
        assert!(
            at_shift >= DEFAULT_ANOMALY_THRESHOLD,
            "shift scored {at_shift}"
        );
        let later = alarms(&scores[3500..]);
        assert!(later.len() <= 2, "still alarming after adapting: {later:?}");
    }

    #[test]
    fn trend_and_daily_season_are_not_anomalies_but_a_spike_in_them_is() {
        let mut values = seasonal(288 * 14, 23);
        let spike_at = 288 * 12 + 100;
        values[spike_at] += 25.0;
        let scores = run(&values);
        let steady = alarms(&scores[288 * 2..spike_at]);
        assert!(
            steady.len() <= 3,
            "{} alarms on trend+season: {steady:?}",
            steady.len()
        );
        assert!(
            scores[spike_at] >= DEFAULT_ANOMALY_THRESHOLD,
            "spike scored {}",
            scores[spike_at]
        );
    }

    #[test]
    fn an_alarm_mutes_the_next_samples_then_alarms_resume() {
        let muted = DetectorParams::default();
        let unmuted = DetectorParams {
            alarm_mute: 0,
            ..muted.clone()
        };
        let mute = muted.alarm_mute as usize;
        assert!(mute >= 2, "default mute horizon {mute}");
        let mut values = noisy(4000, 29, 50.0, 2.0);
        values[3000] = 150.0;
        values[3000 + mute / 2] = 400.0;
        values[3000 + 3 * mute] = 1500.0;
        let score_all = |params: &DetectorParams| {
            let mut d = Detector::new(params);
            values
                .iter()
                .enumerate()
                .map(|(i, v)| d.observe(i as i64 * FIVE_MIN_MS, *v))
                .collect::<Vec<f64>>()
        };
        let (with, without) = (score_all(&muted), score_all(&unmuted));
        // Without the mute the second, bigger spike alarms again.
        assert!(without[3000 + mute / 2] >= DEFAULT_ANOMALY_THRESHOLD);
        assert!(with[3000] >= DEFAULT_ANOMALY_THRESHOLD, "{}", with[3000]);
        assert!(
            with[3001..=3000 + mute].iter().all(|s| *s == 0.0),
            "a sample scored inside the mute horizon"
        );
        let later = with[3000 + 3 * mute];
        assert!(
            later >= DEFAULT_ANOMALY_THRESHOLD,
            "after the horizon: {later}"
        );
    }

    /// A spike every day at 03:00 (a nightly job) alarms on the first two days only, while a
    /// spike at another hour still alarms.
    #[test]
    fn a_daily_recurring_spike_becomes_routine() {
        let day = 288;
        let mut values = noisy(day * 16, 31, 50.0, 2.0);
        let nightly: Vec<usize> = (4..14).map(|d| d * day + 36).collect();
        for &i in &nightly {
            values[i] += 60.0;
        }
        let odd_hour = 14 * day + 180;
        values[odd_hour] += 60.0;
        let score_all = |params: &DetectorParams| {
            let mut d = Detector::new(params);
            values
                .iter()
                .enumerate()
                .map(|(i, v)| d.observe(i as i64 * FIVE_MIN_MS, *v))
                .collect::<Vec<f64>>()
        };
        let routine = score_all(&DetectorParams::default());
        let always = score_all(&DetectorParams {
            recur_days: 0.0,
            ..DetectorParams::default()
        });
        let alarmed = |scores: &[f64], idx: &[usize]| {
            idx.iter()
                .filter(|&&i| scores[i] >= DEFAULT_ANOMALY_THRESHOLD)
                .count()
        };
        assert!(alarmed(&always, &nightly[2..]) >= 4, "{:?}", always);
        assert_eq!(alarmed(&routine, &nightly[..2]), 2);
        assert_eq!(alarmed(&routine, &nightly[2..]), 0);
        assert!(routine[odd_hour] >= DEFAULT_ANOMALY_THRESHOLD);
    }

    /// A slow climb to a level that past one-sample spikes already exceeded is caught by the
    /// smoothed-level channel; with that channel effectively off, it is missed.
    #[test]
    fn a_sustained_shift_inside_a_spike_stretched_range_is_detected() {
        let mut values = noisy(5000, 37, 10.0, 1.0);
        for i in (300..3000).step_by(250) {
            values[i] = 60.0;
        }
        for (k, v) in values[3000..].iter_mut().enumerate() {
            *v += 25.0 * (k as f64 / 200.0).min(1.0);
        }
        let score_all = |params: &DetectorParams| {
            let mut d = Detector::new(params);
            values
                .iter()
                .enumerate()
                .map(|(i, v)| d.observe(i as i64 * FIVE_MIN_MS, *v))
                .collect::<Vec<f64>>()
        };
        let with = alarms(&score_all(&DetectorParams::default()));
        let without = alarms(&score_all(&DetectorParams {
            level_alpha: 1e-9,
            ..DetectorParams::default()
        }));
        let in_shift = |a: &[usize]| a.iter().filter(|&&i| (3000..3400).contains(&i)).count();
        assert!(in_shift(&with) >= 1, "alarms with the channel: {with:?}");
        assert_eq!(
            in_shift(&without),
            0,
            "alarms without the channel: {without:?}"
        );
    }

    #[test]
    fn a_dead_flat_series_does_not_alarm_on_tiny_jitter() {
        let mut values = vec![7.0; 3000];
        for (i, v) in values.iter_mut().enumerate() {
            if i % 50 == 0 {
                *v += 0.01;
            }
        }
        let scores = run(&values);
        assert!(alarms(&scores[500..]).len() <= 2);
    }

    /// A value just beyond the range of a young series (400 samples) is discounted by
    /// `range_youth`; without the discount it alarms. A far bigger excursion at the same age
    /// still alarms, and the same small excess after 1500 samples alarms as the discount fades.
    #[test]
    fn a_young_range_discounts_small_new_extremes_only() {
        let alarm_at = |n: usize, excess: f64, params: &DetectorParams| {
            let mut noise = Noise(3);
            let values: Vec<f64> = (0..n).map(|_| 10.0 + noise.normal()).collect();
            let hi = values.iter().copied().fold(f64::MIN, f64::max);
            let lo = values.iter().copied().fold(f64::MAX, f64::min);
            let mut d = Detector::new(params);
            for (i, v) in values.iter().enumerate() {
                d.observe(i as i64 * FIVE_MIN_MS, *v);
            }
            d.observe(n as i64 * FIVE_MIN_MS, hi + excess * (hi - lo)) >= DEFAULT_ANOMALY_THRESHOLD
        };
        let default = DetectorParams::default();
        let no_youth = DetectorParams {
            range_youth: 0.0,
            ..default.clone()
        };
        assert!(alarm_at(400, 0.1, &no_youth));
        assert!(!alarm_at(400, 0.1, &default));
        assert!(alarm_at(400, 0.8, &default));
        assert!(alarm_at(1500, 0.1, &default));
    }
}
