//! `seed-catalog`: a large synthetic catalog written straight into Postgres, for benchmarks.
//!
//! It writes sellers, products (English and German content from a fixed vocabulary, so
//! searches have known selectivity), four variants per product with EUR prices (and explicit
//! USD prices on half of them) and stock (one in twenty SKUs sold out). It does not write the
//! listing prices: it clears the exchange-rate fingerprint so the next `agora serve` rebuilds
//! them with the real code, as it would after a rate change.

use anyhow::{bail, Context};
use tokio_postgres::NoTls;

/// Variants per product in the synthetic catalog.
pub const VARIANTS_PER_PRODUCT: u64 = 4;
/// Sellers the products are spread over.
pub const SELLERS: u64 = 200;

/// Made-up brand syllables: three of them form one of 4,096 brand names.
pub const SYLLABLES: [&str; 16] = [
    "ka", "lo", "mi", "ra", "ten", "vor", "zu", "bel", "dan", "fis", "gor", "hul", "jas", "mer",
    "nop", "quin",
];
pub const ADJECTIVES: [(&str, &str); 20] = [
    ("light", "leichte"),
    ("warm", "warme"),
    ("waterproof", "wasserdichte"),
    ("classic", "klassische"),
    ("sturdy", "robuste"),
    ("soft", "weiche"),
    ("compact", "kompakte"),
    ("elegant", "elegante"),
    ("durable", "langlebige"),
    ("breathable", "atmungsaktive"),
    ("vintage", "alte"),
    ("modern", "moderne"),
    ("wooden", "hölzerne"),
    ("woollen", "wollene"),
    ("leather", "lederne"),
    ("folding", "faltbare"),
    ("heated", "beheizte"),
    ("organic", "biologische"),
    ("reflective", "reflektierende"),
    ("padded", "gepolsterte"),
];
pub const NOUNS: [(&str, &str); 25] = [
    ("jacket", "Jacke"),
    ("shoe", "Schuh"),
    ("backpack", "Rucksack"),
    ("lamp", "Lampe"),
    ("chair", "Stuhl"),
    ("table", "Tisch"),
    ("blanket", "Decke"),
    ("bottle", "Flasche"),
    ("glove", "Handschuh"),
    ("helmet", "Helm"),
    ("tent", "Zelt"),
    ("kettle", "Kessel"),
    ("notebook", "Notizbuch"),
    ("pen", "Stift"),
    ("watch", "Uhr"),
    ("scarf", "Schal"),
    ("candle", "Kerze"),
    ("mug", "Becher"),
    ("pillow", "Kissen"),
    ("umbrella", "Regenschirm"),
    ("sock", "Socke"),
    ("shirt", "Hemd"),
    ("belt", "Gürtel"),
    ("wallet", "Geldbörse"),
    ("knife", "Messer"),
];

fn sql_array(words: impl Iterator<Item = String>) -> String {
    let quoted: Vec<String> = words
        .map(|w| format!("'{}'", w.replace('\'', "''")))
        .collect();
    format!("ARRAY[{}]", quoted.join(","))
}

pub async fn run(database_url: &str, variants: u64, force: bool) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(database_url, NoTls)
        .await
        .context("connecting to the benchmark database")?;
    tokio::spawn(connection);
    let existing: i64 = client
        .query_one("SELECT count(*) FROM variants", &[])
        .await
        .context("the database must be migrated first (agora migrate)")?
        .get(0);
    if existing > 0 && !force {
        bail!("the database already holds {existing} variants; pass --force to add more");
    }
    let products = variants.div_ceil(VARIANTS_PER_PRODUCT);
    let syllables = sql_array(SYLLABLES.iter().map(|s| (*s).to_owned()));
    let adjectives_en = sql_array(ADJECTIVES.iter().map(|(en, _)| (*en).to_owned()));
    let adjectives_de = sql_array(ADJECTIVES.iter().map(|(_, de)| (*de).to_owned()));
    let nouns_en = sql_array(NOUNS.iter().map(|(en, _)| (*en).to_owned()));
    let nouns_de = sql_array(NOUNS.iter().map(|(_, de)| (*de).to_owned()));
    let run_id = format!("{:x}", rand::random::<u32>());
    let started = std::time::Instant::now();
    let statements = [
        format!(
            "INSERT INTO sellers (id, name, email, api_key_hash)
             SELECT md5('{run_id}-seller-' || g)::uuid, 'Bench seller ' || g, 'bench-{run_id}-' || g || '@bench.example',
                    sha256(('{run_id}-bench-key-' || g)::bytea)
             FROM generate_series(1, {SELLERS}) g"
        ),
        format!(
            "INSERT INTO products (id, seller_id, default_locale, base_currency, created_at, updated_at)
             SELECT md5('{run_id}-product-' || g)::uuid, md5('{run_id}-seller-' || (1 + g % {SELLERS}))::uuid, 'en', 'EUR',
                    now() - g * interval '1 second', now() - g * interval '1 second'
             FROM generate_series(1, {products}) g"
        ),
        // Titles: "<Brand> <adjective> <noun>", the brand from three syllables (4,096 brands),
        // so a brand matches ~1/4096 of products, an adjective-noun pair ~1/500, a noun ~1/25;
        // words and prices come from independent hashes of the product number.
        format!(
            "INSERT INTO product_content (product_id, locale, search_config, title, description)
             SELECT md5('{run_id}-product-' || g)::uuid, l.locale, l.config::regconfig,
                    initcap(s[1 + g % 16] || s[1 + (g / 16) % 16] || s[1 + (g / 256) % 16]) || ' ' ||
                        (CASE l.locale WHEN 'en' THEN ae[1 + (hashint4(g + 1000003) & 65535) % 20] || ' ' || ne[1 + (hashint4(g + 2000003) & 65535) % 25]
                                       ELSE ad[1 + (hashint4(g + 1000003) & 65535) % 20] || ' ' || nd[1 + (hashint4(g + 2000003) & 65535) % 25] END),
                    CASE l.locale WHEN 'en' THEN 'A ' || ae[1 + (hashint4(g + 3000017) & 65535) % 20] || ' ' || ne[1 + (hashint4(g + 2000003) & 65535) % 25] || ' for every day.'
                                  ELSE 'Ein ' || ad[1 + (hashint4(g + 3000017) & 65535) % 20] || ' ' || nd[1 + (hashint4(g + 2000003) & 65535) % 25] || ' für jeden Tag.' END
             FROM generate_series(1, {products}) g,
                  (VALUES ('en', 'english'), ('de', 'german')) AS l(locale, config),
                  (SELECT {syllables} AS s, {adjectives_en} AS ae, {adjectives_de} AS ad,
                          {nouns_en} AS ne, {nouns_de} AS nd) AS words"
        ),
        format!(
            "INSERT INTO variants (id, product_id, position, sku, attributes, weight_grams, image_urls, stock_on_hand)
             SELECT md5('{run_id}-variant-' || g || '-' || k)::uuid, md5('{run_id}-product-' || g)::uuid, k,
                    'B{run_id}-' || g || '-' || k, jsonb_build_object('size', (ARRAY['S','M','L','XL'])[k + 1]),
                    200 + (g % 50) * 20, '{{}}', CASE WHEN (g * 4 + k) % 20 = 0 THEN 0 ELSE 1 + (g + k) % 40 END
             FROM generate_series(1, {products}) g, generate_series(0, {}) k",
            VARIANTS_PER_PRODUCT - 1
        ),
        format!(
            "INSERT INTO variant_prices (variant_id, currency, amount)
             SELECT md5('{run_id}-variant-' || g || '-' || k)::uuid, 'EUR', 5 + (hashint4(g) & 65535) % 49500 / 100.0 + k * 2.5
             FROM generate_series(1, {products}) g, generate_series(0, {}) k",
            VARIANTS_PER_PRODUCT - 1
        ),
        format!(
            "INSERT INTO variant_prices (variant_id, currency, amount)
             SELECT md5('{run_id}-variant-' || g || '-' || k)::uuid, 'USD', round((5 + (hashint4(g) & 65535) % 49500 / 100.0 + k * 2.5) * 1.1, 2)
             FROM generate_series(1, {products}) g, generate_series(0, {}) k
             WHERE g % 2 = 0",
            VARIANTS_PER_PRODUCT - 1
        ),
        // The next `agora serve` sees no fingerprint and rebuilds every listing price.
        "DELETE FROM catalog_state WHERE key = 'fx_rates'".to_owned(),
        // Sets the visibility map too, so searches test products from the index alone at once
        // (autovacuum would, later).
        "VACUUM ANALYZE".to_owned(),
    ];
    for statement in &statements {
        let step = std::time::Instant::now();
        client.batch_execute(statement).await.with_context(|| {
            format!(
                "seeding failed at: {}",
                statement.lines().next().unwrap_or_default()
            )
        })?;
        eprintln!(
            "  {:<60} {:>6.1} s",
            statement
                .split_whitespace()
                .take(4)
                .collect::<Vec<_>>()
                .join(" "),
            step.elapsed().as_secs_f64()
        );
    }
    println!(
        "seeded {products} products, {} variants, {SELLERS} sellers in {:.1} s (run id {run_id})",
        products * VARIANTS_PER_PRODUCT,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
