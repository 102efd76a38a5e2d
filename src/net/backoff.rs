//! Retry timing: exponential backoff with jitter under a ceiling, and the server's own hints
//! (`Retry-After` as seconds or an HTTP date, `RateLimit-Reset` as unix seconds).
//!
//! Pure functions of their inputs (plus a random source), so they are unit-tested directly.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// Server hints beyond this are clamped: one Terraform run should not sleep for an hour, and
/// GitLab's rate-limit windows are a minute long.
pub const MAX_HINT: Duration = Duration::from_secs(60);

/// Retries of HTTP requests to services that may say how long to wait (GitLab, OCI
/// registries): 200 ms doubling up to 10 s, server hints honoured up to [`MAX_HINT`].
pub const HTTP_RETRY: Backoff =
    Backoff::new(Duration::from_millis(200), Duration::from_secs(10)).hints_up_to(MAX_HINT);

/// How long to wait before the next try: the ceiling starts at `first` and doubles with each
/// attempt up to `ceiling`; the wait is uniform in `[ceiling/2, ceiling]` of that attempt
/// ("equal jitter"), so clients that failed together do not retry together, no retry comes
/// at once after a failure, and a poll keeps within a factor of two of its schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    ceiling: Duration,
    hint_ceiling: Duration,
}

impl Backoff {
    /// Server hints are honoured up to `ceiling` unless [`Backoff::hints_up_to`] says more.
    pub const fn new(first: Duration, ceiling: Duration) -> Self {
        Self {
            first,
            ceiling,
            hint_ceiling: ceiling,
        }
    }

    /// The longest server hint honoured.
    pub const fn hints_up_to(self, hint_ceiling: Duration) -> Self {
        Self {
            hint_ceiling,
            ..self
        }
    }

    /// The wait after failed attempt `attempt` (0 for the first).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .first
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.ceiling);
        ceiling / 2 + (ceiling / 2).mul_f64(unit_random())
    }

    /// The server's hint when it gave one (clamped), else [`Backoff::delay`].
    pub fn wait(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        hint.map_or_else(|| self.delay(attempt), |h| h.min(self.hint_ceiling))
    }
}

/// How long the server asked us to wait, if it said so. `Retry-After` wins; `RateLimit-Reset`
/// is only meaningful on a 429 (GitLab sends it on every response).
pub fn server_hint(headers: &HeaderMap, rate_limited: bool, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| header(headers, name);
    let hint = header("retry-after")
        .and_then(|v| parse_retry_after(v, now))
        .or_else(|| {
            rate_limited
                .then(|| header("ratelimit-reset"))
                .flatten()
                .and_then(|v| v.parse::<u64>().ok())
                .map(|reset| until(reset, now))
        })?;
    Some(hint.min(MAX_HINT))
}

/// A header's value as trimmed text, when it is there and is text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    parse_http_date(value).map(|at| until(at, now))
}

fn until(unix_secs: u64, now: SystemTime) -> Duration {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    Duration::from_secs(unix_secs).saturating_sub(now)
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only HTTP date form servers may send.
fn parse_http_date(value: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as i64 + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let mut hms = time.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3_600 + m * 60 + s;
    u64::try_from(secs).ok()
}

/// Howard Hinnant's civil-to-days algorithm; avoids a calendar dependency.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A uniform number in `[0, 1)`. `RandomState` is randomly keyed per instance, which is all
/// the randomness jitter needs, without a `rand` dependency.
fn unit_random() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let bits = std::collections::hash_map::RandomState::new().hash_one(n);
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn backoff_is_jittered_under_an_exponential_ceiling() {
        // Ceilings written out (200 ms doubling, capped at 10 s), not recomputed by the
        // formula under test.
        let ceilings_ms = [
            (0, 200),
            (1, 400),
            (2, 800),
            (5, 6_400),
            (6, 10_000),
            (29, 10_000),
        ];
        for (attempt, ceiling_ms) in ceilings_ms {
            for _ in 0..50 {
                let delay = HTTP_RETRY.delay(attempt);
                assert!(delay <= Duration::from_millis(ceiling_ms));
                assert!(delay >= Duration::from_millis(ceiling_ms / 2), "{delay:?}");
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| HTTP_RETRY.delay(3)).collect();
        assert!(spread.len() > 10, "jitter varies: {spread:?}");
    }

    #[test]
    fn hints_win_up_to_their_ceiling() {
        let kube = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
        assert_eq!(
            kube.wait(3, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            kube.wait(0, Some(Duration::from_secs(30))),
            Duration::from_secs(5)
        );
        assert_eq!(
            HTTP_RETRY.wait(0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert!(HTTP_RETRY.wait(0, None) <= Duration::from_millis(200));
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(server_hint(&h, false, at(0)), Some(Duration::from_secs(7)));
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (RFC 9110's example).
        h.insert(
            "retry-after",
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            server_hint(&h, false, at(784_111_770)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            server_hint(&h, false, at(784_111_999)),
            Some(Duration::ZERO)
        );
        h.insert("retry-after", HeaderValue::from_static("86400"));
        assert_eq!(server_hint(&h, false, at(0)), Some(MAX_HINT));
    }

    #[test]
    fn ratelimit_reset_only_counts_on_429() {
        let mut h = HeaderMap::new();
        h.insert("ratelimit-reset", HeaderValue::from_static("1005"));
        assert_eq!(
            server_hint(&h, true, at(1000)),
            Some(Duration::from_secs(5))
        );
        assert_eq!(server_hint(&h, false, at(1000)), None);
        assert_eq!(server_hint(&HeaderMap::new(), true, at(1000)), None);
    }
}
