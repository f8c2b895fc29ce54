//! A customer's stored values, sealed under their data key: text fields
//! (`customer_fields`) and files (`customer_files`). [`put_value`] is the
//! one upsert-or-delete of both; [`Stored`] says, per kind, how a value is
//! read, written and compared.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use mooring_ports::{DataKey, FileUpload};

use crate::AnyConnection;
use crate::error::{Failure, by_backend};
use crate::pii::{field_context, file_context};
use crate::schema::{customer_fields, customer_files};

/// A text value, opened.
pub(super) fn open_text(
    key: Option<&DataKey>,
    customer: &str,
    name: &str,
    sealed: &[u8],
) -> Result<String, String> {
    let key =
        key.ok_or_else(|| format!("field {name} is sealed but the customer has no data key"))?;
    let bytes = key
        .open(&field_context(customer, name), sealed)
        .map_err(|e| format!("field {name}: {e}"))?;
    String::from_utf8(bytes).map_err(|_| format!("field {name} is not UTF-8"))
}

pub(super) fn size_of(file: &FileUpload) -> i64 {
    i64::try_from(file.content.len()).unwrap_or(i64::MAX)
}

/// One stored value of a customer: its row, and how it is sealed.
pub(super) trait Stored {
    /// The value as stored, opened.
    type Plain;
    /// The value a PUT brings.
    type New: ?Sized;
    /// The stored value, opened (a legacy plaintext as it is); `None` when
    /// there is no row.
    fn read(&self, conn: &mut AnyConnection, key: &DataKey)
    -> Result<Option<Self::Plain>, Failure>;
    /// Whether `new` is what is stored.
    fn same(old: &Self::Plain, new: &Self::New) -> bool;
    /// Writes `new`, sealed: an update of the row when it `exists`, else an
    /// insert.
    fn write(
        &self,
        conn: &mut AnyConnection,
        key: &DataKey,
        new: &Self::New,
        exists: bool,
        now: NaiveDateTime,
    ) -> QueryResult<usize>;
    /// Deletes the row; how many went.
    fn remove(&self, conn: &mut AnyConnection) -> QueryResult<usize>;
}

/// Sets (`Some`) or clears (`None`) one stored value; returns whether what
/// is stored changed.
pub(super) fn put_value<S: Stored>(
    conn: &mut AnyConnection,
    key: &DataKey,
    slot: &S,
    new: Option<&S::New>,
    now: NaiveDateTime,
) -> Result<bool, Failure> {
    let old = slot.read(conn, key)?;
    match (old, new) {
        (Some(old), Some(new)) if S::same(&old, new) => Ok(false),
        (old, Some(new)) => {
            slot.write(conn, key, new, old.is_some(), now)?;
            Ok(true)
        }
        (Some(_), None) => Ok(slot.remove(conn)? > 0),
        (None, None) => Ok(false),
    }
}

/// A text field of a customer.
pub(super) struct TextField<'a> {
    pub(super) customer: &'a str,
    pub(super) name: &'a str,
}

impl Stored for TextField<'_> {
    type Plain = String;
    type New = str;

    fn read(&self, conn: &mut AnyConnection, key: &DataKey) -> Result<Option<String>, Failure> {
        let old: Option<(String, Option<Vec<u8>>)> = customer_fields::table
            .find((self.customer, self.name))
            .select((customer_fields::legacy_value, customer_fields::sealed))
            .first(conn)
            .optional()?;
        match old {
            Some((_, Some(sealed))) => open_text(Some(key), self.customer, self.name, &sealed)
                .map(Some)
                .map_err(|reason| Failure::Corrupt {
                    what: "customer",
                    id: self.customer.to_owned(),
                    reason,
                }),
            Some((legacy, None)) => Ok(Some(legacy)),
            None => Ok(None),
        }
    }

    fn same(old: &String, new: &str) -> bool {
        old == new
    }

    fn write(
        &self,
        conn: &mut AnyConnection,
        key: &DataKey,
        new: &str,
        exists: bool,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let sealed = key.seal(&field_context(self.customer, self.name), new.as_bytes());
        if exists {
            diesel::update(customer_fields::table.find((self.customer, self.name)))
                .set((
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed.eq(Some(sealed)),
                    customer_fields::updated_at.eq(now),
                    customer_fields::rejected.eq(None::<String>),
                ))
                .execute(conn)
        } else {
            diesel::insert_into(customer_fields::table)
                .values((
                    customer_fields::customer_id.eq(self.customer),
                    customer_fields::name.eq(self.name),
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed.eq(Some(sealed)),
                    customer_fields::updated_at.eq(now),
                ))
                .execute(conn)
        }
    }

    fn remove(&self, conn: &mut AnyConnection) -> QueryResult<usize> {
        diesel::delete(customer_fields::table.find((self.customer, self.name))).execute(conn)
    }
}

/// A file of a customer.
pub(super) struct FileField<'a> {
    pub(super) customer: &'a str,
    pub(super) name: &'a str,
}

/// A stored file: its legacy plaintext, its seal, its content type.
type StoredFile = (Vec<u8>, Option<Vec<u8>>, Option<String>);

impl Stored for FileField<'_> {
    /// The content and its content type.
    type Plain = (Vec<u8>, Option<String>);
    type New = FileUpload;

    fn read(
        &self,
        conn: &mut AnyConnection,
        key: &DataKey,
    ) -> Result<Option<Self::Plain>, Failure> {
        let old: Option<StoredFile> = customer_files::table
            .find((self.customer, self.name))
            .select((
                customer_files::legacy_content,
                customer_files::sealed,
                customer_files::content_type,
            ))
            .first(conn)
            .optional()?;
        match old {
            Some((_, Some(sealed), content_type)) => {
                let context = file_context(self.customer, self.name);
                let content = key.open(&context, &sealed).map_err(|e| Failure::Corrupt {
                    what: "customer",
                    id: self.customer.to_owned(),
                    reason: format!("file {}: {e}", self.name),
                })?;
                Ok(Some((content, content_type)))
            }
            Some((legacy, None, content_type)) => Ok(Some((legacy, content_type))),
            None => Ok(None),
        }
    }

    fn same(old: &Self::Plain, new: &FileUpload) -> bool {
        old.0 == new.content && old.1 == new.content_type
    }

    fn write(
        &self,
        conn: &mut AnyConnection,
        key: &DataKey,
        new: &FileUpload,
        exists: bool,
        now: NaiveDateTime,
    ) -> QueryResult<usize> {
        let sealed = key.seal(&file_context(self.customer, self.name), &new.content);
        if exists {
            diesel::update(customer_files::table.find((self.customer, self.name)))
                .set((
                    customer_files::legacy_content.eq(Vec::<u8>::new()),
                    customer_files::sealed.eq(Some(sealed)),
                    customer_files::content_type.eq(new.content_type.as_deref()),
                    customer_files::size_bytes.eq(size_of(new)),
                    customer_files::updated_at.eq(now),
                    customer_files::rejected.eq(None::<String>),
                ))
                .execute(conn)
        } else {
            diesel::insert_into(customer_files::table)
                .values((
                    customer_files::customer_id.eq(self.customer),
                    customer_files::name.eq(self.name),
                    customer_files::legacy_content.eq(Vec::<u8>::new()),
                    customer_files::sealed.eq(Some(sealed)),
                    customer_files::content_type.eq(new.content_type.as_deref()),
                    customer_files::size_bytes.eq(size_of(new)),
                    customer_files::updated_at.eq(now),
                ))
                .execute(conn)
        }
    }

    fn remove(&self, conn: &mut AnyConnection) -> QueryResult<usize> {
        diesel::delete(customer_files::table.find((self.customer, self.name))).execute(conn)
    }
}

/// A new customer's text fields, sealed, in one statement.
pub(super) fn insert_text(
    conn: &mut AnyConnection,
    key: &DataKey,
    id: &str,
    text: &[(String, Option<String>)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    let rows: Vec<_> = text
        .iter()
        .filter_map(|(name, value)| {
            value.as_deref().map(|value| {
                (
                    customer_fields::customer_id.eq(id),
                    customer_fields::name.eq(name.as_str()),
                    customer_fields::legacy_value.eq(""),
                    customer_fields::sealed
                        .eq(Some(key.seal(&field_context(id, name), value.as_bytes()))),
                    customer_fields::updated_at.eq(now),
                )
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let insert = diesel::insert_into(customer_fields::table).values(&rows);
    by_backend!(conn, |c| insert.execute(c))?;
    Ok(())
}
