//! `agora seed`: a small demo store, written through the same validation and store code the
//! API uses: three regions, three sellers and their products in English, German, French and
//! Japanese, priced in EUR, USD and JPY.
//!
//! Idempotent: running it twice leaves one copy of everything (an existing seller is kept and
//! its API key, printed by the first run, is not recoverable; products are skipped by SKU).

use serde_json::{json, Value};
use tokio_postgres::GenericClient;
use uuid::Uuid;

use crate::{
    catalog::{self, input::NewProduct},
    configuration::Settings,
    db,
    error::{Code, Error},
    regions::{self, RegionInput},
    sellers::{self, Email, SellerName},
};

fn demo_regions() -> Value {
    json!({
        "EU": {
            "name": "European Union", "currency": "EUR", "countries": ["DE", "AT", "FR", "IT", "ES", "NL"],
            "tax_inclusive": true, "tax_rates": { "default": "0.20", "DE": "0.19", "AT": "0.20", "FR": "0.20" },
            "shipping_options": [
                { "id": "dhl-standard", "name": "Standard", "carrier": "DHL",
                  "rate": { "type": "flat", "amount": "4.90" }, "delivery_days": { "min": 2, "max": 4 } },
                { "id": "ups-express", "name": "Express by weight", "carrier": "UPS",
                  "rate": { "type": "weight", "base": "7.00", "per_kg": "1.50" }, "delivery_days": { "min": 1, "max": 2 } }
            ]
        },
        "US": {
            "name": "United States", "currency": "USD", "countries": ["US"],
            "tax_inclusive": false, "tax_rates": { "default": "0.0725" },
            "shipping_options": [
                { "id": "usps-ground", "name": "Ground", "carrier": "USPS",
                  "rate": { "type": "weight", "base": "5.00", "per_kg": "2.00" }, "delivery_days": { "min": 3, "max": 7 } }
            ]
        },
        "JP": {
            "name": "Japan", "currency": "JPY", "countries": ["JP"],
            "tax_inclusive": true, "tax_rates": { "default": "0.10" },
            "shipping_options": [
                { "id": "yamato", "name": "Takkyubin", "carrier": "Yamato",
                  "rate": { "type": "flat", "amount": "800" }, "delivery_days": { "min": 1, "max": 2 } }
            ]
        }
    })
}

/// Sellers with their products.
fn demo_sellers() -> Vec<(&'static str, &'static str, Value)> {
    vec![
        (
            "Nordlicht Outdoor GmbH",
            "shop@nordlicht.example",
            json!([
                { "default_locale": "de", "base_currency": "EUR",
                  "content": {
                      "de": { "title": "Trailrunning-Jacke", "description": "Wasserdichte, atmungsaktive Jacke für lange Läufe im Regen." },
                      "en": { "title": "Trail running jacket", "description": "Waterproof, breathable jacket for long runs in the rain." },
                      "fr": { "title": "Veste de trail", "description": "Veste imperméable et respirante pour les longues sorties sous la pluie." }
                  },
                  "variants": [
                      { "sku": "NL-JACKET-M", "prices": { "EUR": "129.00", "USD": "139.00" }, "stock": 40,
                        "attributes": { "size": "M", "colour": "red" }, "weight_grams": 380 },
                      { "sku": "NL-JACKET-L", "prices": { "EUR": "129.00", "USD": "139.00" }, "stock": 25,
                        "attributes": { "size": "L", "colour": "red" }, "weight_grams": 410 }
                  ] },
                { "default_locale": "de",
                  "content": {
                      "de": { "title": "Wanderschuhe Alpin", "description": "Robuste Schuhe mit griffiger Sohle für steile Wege." },
                      "en": { "title": "Alpine hiking boots", "description": "Sturdy boots with a grippy sole for steep trails." }
                  },
                  "variants": [
                      { "sku": "NL-BOOT-42", "prices": { "EUR": "179.90" }, "stock": 12, "attributes": { "size": "42" }, "weight_grams": 1350 },
                      { "sku": "NL-BOOT-44", "prices": { "EUR": "179.90" }, "stock": 0, "attributes": { "size": "44" }, "weight_grams": 1420 }
                  ] }
            ]),
        ),
        (
            "Maison Lumière",
            "boutique@maison-lumiere.example",
            json!([
                { "default_locale": "fr", "base_currency": "EUR",
                  "content": {
                      "fr": { "title": "Lampe de chevet en laiton", "description": "Lampe en laiton brossé, abat-jour en lin." },
                      "en": { "title": "Brass bedside lamp", "description": "Brushed brass lamp with a linen shade." },
                      "de": { "title": "Nachttischlampe aus Messing", "description": "Gebürstetes Messing mit Leinenschirm." }
                  },
                  "variants": [
                      { "sku": "ML-LAMP-BRASS", "prices": { "EUR": "89.90", "USD": "99.00", "JPY": "14800" }, "stock": 18, "weight_grams": 2100 }
                  ] },
                { "default_locale": "fr",
                  "content": {
                      "fr": { "title": "Bougie parfumée figue", "description": "Cire végétale, 45 heures de combustion." },
                      "en": { "title": "Fig scented candle", "description": "Plant wax, 45 hours of burn time." }
                  },
                  "variants": [
                      { "sku": "ML-CANDLE-FIG", "prices": { "EUR": "24.00" }, "stock": 120, "weight_grams": 300 }
                  ] }
            ]),
        ),
        (
            "Sakura Stationery",
            "hello@sakura-stationery.example",
            json!([
                { "default_locale": "ja", "base_currency": "JPY",
                  "content": {
                      "ja": { "title": "万年筆 桜", "description": "桜の木の軸を使った細字の万年筆。" },
                      "en": { "title": "Sakura fountain pen", "description": "Fine-nib fountain pen with a cherry-wood barrel." }
                  },
                  "variants": [
                      { "sku": "SK-PEN-FINE", "prices": { "JPY": "8800", "USD": "59.00" }, "stock": 30, "weight_grams": 25 }
                  ] },
                { "default_locale": "ja", "base_currency": "JPY",
                  "content": {
                      "ja": { "title": "和紙ノート A5", "description": "手漉き和紙の罫線ノート。" },
                      "en": { "title": "Washi notebook A5", "description": "Ruled notebook of handmade washi paper." },
                      "de": { "title": "Washi-Notizbuch A5", "description": "Liniertes Notizbuch aus handgeschöpftem Washi-Papier." }
                  },
                  "variants": [
                      { "sku": "SK-NOTE-A5", "prices": { "JPY": "2200" }, "stock": 75, "weight_grams": 180 }
                  ] }
            ]),
        ),
    ]
}

pub async fn run(settings: &Settings) -> anyhow::Result<()> {
    db::migrate(&settings.database).await?;
    let pricing = settings.pricing()?;
    let pool = db::build_pool(&settings.database)?;
    let mut client = pool.get().await?;
    catalog::sync_exchange_rates(&mut client, &pricing.fx).await?;

    let regions: serde_json::Map<String, Value> =
        serde_json::from_value(demo_regions()).map_err(anyhow::Error::new)?;
    for (code, body) in regions {
        let input: RegionInput = serde_json::from_value(body)?;
        regions::put(&**client, &code, input, &pricing).await?;
        println!("region {code}");
    }

    for (name, email, products) in demo_sellers() {
        let name = SellerName::parse("name", name)?;
        let email = Email::parse("email", email)?;
        let seller_id = match sellers::onboard(&**client, &name, &email).await {
            Ok(onboarded) => {
                println!(
                    "seller {:<32} id {}  api key {}",
                    onboarded.seller.name, onboarded.seller.id, onboarded.api_key
                );
                onboarded.seller.id
            }
            Err(Error::Conflict { .. }) => {
                println!("seller {:<32} exists already", email.as_str());
                seller_id_by_email(&**client, &email).await?
            }
            Err(error) => return Err(error.into()),
        };
        let products: Vec<NewProduct> = serde_json::from_value(products)?;
        for product in products {
            let draft = product.validate(&pricing)?;
            let tx = client.transaction().await?;
            match catalog::create(&tx, &pricing, seller_id, &draft).await {
                Ok(_) => {
                    tx.commit().await?;
                    println!("  product {}", draft.variants[0].sku);
                }
                Err(Error::Conflict {
                    code: Code::SkuTaken,
                    ..
                }) => {
                    println!("  product {} exists already", draft.variants[0].sku);
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
    Ok(())
}

async fn seller_id_by_email(client: &impl GenericClient, email: &Email) -> anyhow::Result<Uuid> {
    Ok(client
        .query_one(
            "SELECT id FROM sellers WHERE lower(email) = lower($1)",
            &[&email.as_str()],
        )
        .await?
        .get(0))
}
