//! The AP's transaction object (AP §3.4 of `anchor-platform-api.md`).

use std::str::FromStr;

use chrono::{DateTime, Utc};
use mooring_domain::AssetId;
use mooring_domain::transaction::{Amount, Transaction, TransactionId, TransactionStatus};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::de::{object, objects, text};

/// A transaction as the AP writes it: the fields Mooring reads.
#[derive(Debug, Default, Deserialize)]
pub struct TransactionDto {
    #[serde(default, deserialize_with = "text")]
    pub id: Option<String>,
    /// `31` for SEP-31 (a string or a number, depending on the AP).
    #[serde(default, deserialize_with = "text")]
    pub sep: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub amount_expected: Option<AmountDto>,
    #[serde(default, deserialize_with = "object")]
    pub amount_in: Option<AmountDto>,
    #[serde(default, deserialize_with = "object")]
    pub amount_out: Option<AmountDto>,
    /// AP 2.x before 2.7 (and later, beside `fee_details`).
    #[serde(default, deserialize_with = "object")]
    pub amount_fee: Option<AmountDto>,
    /// AP 2.7+.
    #[serde(default, deserialize_with = "object")]
    pub fee_details: Option<FeeDetailsDto>,
    #[serde(default, deserialize_with = "text")]
    pub quote_id: Option<String>,
    #[serde(default, deserialize_with = "object")]
    pub customers: Option<CustomersDto>,
    #[serde(default, deserialize_with = "text")]
    pub started_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub updated_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub transfer_received_at: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub completed_at: Option<String>,
    #[serde(default, deserialize_with = "objects")]
    pub stellar_transactions: Vec<IdDto>,
    #[serde(default, deserialize_with = "text")]
    pub external_transaction_id: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub message: Option<String>,
    /// AP 2.x's name of the message of `pending_customer_info_update`.
    #[serde(default, deserialize_with = "text")]
    pub required_info_message: Option<String>,
}

/// `{"amount": "…", "asset": "…"}`.
#[derive(Debug, Default, Deserialize)]
pub struct AmountDto {
    #[serde(default, deserialize_with = "text")]
    pub amount: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub asset: Option<String>,
}

/// `fee_details`: the total, its asset and (unread) its parts.
#[derive(Debug, Default, Deserialize)]
pub struct FeeDetailsDto {
    #[serde(default, deserialize_with = "text")]
    pub total: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub asset: Option<String>,
}

/// `customers`: the SEP-12 ids of the sender and the receiver.
#[derive(Debug, Default, Deserialize)]
pub struct CustomersDto {
    #[serde(default, deserialize_with = "object")]
    pub sender: Option<IdDto>,
    #[serde(default, deserialize_with = "object")]
    pub receiver: Option<IdDto>,
}

/// An object of which only the `id` is read.
#[derive(Debug, Default, Deserialize)]
pub struct IdDto {
    #[serde(default, deserialize_with = "text")]
    pub id: Option<String>,
}

/// Why an AP transaction cannot be read at all: it has no valid `id`, or
/// no `status`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the platform's transaction has no valid {0}")]
pub struct InvalidTransaction(pub &'static str);

fn time(s: Option<&str>) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn amount(value: Option<&str>, asset: Option<&str>) -> Option<Amount> {
    Some(Amount::new(
        Decimal::from_str(value?).ok()?,
        AssetId::from_ap(asset?).ok()?,
    ))
}

impl AmountDto {
    fn read(&self) -> Option<Amount> {
        amount(self.amount.as_deref(), self.asset.as_deref())
    }
}

impl TransactionDto {
    /// Reads a transaction from the AP's JSON.
    pub fn from_value(value: &serde_json::Value) -> Result<Transaction, InvalidTransaction> {
        if !value.is_object() {
            return Err(InvalidTransaction("object"));
        }
        Self::deserialize(value)
            .map_err(|_| InvalidTransaction("object"))?
            .into_transaction()
    }

    /// The transaction id, when it is one.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        TransactionId::parse(self.id.as_deref()?).ok()
    }

    /// The domain's transaction. A fee written with no asset is in the
    /// asset received.
    pub fn into_transaction(self) -> Result<Transaction, InvalidTransaction> {
        let id = self.transaction_id().ok_or(InvalidTransaction("id"))?;
        let status = self
            .status
            .as_deref()
            .map(TransactionStatus::parse)
            .ok_or(InvalidTransaction("status"))?;
        let mut unreadable = vec![];
        let mut read = |name: &'static str, dto: &Option<AmountDto>| {
            let dto = dto.as_ref()?;
            let amount = dto.read();
            if amount.is_none() && dto.amount.is_some() {
                unreadable.push(name);
            }
            amount
        };
        let amount_in = read("amount_in", &self.amount_in);
        let amount_expected = read("amount_expected", &self.amount_expected);
        let amount_out = read("amount_out", &self.amount_out);
        let received_asset = amount_in.as_ref().map(|a| a.asset.as_str().to_owned());
        let fee_in = |total: Option<&str>, asset: Option<&str>| {
            amount(total, asset.or(received_asset.as_deref()))
        };
        let fee = self
            .fee_details
            .as_ref()
            .and_then(|f| fee_in(f.total.as_deref(), f.asset.as_deref()))
            .or_else(|| {
                let f = self.amount_fee.as_ref()?;
                fee_in(f.amount.as_deref(), f.asset.as_deref())
            });
        let fee_written = self.fee_details.as_ref().is_some_and(|f| f.total.is_some())
            || self.amount_fee.as_ref().is_some_and(|f| f.amount.is_some());
        if fee.is_none() && fee_written {
            unreadable.push("fee");
        }
        let customer = |c: Option<&IdDto>| c.and_then(|c| c.id.clone());
        let customers = self.customers.unwrap_or_default();
        Ok(Transaction {
            id,
            sep: self.sep.unwrap_or_default(),
            kind: self.kind,
            status,
            amount_expected,
            amount_in,
            amount_out,
            fee,
            quote_id: self.quote_id,
            sender_id: customer(customers.sender.as_ref()),
            receiver_id: customer(customers.receiver.as_ref()),
            started_at: time(self.started_at.as_deref()),
            updated_at: time(self.updated_at.as_deref()),
            transfer_received_at: time(self.transfer_received_at.as_deref()),
            completed_at: time(self.completed_at.as_deref()),
            stellar_transaction_ids: self
                .stellar_transactions
                .into_iter()
                .filter_map(|t| t.id)
                .collect(),
            external_transaction_id: self.external_transaction_id,
            message: self.message.or(self.required_info_message),
            unreadable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const USDC: &str = "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
    const ISSUER: &str = "GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";

    fn usdc(a: &str) -> Amount {
        Amount::new(
            Decimal::from_str(a).expect("decimal"),
            AssetId::parse(USDC).expect("asset"),
        )
    }

    #[test]
    fn reads_a_full_transaction() {
        let tx = TransactionDto::from_value(&json!({
            "id": "t1", "sep": 31, "kind": "receive", "status": "pending_receiver",
            "amount_expected": {"amount": "100", "asset": USDC},
            "amount_in": {"amount": "100", "asset": format!("USDC:{ISSUER}")},
            "amount_out": {"amount": "550.00", "asset": "iso4217:BRL"},
            "fee_details": {"total": "1.5", "asset": USDC, "details": []},
            "amount_fee": {"amount": "9", "asset": USDC},
            "quote_id": "q1",
            "customers": {"sender": {"id": "s1"}, "receiver": {"id": "r1"}},
            "started_at": "2026-12-01T10:00:00Z",
            "transfer_received_at": "2026-12-01T10:01:00.5Z",
            "stellar_transactions": [{"id": "h1"}, 7, {"id": "h2"}],
            "external_transaction_id": "x1",
            "required_info_message": "more"
        }))
        .expect("reads");
        assert_eq!(tx.id.as_str(), "t1");
        assert_eq!(tx.sep, "31");
        assert_eq!(tx.status, TransactionStatus::PendingReceiver);
        // The observer's CODE:ISSUER is the same asset as the SEP-38 name.
        assert_eq!(tx.amount_in, Some(usdc("100")));
        assert_eq!(tx.amount_expected, Some(usdc("100")));
        assert_eq!(
            tx.fee,
            Some(usdc("1.5")),
            "fee_details wins over amount_fee"
        );
        assert_eq!(tx.sender_id.as_deref(), Some("s1"));
        assert_eq!(tx.receiver_id.as_deref(), Some("r1"));
        assert_eq!(tx.stellar_transaction_ids, ["h1", "h2"]);
        assert!(tx.transfer_received_at.is_some() && tx.completed_at.is_none());
        assert_eq!(tx.message.as_deref(), Some("more"));
    }

    #[test]
    fn odd_fields_read_as_absent_and_only_id_and_status_are_required() {
        let tx = TransactionDto::from_value(&json!({
            "id": 42, "status": "pending_sender", "sep": null,
            "amount_in": "100", "amount_out": {"amount": "x", "asset": USDC},
            "amount_expected": {"amount": "1", "asset": "no-asset"},
            "customers": ["s1", "r1"], "started_at": "yesterday", "stellar_transactions": {},
            "amount_fee": ["1", "USDC"],
            "message": ""
        }))
        .expect("reads");
        assert_eq!(tx.id.as_str(), "42");
        assert_eq!(tx.sep, "");
        assert_eq!(
            (tx.amount_in, tx.amount_out, tx.amount_expected),
            (None, None, None)
        );
        // An amount written but unreadable is named, for the funds check
        // to refuse (an amount of the wrong type is simply absent).
        assert_eq!(tx.unreadable, ["amount_expected", "amount_out"]);
        assert_eq!(
            (tx.sender_id, tx.started_at, tx.message),
            (None, None, None)
        );
        assert!(tx.stellar_transaction_ids.is_empty());
        for bad in [
            json!({"status": "completed"}),
            json!({"id": "", "status": "completed"}),
            json!({"id": "a\nb", "status": "completed"}),
            json!({"id": "t1"}),
            json!("t1"),
            json!(["t1", "completed"]),
        ] {
            assert!(TransactionDto::from_value(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fee_with_no_asset_is_in_the_asset_received() {
        let tx = TransactionDto::from_value(&json!({
            "id": "t1", "status": "pending_receiver",
            "amount_in": {"amount": "100", "asset": USDC},
            "amount_fee": {"amount": "2"}
        }))
        .expect("reads");
        assert_eq!(tx.fee, Some(usdc("2")));
        let tx = TransactionDto::from_value(&json!({
            "id": "t1", "status": "pending_receiver",
            "fee_details": {"total": "2"}
        }))
        .expect("reads");
        assert_eq!(tx.fee, None, "no asset to take it from");
    }
}
