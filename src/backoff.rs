//! Retry timing for the HTTP clients (GitLab, OCI registries): exponential backoff with full
//! jitter, and the server's own hints (`Retry-After` as seconds or an HTTP date,
//! `RateLimit-Reset` as unix seconds).
//!
//! Pure functions of their inputs (plus a random source), so they are unit-tested directly.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// First retry waits up to this long; each further retry doubles the ceiling.
pub(crate) const BASE: Duration = Duration::from_millis(200);
/// Ceiling for computed backoff.
pub(crate) const CAP: Duration = Duration::from_secs(10);
/// Server hints beyond this are clamped: one Terraform run should not sleep for an hour, and
/// GitLab's rate-limit windows are a minute long.
pub(crate) const MAX_HINT: Duration = Duration::from_secs(60);

/// Full jitter: uniformly random in `[0, min(CAP, BASE * 2^attempt)]`, so concurrent clients
/// that failed together do not retry together.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    ceiling.mul_f64(unit_random())
}

/// How long the server asked us to wait, if it said so. `Retry-After` wins; `RateLimit-Reset`
/// is only meaningful on a 429 (GitLab sends it on every response).
pub(crate) fn server_hint(
    headers: &HeaderMap,
    rate_limited: bool,
    now: SystemTime,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
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
                assert!(backoff(attempt) <= Duration::from_millis(ceiling_ms));
            }
        }
        let spread: std::collections::BTreeSet<_> = (0..20).map(|_| backoff(3)).collect();
        assert!(spread.len() > 10, "jitter varies: {spread:?}");
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
