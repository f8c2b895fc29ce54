//! SEP-38 asset names and the facts Mooring needs about each asset, as the
//! Anchor Platform's assets file declares them.

use std::collections::BTreeMap;
use std::fmt;

/// A SEP-38 asset name: `stellar:CODE:ISSUER`, `stellar:native` or
/// `iso4217:XXX`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssetId(String);

/// Why a string is not a SEP-38 asset name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("asset must be in SEP-38 form, stellar:CODE:ISSUER or iso4217:XXX, got {0:?}")]
pub struct InvalidAsset(pub String);

impl AssetId {
    pub fn parse(s: &str) -> Result<Self, InvalidAsset> {
        let invalid = || InvalidAsset(s.chars().take(80).collect());
        let mut parts = s.split(':');
        let schema = parts.next().ok_or_else(invalid)?;
        let code = parts.next().ok_or_else(invalid)?;
        let issuer = parts.next();
        if parts.next().is_some() {
            return Err(invalid());
        }
        let ok = match (schema, issuer) {
            ("stellar", None) => code == "native",
            ("stellar", Some(issuer)) => {
                (1..=12).contains(&code.len())
                    && code.bytes().all(|b| b.is_ascii_alphanumeric())
                    && crate::StellarAccount::parse(issuer).is_ok_and(|a| !a.is_muxed())
            }
            ("iso4217", None) => code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
            _ => false,
        };
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid())
        }
    }

    /// Builds the SEP-38 name from the AP 2.x assets file's `schema`, `code`
    /// and `issuer` fields.
    pub fn from_parts(
        schema: &str,
        code: &str,
        issuer: Option<&str>,
    ) -> Result<Self, InvalidAsset> {
        match issuer {
            Some(issuer) if !issuer.is_empty() => Self::parse(&format!("{schema}:{code}:{issuer}")),
            _ => Self::parse(&format!("{schema}:{code}")),
        }
    }

    /// An asset as the AP may write it in a transaction: the SEP-38 name,
    /// or the Stellar observer's `CODE:ISSUER` and `native`, which mean
    /// `stellar:CODE:ISSUER` and `stellar:native`. One spelling comes out,
    /// so two assets compare by equality.
    pub fn from_ap(s: &str) -> Result<Self, InvalidAsset> {
        match s.split(':').count() {
            1 if s == "native" => Self::parse("stellar:native"),
            2 if !s.starts_with("stellar:") && !s.starts_with("iso4217:") => {
                Self::parse(&format!("stellar:{s}"))
            }
            _ => Self::parse(s),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_stellar(&self) -> bool {
        self.0.starts_with("stellar:")
    }
}

impl fmt::Display for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl fmt::Debug for AssetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AssetId({})", self.0)
    }
}

/// What Mooring knows of one asset from the AP's assets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    pub id: AssetId,
    /// The scale the AP enforces on amounts and fees of this asset.
    pub significant_decimals: u32,
    /// SEP-12 customer types a SEP-31 sender may be, first one first (the AP
    /// checks the first). Empty in the AP 3.x+ format, which moved them out.
    pub sep31_sender_types: Vec<String>,
    /// SEP-12 customer types a SEP-31 receiver may be, first one first.
    pub sep31_receiver_types: Vec<String>,
}

/// The assets the Anchor Platform serves, keyed by SEP-38 name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetCatalog {
    assets: BTreeMap<AssetId, AssetInfo>,
}

impl AssetCatalog {
    pub fn new(assets: impl IntoIterator<Item = AssetInfo>) -> Self {
        Self {
            assets: assets.into_iter().map(|a| (a.id.clone(), a)).collect(),
        }
    }

    pub fn get(&self, id: &AssetId) -> Option<&AssetInfo> {
        self.assets.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &AssetInfo> {
        self.assets.values()
    }

    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    pub fn len(&self) -> usize {
        self.assets.len()
    }
}

/// The SEP-12 types the AP checks a SEP-31 payment's parties as, per asset:
/// the first sender and receiver types the assets file lists for the asset,
/// else the configured defaults. Never the type a PUT happened to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sep31Types {
    sender: String,
    receiver: String,
    by_asset: BTreeMap<AssetId, (Option<String>, Option<String>)>,
}

impl Sep31Types {
    /// The defaults, and the types `catalog` lists per asset.
    pub fn new(sender: String, receiver: String, catalog: &AssetCatalog) -> Self {
        let by_asset = catalog
            .iter()
            .map(|a| {
                (
                    a.id.clone(),
                    (
                        a.sep31_sender_types.first().cloned(),
                        a.sep31_receiver_types.first().cloned(),
                    ),
                )
            })
            .collect();
        Self {
            sender,
            receiver,
            by_asset,
        }
    }

    /// The (sender, receiver) types for a payment in `asset`.
    pub fn for_asset(&self, asset: Option<&AssetId>) -> (&str, &str) {
        let listed = asset.and_then(|id| self.by_asset.get(id));
        match listed {
            Some((sender, receiver)) => (
                sender.as_deref().unwrap_or(&self.sender),
                receiver.as_deref().unwrap_or(&self.receiver),
            ),
            None => (&self.sender, &self.receiver),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USDC: &str = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

    #[test]
    fn parses_sep38_names() {
        assert_eq!(AssetId::parse(USDC).map(|a| a.is_stellar()), Ok(true));
        assert!(AssetId::parse("stellar:native").is_ok());
        assert_eq!(
            AssetId::parse("iso4217:BRL").map(|a| a.is_stellar()),
            Ok(false)
        );
        for bad in [
            "",
            "USDC",
            "iso4217:brl",
            "iso4217:BRLL",
            "stellar:USDC",
            "stellar:USDC:GABC",
            "stellar:TOOLONGCODE13:x",
            "fiat:USD",
            "iso4217:BRL:x",
        ] {
            assert!(AssetId::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn the_aps_other_spellings_read_as_one() {
        let issuer = &USDC["stellar:USDC:".len()..];
        let usdc = AssetId::parse(USDC).expect("valid");
        assert_eq!(AssetId::from_ap(USDC), Ok(usdc.clone()));
        assert_eq!(AssetId::from_ap(&format!("USDC:{issuer}")), Ok(usdc));
        assert_eq!(
            AssetId::from_ap("native").map(|a| a.to_string()),
            Ok("stellar:native".to_owned())
        );
        assert_eq!(
            AssetId::from_ap("iso4217:BRL").map(|a| a.to_string()),
            Ok("iso4217:BRL".to_owned())
        );
        assert!(AssetId::from_ap("").is_err());
        assert!(AssetId::from_ap("BRL").is_err());
        assert!(AssetId::from_ap("iso4217:brl").is_err());
        assert!(AssetId::from_ap("USDC:not-an-issuer").is_err());
    }

    #[test]
    fn builds_from_ap_2x_parts() {
        assert_eq!(
            AssetId::from_parts(
                "stellar",
                "USDC",
                Some("GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5")
            )
            .map(|a| a.to_string()),
            Ok(USDC.to_owned())
        );
        assert_eq!(
            AssetId::from_parts("iso4217", "BRL", None).map(|a| a.to_string()),
            Ok("iso4217:BRL".to_owned())
        );
        assert_eq!(
            AssetId::from_parts("iso4217", "BRL", Some("")).map(|a| a.to_string()),
            Ok("iso4217:BRL".to_owned())
        );
    }

    #[test]
    fn catalog_lookup() {
        let info = |id: &str, decimals| AssetInfo {
            id: AssetId::parse(id).expect("valid"),
            significant_decimals: decimals,
            sep31_sender_types: vec![],
            sep31_receiver_types: vec![],
        };
        // A later entry for the same asset replaces the earlier one.
        let catalog = AssetCatalog::new([info(USDC, 7), info("iso4217:BRL", 2), info(USDC, 2)]);
        assert_eq!(catalog.len(), 2);
        // Found by any spelling the AP writes (`CODE:ISSUER` from the
        // Stellar observer), with the decimals of the entry that won.
        let observed = AssetId::from_ap(USDC.trim_start_matches("stellar:")).expect("valid");
        assert_eq!(
            catalog.get(&observed).map(|a| a.significant_decimals),
            Some(2)
        );
        // Not found: another asset, or another issuer of the same code.
        let other_issuer =
            AssetId::parse("stellar:USDC:GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47")
                .expect("valid");
        assert!(catalog.get(&other_issuer).is_none());
        assert!(
            catalog
                .get(&AssetId::parse("iso4217:USD").expect("valid"))
                .is_none()
        );
    }

    #[test]
    fn sep31_types_come_from_the_assets_file_else_the_defaults() {
        let id = AssetId::parse(USDC).expect("valid");
        let catalog = AssetCatalog::new([AssetInfo {
            id: id.clone(),
            significant_decimals: 2,
            sep31_sender_types: vec!["sep31-large-sender".into(), "sep31-sender".into()],
            sep31_receiver_types: vec![],
        }]);
        let types = Sep31Types::new("s".into(), "r".into(), &catalog);
        let brl = AssetId::parse("iso4217:BRL").expect("valid");
        assert_eq!(types.for_asset(Some(&id)), ("sep31-large-sender", "r"));
        assert_eq!(types.for_asset(Some(&brl)), ("s", "r"));
        assert_eq!(types.for_asset(None), ("s", "r"));
    }
}
