//! Route handlers, one module per resource.

pub mod account;
pub mod after_sale;
pub mod carts;
pub mod checkout;
pub mod flash_sales;
pub mod health;
pub mod inventory;
pub mod operator;
pub mod orders;
pub mod products;
pub mod realtime;
pub mod recommendations;
pub mod regions;
pub mod sellers;
pub mod shoppers;
