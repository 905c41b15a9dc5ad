//! Agora: an actor-based realtime commerce platform.
//!
//! The server's library: configuration, plumbing (Postgres, Redis, metrics, logs), the HTTP
//! boundary and the domain modules. The actors live in the `agora-actors` crate.

pub mod addresses;
pub mod cart_lines;
pub mod carts;
pub mod catalog;
pub mod checkout;
pub mod cli;
pub mod commit_group;
pub mod configuration;
pub mod credentials;
pub mod db;
pub mod dependencies;
pub mod error;
pub mod flash_sales;
pub mod hot_state;
pub mod http;
pub mod inventory;
pub mod locale;
pub mod mail;
pub mod money;
pub mod notices;
pub mod observability;
pub mod orders;
pub mod payments;
pub mod realtime;
pub mod recommendations;
pub mod regions;
pub mod seed;
pub mod sellers;
pub mod shoppers;
pub mod sign_in_throttle;
pub mod startup;
pub mod state;
pub mod stock_counters;
pub mod telemetry;
pub mod text;
pub mod tokens;
pub mod unauthorized_budget;
pub mod upkeep;
