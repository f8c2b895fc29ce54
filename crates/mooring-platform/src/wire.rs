//! The AP's JSON: transactions read leniently, updates written as PATCH
//! records or JSON-RPC calls.

use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use mooring_domain::transaction::{
    Amount, Transaction, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_ports::PlatformError;
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn time(v: &Value, key: &str) -> Option<DateTime<Utc>> {
    let s = v.get(key)?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn amount(v: &Value, key: &str) -> Option<Amount> {
    let a = v.get(key)?;
    let value = text(a, "amount")?;
    Some(Amount {
        amount: Decimal::from_str(&value).ok()?,
        asset: text(a, "asset").unwrap_or_default(),
    })
}

/// A transaction object (AP §3.4): only `id` and `status` are required.
pub(crate) fn transaction(v: &Value) -> Result<Transaction, PlatformError> {
    let bad = |what: &str| {
        PlatformError::Rejected(format!("the platform's transaction has no valid {what}"))
    };
    let id = text(v, "id")
        .and_then(|id| TransactionId::parse(&id).ok())
        .ok_or_else(|| bad("id"))?;
    let status = text(v, "status")
        .map(|s| TransactionStatus::parse(&s))
        .ok_or_else(|| bad("status"))?;
    let fee = v
        .get("fee_details")
        .and_then(|f| {
            let total = text(f, "total")?;
            Some(Amount {
                amount: Decimal::from_str(&total).ok()?,
                asset: text(f, "asset").unwrap_or_default(),
            })
        })
        .or_else(|| amount(v, "amount_fee"));
    let customer = |role: &str| {
        v.get("customers")
            .and_then(|c| c.get(role))
            .and_then(|c| text(c, "id"))
    };
    let stellar_transaction_ids = v
        .get("stellar_transactions")
        .and_then(Value::as_array)
        .map(|txs| txs.iter().filter_map(|t| text(t, "id")).collect())
        .unwrap_or_default();
    Ok(Transaction {
        id,
        sep: text(v, "sep").unwrap_or_default(),
        kind: text(v, "kind"),
        status,
        amount_expected: amount(v, "amount_expected"),
        amount_in: amount(v, "amount_in"),
        amount_out: amount(v, "amount_out"),
        fee,
        quote_id: text(v, "quote_id"),
        sender_id: customer("sender"),
        receiver_id: customer("receiver"),
        started_at: time(v, "started_at"),
        updated_at: time(v, "updated_at"),
        transfer_received_at: time(v, "transfer_received_at"),
        completed_at: time(v, "completed_at"),
        stellar_transaction_ids,
        external_transaction_id: text(v, "external_transaction_id"),
        message: text(v, "message").or_else(|| text(v, "required_info_message")),
    })
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn amount_json(a: &Amount) -> Value {
    json!({"amount": a.amount.to_string(), "asset": a.asset})
}

/// The PATCH record of an update (AP 2.x REST; PATCH has no transition
/// rules, so the status is written explicitly).
pub(crate) fn patch(update: &TransactionUpdate) -> Result<Value, PlatformError> {
    let mut record = json!({"id": update.id.as_str()});
    if let Some(message) = &update.message {
        record["message"] = json!(message);
    }
    let status = match &update.change {
        TransactionChange::OffchainFundsPending {
            external_transaction_id,
        } => {
            if let Some(e) = external_transaction_id {
                record["external_transaction_id"] = json!(e);
            }
            "pending_external"
        }
        TransactionChange::OffchainFundsSent {
            external_transaction_id,
            funds_sent_at,
            amount_out,
        } => {
            if let Some(e) = external_transaction_id {
                record["external_transaction_id"] = json!(e);
            }
            if let Some(a) = amount_out {
                record["amount_out"] = amount_json(a);
            }
            // PATCH does not set completed_at itself (RPC does).
            record["completed_at"] = json!(instant(*funds_sent_at));
            "completed"
        }
        TransactionChange::CustomerInfoNeeded { .. } => "pending_customer_info_update",
        TransactionChange::CustomerInfoUpdated { .. } => "pending_receiver",
        TransactionChange::Error => "error",
        TransactionChange::Recover => "pending_receiver",
        TransactionChange::RefundSent {
            reference,
            amount,
            fee,
            refunded_at,
        } => {
            let total = Amount {
                amount: amount.amount + fee.amount,
                asset: amount.asset.clone(),
            };
            record["refunds"] = json!({
                "amount_refunded": amount_json(&total),
                "amount_fee": amount_json(fee),
                "payments": [{
                    "id": reference,
                    "id_type": "stellar",
                    "amount": amount_json(amount),
                    "fee": amount_json(fee),
                    "refunded_at": instant(*refunded_at),
                }],
            });
            record["completed_at"] = json!(instant(*refunded_at));
            "refunded"
        }
        TransactionChange::RequestOnchainFunds { .. } => {
            return Err(PlatformError::Rejected(
                "request_onchain_funds exists only in the JSON-RPC API (AP 3.x+): set platform.api = \"rpc\"".into(),
            ));
        }
    };
    record["status"] = json!(status);
    Ok(record)
}

/// The JSON-RPC method and params of an update.
pub(crate) fn rpc(update: &TransactionUpdate) -> (&'static str, Value) {
    let mut params = json!({"transaction_id": update.id.as_str()});
    if let Some(message) = &update.message {
        params["message"] = json!(message);
    }
    let method = match &update.change {
        TransactionChange::OffchainFundsPending {
            external_transaction_id,
        } => {
            if let Some(e) = external_transaction_id {
                params["external_transaction_id"] = json!(e);
            }
            "notify_offchain_funds_pending"
        }
        TransactionChange::OffchainFundsSent {
            external_transaction_id,
            funds_sent_at,
            ..
        } => {
            if let Some(e) = external_transaction_id {
                params["external_transaction_id"] = json!(e);
            }
            params["funds_sent_at"] = json!(instant(*funds_sent_at));
            "notify_offchain_funds_sent"
        }
        // From AP 2.9 the Platform reads the customer's status itself
        // (NEEDS_INFO → pending_customer_info_update, ACCEPTED → pending_receiver).
        TransactionChange::CustomerInfoNeeded {
            customer_id,
            customer_type,
        }
        | TransactionChange::CustomerInfoUpdated {
            customer_id,
            customer_type,
        } => {
            params["customer_id"] = json!(customer_id);
            params["customer_type"] = json!(customer_type);
            "notify_customer_info_updated"
        }
        TransactionChange::Error => "notify_transaction_error",
        TransactionChange::Recover => "notify_transaction_recovery",
        TransactionChange::RefundSent {
            reference,
            amount,
            fee,
            ..
        } => {
            params["refund"] = json!({
                "id": reference,
                "amount": amount_json(amount),
                "amount_fee": amount_json(fee),
            });
            "notify_refund_sent"
        }
        TransactionChange::RequestOnchainFunds {
            amount_in,
            amount_out,
            fee,
            amount_expected,
            destination_account,
            memo,
        } => {
            params["amount_in"] = amount_json(amount_in);
            params["amount_out"] = amount_json(amount_out);
            params["fee_details"] = json!({"total": fee.amount.to_string(), "asset": fee.asset});
            params["amount_expected"] = amount_json(amount_expected);
            params["destination_account"] = json!(destination_account);
            if let Some((memo, memo_type)) = memo {
                params["memo"] = json!(memo);
                params["memo_type"] = json!(memo_type);
            }
            "request_onchain_funds"
        }
    };
    (method, params)
}
