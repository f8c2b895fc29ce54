//! The SEP-9 catalogue: every standard KYC field Mooring stores, its wire
//! type, a description, and the format its values must have.

/// The wire type of a field, as SEP-12 names it in `fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Binary,
    Number,
    Date,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Binary => "binary",
            Self::Number => "number",
            Self::Date => "date",
        }
    }
}

/// The rule a value must follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Free text: not blank, at most [`MAX_TEXT_LEN`] characters, no control
    /// characters other than line breaks and tabs.
    Text,
    /// An RFC 5322 style address `local@domain.tld`.
    Email,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An ISO 3166-1 alpha-3 country code.
    CountryCode,
    /// An ISO 639-1 language code.
    LanguageCode,
    /// A phone number in E.164 form: an optional `+` and 7 to 15 digits.
    Phone,
    /// A non-negative whole number written in digits.
    Digits,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// One of a fixed set of values (which a customer type may override).
    Choice(&'static [&'static str]),
    /// A non-empty file.
    File,
}

/// One SEP-9 field.
#[derive(Debug, PartialEq, Eq)]
pub struct Sep9Field {
    pub name: &'static str,
    pub kind: FieldKind,
    pub description: &'static str,
    pub format: Format,
}

/// The longest text value accepted, in characters.
pub const MAX_TEXT_LEN: usize = 1024;

macro_rules! fields {
    ($( $name:literal, $kind:ident, $format:expr, $description:literal; )*) => {
        /// Every field of the catalogue, in SEP-9 order.
        pub static FIELDS: &[Sep9Field] = &[
            $( Sep9Field { name: $name, kind: FieldKind::$kind, format: $format, description: $description }, )*
        ];
    };
}

fields! {
    // natural person
    "last_name", String, Format::Text, "Family or last name";
    "first_name", String, Format::Text, "Given or first name";
    "additional_name", String, Format::Text, "Middle name or other additional name";
    "address_country_code", String, Format::CountryCode, "Country code for current address (ISO 3166-1 alpha-3)";
    "state_or_province", String, Format::Text, "Name of state/province/region/prefecture";
    "city", String, Format::Text, "Name of city/town";
    "postal_code", String, Format::Text, "Postal or other code identifying the customer's locale";
    "address", String, Format::Text, "Entire address (country, state, postal code, street address, etc.) as a multi-line string";
    "mobile_number", String, Format::Phone, "Mobile phone number with country code, in E.164 format";
    "email_address", String, Format::Email, "Email address";
    "birth_date", Date, Format::Date, "Date of birth, e.g. 1976-07-04";
    "birth_place", String, Format::Text, "Place of birth (city, state, country)";
    "birth_country_code", String, Format::CountryCode, "ISO 3166-1 alpha-3 code of the country of birth";
    "tax_id", String, Format::Text, "Tax identifier of the customer in their country (social security number in the US)";
    "tax_id_name", String, Format::Text, "Name of the tax ID (SSN or ITIN in the US)";
    "occupation", Number, Format::Digits, "Occupation ISCO code";
    "employer_name", String, Format::Text, "Name of employer";
    "employer_address", String, Format::Text, "Address of employer";
    "language_code", String, Format::LanguageCode, "Primary language (ISO 639-1)";
    "id_type", String, Format::Text, "Type of identity document: passport, drivers_license, id_card, etc.";
    "id_country_code", String, Format::CountryCode, "Country issuing the identity document (ISO 3166-1 alpha-3)";
    "id_issue_date", Date, Format::Date, "Date the identity document was issued";
    "id_expiration_date", Date, Format::Date, "Date the identity document expires";
    "id_number", String, Format::Text, "Passport or identity document number";
    "ip_address", String, Format::IpAddress, "IP address of the customer's computer";
    "sex", String, Format::Choice(&["male", "female", "other"]), "Sex: male, female or other";
    "referral_id", String, Format::Text, "User's origin (such as an id in another application) or a referral code";
    "mobile_number_verification", String, Format::Text, "Verification code sent to the mobile number";
    "email_address_verification", String, Format::Text, "Verification code sent to the email address";
    // financial account
    "bank_name", String, Format::Text, "Name of the bank";
    "bank_account_type", String, Format::Text, "Type of bank account";
    "bank_account_number", String, Format::Text, "Number identifying the bank account";
    "bank_number", String, Format::Text, "Number identifying the bank in a national banking system (routing number in the US)";
    "bank_phone_number", String, Format::Phone, "Phone number with country code for the bank";
    "bank_branch_number", String, Format::Text, "Number identifying the bank branch";
    "external_transfer_memo", String, Format::Text, "A memo to attach to a transfer to the bank account";
    "clabe_number", String, Format::Digits, "Bank account number for Mexico (CLABE)";
    "cbu_number", String, Format::Digits, "Bank account number for Argentina (CBU or CVU)";
    "cbu_alias", String, Format::Text, "Alias for a CBU or CVU";
    "mobile_money_number", String, Format::Phone, "Mobile phone number in E.164 format tied to a mobile money account";
    "mobile_money_provider", String, Format::Text, "Name of the mobile money service provider";
    "crypto_address", String, Format::Text, "Address of a cryptocurrency account";
    "crypto_memo", String, Format::Text, "A destination tag or memo for the crypto address";
    // documents
    "photo_id_front", Binary, Format::File, "Image of the front of the identity document";
    "photo_id_back", Binary, Format::File, "Image of the back of the identity document";
    "notary_approval_of_photo_id", Binary, Format::File, "Image of a notary's approval of the identity document";
    "photo_proof_residence", Binary, Format::File, "Image of a utility bill or bank statement with the customer's name and address";
    "photo_proof_of_income", Binary, Format::File, "Image of a proof of income";
    "proof_of_liveness", Binary, Format::File, "Video or image file of the customer as a liveness proof";
}

/// Looks up a field by its SEP-9 name.
pub fn lookup(name: &str) -> Option<&'static Sep9Field> {
    FIELDS.iter().find(|f| f.name == name)
}

/// Whether the field carries a file (sent by the AP as multipart/form-data).
pub fn is_binary(name: &str) -> bool {
    lookup(name).is_some_and(|f| f.kind == FieldKind::Binary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut names: Vec<_> = FIELDS.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIELDS.len());
    }

    #[test]
    fn the_six_binary_fields_of_the_ap() {
        let binary: Vec<_> = FIELDS
            .iter()
            .filter(|f| f.kind == FieldKind::Binary)
            .map(|f| f.name)
            .collect();
        assert_eq!(
            binary,
            [
                "photo_id_front",
                "photo_id_back",
                "notary_approval_of_photo_id",
                "photo_proof_residence",
                "photo_proof_of_income",
                "proof_of_liveness"
            ]
        );
        assert!(is_binary("proof_of_liveness"));
        assert!(!is_binary("first_name"));
        assert!(!is_binary("no_such_field"));
    }
}
