//! Value checks for SEP-9 fields. A value that fails is kept and reported as
//! a `REJECTED` provided field with the message returned here.

use std::net::IpAddr;

use super::sep9::{Format, MAX_TEXT_LEN, Sep9Field};

/// Checks a text value of `field`. `choices` overrides the catalogue's
/// choices (a customer type may restrict e.g. `bank_account_type`).
pub fn check_text(
    field: &Sep9Field,
    choices: Option<&[String]>,
    value: &str,
) -> Result<(), String> {
    if let Some(choices) = choices {
        return if choices.iter().any(|c| c == value) {
            Ok(())
        } else {
            Err(format!("must be one of: {}", choices.join(", ")))
        };
    }
    match field.format {
        Format::Text => check_free_text(value),
        Format::Email => check_email(value),
        Format::Date => check_date(value),
        Format::CountryCode => check_country(value),
        Format::LanguageCode => check_language(value),
        Format::Phone => check_phone(value),
        Format::Digits => check_digits(value),
        Format::IpAddress => value
            .parse::<IpAddr>()
            .map(|_| ())
            .map_err(|_| "must be an IPv4 or IPv6 address".to_owned()),
        Format::Choice(options) => {
            if options.contains(&value) {
                Ok(())
            } else {
                Err(format!("must be one of: {}", options.join(", ")))
            }
        }
        Format::File => Err("must be sent as a file (multipart/form-data)".to_owned()),
    }
}

/// Checks a file value of a binary field.
pub fn check_file(len: u64) -> Result<(), String> {
    if len == 0 {
        Err("must not be an empty file".to_owned())
    } else {
        Ok(())
    }
}

fn check_free_text(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be blank".to_owned());
    }
    if value.chars().count() > MAX_TEXT_LEN {
        return Err(format!("must be at most {MAX_TEXT_LEN} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters".to_owned());
    }
    Ok(())
}

fn check_email(value: &str) -> Result<(), String> {
    let err = || Err("must be an email address such as name@example.com".to_owned());
    if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return err();
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return err();
    };
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return err();
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return err();
    }
    Ok(())
}

/// `YYYY-MM-DD`, a real calendar date.
pub fn check_date(value: &str) -> Result<(), String> {
    let err = || Err("must be a date in YYYY-MM-DD form".to_owned());
    let b = value.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return err();
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let s = value.get(r)?;
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().ok()
        } else {
            None
        }
    };
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return err();
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return err(),
    };
    if day == 0 || day > days || year == 0 {
        return err();
    }
    Ok(())
}

fn check_country(value: &str) -> Result<(), String> {
    if COUNTRIES_ALPHA3.binary_search(&value).is_ok() {
        Ok(())
    } else {
        Err("must be an ISO 3166-1 alpha-3 country code such as BRA".to_owned())
    }
}

fn check_language(value: &str) -> Result<(), String> {
    if value.len() == 2 && value.bytes().all(|b| b.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err("must be an ISO 639-1 language code such as en".to_owned())
    }
}

fn check_phone(value: &str) -> Result<(), String> {
    let digits = value.strip_prefix('+').unwrap_or(value);
    if (7..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
    {
        Ok(())
    } else {
        Err("must be a phone number in E.164 form such as +5511987654321".to_owned())
    }
}

fn check_digits(value: &str) -> Result<(), String> {
    if !value.is_empty() && value.len() <= 64 && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err("must be a number written in digits".to_owned())
    }
}

/// ISO 3166-1 alpha-3 codes, sorted (the 249 officially assigned codes).
pub static COUNTRIES_ALPHA3: &[&str] = &[
    "ABW", "AFG", "AGO", "AIA", "ALA", "ALB", "AND", "ARE", "ARG", "ARM", "ASM", "ATA", "ATF",
    "ATG", "AUS", "AUT", "AZE", "BDI", "BEL", "BEN", "BES", "BFA", "BGD", "BGR", "BHR", "BHS",
    "BIH", "BLM", "BLR", "BLZ", "BMU", "BOL", "BRA", "BRB", "BRN", "BTN", "BVT", "BWA", "CAF",
    "CAN", "CCK", "CHE", "CHL", "CHN", "CIV", "CMR", "COD", "COG", "COK", "COL", "COM", "CPV",
    "CRI", "CUB", "CUW", "CXR", "CYM", "CYP", "CZE", "DEU", "DJI", "DMA", "DNK", "DOM", "DZA",
    "ECU", "EGY", "ERI", "ESH", "ESP", "EST", "ETH", "FIN", "FJI", "FLK", "FRA", "FRO", "FSM",
    "GAB", "GBR", "GEO", "GGY", "GHA", "GIB", "GIN", "GLP", "GMB", "GNB", "GNQ", "GRC", "GRD",
    "GRL", "GTM", "GUF", "GUM", "GUY", "HKG", "HMD", "HND", "HRV", "HTI", "HUN", "IDN", "IMN",
    "IND", "IOT", "IRL", "IRN", "IRQ", "ISL", "ISR", "ITA", "JAM", "JEY", "JOR", "JPN", "KAZ",
    "KEN", "KGZ", "KHM", "KIR", "KNA", "KOR", "KWT", "LAO", "LBN", "LBR", "LBY", "LCA", "LIE",
    "LKA", "LSO", "LTU", "LUX", "LVA", "MAC", "MAF", "MAR", "MCO", "MDA", "MDG", "MDV", "MEX",
    "MHL", "MKD", "MLI", "MLT", "MMR", "MNE", "MNG", "MNP", "MOZ", "MRT", "MSR", "MTQ", "MUS",
    "MWI", "MYS", "MYT", "NAM", "NCL", "NER", "NFK", "NGA", "NIC", "NIU", "NLD", "NOR", "NPL",
    "NRU", "NZL", "OMN", "PAK", "PAN", "PCN", "PER", "PHL", "PLW", "PNG", "POL", "PRI", "PRK",
    "PRT", "PRY", "PSE", "PYF", "QAT", "REU", "ROU", "RUS", "RWA", "SAU", "SDN", "SEN", "SGP",
    "SGS", "SHN", "SJM", "SLB", "SLE", "SLV", "SMR", "SOM", "SPM", "SRB", "SSD", "STP", "SUR",
    "SVK", "SVN", "SWE", "SWZ", "SXM", "SYC", "SYR", "TCA", "TCD", "TGO", "THA", "TJK", "TKL",
    "TKM", "TLS", "TON", "TTO", "TUN", "TUR", "TUV", "TWN", "TZA", "UGA", "UKR", "UMI", "URY",
    "USA", "UZB", "VAT", "VCT", "VEN", "VGB", "VIR", "VNM", "VUT", "WLF", "WSM", "YEM", "ZAF",
    "ZMB", "ZWE",
];

#[cfg(test)]
mod tests {
    use super::super::sep9::lookup;
    use super::*;

    fn check(name: &str, value: &str) -> Result<(), String> {
        check_text(lookup(name).expect("known field"), None, value)
    }

    #[test]
    fn country_table_is_sorted_and_complete() {
        assert!(COUNTRIES_ALPHA3.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(COUNTRIES_ALPHA3.len(), 249);
    }

    #[test]
    fn emails() {
        assert!(check("email_address", "johndoe@example.com").is_ok());
        assert!(check("email_address", "a.b+tag@sub.example.co").is_ok());
        for bad in [
            "",
            "john",
            "john@",
            "@example.com",
            "john@example",
            "jo hn@example.com",
            "john@exa_mple.com",
            "a@b@c.com",
        ] {
            assert!(check("email_address", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert!(check("birth_date", "1976-07-04").is_ok());
        assert!(check("birth_date", "2024-02-29").is_ok());
        for bad in [
            "2023-02-29",
            "1976-7-4",
            "1976-13-01",
            "1976-00-10",
            "1976-01-32",
            "04/07/1976",
            "1976-07-04T00:00:00Z",
            "0000-01-01",
        ] {
            assert!(check("birth_date", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn countries_languages_phones_digits_ips() {
        assert!(check("address_country_code", "BRA").is_ok());
        assert!(check("address_country_code", "BR").is_err());
        assert!(check("address_country_code", "bra").is_err());
        assert!(check("address_country_code", "XXX").is_err());
        assert!(check("language_code", "pt").is_ok());
        assert!(check("language_code", "PT").is_err());
        assert!(check("mobile_number", "+5511987654321").is_ok());
        assert!(check("mobile_number", "5511987654321").is_ok());
        assert!(check("mobile_number", "+55 11 98765").is_err());
        assert!(check("mobile_number", "+123").is_err());
        assert!(check("occupation", "2511").is_ok());
        assert!(check("occupation", "25.11").is_err());
        assert!(check("ip_address", "203.0.113.7").is_ok());
        assert!(check("ip_address", "2001:db8::1").is_ok());
        assert!(check("ip_address", "300.1.1.1").is_err());
    }

    #[test]
    fn choices_from_catalogue_and_override() {
        assert!(check("sex", "female").is_ok());
        assert!(check("sex", "f").is_err());
        let field = lookup("bank_account_type").expect("known");
        let choices = vec!["checking".to_owned(), "savings".to_owned()];
        assert!(check_text(field, Some(&choices), "savings").is_ok());
        assert_eq!(
            check_text(field, Some(&choices), "brokerage"),
            Err("must be one of: checking, savings".to_owned())
        );
        // without an override, bank_account_type is free text
        assert!(check_text(field, None, "brokerage").is_ok());
    }

    #[test]
    fn free_text() {
        assert!(check("first_name", "Zoë").is_ok());
        assert!(check("address", "1 Main St\nSpringfield").is_ok());
        assert!(check("first_name", "  ").is_err());
        assert!(check("first_name", "a\u{0}b").is_err());
        assert!(check("first_name", &"x".repeat(MAX_TEXT_LEN + 1)).is_err());
        assert!(check("photo_id_front", "text").is_err());
        assert!(check_file(0).is_err());
        assert!(check_file(1).is_ok());
    }
}
