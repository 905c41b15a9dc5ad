//! The commit group that writes checkouts: jobs queued together share one transaction, and a
//! failing job costs its batch-mates nothing.

use agora::{
    commit_group::{CommitGroup, GroupJob},
    configuration::CheckoutSettings,
    db::PreparedClient,
    http::error::{ApiError, Code},
};
use futures_util::future::{join_all, LocalBoxFuture};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

/// Writes one probe row and answers the id of the transaction that wrote it, or then fails.
struct WriteProbe {
    id: i32,
    cart: Uuid,
    ending: Ending,
}

#[derive(Clone, Copy, PartialEq)]
enum Ending {
    Succeed,
    /// Refused after writing, as a business rule would.
    Refuse,
    /// Panics after writing, as a bug would.
    Panic,
}

impl GroupJob for WriteProbe {
    type Output = i64;
    type Error = ApiError;

    fn batch_key(&self) -> Uuid {
        self.cart
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<i64, ApiError>> {
        Box::pin(async move {
            let row = tx
                .query_one(
                    "INSERT INTO commit_probe (id) VALUES ($1) RETURNING txid_current()",
                    &[&self.id],
                )
                .await?;
            if self.ending == Ending::Panic {
                panic!("probe {} panicked on purpose", self.id);
            }
            if self.ending == Ending::Refuse {
                return Err(ApiError::Conflict {
                    code: Code::InvalidTransition,
                    message: format!("probe {} refused", self.id),
                    field: None,
                });
            }
            Ok(row.get(0))
        })
    }
}

/// A probe of a kind that writes set-based: all of a batch's probes with one statement.
struct SetProbe {
    id: i32,
    cart: Uuid,
    refuse: bool,
}

/// Which transaction wrote a set probe, and how many probes were handed over with it.
type SetWrite = (i64, usize);

impl GroupJob for SetProbe {
    type Output = SetWrite;
    type Error = ApiError;

    fn batch_key(&self) -> Uuid {
        self.cart
    }

    fn run<'a>(
        &'a self,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Result<SetWrite, ApiError>> {
        Box::pin(async move { Self::run_together(vec![self], tx).await.remove(0) })
    }

    fn run_together<'a>(
        jobs: Vec<&'a Self>,
        tx: &'a deadpool_postgres::Transaction<'_>,
    ) -> LocalBoxFuture<'a, Vec<Result<SetWrite, ApiError>>> {
        Box::pin(async move {
            let ids: Vec<i32> = jobs.iter().map(|job| job.id).collect();
            let transaction: i64 = tx
                .query_one(
                    "WITH w AS (INSERT INTO commit_probe SELECT unnest($1::int4[]))
                     SELECT txid_current()",
                    &[&ids],
                )
                .await
                .expect("set probes written")
                .get(0);
            jobs.iter()
                .map(|job| {
                    if job.refuse {
                        Err(ApiError::Conflict {
                            code: Code::InvalidTransition,
                            message: format!("probe {} refused", job.id),
                            field: None,
                        })
                    } else {
                        Ok((transaction, jobs.len()))
                    }
                })
                .collect()
        })
    }
}

async fn group_on(app: &TestApp, writers: usize) -> (CommitGroup, deadpool_postgres::Pool) {
    let pool = agora::db::build_pool(&app.settings.database).expect("pool");
    pool.get()
        .await
        .expect("connection")
        .batch_execute("CREATE TABLE commit_probe (id int4 PRIMARY KEY)")
        .await
        .expect("probe table");
    let group = CommitGroup::start(
        pool.clone(),
        &CheckoutSettings {
            commit_writers: writers,
            commit_batch_max: 64,
            commit_queue: 64,
        },
    );
    (group, pool)
}

async fn probes(pool: &deadpool_postgres::Pool) -> Vec<i32> {
    pool.get()
        .await
        .expect("connection")
        .query("SELECT id FROM commit_probe ORDER BY id", &[])
        .await
        .expect("probes")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Queues a probe for each id at once (each with its cart and ending) and waits for every
/// answer, in id order.
async fn write_probes(
    group: &CommitGroup,
    ids: std::ops::Range<i32>,
    cart: impl Fn(i32) -> Uuid,
    ending: impl Fn(i32) -> Ending,
) -> Vec<Result<i64, ApiError>> {
    join_all(ids.map(|id| {
        group.run(WriteProbe {
            id,
            cart: cart(id),
            ending: ending(id),
        })
    }))
    .await
}

/// Probes `0..count`, all with carts of their own, where only `odd_one` ends as `ending`.
async fn write_probes_with_one(
    group: &CommitGroup,
    count: i32,
    odd_one: i32,
    ending: Ending,
) -> Vec<Result<i64, ApiError>> {
    write_probes(
        group,
        0..count,
        |_| Uuid::new_v4(),
        |id| {
            if id == odd_one {
                ending
            } else {
                Ending::Succeed
            }
        },
    )
    .await
}

/// Every answer is a write, but the one at `failed`, which failed with `code`.
fn assert_only_failed(answers: &[Result<i64, ApiError>], failed: usize, code: &str) {
    for (id, answer) in answers.iter().enumerate() {
        match answer {
            Err(error) if id == failed => assert_eq!(error.code(), code),
            Ok(_) if id == failed => panic!("probe {id} should have failed with {code}"),
            _ => assert!(answer.is_ok(), "probe {id}: {:?}", answer.as_ref().err()),
        }
    }
}

#[actix_web::test]
async fn writes_queued_together_share_one_transaction_and_all_commit() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;

    let answers = write_probes(&group, 0..20, |_| Uuid::new_v4(), |_| Ending::Succeed).await;

    let transactions: Vec<i64> = answers
        .into_iter()
        .map(|answer| answer.expect("every probe written"))
        .collect();
    // All 20 are queued before the writer first runs, so they share one transaction (two, should
    // the writer take the first before the rest are queued).
    let mut distinct = transactions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() <= 2, "transactions: {transactions:?}");
    assert_eq!(probes(&pool).await, (0..20).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_job_that_fails_in_a_batch_keeps_none_of_its_writes_and_its_batch_mates_keep_theirs() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;

    let answers = write_probes_with_one(&group, 20, 7, Ending::Refuse).await;

    assert_only_failed(&answers, 7, "invalid_transition");
    let expected: Vec<i32> = (0..20).filter(|id| *id != 7).collect();
    assert_eq!(probes(&pool).await, expected);
}

#[actix_web::test]
async fn two_writes_for_one_cart_never_share_a_transaction() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;
    let cart = Uuid::new_v4();

    // Probes 0–2 are one cart's, 3–5 another's each.
    let answers = write_probes(
        &group,
        0..6,
        |id| if id < 3 { cart } else { Uuid::new_v4() },
        |_| Ending::Succeed,
    )
    .await;

    let transactions: Vec<i64> = answers
        .into_iter()
        .map(|answer| answer.expect("every probe written"))
        .collect();
    assert_ne!(transactions[0], transactions[1]);
    assert_ne!(transactions[1], transactions[2]);
    assert_ne!(transactions[0], transactions[2]);
    assert_eq!(probes(&pool).await, (0..6).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_write_held_back_for_its_cart_is_written_while_the_other_writer_waits_for_work() {
    let app = spawn_app().await;
    // Two writers: while one writes the cart's first probe, the other waits for new jobs; the
    // second probe, held back from the first's batch, must not wait for one.
    let (group, pool) = group_on(&app, 2).await;
    let cart = Uuid::new_v4();

    let answers = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        write_probes(&group, 0..2, |_| cart, |_| Ending::Succeed),
    )
    .await
    .expect("both probes answered without any other job arriving");

    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(probes(&pool).await, vec![0, 1]);
}

#[actix_web::test]
async fn a_job_that_panics_fails_alone_and_the_writers_go_on() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;

    let mut answers = write_probes_with_one(&group, 10, 3, Ending::Panic).await;
    let later = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        write_probes(&group, 10..12, |_| Uuid::new_v4(), |_| Ending::Succeed),
    )
    .await
    .expect("the writer still writes after a job panicked");

    answers.extend(later);
    assert_only_failed(&answers, 3, "internal_error");
    let expected: Vec<i32> = (0..12).filter(|id| *id != 3).collect();
    assert_eq!(probes(&pool).await, expected);
}

#[actix_web::test]
async fn jobs_of_a_set_based_kind_are_handed_over_together_beside_jobs_of_other_kinds() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;

    let set_probes = join_all((0..10).map(|id| {
        group.run(SetProbe {
            id,
            cart: Uuid::new_v4(),
            refuse: false,
        })
    }));
    let (set_answers, other_answers) = futures_util::future::join(
        set_probes,
        write_probes(&group, 10..15, |_| Uuid::new_v4(), |_| Ending::Succeed),
    )
    .await;

    let written: Vec<SetWrite> = set_answers
        .into_iter()
        .map(|answer| answer.expect("every set probe written"))
        .collect();
    // Queued before the writer first runs: one batch (two, should the writer take the first
    // alone), and one call for all of a batch's set probes.
    let handed_over: usize = written.iter().map(|(_, count)| *count).max().unwrap_or(0);
    assert!(
        handed_over >= 9,
        "set probes handed over together: {written:?}"
    );
    let mut transactions: Vec<i64> = written
        .iter()
        .map(|(transaction, _)| *transaction)
        .collect();
    transactions.extend(
        other_answers
            .into_iter()
            .map(|a| a.expect("other probe written")),
    );
    transactions.sort_unstable();
    transactions.dedup();
    assert!(transactions.len() <= 2, "transactions: {transactions:?}");
    assert_eq!(probes(&pool).await, (0..15).collect::<Vec<_>>());
}

#[actix_web::test]
async fn a_set_based_batch_with_a_refused_job_is_written_again_job_by_job() {
    let app = spawn_app().await;
    let (group, pool) = group_on(&app, 1).await;

    let answers = join_all((0..10).map(|id| {
        group.run(SetProbe {
            id,
            cart: Uuid::new_v4(),
            refuse: id == 4,
        })
    }))
    .await;

    for (id, answer) in answers.iter().enumerate() {
        match answer {
            Err(error) => assert!(
                id == 4 && error.code() == "invalid_transition",
                "{id}: {error:?}"
            ),
            // Written alone (or, for a first job the writer took before the rest arrived, in a
            // batch of its own).
            Ok((_, handed_over)) => assert_eq!(*handed_over, 1, "probe {id}"),
        }
    }
    assert!(answers[4].is_err());
    let expected: Vec<i32> = (0..10).filter(|id| *id != 4).collect();
    assert_eq!(probes(&pool).await, expected);
}
