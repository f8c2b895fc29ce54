//! The Platform API's contract: the AP's transition rules as the payment
//! engine relies on them, run against `FakePlatform` (the use cases'
//! tests) and against the Platform client talking JSON-RPC to the in-repo
//! AP simulator, so the fake cannot allow a move the AP refuses.
//!
//! Customer-info moves are left out: from AP 2.9 the AP decides their
//! status by calling the business server's `GET /customer`, which neither
//! the simulator nor the fake plays.

use std::str::FromStr;

use mooring_domain::AssetId;
use mooring_domain::transaction::{
    Amount, Transaction, TransactionChange, TransactionId, TransactionStatus, TransactionUpdate,
};
use mooring_domain::{Memo, StellarAccount};
use mooring_ports::{Order, OrderBy, PlatformClient, PlatformError, TransactionQuery};
use rust_decimal::Decimal;

const USDC: &str = "stellar:USDC:GA5ZSEJYB37JRC5AVCIA5MOP4RHTM335X2KGX3IHOJAPP5RE34K4KZVN";
const DISTRIBUTION: &str = "GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";

/// The AP behind a client under test: what the sending side and the AP's
/// Stellar observer do, which no client call does.
pub trait ApUnderTest {
    /// Creates a SEP-31 transaction `id` expecting `amount`, as the AP
    /// does when a sender posts it: `pending_sender` (AP 2.x) or
    /// `pending_receiver` with no funds (AP 3.x+, until the business server
    /// asks for them).
    fn create(&self, id: &str, amount: &Amount);

    /// The sender's payment of the expected amount arrives
    /// (`pending_sender` → `pending_receiver`, funds received).
    fn pay(&self, id: &str);
}

fn usdc(a: &str) -> Amount {
    Amount::new(
        Decimal::from_str(a).expect("decimal"),
        AssetId::parse(USDC).expect("asset"),
    )
}

fn id(s: &str) -> TransactionId {
    TransactionId::parse(s).expect("id")
}

async fn status<P: PlatformClient>(client: &P, tx: &str) -> TransactionStatus {
    client.transaction(&id(tx)).await.expect("read").status
}

async fn apply<P: PlatformClient>(
    client: &P,
    tx: &str,
    change: TransactionChange,
) -> Result<Transaction, PlatformError> {
    client
        .update(&TransactionUpdate {
            id: id(tx),
            message: Some("contract".into()),
            change,
        })
        .await
}

/// `change` is refused (`Rejected`) and the transaction stays as it was.
async fn refused<P: PlatformClient>(client: &P, tx: &str, change: TransactionChange, why: &str) {
    let before = status(client, tx).await;
    let answer = apply(client, tx, change).await;
    assert!(
        matches!(answer, Err(PlatformError::Rejected(_))),
        "{why}: {answer:?}"
    );
    assert_eq!(status(client, tx).await, before, "{why}: unchanged");
}

/// `change` is applied, and the AP answers with the transaction after it.
async fn moves<P: PlatformClient>(
    client: &P,
    tx: &str,
    change: TransactionChange,
    to: TransactionStatus,
) -> Transaction {
    let after = apply(client, tx, change).await.expect("applied");
    assert_eq!(
        after.status, to,
        "the answer is the transaction after the move"
    );
    assert_eq!(status(client, tx).await, to, "and a read agrees");
    after
}

fn request_funds(amount: &Amount) -> TransactionChange {
    TransactionChange::RequestOnchainFunds {
        amount_in: amount.clone(),
        amount_out: amount.clone(),
        fee: Amount::new(Decimal::ZERO, amount.asset.clone()),
        amount_expected: amount.clone(),
        destination_account: StellarAccount::parse(DISTRIBUTION).expect("account"),
        memo: Some(Memo::parse("42", Some("id")).expect("memo")),
    }
}

fn sent(external: &str) -> TransactionChange {
    TransactionChange::OffchainFundsSent {
        external_transaction_id: Some(external.into()),
        funds_sent_at: chrono::Utc::now(),
        amount_out: None,
    }
}

/// A transaction through creation and the sender's payment: funded and
/// `pending_receiver`. On AP 3.x+ the funds are asked for first, once.
async fn funded<P: PlatformClient>(client: &P, ap: &impl ApUnderTest, tx: &str, amount: &Amount) {
    ap.create(tx, amount);
    let created = client.transaction(&id(tx)).await.expect("read");
    assert!(created.transfer_received_at.is_none() && created.amount_in.is_none());
    match created.status {
        TransactionStatus::PendingSender => {
            refused(
                client,
                tx,
                request_funds(amount),
                "funds are asked for only before the sender is",
            )
            .await;
        }
        TransactionStatus::PendingReceiver => {
            moves(
                client,
                tx,
                request_funds(amount),
                TransactionStatus::PendingSender,
            )
            .await;
            refused(
                client,
                tx,
                request_funds(amount),
                "funds are asked for once",
            )
            .await;
        }
        other => panic!("a new transaction is {other:?}"),
    }
    ap.pay(tx);
    let paid = client.transaction(&id(tx)).await.expect("read");
    assert_eq!(paid.status, TransactionStatus::PendingReceiver);
    assert!(paid.transfer_received_at.is_some(), "funds received");
    assert_eq!(paid.amount_in.as_ref(), Some(amount));
    assert_eq!(paid.sep, "31");
    refused(
        client,
        tx,
        request_funds(amount),
        "no funds asked for once received",
    )
    .await;
}

/// The suite. `prefix` keeps its transaction ids apart from others'.
pub async fn platform_client<P: PlatformClient>(client: &P, ap: &impl ApUnderTest, prefix: &str) {
    let tx = |n: &str| format!("{prefix}-{n}");
    let hundred = usdc("100");
    assert!(matches!(
        client.transaction(&id(&tx("nobody"))).await,
        Err(PlatformError::NotFound)
    ));

    // A payout: pending, then sent; completed is final.
    let paid = tx("paid");
    funded(client, ap, &paid, &hundred).await;
    let pending = moves(
        client,
        &paid,
        TransactionChange::OffchainFundsPending {
            external_transaction_id: Some("P1".into()),
        },
        TransactionStatus::PendingExternal,
    )
    .await;
    assert_eq!(pending.external_transaction_id.as_deref(), Some("P1"));
    refused(
        client,
        &paid,
        TransactionChange::OffchainFundsPending {
            external_transaction_id: Some("P1".into()),
        },
        "pending only from pending_receiver",
    )
    .await;
    let done = moves(client, &paid, sent("P1"), TransactionStatus::Completed).await;
    assert_eq!(done.external_transaction_id.as_deref(), Some("P1"));
    refused(client, &paid, sent("P1"), "completed is final").await;
    refused(
        client,
        &paid,
        TransactionChange::Error,
        "completed is final",
    )
    .await;
    refused(
        client,
        &paid,
        TransactionChange::Recover,
        "completed is final",
    )
    .await;

    // A failure, a recovery, a refund; refunded is final.
    let refunded = tx("refunded");
    funded(client, ap, &refunded, &hundred).await;
    moves(
        client,
        &refunded,
        TransactionChange::Error,
        TransactionStatus::Error,
    )
    .await;
    refused(client, &refunded, TransactionChange::Error, "error once").await;
    refused(client, &refunded, sent("P2"), "no payout from error").await;
    let refund = |amount: &str, fee: &str| TransactionChange::RefundSent {
        reference: "stellar-hash".into(),
        amount: usdc(amount),
        fee: usdc(fee),
        refunded_at: chrono::Utc::now(),
    };
    refused(
        client,
        &refunded,
        refund("100", "0"),
        "no refund from error",
    )
    .await;
    moves(
        client,
        &refunded,
        TransactionChange::Recover,
        TransactionStatus::PendingReceiver,
    )
    .await;
    moves(
        client,
        &refunded,
        refund("99", "1"),
        TransactionStatus::Refunded,
    )
    .await;
    refused(
        client,
        &refunded,
        TransactionChange::Recover,
        "refunded is final",
    )
    .await;
    refused(client, &refunded, sent("P3"), "refunded is final").await;

    // A payout under way is refunded only after it is known to have failed.
    let external = tx("external");
    funded(client, ap, &external, &hundred).await;
    moves(
        client,
        &external,
        TransactionChange::OffchainFundsPending {
            external_transaction_id: None,
        },
        TransactionStatus::PendingExternal,
    )
    .await;
    refused(
        client,
        &external,
        refund("100", "0"),
        "no refund while a payout is under way",
    )
    .await;

    // The poll's query: by status, newest payment first.
    let query = |statuses: Vec<TransactionStatus>| TransactionQuery {
        order_by: OrderBy::TransferReceivedAt,
        order: Order::Desc,
        statuses,
        page_number: 0,
        page_size: 100,
    };
    let completed = client
        .transactions(&query(vec![TransactionStatus::Completed]))
        .await
        .expect("page");
    assert!(completed.iter().any(|t| t.id.as_str() == paid));
    assert!(
        completed
            .iter()
            .all(|t| t.status == TransactionStatus::Completed)
    );
    let all = client.transactions(&query(vec![])).await.expect("page");
    let mut ours: Vec<&str> = all
        .iter()
        .map(|t| t.id.as_str())
        .filter(|t| t.starts_with(prefix))
        .collect();
    ours.sort_unstable();
    assert_eq!(ours, [external.as_str(), paid.as_str(), refunded.as_str()]);
    let received: Vec<_> = all.iter().map(|t| t.transfer_received_at).collect();
    assert!(
        received.windows(2).all(|w| match (w[0], w[1]) {
            (Some(a), Some(b)) => a >= b,
            (None, Some(_)) => false,
            _ => true,
        }),
        "newest payment first, unfunded last"
    );
}
