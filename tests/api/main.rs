//! Integration tests: the real server over real HTTP, one database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod accounts;
mod audit;
mod callbacks;
mod channels;
mod cluster;
mod conformance;
mod console;
mod contract;
mod db;
mod failover;
mod flows;
mod helpers;
mod isolation;
mod lookup;
mod ops;
mod outage;
mod pages;
mod pg_cluster;
mod process;
mod procs;
mod proxy;
mod random_sequences;
mod secrets;
mod shared_number;
mod signed;
mod sip;
mod sipp;
mod slow_clients;
mod stale;
mod stats;
mod store;
mod toll_fraud;
mod usage;
mod voice;
mod webhooks;
