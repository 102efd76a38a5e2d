//! Reconcile-interval validation.
//!
//! Flux's CRDs declare intervals with the pattern `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$` (see the
//! fixture's gotk-components.yaml), a subset of Go's `time.ParseDuration`. Checking the same
//! pattern here turns a server-side rejection at apply time into a plan-time diagnostic; a
//! zero interval passes the pattern but would make Flux reconcile in a hot loop, so it is
//! refused too.

use super::error::FluxError;

const UNITS: [&str; 4] = ["ms", "s", "m", "h"];

/// Checks that `value` is a positive duration Flux accepts, such as `1m0s`, `10m` or `1h30m`.
pub fn validate_interval(value: &str) -> Result<(), FluxError> {
    let invalid = || FluxError::InvalidInterval {
        value: value.to_string(),
    };
    let mut rest = value;
    let mut positive = false;
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let (number, after) = split_number(rest).ok_or_else(invalid)?;
        let unit = UNITS
            .iter()
            .find(|unit| after.starts_with(**unit))
            .ok_or_else(invalid)?;
        positive |= number.bytes().any(|b| (b'1'..=b'9').contains(&b));
        rest = &after[unit.len()..];
    }
    if positive { Ok(()) } else { Err(invalid()) }
}

/// Splits `digits[.digits]` off the front of `text`.
fn split_number(text: &str) -> Option<(&str, &str)> {
    let integer = text.bytes().take_while(u8::is_ascii_digit).count();
    if integer == 0 {
        return None;
    }
    let mut end = integer;
    if text[end..].starts_with('.') {
        let fraction = text[end + 1..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if fraction == 0 {
            return None;
        }
        end += 1 + fraction;
    }
    Some(text.split_at(end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_flux_durations() {
        for ok in ["1m0s", "10m", "1h30m", "500ms", "1.5h", "0h1m", "10m0s"] {
            assert_eq!(validate_interval(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "", "0s", "0m0s", "10", "m", "1d", "-1m", "1.m", ".5m", "1m ", " 1m", "1 m", "1us",
        ] {
            assert_eq!(
                validate_interval(bad),
                Err(FluxError::InvalidInterval { value: bad.into() }),
                "{bad}"
            );
        }
    }
}
