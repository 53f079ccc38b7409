//! PHA amounts. Balances are integers in planck; 1 PHA = 10^12 planck.
//!
//! People type and read PHA (`1.5`); machines exchange planck (`--json`).

/// An amount of PHA in planck.
pub type Balance = u128;

/// Number of decimals of PHA.
pub const PHA_DECIMALS: u32 = 12;

/// Planck in one PHA.
pub const PLANCK_PER_PHA: Balance = 10u128.pow(PHA_DECIMALS);

/// Why an amount could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AmountError {
    #[error("amount {0:?} is not a decimal number of PHA such as 1 or 1.5")]
    Syntax(String),
    #[error("amount {0:?} has more than 12 decimals (1 planck = 0.000000000001 PHA)")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    Overflow(String),
}

/// Parses a PHA amount such as `12`, `1.5` or `0.000000000001` into planck.
/// A trailing `planck` suffix (`1000planck`) takes the integer as planck.
pub fn parse_pha(text: &str) -> Result<Balance, AmountError> {
    let text = text.trim();
    let syntax = || AmountError::Syntax(text.to_string());
    if let Some(planck) = text.strip_suffix("planck") {
        return planck.trim().parse::<Balance>().map_err(|_| syntax());
    }
    let text_no_unit = text.strip_suffix("PHA").unwrap_or(text).trim();
    let (whole, fraction) = text_no_unit.split_once('.').unwrap_or((text_no_unit, ""));
    let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && fraction.is_empty()) || !digits_only(whole) || !digits_only(fraction) {
        return Err(syntax());
    }
    if fraction.len() > PHA_DECIMALS as usize {
        return Err(AmountError::TooPrecise(text.to_string()));
    }
    let overflow = || AmountError::Overflow(text.to_string());
    let whole: Balance = if whole.is_empty() { 0 } else { whole.parse().map_err(|_| overflow())? };
    let fraction_planck: Balance = if fraction.is_empty() {
        0
    } else {
        let scale = 10u128.pow(PHA_DECIMALS - fraction.len() as u32);
        fraction.parse::<Balance>().map_err(|_| syntax())? * scale
    };
    whole.checked_mul(PLANCK_PER_PHA).and_then(|w| w.checked_add(fraction_planck)).ok_or_else(overflow)
}

/// Formats planck as PHA with trailing zeros trimmed: `1500000000000` → `1.5 PHA`.
pub fn format_pha(planck: Balance) -> String {
    let whole = planck / PLANCK_PER_PHA;
    let fraction = planck % PLANCK_PER_PHA;
    if fraction == 0 {
        return format!("{whole} PHA");
    }
    let fraction = format!("{fraction:012}");
    format!("{whole}.{} PHA", fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_examples() {
        assert_eq!(parse_pha("1").unwrap(), PLANCK_PER_PHA);
        assert_eq!(parse_pha("1.5").unwrap(), 1_500_000_000_000);
        assert_eq!(parse_pha(".5").unwrap(), 500_000_000_000);
        assert_eq!(parse_pha("0.000000000001").unwrap(), 1);
        assert_eq!(parse_pha("7 PHA").unwrap(), 7 * PLANCK_PER_PHA);
        assert_eq!(parse_pha("42planck").unwrap(), 42);
        assert!(matches!(parse_pha("0.0000000000001"), Err(AmountError::TooPrecise(_))));
        assert!(matches!(parse_pha("-1"), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_pha("1e5"), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_pha("."), Err(AmountError::Syntax(_))));
        assert!(matches!(parse_pha("999999999999999999999999999999"), Err(AmountError::Overflow(_))));
    }

    #[test]
    fn format_examples() {
        assert_eq!(format_pha(0), "0 PHA");
        assert_eq!(format_pha(1_500_000_000_000), "1.5 PHA");
        assert_eq!(format_pha(1), "0.000000000001 PHA");
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_roundtrips(planck in 0u128..10u128.pow(24)) {
            let text = format_pha(planck);
            proptest::prop_assert_eq!(parse_pha(&text).unwrap(), planck);
        }
    }
}
