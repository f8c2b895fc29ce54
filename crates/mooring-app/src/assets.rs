//! The Anchor Platform's assets file (`ASSETS_TYPE`/`ASSETS_VALUE`), read so
//! that Mooring's customer types and asset decimals match the platform's.
//! Both the 2.x `assets:` and the 3.x+ `items:` formats are understood.

use std::fmt;

use config::{Config, File, FileFormat};
use mooring_domain::customer::TypeRole;
use mooring_domain::{AssetCatalog, AssetId, AssetInfo};
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};

use crate::settings::{AssetsSettings, SettingsError};

/// The parsed assets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetsFile {
    pub catalog: AssetCatalog,
}

impl AssetsFile {
    /// SEP-12 types named for SEP-31 senders and receivers, in file order
    /// (the AP checks the first of each), without repeats.
    pub fn sep12_types(&self) -> Vec<(String, TypeRole)> {
        let mut out: Vec<(String, TypeRole)> = Vec::new();
        for asset in self.catalog.iter() {
            let senders = asset
                .sep31_sender_types
                .iter()
                .map(|t| (t, TypeRole::Sender));
            let receivers = asset
                .sep31_receiver_types
                .iter()
                .map(|t| (t, TypeRole::Receiver));
            for (name, role) in senders.chain(receivers) {
                if !out.iter().any(|(n, _)| n == name) {
                    out.push((name.clone(), role));
                }
            }
        }
        out
    }
}

#[derive(Deserialize)]
struct Document {
    assets: Option<Vec<AssetV2>>,
    items: Option<Vec<AssetV3>>,
}

#[derive(Deserialize)]
struct AssetV2 {
    schema: String,
    code: String,
    issuer: Option<String>,
    significant_decimals: Option<u32>,
    sep31: Option<Sep31V2>,
}

#[derive(Deserialize)]
struct Sep31V2 {
    sep12: Option<Sep12V2>,
}

#[derive(Deserialize)]
struct Sep12V2 {
    sender: Option<TypesV2>,
    receiver: Option<TypesV2>,
}

#[derive(Deserialize)]
struct TypesV2 {
    types: Option<OrderedKeys>,
}

#[derive(Deserialize)]
struct AssetV3 {
    id: String,
    significant_decimals: Option<u32>,
}

/// The keys of a map, in document order.
struct OrderedKeys(Vec<String>);

impl<'de> Deserialize<'de> for OrderedKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = OrderedKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of customer types")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OrderedKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(OrderedKeys(keys))
            }
        }
        d.deserialize_map(Keys)
    }
}

/// The AP's default scale when an asset does not state one.
fn default_decimals(id: &AssetId) -> u32 {
    if id.is_stellar() { 7 } else { 2 }
}

/// Reads the assets the settings point at; `None` when none are configured.
pub fn load(settings: &AssetsSettings) -> Result<Option<AssetsFile>, SettingsError> {
    let err = |m: String| SettingsError(format!("assets (ASSETS_TYPE/ASSETS_VALUE): {m}"));
    let Some(kind) = settings.kind.as_deref().filter(|k| !k.is_empty()) else {
        return Ok(None);
    };
    let value = settings
        .value
        .as_deref()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| err("assets.value is required".into()))?;
    let (content, format) = match kind.to_ascii_lowercase().as_str() {
        "file" => {
            let content = std::fs::read_to_string(value)
                .map_err(|e| err(format!("cannot read {value:?}: {e}")))?;
            let format = if value.ends_with(".json") {
                FileFormat::Json
            } else {
                FileFormat::Yaml
            };
            (content, format)
        }
        "json" => (value.to_owned(), FileFormat::Json),
        "yaml" => (value.to_owned(), FileFormat::Yaml),
        other => {
            return Err(err(format!(
                "type {other:?} is not supported; use file, json or yaml"
            )));
        }
    };
    parse(&content, format).map(Some).map_err(err)
}

fn parse(content: &str, format: FileFormat) -> Result<AssetsFile, String> {
    let document: Document = Config::builder()
        .add_source(File::from_str(content, format))
        .build()
        .and_then(Config::try_deserialize)
        .map_err(|e| e.to_string())?;
    let mut assets = Vec::new();
    for a in document.assets.unwrap_or_default() {
        let id = AssetId::from_parts(&a.schema, &a.code, a.issuer.as_deref())
            .map_err(|e| e.to_string())?;
        let sep12 = a.sep31.and_then(|s| s.sep12);
        let types = |t: Option<TypesV2>| t.and_then(|t| t.types).map(|k| k.0).unwrap_or_default();
        let (sender, receiver) = match sep12 {
            Some(s) => (types(s.sender), types(s.receiver)),
            None => (vec![], vec![]),
        };
        assets.push(AssetInfo {
            significant_decimals: a
                .significant_decimals
                .unwrap_or_else(|| default_decimals(&id)),
            id,
            sep31_sender_types: sender,
            sep31_receiver_types: receiver,
        });
    }
    for a in document.items.unwrap_or_default() {
        let id = AssetId::parse(&a.id).map_err(|e| e.to_string())?;
        assets.push(AssetInfo {
            significant_decimals: a
                .significant_decimals
                .unwrap_or_else(|| default_decimals(&id)),
            id,
            sep31_sender_types: vec![],
            sep31_receiver_types: vec![],
        });
    }
    if assets.is_empty() {
        return Err("the document has neither an assets: nor an items: list".into());
    }
    Ok(AssetsFile {
        catalog: AssetCatalog::new(assets),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2: &str = include_str!("../fixtures/ap-v2.1.0_4c793164dc_service-runner-assets.yaml");
    const V4: &str = include_str!("../fixtures/ap-v4.3.0_e3b99d8906_service-runner-assets.yaml");

    #[test]
    fn reads_the_ap_2x_example_assets() {
        let file = parse(V2, FileFormat::Yaml).expect("parsed");
        let usdc =
            AssetId::parse("stellar:USDC:GDQOE23CFSUMSVQK4Y5JHPPYK73VYCNHZHA7ENKCV37P6SUEO6XQBKPP")
                .expect("valid");
        let info = file.catalog.get(&usdc).expect("USDC present");
        assert_eq!(info.significant_decimals, 2);
        assert_eq!(
            info.sep31_sender_types.first().map(String::as_str),
            Some("sep31-sender")
        );
        let types = file.sep12_types();
        assert!(types.contains(&("sep31-sender".to_owned(), TypeRole::Sender)));
        assert!(types.contains(&("sep31-receiver".to_owned(), TypeRole::Receiver)));
    }

    #[test]
    fn reads_the_ap_4x_items_format() {
        let file = parse(V4, FileFormat::Yaml).expect("parsed");
        assert!(!file.catalog.is_empty());
        assert!(
            file.catalog
                .iter()
                .any(|a| a.id.as_str().starts_with("stellar:USDC:"))
        );
        assert!(file.sep12_types().is_empty());
    }

    #[test]
    fn keeps_type_order_and_reads_json() {
        let json = r#"{"assets":[{"schema":"stellar","code":"USDC","issuer":"GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5",
            "significant_decimals":2,"sep31":{"sep12":{"sender":{"types":{"zeta-sender":{},"alpha-sender":{}}},
            "receiver":{"types":{"sep31-receiver":{}}}}}}]}"#;
        let file = parse(json, FileFormat::Json).expect("parsed");
        let names: Vec<_> = file.sep12_types().into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["zeta-sender", "alpha-sender", "sep31-receiver"]);
    }

    #[test]
    fn refuses_unusable_documents() {
        assert!(parse("foo: 1", FileFormat::Yaml).is_err());
        assert!(
            parse(
                "assets: [{schema: stellar, code: USDC, issuer: GBAD}]",
                FileFormat::Yaml
            )
            .is_err()
        );
        let unsupported = AssetsSettings {
            kind: Some("url".into()),
            value: Some("http://x".into()),
            ..Default::default()
        };
        assert!(load(&unsupported).is_err());
        let missing = AssetsSettings {
            kind: Some("file".into()),
            value: Some("/nonexistent/assets.yaml".into()),
            ..Default::default()
        };
        assert!(
            load(&missing)
                .expect_err("refused")
                .to_string()
                .contains("ASSETS_VALUE")
        );
    }
}
