//! Where a store call runs: SQLite's reads on the caller's thread when a
//! connection is free at once, everything else on tokio's blocking pool.

use std::sync::Arc;
use std::thread::{self, ThreadId};

use mooring_ports::{DataKey, KeyEncryptionKey, KeyError, WrappedKey};
use mooring_store::Store;
use mooring_testsupport::TestDb;

/// The thread a read ran on.
async fn read_on(store: &Store) -> ThreadId {
    store
        .with_read_connection(|_| Ok(thread::current().id()))
        .await
        .expect("read")
}

/// (Each test runs on a current-thread runtime: its caller's thread is the
/// test's own.)
#[tokio::test]
async fn a_sqlite_read_runs_on_the_callers_thread_when_a_connection_is_idle() {
    let db = TestDb::sqlite();
    let store = crate::migrated_store(&db).await;
    let here = thread::current().id();
    // Migrating left a connection idle in the pool.
    assert_eq!(read_on(&store).await, here);
    assert_eq!(read_on(&store).await, here);
    // A call that may write still goes to the blocking pool.
    let write = store
        .with_connection(|_| Ok(thread::current().id()))
        .await
        .expect("call");
    assert_ne!(write, here);
}

/// A store just opened has no idle pooled connection (its first one is the
/// writer's): the first read opens one on the blocking pool, never on the
/// caller's thread; the next finds it idle.
#[tokio::test]
async fn a_sqlite_read_with_no_idle_connection_opens_one_on_the_blocking_pool() {
    let db = TestDb::sqlite();
    let store = crate::opened(&db, 4).await;
    let here = thread::current().id();
    assert_ne!(read_on(&store).await, here);
    assert_eq!(read_on(&store).await, here);
}

/// A key-encryption key that stands for a key service: the same keys, but
/// not local.
struct Remote(mooring_keys::Keyring);

impl KeyEncryptionKey for Remote {
    fn current_id(&self) -> &str {
        self.0.current_id()
    }
    fn wrap(&self, key: &DataKey, context: &[u8]) -> Result<WrappedKey, KeyError> {
        self.0.wrap(key, context)
    }
    fn unwrap(&self, wrapped: &WrappedKey, context: &[u8]) -> Result<DataKey, KeyError> {
        self.0.unwrap(wrapped, context)
    }
}

/// With a key service, a read (which may unwrap a data key through it)
/// stays on the blocking pool.
#[tokio::test]
async fn a_sqlite_read_under_a_key_service_goes_to_the_blocking_pool() {
    let db = TestDb::sqlite();
    let local = crate::migrated_store(&db).await;
    let keyring =
        mooring_keys::Keyring::parse(mooring_testsupport::TEST_PII_KEY, &[]).expect("test key");
    let (remote, _) = local
        .clone()
        .unlock(Arc::new(Remote(keyring)))
        .await
        .expect("unlock");
    let here = thread::current().id();
    assert_eq!(read_on(&local).await, here);
    assert_ne!(read_on(&remote).await, here);
    assert_ne!(read_on(&remote).await, here);
}

#[tokio::test]
async fn a_postgres_read_always_goes_to_the_blocking_pool() {
    let db = TestDb::postgres();
    let store = crate::migrated_store(&db).await;
    let here = thread::current().id();
    assert_ne!(read_on(&store).await, here);
    assert_ne!(read_on(&store).await, here);
}

/// With every connection (and permit) taken, a read waits for one as any
/// call does, on the blocking pool, instead of failing or blocking the
/// caller's thread.
#[tokio::test]
async fn a_sqlite_read_with_no_free_connection_waits_on_the_blocking_pool() {
    let db = TestDb::sqlite();
    let store = crate::migrated_store(&db).await; // four connections
    let here = thread::current().id();
    let (held_tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    let mut releases = Vec::new();
    let mut holders = Vec::new();
    for _ in 0..4 {
        let (release, released) = std::sync::mpsc::channel::<()>();
        releases.push(release);
        let (store, held_tx) = (store.clone(), held_tx.clone());
        holders.push(tokio::spawn(async move {
            store
                .with_connection(move |_| {
                    held_tx.send(()).expect("signal");
                    released.recv().expect("release");
                    Ok(())
                })
                .await
        }));
    }
    for _ in 0..4 {
        held.recv().await.expect("a holder holds a connection");
    }
    let reader = store.clone();
    let read = tokio::spawn(async move { read_on(&reader).await });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!read.is_finished(), "the read waits for a connection");
    for release in releases {
        release.send(()).expect("release");
    }
    for holder in holders {
        holder.await.expect("holder").expect("held call");
    }
    assert_ne!(read.await.expect("read"), here);
}
