//! "For you": products bought with what the shopper bought, else the best-sellers of a region
//! (the one asked for, or the shopper's home region) while there is nothing to start from.

use uuid::Uuid;

use super::{from_history, history, home_region, popular, render, Recommended, Strategy};
use crate::{db::PreparedClient, error::Error, money::Currency};

/// The shopper's recommendations in `locales` and `currency`, and how they were made.
pub async fn for_shopper(
    client: &impl PreparedClient,
    shopper: Uuid,
    region: Option<&str>,
    locales: &[&str],
    currency: Currency,
    limit: i64,
) -> Result<(Vec<Recommended>, Strategy), Error> {
    // The best-sellers of a region named in the request are read with the history (one round
    // trip), in case there is no history to go on.
    let (bought, named_best_sellers) = futures_util::try_join!(history(client, shopper), async {
        match region {
            Some(region) => popular(client, Some(region)).await.map(Some),
            None => Ok(None),
        }
    })?;
    let candidates = from_history(client, &bought).await?;
    let items = render(
        client,
        &candidates,
        &bought,
        locales,
        currency,
        limit,
        false,
    )
    .await?;
    if !items.is_empty() {
        return Ok((items, Strategy::BoughtTogether));
    }
    let best_sellers = match named_best_sellers {
        Some(best_sellers) => best_sellers,
        None => {
            let region = home_region(client, shopper).await?;
            popular(client, region.as_deref()).await?
        }
    };
    let items = render(
        client,
        &best_sellers,
        &bought,
        locales,
        currency,
        limit,
        true,
    )
    .await?;
    Ok((items, Strategy::Popular))
}
