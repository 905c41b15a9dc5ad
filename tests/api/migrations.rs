use secrecy::SecretString;

use crate::helpers::{drop_database, fresh_database, test_settings};

#[actix_web::test]
async fn two_processes_migrating_one_empty_database_at_once_both_succeed_once() {
    let mut settings = test_settings();
    let (name, url) = fresh_database(&settings).await;
    settings.database.url = SecretString::from(url);

    let (first, second) = futures_util::join!(
        agora::db::migrate(&settings.database),
        agora::db::migrate(&settings.database)
    );
    let applied = first.expect("first migrator") + second.expect("second migrator");
    let again = agora::db::migrate(&settings.database)
        .await
        .expect("third run");
    drop_database(&settings, &name).await;

    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations dir")
        .count();
    assert_eq!(
        applied, files,
        "each migration applied exactly once in total"
    );
    assert_eq!(again, 0);
}
