//! The audit trail's table: appended to, read newest first, never changed
//! (the migration's triggers refuse UPDATE and DELETE on both backends).

use async_trait::async_trait;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use mooring_domain::audit::{Actor, ActorKind, AuditAction, AuditEntry};
use mooring_domain::customer::CustomerId;
use mooring_domain::transaction::TransactionId;
use mooring_ports::{AuditError, AuditLog, AuditQuery, AuditRecord};

use crate::Store;
use crate::error::Failure;
use crate::schema::audit;

impl From<Failure> for AuditError {
    fn from(f: Failure) -> Self {
        Self::Unknown(f.unknown())
    }
}

#[derive(Insertable)]
#[diesel(table_name = audit)]
struct NewRow<'a> {
    at: NaiveDateTime,
    actor_kind: &'a str,
    actor: &'a str,
    origin: &'a str,
    action: &'a str,
    customer_id: Option<&'a str>,
    transaction_id: Option<&'a str>,
    detail: &'a str,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = audit)]
struct Row {
    id: i64,
    at: NaiveDateTime,
    actor_kind: String,
    actor: String,
    origin: String,
    action: String,
    customer_id: Option<String>,
    transaction_id: Option<String>,
    detail: String,
}

impl Row {
    fn into_record(self) -> Result<AuditRecord, Failure> {
        let corrupt = |reason: String| Failure::Corrupt {
            what: "audit entry",
            id: self.id.to_string(),
            reason,
        };
        let kind = ActorKind::parse(&self.actor_kind)
            .ok_or_else(|| corrupt(format!("actor kind {:?}", self.actor_kind)))?;
        let action = AuditAction::parse(&self.action)
            .ok_or_else(|| corrupt(format!("action {:?}", self.action)))?;
        let customer = self
            .customer_id
            .as_deref()
            .map(CustomerId::parse)
            .transpose()
            .map_err(|e| corrupt(format!("customer id: {e}")))?;
        let transaction = self
            .transaction_id
            .as_deref()
            .map(TransactionId::parse)
            .transpose()
            .map_err(|e| corrupt(format!("transaction id: {e}")))?;
        Ok(AuditRecord {
            sequence: self.id,
            entry: AuditEntry {
                at: self.at.and_utc(),
                actor: Actor::new(kind, &self.actor, &self.origin),
                action,
                customer,
                transaction,
                detail: self.detail,
            },
        })
    }
}

#[async_trait]
impl AuditLog for Store {
    #[tracing::instrument(skip_all, fields(audit.action = %entry.action))]
    async fn append(&self, entry: &AuditEntry) -> Result<(), AuditError> {
        let entry = entry.clone();
        Ok(self
            .run_write(move |conn| {
                let row = NewRow {
                    at: entry.at.naive_utc(),
                    actor_kind: entry.actor.kind().as_str(),
                    actor: entry.actor.name(),
                    origin: entry.actor.origin(),
                    action: entry.action.as_str(),
                    customer_id: entry.customer.as_ref().map(CustomerId::as_str),
                    transaction_id: entry.transaction.as_ref().map(TransactionId::as_str),
                    detail: &entry.detail,
                };
                diesel::insert_into(audit::table)
                    .values(&row)
                    .execute(conn)
                    .map_err(Failure::from)?;
                Ok::<_, Failure>(())
            })
            .await?)
    }

    #[tracing::instrument(skip_all)]
    async fn entries(&self, query: &AuditQuery) -> Result<Vec<AuditRecord>, AuditError> {
        let query = query.clone();
        Ok(self
            .run(move |conn| {
                let mut q = audit::table.into_boxed();
                if let Some(c) = &query.customer {
                    q = q.filter(audit::customer_id.eq(c.as_str().to_owned()));
                }
                if let Some(t) = &query.transaction {
                    q = q.filter(audit::transaction_id.eq(t.as_str().to_owned()));
                }
                if let Some(since) = query.since {
                    q = q.filter(audit::at.ge(since.naive_utc()));
                }
                if let Some(until) = query.until {
                    q = q.filter(audit::at.lt(until.naive_utc()));
                }
                if let Some(actor) = &query.actor {
                    q = q.filter(audit::actor.eq(actor.clone()));
                }
                if let Some(action) = query.action {
                    q = q.filter(audit::action.eq(action.as_str()));
                }
                if let Some(before) = query.before {
                    q = q.filter(audit::id.lt(before));
                }
                let rows: Vec<Row> = q
                    .order(audit::id.desc())
                    .limit(i64::from(query.limit))
                    .select(Row::as_select())
                    .load(conn)
                    .map_err(Failure::from)?;
                rows.into_iter().map(Row::into_record).collect()
            })
            .await?)
    }
}
