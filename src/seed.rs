//! `agora seed`: a small demo store, written through the same code the API uses.
//!
//! Idempotent: running it twice leaves one copy of each demo seller (the second run says the
//! seller exists; its API key was printed by the first run and is not recoverable).

use crate::{
    configuration::Settings,
    db,
    http::error::ApiError,
    sellers::{self, Email, SellerName},
};

/// The demo store's sellers: name and email.
const DEMO_SELLERS: &[(&str, &str)] = &[
    ("Nordlicht Outdoor GmbH", "shop@nordlicht.example"),
    ("Maison Lumière", "boutique@maison-lumiere.example"),
    ("Sakura Stationery", "hello@sakura-stationery.example"),
];

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    db::migrate(&settings.database).await?;
    let pool = db::build_pool(&settings.database)?;
    let client = pool.get().await?;
    for (name, email) in DEMO_SELLERS {
        let name = SellerName::parse("name", name)?;
        let email = Email::parse("email", email)?;
        match sellers::onboard(&**client, &name, &email).await {
            Ok(onboarded) => println!(
                "seller {:<32} id {}  api key {}",
                onboarded.seller.name, onboarded.seller.id, onboarded.api_key
            ),
            Err(ApiError::Conflict { .. }) => {
                println!("seller {:<32} exists already", email.as_str());
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}
