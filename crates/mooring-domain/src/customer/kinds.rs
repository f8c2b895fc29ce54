//! Customer types (SEP-12 `type`) and the SEP-9 fields each one asks for.

use std::collections::BTreeMap;

use super::sep9::{self, Sep9Field};

/// The type SEP-31 senders are checked as, unless configured otherwise.
pub const DEFAULT_SENDER_TYPE: &str = "sep31-sender";
/// The type SEP-31 receivers are checked as, unless configured otherwise.
pub const DEFAULT_RECEIVER_TYPE: &str = "sep31-receiver";
/// What a sender must provide by default.
pub const DEFAULT_SENDER_FIELDS: &[&str] = &["first_name", "last_name", "email_address"];
/// What a receiver must provide by default: a sender's fields and a bank account.
pub const DEFAULT_RECEIVER_FIELDS: &[&str] = &[
    "first_name",
    "last_name",
    "email_address",
    "bank_account_number",
    "bank_account_type",
    "bank_number",
];

/// The part a type plays in a SEP-31 payment; it decides the default fields
/// of a type that the AP's assets file names but Mooring's config does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeRole {
    Sender,
    Receiver,
}

/// What a customer type asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTypeSpec {
    name: String,
    required: Vec<&'static Sep9Field>,
    optional: Vec<&'static Sep9Field>,
    choices: BTreeMap<&'static str, Vec<String>>,
}

/// A customer type configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TypeConfigError {
    #[error("customer type {customer_type:?}: {field:?} is not a SEP-9 field")]
    UnknownField {
        customer_type: String,
        field: String,
    },
    #[error("customer type {customer_type:?}: {field:?} is listed twice")]
    DuplicateField {
        customer_type: String,
        field: String,
    },
    #[error("customer type {customer_type:?}: choices for {field:?} must not be empty")]
    EmptyChoices {
        customer_type: String,
        field: String,
    },
    #[error("customer type name must not be empty")]
    EmptyName,
    #[error("default customer type {0:?} is not a configured type")]
    UnknownDefault(String),
}

impl CustomerTypeSpec {
    pub fn new(
        name: &str,
        required: &[impl AsRef<str>],
        optional: &[impl AsRef<str>],
        choices: &BTreeMap<String, Vec<String>>,
    ) -> Result<Self, TypeConfigError> {
        if name.trim().is_empty() {
            return Err(TypeConfigError::EmptyName);
        }
        let field = |f: &str| {
            sep9::lookup(f).ok_or_else(|| TypeConfigError::UnknownField {
                customer_type: name.to_owned(),
                field: f.to_owned(),
            })
        };
        let required = required
            .iter()
            .map(|f| field(f.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let optional = optional
            .iter()
            .map(|f| field(f.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::BTreeSet::new();
        for f in required.iter().chain(&optional) {
            if !seen.insert(f.name) {
                return Err(TypeConfigError::DuplicateField {
                    customer_type: name.to_owned(),
                    field: f.name.to_owned(),
                });
            }
        }
        let choices = choices
            .iter()
            .map(|(f, options)| {
                let field = field(f)?;
                if options.is_empty() {
                    return Err(TypeConfigError::EmptyChoices {
                        customer_type: name.to_owned(),
                        field: f.clone(),
                    });
                }
                Ok((field.name, options.clone()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            required,
            optional,
            choices,
        })
    }

    /// The built-in spec of a type in the given role.
    pub fn default_for(name: &str, role: TypeRole) -> Result<Self, TypeConfigError> {
        let mut choices = BTreeMap::new();
        let required = match role {
            TypeRole::Sender => DEFAULT_SENDER_FIELDS,
            TypeRole::Receiver => {
                choices.insert(
                    "bank_account_type".to_owned(),
                    vec!["checking".to_owned(), "savings".to_owned()],
                );
                DEFAULT_RECEIVER_FIELDS
            }
        };
        Self::new(name, required, &[] as &[&str], &choices)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn required(&self) -> &[&'static Sep9Field] {
        &self.required
    }

    pub fn optional(&self) -> &[&'static Sep9Field] {
        &self.optional
    }

    pub fn is_required(&self, field: &str) -> bool {
        self.required.iter().any(|f| f.name == field)
    }

    /// The allowed values of a field for this type: the type's own choices,
    /// else the catalogue's, else none.
    pub fn choices(&self, field: &Sep9Field) -> Option<Vec<String>> {
        if let Some(c) = self.choices.get(field.name) {
            return Some(c.clone());
        }
        match field.format {
            sep9::Format::Choice(options) => {
                Some(options.iter().map(|s| (*s).to_owned()).collect())
            }
            _ => None,
        }
    }

    /// The type's own override of a field's choices.
    pub fn choice_override(&self, field: &str) -> Option<&[String]> {
        self.choices.get(field).map(Vec::as_slice)
    }
}

/// Every customer type Mooring answers for, plus the type a customer is
/// assessed as when neither the request nor the customer names one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTypes {
    types: BTreeMap<String, CustomerTypeSpec>,
    default_type: String,
}

impl CustomerTypes {
    pub fn new(
        types: impl IntoIterator<Item = CustomerTypeSpec>,
        default_type: &str,
    ) -> Result<Self, TypeConfigError> {
        let types: BTreeMap<_, _> = types.into_iter().map(|t| (t.name.clone(), t)).collect();
        if !types.contains_key(default_type) {
            return Err(TypeConfigError::UnknownDefault(default_type.to_owned()));
        }
        Ok(Self {
            types,
            default_type: default_type.to_owned(),
        })
    }

    /// The two SEP-31 types with their default fields.
    pub fn builtin() -> Self {
        let specs = [
            CustomerTypeSpec::default_for(DEFAULT_SENDER_TYPE, TypeRole::Sender),
            CustomerTypeSpec::default_for(DEFAULT_RECEIVER_TYPE, TypeRole::Receiver),
        ];
        let specs = specs
            .into_iter()
            .map(|s| s.expect("the built-in types use catalogue fields"));
        Self::new(specs, DEFAULT_SENDER_TYPE).expect("the built-in default type is built in")
    }

    pub fn get(&self, name: &str) -> Option<&CustomerTypeSpec> {
        self.types.get(name)
    }

    pub fn default_type(&self) -> &CustomerTypeSpec {
        &self.types[&self.default_type]
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.types.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_match_the_defaults() {
        let types = CustomerTypes::builtin();
        let sender = types.get("sep31-sender").expect("sender");
        assert_eq!(
            sender.required().iter().map(|f| f.name).collect::<Vec<_>>(),
            DEFAULT_SENDER_FIELDS
        );
        let receiver = types.get("sep31-receiver").expect("receiver");
        assert_eq!(
            receiver
                .required()
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>(),
            DEFAULT_RECEIVER_FIELDS
        );
        let account_type = sep9::lookup("bank_account_type").expect("known");
        assert_eq!(
            receiver.choices(account_type),
            Some(vec!["checking".to_owned(), "savings".to_owned()])
        );
        assert_eq!(sender.choices(account_type), None);
        assert_eq!(types.default_type().name(), "sep31-sender");
    }

    #[test]
    fn refuses_unknown_duplicate_and_empty() {
        let none = BTreeMap::new();
        assert_eq!(
            CustomerTypeSpec::new("t", &["first_nam"], &[] as &[&str], &none),
            Err(TypeConfigError::UnknownField {
                customer_type: "t".into(),
                field: "first_nam".into()
            })
        );
        assert_eq!(
            CustomerTypeSpec::new("t", &["first_name"], &["first_name"], &none),
            Err(TypeConfigError::DuplicateField {
                customer_type: "t".into(),
                field: "first_name".into()
            })
        );
        let empty = BTreeMap::from([("sex".to_owned(), vec![])]);
        assert!(matches!(
            CustomerTypeSpec::new("t", &["sex"], &[] as &[&str], &empty),
            Err(TypeConfigError::EmptyChoices { .. })
        ));
        assert_eq!(
            CustomerTypeSpec::new(" ", &["sex"], &[] as &[&str], &none),
            Err(TypeConfigError::EmptyName)
        );
        let spec = CustomerTypeSpec::new("t", &["sex"], &[] as &[&str], &none).expect("valid");
        assert_eq!(
            CustomerTypes::new([spec], "other"),
            Err(TypeConfigError::UnknownDefault("other".into()))
        );
    }
}
