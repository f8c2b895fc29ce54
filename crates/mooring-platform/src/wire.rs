//! The AP's JSON: transactions read (by `mooring-apwire`, which the HTTP
//! adapter's events share), updates written as PATCH records or JSON-RPC
//! calls.

use chrono::{DateTime, SecondsFormat, Utc};
use mooring_apwire::TransactionDto;
use mooring_domain::transaction::{Amount, Transaction, TransactionChange, TransactionUpdate};
use mooring_ports::PlatformError;
use serde_json::{Value, json};

/// A transaction object (AP §3.4), read by `mooring-apwire`: only `id`
/// and `status` are required.
pub(crate) fn transaction(v: &Value) -> Result<Transaction, PlatformError> {
    TransactionDto::from_value(v).map_err(|e| PlatformError::Rejected(e.to_string()))
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn amount_json(a: &Amount) -> Value {
    json!({"amount": a.amount.to_string(), "asset": a.asset.as_str()})
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
            let total = Amount::new(amount.amount + fee.amount, amount.asset.clone());
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
            params["fee_details"] =
                json!({"total": fee.amount.to_string(), "asset": fee.asset.as_str()});
            params["amount_expected"] = amount_json(amount_expected);
            params["destination_account"] = json!(destination_account.as_str());
            if let Some(memo) = memo {
                params["memo"] = json!(memo.value());
                params["memo_type"] = json!(memo.memo_type().as_str());
            }
            "request_onchain_funds"
        }
    };
    (method, params)
}
