//! The one integration-test binary: every test starts real servers against real Postgres and
//! Redis, each with a fresh database and its own Redis key prefix.

// Tests read and arrange the database with plain statements.
#![allow(clippy::disallowed_methods)]

mod accounts;
mod addresses;
mod after_sale;
mod after_sale_pages;
mod after_sale_workload;
mod browser;
mod carts;
mod catalog;
mod checkout;
mod cli;
mod commit_group;
mod contract;
mod counters;
mod credentials;
mod errors;
mod flash_sales;
mod health;
mod helpers;
mod hygiene;
mod inventory;
mod live_carts;
mod mail;
mod mail_sink;
mod migrations;
mod observability;
mod operator;
mod pages;
mod pages_operator;
mod pages_seller;
mod realtime;
mod recommendations;
mod sellers;
mod shoppers;
mod storefront;
