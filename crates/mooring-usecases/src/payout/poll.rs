//! Finding funded transactions: the poll down to the poll mark, the
//! reconciliation pass, and the event inbox's application.

use chrono::{DateTime, Utc};
use mooring_domain::payout::{PayoutState, Sighting};
use mooring_domain::transaction::{Transaction, TransactionId, TransactionStatus};
use mooring_ports::{Order, OrderBy, TransactionQuery};

use super::{EngineError, PayoutEngine};

impl PayoutEngine {
    /// One poll: the newest funded transactions first, page by page, down
    /// to the ledger's poll mark less `poll_overlap`; then, for AP 3.x+, the
    /// newest unfunded ones (the AP sorts those last). Returns how many were
    /// new.
    ///
    /// The mark is where the last complete poll started: the newest
    /// `transfer_received_at` it saw (never later than this replica's
    /// clock). A poll that fails half way leaves it where it was, so the
    /// next one reads on past what the failed one wrote; payments that
    /// arrive while a poll pages push what it already read further down,
    /// which it then reads again, but they cannot move where it stops. Ties
    /// with the mark (the AP orders equal times by id) are read again even
    /// with no overlap.
    pub async fn poll(&self) -> Result<u32, EngineError> {
        let started = self.now();
        let new = self.poll_pages(started).await?;
        if let Ok(mut at) = self.last_poll.lock() {
            *at = Some(started);
        }
        Ok(new)
    }

    async fn poll_pages(&self, started: DateTime<Utc>) -> Result<u32, EngineError> {
        let mut new = 0;
        let size = self.config.page_size.max(1);
        let mark = self.parts.marks.poll_mark().await?;
        let stop = mark.map(|m| m - self.config.poll_overlap);
        // The newest payment when the poll started: the next mark.
        let mut top: Option<DateTime<Utc>> = None;
        for page in 0.. {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::TransferReceivedAt,
                    order: Order::Desc,
                    statuses: vec![],
                    page_number: page,
                    page_size: size,
                })
                .await?;
            let funded: Vec<&Transaction> = txs
                .iter()
                .filter(|t| t.transfer_received_at.is_some())
                .collect();
            if page == 0 {
                top = funded.first().and_then(|t| t.transfer_received_at);
            }
            let ids: Vec<TransactionId> = funded.iter().map(|t| t.id.clone()).collect();
            let known = self.parts.ledger.knows_funds(&ids).await?;
            // The page's new ones, down to the stop, in one write.
            let mut unseen: Vec<(TransactionId, Sighting)> = Vec::new();
            let mut reached = false;
            for (tx, known) in funded.iter().zip(known) {
                let Some(at) = tx.transfer_received_at else {
                    continue;
                };
                if stop.is_some_and(|s| at < s) {
                    reached = true;
                    break;
                }
                if !known && let Some(sighting) = Sighting::of(tx) {
                    unseen.push((tx.id.clone(), sighting));
                }
            }
            if !unseen.is_empty() {
                self.parts.ledger.sight_all(&unseen, self.now()).await?;
                new += unseen.len() as u32;
            }
            // Unfunded ones sort last: none funded left after them.
            if reached || funded.len() < txs.len() || txs.len() < size as usize {
                break;
            }
        }
        // Everything down to the old mark is in the ledger now. A time
        // ahead of this replica's clock (an AP clock running fast, a bad
        // timestamp) would stop later polls too early: the mark never
        // passes the poll's own start.
        if let Some(next) = top.map(|t| t.min(started))
            && mark.is_none_or(|m| m < next)
        {
            self.parts.marks.advance_poll_mark(next, self.now()).await?;
        }
        if self.config.request_funds {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::CreatedAt,
                    order: Order::Desc,
                    statuses: vec![TransactionStatus::PendingReceiver],
                    page_number: 0,
                    page_size: size,
                })
                .await?;
            for tx in txs
                .iter()
                .filter(|t| Sighting::of(t) == Some(Sighting::Unfunded))
            {
                if self
                    .parts
                    .ledger
                    .sight(&tx.id, Sighting::Unfunded, self.now())
                    .await?
                    == PayoutState::New
                {
                    new += 1;
                }
            }
        }
        Ok(new)
    }

    /// A reconciliation pass: every transaction the AP has in
    /// `pending_receiver` or `pending_external`, whatever was missed.
    /// Returns how many it looked at.
    pub async fn reconcile(&self) -> Result<u32, EngineError> {
        let size = self.config.page_size.max(1);
        let mut seen = 0;
        for page in 0.. {
            let txs = self
                .parts
                .platform
                .transactions(&TransactionQuery {
                    order_by: OrderBy::CreatedAt,
                    order: Order::Asc,
                    statuses: vec![
                        TransactionStatus::PendingReceiver,
                        TransactionStatus::PendingExternal,
                    ],
                    page_number: page,
                    page_size: size,
                })
                .await?;
            for tx in &txs {
                if let Some(sighting) = Sighting::of(tx) {
                    self.parts
                        .ledger
                        .sight(&tx.id, sighting, self.now())
                        .await?;
                }
                seen += 1;
            }
            if txs.len() < size as usize {
                break;
            }
        }
        Ok(seen)
    }

    /// Applies the inbox's waiting events. Returns how many.
    pub async fn apply_events(&self) -> Result<u32, EngineError> {
        let mut applied = 0;
        loop {
            let n = self.parts.events.apply_events(100, self.now()).await?;
            applied += n;
            if n < 100 {
                return Ok(applied);
            }
        }
    }
}
