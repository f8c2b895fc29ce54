//! The poll marks: where the poll of funded transactions read down to.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use diesel::prelude::*;
use mooring_ports::{LedgerError, PollMarks};

use crate::Store;
use crate::conn::{lock_key, write_tx};
use crate::schema::poll_marks;

/// The mark of the poll by `transfer_received_at`, and its writers' lock.
const TRANSFER_POLL: &str = "transfer_received_at";
const POLL_MARK_LOCK: &str = "mooring:poll_marks";

#[async_trait]
impl PollMarks for Store {
    async fn poll_mark(&self) -> Result<Option<DateTime<Utc>>, LedgerError> {
        self.ledger("reading the poll mark", "-", |conn| {
            let mark: Option<NaiveDateTime> = poll_marks::table
                .find(TRANSFER_POLL)
                .select(poll_marks::mark)
                .first(conn)
                .optional()?;
            Ok(mark.map(|m| m.and_utc()))
        })
        .await
    }

    async fn advance_poll_mark(
        &self,
        mark: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), LedgerError> {
        // Both backends keep microseconds: cut the rest off, so the stored
        // mark is never later than the transaction it came from.
        let mark = mark.trunc_subsecs(6).naive_utc();
        let now = now.naive_utc();
        self.ledger("advancing the poll mark", mark, move |conn| {
            write_tx(conn, |c| {
                lock_key(c, POLL_MARK_LOCK)?;
                let stored: Option<NaiveDateTime> = poll_marks::table
                    .find(TRANSFER_POLL)
                    .select(poll_marks::mark)
                    .first(c)
                    .optional()?;
                match stored {
                    None => {
                        diesel::insert_into(poll_marks::table)
                            .values((
                                poll_marks::name.eq(TRANSFER_POLL),
                                poll_marks::mark.eq(mark),
                                poll_marks::updated_at.eq(now),
                            ))
                            .execute(c)?;
                    }
                    Some(stored) if stored < mark => {
                        diesel::update(poll_marks::table.find(TRANSFER_POLL))
                            .set((poll_marks::mark.eq(mark), poll_marks::updated_at.eq(now)))
                            .execute(c)?;
                    }
                    Some(_) => {}
                }
                Ok(())
            })
        })
        .await
    }
}
