//! Data minimisation: which of the receiver's SEP-9 fields go to the payout
//! provider (`payout.http.fields`), per delivery method. A frozen order
//! holds only these, so the rest is neither sent nor copied into the
//! ledger. By default: the receiver's names and bank fields; never an
//! identity document, a tax id, birth data or an IP address unless an
//! operator lists it.

use std::collections::{BTreeMap, BTreeSet};

use crate::customer::sep9::{self, FieldKind};

/// The fields sent when a delivery method has no list of its own and none
/// is configured: names and bank account details.
pub const DEFAULT_PROVIDER_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "additional_name",
    "bank_name",
    "bank_account_type",
    "bank_account_number",
    "bank_number",
    "bank_branch_number",
    "bank_phone_number",
    "clabe_number",
    "cbu_number",
    "cbu_alias",
];

/// The fields the provider gets, per delivery method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFields {
    default: BTreeSet<String>,
    by_method: BTreeMap<String, BTreeSet<String>>,
}

impl Default for ProviderFields {
    fn default() -> Self {
        Self {
            default: DEFAULT_PROVIDER_FIELDS
                .iter()
                .map(|f| (*f).to_owned())
                .collect(),
            by_method: BTreeMap::new(),
        }
    }
}

/// A list of SEP-9 text fields, or why not (a file is never sent).
fn field_set(list: &[String], setting: &str) -> Result<BTreeSet<String>, String> {
    list.iter()
        .map(|name| match sep9::lookup(name) {
            Some(f) if f.kind != FieldKind::Binary => Ok(name.clone()),
            Some(_) => Err(format!(
                "{setting}: {name:?} is a file; files are never sent to the provider"
            )),
            None => Err(format!("{setting}: {name:?} is not a SEP-9 field")),
        })
        .collect()
}

impl ProviderFields {
    /// `default` (`None`: [`DEFAULT_PROVIDER_FIELDS`]) for every method not
    /// in `by_method`. Each name must be a SEP-9 text field.
    pub fn new(
        default: Option<&[String]>,
        by_method: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, String> {
        let default = match default {
            Some(list) => field_set(list, "payout.http.fields.default")?,
            None => Self::default().default,
        };
        let mut lists = BTreeMap::new();
        for (method, list) in by_method {
            let set = field_set(list, &format!("payout.http.fields.{method}"))?;
            if lists.insert(method.to_lowercase(), set).is_some() {
                return Err(format!(
                    "payout.http.fields.{method}: delivery methods compare without case, and another key names the same one"
                ));
            }
        }
        Ok(Self {
            default,
            by_method: lists,
        })
    }

    /// The fields sent for a delivery method (`None`: the order has none).
    /// Methods compare without case (the environment lowercases keys).
    pub fn for_method(&self, method: Option<&str>) -> &BTreeSet<String> {
        method
            .and_then(|m| self.by_method.get(&m.to_lowercase()))
            .unwrap_or(&self.default)
    }

    /// `fields` less every one the provider is not to get.
    pub fn keep(
        &self,
        method: Option<&str>,
        fields: Vec<(String, String)>,
    ) -> Vec<(String, String)> {
        let allowed = self.for_method(method);
        fields
            .into_iter()
            .filter(|(name, _)| allowed.contains(name))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn names() -> impl Strategy<Value = String> {
        prop::sample::select(
            sep9::FIELDS
                .iter()
                .map(|f| f.name.to_owned())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn by_default_no_identity_tax_birth_or_ip_field_is_sent() {
        let fields = ProviderFields::default();
        for never in [
            "id_number",
            "id_type",
            "tax_id",
            "birth_date",
            "birth_place",
            "birth_country_code",
            "ip_address",
            "email_address",
            "mobile_number",
            "address",
        ] {
            assert!(!fields.for_method(None).contains(never), "{never}");
            assert!(!fields.for_method(Some("SWIFT")).contains(never), "{never}");
        }
        assert!(fields.for_method(None).contains("bank_account_number"));
        assert!(fields.for_method(None).contains("last_name"));
    }

    #[test]
    fn a_method_gets_its_own_list_and_the_rest_the_default() {
        let by_method = BTreeMap::from([(
            "MOBILE".to_owned(),
            vec!["first_name".to_owned(), "mobile_money_number".to_owned()],
        )]);
        let fields =
            ProviderFields::new(Some(&["last_name".to_owned()]), &by_method).expect("valid");
        let sent = fields.keep(
            Some("Mobile"),
            vec![
                ("first_name".into(), "Maria".into()),
                ("last_name".into(), "Silva".into()),
                ("mobile_money_number".into(), "+5511".into()),
            ],
        );
        assert_eq!(
            sent,
            [
                ("first_name".to_owned(), "Maria".to_owned()),
                ("mobile_money_number".to_owned(), "+5511".to_owned())
            ]
        );
        let sent = fields.keep(
            Some("SEPA"),
            vec![
                ("first_name".into(), "Maria".into()),
                ("last_name".into(), "Silva".into()),
            ],
        );
        assert_eq!(sent, [("last_name".to_owned(), "Silva".to_owned())]);
    }

    #[test]
    fn unknown_names_and_files_are_refused_naming_the_setting() {
        let e = ProviderFields::new(Some(&["bank_acount".to_owned()]), &BTreeMap::new())
            .expect_err("a typo");
        assert!(
            e.contains("payout.http.fields.default") && e.contains("bank_acount"),
            "{e}"
        );
        let by_method = BTreeMap::from([("X".to_owned(), vec!["photo_id_front".to_owned()])]);
        let e = ProviderFields::new(None, &by_method).expect_err("a file");
        assert!(
            e.contains("payout.http.fields.X") && e.contains("file"),
            "{e}"
        );
    }

    proptest! {
        /// For every configuration and every receiver: exactly the allowed
        /// fields the receiver has are kept, in their order, values intact.
        #[test]
        fn exactly_the_allowed_fields_are_kept(
            allowed in prop::collection::vec(names(), 0..12),
            method in prop::option::of(prop::sample::select(vec!["A", "B"])),
            given in prop::collection::vec((names(), "[a-z0-9]{0,8}"), 0..20),
        ) {
            let text: Vec<String> = allowed
                .into_iter()
                .filter(|n| sep9::lookup(n).is_some_and(|f| f.kind != FieldKind::Binary))
                .collect();
            let by_method = BTreeMap::from([("A".to_owned(), text.clone())]);
            let fields = ProviderFields::new(None, &by_method).expect("valid");
            let kept = fields.keep(method, given.clone());
            let set = fields.for_method(method);
            let expected: Vec<(String, String)> =
                given.into_iter().filter(|(n, _)| set.contains(n)).collect();
            prop_assert_eq!(&kept, &expected);
            if method == Some("A") {
                prop_assert!(kept.iter().all(|(n, _)| text.contains(n)));
            } else {
                prop_assert!(kept.iter().all(|(n, _)| DEFAULT_PROVIDER_FIELDS.contains(&n.as_str())));
            }
        }
    }
}
