//! Stellar account ids (SEP-23 strkeys) and transaction memos.

use std::fmt;

use base64::Engine as _;

/// A Stellar account: a `G…` public key or an `M…` muxed account, checked
/// against the strkey alphabet, version byte, length and CRC16 checksum.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StellarAccount(String);

/// Why a string is not a Stellar account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("account must be a Stellar G... or M... address")]
pub struct InvalidAccount;

const VERSION_ACCOUNT_ID: u8 = 6 << 3; // 'G'
const VERSION_MUXED_ACCOUNT: u8 = 12 << 3; // 'M'

impl StellarAccount {
    pub fn parse(s: &str) -> Result<Self, InvalidAccount> {
        let (version, payload_len) = match s.len() {
            56 => (VERSION_ACCOUNT_ID, 32),
            69 => (VERSION_MUXED_ACCOUNT, 40),
            _ => return Err(InvalidAccount),
        };
        let raw = base32_decode(s).ok_or(InvalidAccount)?;
        // version byte + payload + 2 checksum bytes
        if raw.len() != 1 + payload_len + 2 || raw[0] != version {
            return Err(InvalidAccount);
        }
        let (body, checksum) = raw.split_at(raw.len() - 2);
        let expected = crc16_xmodem(body).to_le_bytes();
        if checksum != expected {
            return Err(InvalidAccount);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_muxed(&self) -> bool {
        self.0.starts_with('M')
    }
}

impl fmt::Display for StellarAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for StellarAccount {
    // An account identifies a person's wallet: debug output shows only its
    // first and last characters so that it cannot leak whole into a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "StellarAccount({}…{})",
            &self.0[..4],
            &self.0[self.0.len() - 4..]
        )
    }
}

/// RFC 4648 base32 without padding, upper case, as strkeys use it.
fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be zero padding.
    if buffer != 0 {
        return None;
    }
    Some(out)
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The kind of a Stellar memo, as the AP and SEP-12 name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemoType {
    Id,
    Hash,
    Text,
}

impl MemoType {
    pub fn parse(s: &str) -> Result<Self, InvalidMemo> {
        match s {
            "id" => Ok(Self::Id),
            "hash" => Ok(Self::Hash),
            "text" => Ok(Self::Text),
            _ => Err(InvalidMemo::Type),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::Hash => "hash",
            Self::Text => "text",
        }
    }
}

/// Why a memo was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMemo {
    #[error("memo_type must be one of id, hash, text")]
    Type,
    #[error("memo of type id must be an unsigned 64-bit integer")]
    Id,
    #[error("memo of type hash must be 32 bytes, base64 or hex encoded")]
    Hash,
    #[error("memo of type text must be 1 to 28 bytes, without NUL")]
    Text,
    #[error("memo_type was given without a memo")]
    TypeWithoutMemo,
}

/// A memo that identifies one customer within a shared account. It is kept
/// as the string the AP sent (a 64-bit number, a hash or text) with its type.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Memo {
    value: String,
    memo_type: MemoType,
}

impl Memo {
    /// Parses a memo. When no type is given the AP's default, `id`, applies.
    pub fn parse(value: &str, memo_type: Option<&str>) -> Result<Self, InvalidMemo> {
        let memo_type = match memo_type {
            None | Some("") => MemoType::Id,
            Some(t) => MemoType::parse(t)?,
        };
        // Kept in one canonical spelling, so that one memo is one customer:
        // id memos as plain decimal ("042" is 42), hash memos as base64.
        let canonical = match memo_type {
            MemoType::Id if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                value.parse::<u64>().ok().map(|n| n.to_string())
            }
            MemoType::Id => None,
            MemoType::Hash => {
                hash_bytes(value).map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            }
            MemoType::Text => (!value.is_empty() && value.len() <= 28 && !value.contains('\0'))
                .then(|| value.to_owned()),
        };
        let value = canonical.ok_or(match memo_type {
            MemoType::Id => InvalidMemo::Id,
            MemoType::Hash => InvalidMemo::Hash,
            MemoType::Text => InvalidMemo::Text,
        })?;
        Ok(Self { value, memo_type })
    }

    /// Parses the optional memo pair of a request: no memo is `None`; a type
    /// without a memo is refused.
    pub fn parse_optional(
        value: Option<&str>,
        memo_type: Option<&str>,
    ) -> Result<Option<Self>, InvalidMemo> {
        match (value, memo_type) {
            (None | Some(""), None | Some("")) => Ok(None),
            (None | Some(""), Some(_)) => Err(InvalidMemo::TypeWithoutMemo),
            (Some(v), t) => Self::parse(v, t).map(Some),
        }
    }

    pub fn value(&self) -> &str {
        &self.value
    }

    pub fn memo_type(&self) -> MemoType {
        self.memo_type
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Memo({}, <redacted>)", self.memo_type.as_str())
    }
}

/// The 32 bytes of a hash memo written in hex or base64.
fn hash_bytes(value: &str) -> Option<Vec<u8>> {
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        let bytes = (0..32)
            .map(|i| u8::from_str_radix(&value[2 * i..2 * i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        return Some(bytes);
    }
    base64::engine::general_purpose::STANDARD
        .decode(value)
        .ok()
        .filter(|bytes| bytes.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Valid keys from the SEP-23 test vectors and the AP docs.
    const G: &str = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
    const G2: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
    const M: &str = "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLK";

    #[test]
    fn accepts_valid_g_and_m_accounts() {
        assert!(StellarAccount::parse(G).is_ok());
        assert!(StellarAccount::parse(G2).is_ok());
        let m = StellarAccount::parse(M).expect("muxed account");
        assert!(m.is_muxed());
    }

    #[test]
    fn refuses_bad_checksum_length_alphabet_and_version() {
        let mut bad = G.to_owned();
        bad.replace_range(55..56, "6");
        assert_eq!(StellarAccount::parse(&bad), Err(InvalidAccount));
        assert_eq!(StellarAccount::parse(&G[..55]), Err(InvalidAccount));
        assert_eq!(
            StellarAccount::parse(&G.to_lowercase()),
            Err(InvalidAccount)
        );
        // A valid secret seed (S…) has the right length but the wrong version.
        assert_eq!(
            StellarAccount::parse("SBU2RRGLXH3E5CQHTD3ODLDF2BWDCYUSSBLLZ5GNW7JXHDIYKXZWHOKR"),
            Err(InvalidAccount)
        );
        assert_eq!(StellarAccount::parse(""), Err(InvalidAccount));
    }

    #[test]
    fn debug_output_redacts_the_account() {
        let account = StellarAccount::parse(G).expect("valid");
        let debug = format!("{account:?}");
        assert!(!debug.contains(G));
        assert!(debug.starts_with("StellarAccount(GDJU"));
    }

    #[test]
    fn memo_defaults_to_id_and_checks_each_type() {
        let memo = Memo::parse("780284017", None).expect("id memo");
        assert_eq!(memo.memo_type(), MemoType::Id);
        assert_eq!(memo.value(), "780284017");
        assert_eq!(
            Memo::parse("18446744073709551615", Some("id")).map(|m| m.memo_type()),
            Ok(MemoType::Id)
        );
        assert_eq!(
            Memo::parse("18446744073709551616", Some("id")),
            Err(InvalidMemo::Id)
        );
        assert_eq!(Memo::parse("-1", Some("id")), Err(InvalidMemo::Id));
        assert_eq!(Memo::parse("abc", None), Err(InvalidMemo::Id));
        assert!(Memo::parse("MDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=", Some("hash")).is_ok());
        assert!(Memo::parse(&"ab".repeat(32), Some("hash")).is_ok());
        assert_eq!(Memo::parse("short", Some("hash")), Err(InvalidMemo::Hash));
        assert!(Memo::parse("invoice 42", Some("text")).is_ok());
        assert_eq!(
            Memo::parse(&"x".repeat(29), Some("text")),
            Err(InvalidMemo::Text)
        );
        assert_eq!(Memo::parse("1", Some("bogus")), Err(InvalidMemo::Type));
        assert_eq!(Memo::parse("a\0b", Some("text")), Err(InvalidMemo::Text));
    }

    #[test]
    fn one_memo_has_one_spelling() {
        assert_eq!(
            Memo::parse("00042", None).map(|m| m.value().to_owned()),
            Ok("42".to_owned())
        );
        let hex = Memo::parse(&"AB".repeat(32), Some("hash")).expect("hex");
        let lower = Memo::parse(&"ab".repeat(32), Some("hash")).expect("hex");
        let b64 = Memo::parse("q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", Some("hash"))
            .expect("base64");
        assert_eq!(hex, lower);
        assert_eq!(hex, b64);
    }

    #[test]
    fn optional_memo_pair() {
        assert_eq!(Memo::parse_optional(None, None), Ok(None));
        assert_eq!(Memo::parse_optional(Some(""), None), Ok(None));
        assert_eq!(
            Memo::parse_optional(None, Some("id")),
            Err(InvalidMemo::TypeWithoutMemo)
        );
        assert!(
            Memo::parse_optional(Some("7"), Some("id"))
                .expect("valid")
                .is_some()
        );
    }
}
