//! Black-box tests of the `mooring` server and binary: the real server on
//! port 0, spoken to over HTTP, on SQLite and on PostgreSQL.

mod auth;
mod backoffice;
mod cli;
mod config;
mod customer_api;
mod deploy;
mod deposit_api;
mod engine;
mod event_api;
mod faults;
mod helpers;
mod limits;
mod logs;
mod ops_api;
mod process;
mod quotes_api;
mod replicas;
