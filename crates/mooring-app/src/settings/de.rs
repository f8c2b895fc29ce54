//! How the raw settings read their values: a kind by one of its names
//! ([`Kind`], the `kind!` macro), refused with the names it takes and what
//! was written; an amount exactly, or refused ([`exact_decimal`]).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};

/// A setting that names one of a fixed set of kinds.
pub trait Kind: Sized {
    /// The names it takes, as written in the settings.
    const NAMES: &[&str];

    fn from_name(name: &str) -> Option<Self>;
}

/// The refusal of a kind's name, quoting what the operator wrote.
pub(super) fn not_one_of<K: Kind, E: serde::de::Error>(written: &str) -> E {
    E::custom(format!(
        "expected one of {}, not {written:?}",
        K::NAMES.join(", ")
    ))
}

/// A kind setting: an enum read from its name (a wrong name is refused by
/// deserialisation, naming the key and the names it takes), and shown by
/// that name.
macro_rules! kind {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl $crate::settings::de::Kind for $name {
            const NAMES: &[&str] = &[$($text),+];

            fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::from_name(&text).ok_or_else(|| $crate::settings::de::not_one_of::<Self, D::Error>(&text))
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// Reads a kind in any case (`JWT`, `Api_Key`), as the AP does; a refusal
/// quotes the name as written.
pub(super) fn any_case<'de, D: Deserializer<'de>, T: Kind>(d: D) -> Result<T, D::Error> {
    let text = String::deserialize(d)?;
    T::from_name(&text.to_ascii_lowercase()).ok_or_else(|| not_one_of::<T, D::Error>(&text))
}

/// The most significant digits a TOML number may have and still be read
/// as written: any decimal of at most 15 significant digits survives the
/// trip through an `f64` (`f64::DIGITS`), and the shortest text of that
/// float is the decimal again.
const FLOAT_EXACT_DIGITS: usize = f64::DIGITS as usize;

/// An amount, exactly as written. A string or an integer is exact. A TOML
/// number with a fraction reaches serde as an `f64` (the toml and config
/// crates both parse it so): it is taken only when its shortest text has at
/// most 15 significant digits, which is then the text the operator wrote;
/// a longer one may already have been rounded, and is refused with the
/// advice to quote it.
pub(super) fn exact_decimal<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    struct Amount;

    impl serde::de::Visitor<'_> for Amount {
        type Value = Decimal;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a decimal amount, best written as a string (\"0.1\")")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Decimal, E> {
            Decimal::from_str_exact(text.trim())
                .map_err(|_| E::custom(format!("{text:?} is not a decimal number")))
        }

        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }

        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Decimal, E> {
            Ok(Decimal::from(v))
        }

        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Decimal, E> {
            let text = v.to_string();
            let significant = text
                .trim_start_matches(['-', '0', '.'])
                .chars()
                .filter(char::is_ascii_digit)
                .count();
            if !v.is_finite() || significant > FLOAT_EXACT_DIGITS {
                return Err(E::custom(format!(
                    "{text} has more than {FLOAT_EXACT_DIGITS} significant digits as a TOML number, \
                     which may already be rounded: write it as a string (\"...\")"
                )));
            }
            self.visit_str(&text)
        }
    }

    d.deserialize_any(Amount)
}

pub(super) fn optional_exact_decimal<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Decimal>, D::Error> {
    exact_decimal(d).map(Some)
}

pub(super) fn exact_decimals<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, Decimal>, D::Error> {
    /// One value of the map, read as [`exact_decimal`] reads it.
    struct Exact(Decimal);

    impl<'de> Deserialize<'de> for Exact {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            exact_decimal(d).map(Exact)
        }
    }

    Ok(BTreeMap::<String, Exact>::deserialize(d)?
        .into_iter()
        .map(|(key, Exact(v))| (key, v))
        .collect())
}

pub(super) use kind;
