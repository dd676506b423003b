//! Retry decisions: a pure function of the response head, the parsed error
//! and the attempt number.
//!
//! 429 and 5xx (and transport failures before anything was sent) are retried
//! with capped exponential backoff and full jitter from a seeded PRNG. A
//! `Retry-After` header (delta-seconds or an HTTP-date) or OpenAI's
//! `retry-after-ms` is honoured as a floor. Other 4xx are final.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::UnixMillis;

/// Knobs for retrying transient failures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// The first backoff before jitter.
    pub base_delay: Duration,
    /// The largest backoff before jitter.
    pub max_delay: Duration,
    /// How many attempts one operation gets in a row before it is given up
    /// (the first try counts).
    pub max_attempts: u32,
    /// The longest `Retry-After` honoured; longer values are capped to this.
    pub max_retry_after: Duration,
    /// How many attempts a read (a status poll, a look-up, a download) gets
    /// in a row when the server answers a status that should not come
    /// there: a 3xx, or a 4xx other than 401, 403, 408, 409 and 429 (a
    /// proxy's redirect, a transient 404). Default 4: with the default
    /// backoff, the read is given up after about 7 s of such answers
    /// (1 + 2 + 4 s of backoff, halved at worst by jitter).
    #[serde(default = "default_odd_status_attempts")]
    pub odd_status_attempts: u32,
    /// How long one operation may keep failing before it is given up,
    /// counted from its first failure: a retry that would start later than
    /// this is not made (default: no limit, only
    /// [`max_attempts`](Self::max_attempts)). Set it to bound how long an
    /// unreachable server holds an operation, whatever the attempt count.
    #[serde(default)]
    pub max_elapsed: Option<Duration>,
}

fn default_odd_status_attempts() -> u32 {
    4
}

impl Default for RetryPolicy {
    /// 1 s doubling to 2 min, 12 attempts (about 15 min of trying), and
    /// `Retry-After` honoured up to 10 min.
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(120),
            max_attempts: 12,
            max_retry_after: Duration::from_secs(600),
            odd_status_attempts: default_odd_status_attempts(),
            max_elapsed: None,
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling for `attempt` (1 = the first retry), before jitter:
    /// `min(max_delay, base_delay * 2^(attempt-1))`. Monotone in `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(30);
        let base = u64::try_from(self.base_delay.as_millis()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.max_delay.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(base.saturating_mul(1u64 << shift).min(max))
    }

    /// The instant to retry at: full jitter in `[ceiling/2, ceiling]`, and
    /// never before the server's `retry_after` (capped by
    /// [`max_retry_after`](Self::max_retry_after)).
    pub fn retry_at(
        &self,
        attempt: u32,
        retry_after: Option<UnixMillis>,
        rng: &mut JitterRng,
        now: UnixMillis,
    ) -> UnixMillis {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        let half = ceiling / 2;
        let jittered = half + rng.below(ceiling - half + 1);
        let mut at = now.plus_millis(jittered);
        if let Some(floor) = retry_after {
            let cap = now.saturating_add(self.max_retry_after);
            at = at.max(floor.min(cap));
        }
        at
    }

    /// Whether another attempt is allowed after `attempts` tries.
    pub fn allows(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// Whether a retry at `at` fits the time budget of an operation that
    /// first failed at `first_failure` (always, without
    /// [`max_elapsed`](Self::max_elapsed)).
    pub fn within_budget(&self, first_failure: UnixMillis, at: UnixMillis) -> bool {
        self.max_elapsed
            .is_none_or(|budget| at <= first_failure.saturating_add(budget))
    }
}

/// A small seeded PRNG (SplitMix64) for backoff jitter.
///
/// The seed comes from the caller (`JobConfig`), and the state is kept in
/// checkpoints so a run can be replayed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JitterRng {
    state: u64,
}

impl JitterRng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        JitterRng { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// How a status code should be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatusClass {
    /// 2xx.
    Success,
    /// 429, 408, 409 (conflict from concurrent updates) and 5xx: try again later.
    Transient,
    /// Any other status: final.
    Final,
}

/// Classifies an HTTP status.
pub fn classify_status(status: http::StatusCode) -> StatusClass {
    let code = status.as_u16();
    if status.is_success() {
        StatusClass::Success
    } else if code == 429 || code == 408 || code == 409 || status.is_server_error() {
        StatusClass::Transient
    } else {
        StatusClass::Final
    }
}

/// The instant the server asked us to wait until, from `retry-after-ms`
/// (OpenAI) or `Retry-After` (delta-seconds or HTTP-date), if any.
pub fn retry_after(headers: &http::HeaderMap, now: UnixMillis) -> Option<UnixMillis> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|ms| ms.is_finite() && *ms >= 0.0)
    {
        // Truncation of a finite non-negative float is the intent here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        return Some(now.plus_millis(ms.ceil() as u64));
    }
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(now.plus_millis(secs.saturating_mul(1000)));
    }
    parse_http_date(value).map(|secs| UnixMillis(secs.saturating_mul(1000)))
}

/// Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate
/// (`Sun, 06 Nov 1994 08:49:37 GMT`), the obsolete RFC 850 form
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
/// Returns Unix seconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, d, m, y, t, "GMT"] => (
            d.parse::<u32>().ok()?,
            month_of(m)?,
            y.parse::<i64>().ok()?,
            *t,
        ),
        [_, dmy, t, "GMT"] => {
            let mut it = dmy.split('-');
            let d = it.next()?.parse::<u32>().ok()?;
            let m = month_of(it.next()?)?;
            let y2 = it.next()?.parse::<i64>().ok()?;
            // RFC 9110: a two-digit year more than 50 years in the future is in the past century.
            let y = if y2 < 70 { 2000 + y2 } else { 1900 + y2 };
            (d, m, y, *t)
        }
        [_, m, d, t, y] => (
            d.parse::<u32>().ok()?,
            month_of(m)?,
            y.parse::<i64>().ok()?,
            *t,
        ),
        _ => return None,
    };
    let mut hms = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, mi, se) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || !(1..=31).contains(&day) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = crate::time::days_from_civil(year, i64::from(month), i64::from(day));
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(se);
    u64::try_from(secs).ok()
}

fn month_of(m: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = m.get(..3)?.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|x| *x == m)
        .and_then(|i| u32::try_from(i + 1).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates_in_all_three_forms() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Wed, 25 Nov 2026 10:00:00 GMT"),
            Some(1_795_600_800)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 25:49:37 GMT"), None);
    }

    #[test]
    fn retry_after_forms() {
        let now = UnixMillis(1_000_000);
        let mut h = http::HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", http::HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(UnixMillis(1_007_000)));
        h.insert(
            "retry-after",
            http::HeaderValue::from_static("Thu, 01 Jan 1970 00:20:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(UnixMillis(1_200_000)));
        h.insert("retry-after-ms", http::HeaderValue::from_static("1500.2"));
        assert_eq!(retry_after(&h, now), Some(UnixMillis(1_001_501)));
    }

    #[test]
    fn classification() {
        use http::StatusCode as S;
        assert_eq!(classify_status(S::OK), StatusClass::Success);
        assert_eq!(
            classify_status(S::TOO_MANY_REQUESTS),
            StatusClass::Transient
        );
        assert_eq!(classify_status(S::BAD_GATEWAY), StatusClass::Transient);
        assert_eq!(classify_status(S::BAD_REQUEST), StatusClass::Final);
        assert_eq!(classify_status(S::UNAUTHORIZED), StatusClass::Final);
        assert_eq!(classify_status(S::NOT_FOUND), StatusClass::Final);
    }

    #[test]
    fn backoff_is_bounded_and_honours_retry_after() {
        let p = RetryPolicy::default();
        let mut rng = JitterRng::new(7);
        let now = UnixMillis(10_000);
        for attempt in 1..40 {
            let at = p.retry_at(attempt, None, &mut rng, now);
            let ceiling = p.ceiling(attempt);
            assert!(now.until(at) <= ceiling);
            assert!(now.until(at) >= ceiling / 2);
            assert!(p.ceiling(attempt) <= p.ceiling(attempt + 1));
        }
        let floor = UnixMillis(10_000 + 300_000);
        assert!(p.retry_at(1, Some(floor), &mut rng, now) >= floor);
        let too_far = UnixMillis(10_000 + 86_400_000);
        assert_eq!(
            p.retry_at(1, Some(too_far), &mut rng, now),
            now.saturating_add(p.max_retry_after)
        );
    }

    #[test]
    fn time_budget_counts_from_the_first_failure() {
        let mut p = RetryPolicy::default();
        let first = UnixMillis(50_000);
        assert!(p.within_budget(first, UnixMillis(u64::MAX)));
        p.max_elapsed = Some(Duration::from_secs(5));
        assert!(p.within_budget(first, UnixMillis(55_000)));
        assert!(!p.within_budget(first, UnixMillis(55_001)));
    }

    #[test]
    fn rng_is_deterministic() {
        let a: Vec<u64> = {
            let mut r = JitterRng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = JitterRng::new(42);
            (0..5).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a[0], a[1]);
    }
}
