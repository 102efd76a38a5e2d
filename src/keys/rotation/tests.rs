//! The engine as a state machine: a model issuer, Secret and pods; a fault (an error before
//! or after a step's effect, or a kill before or after it) at every step of a rotation; then
//! the retry the resource would run. At every moment: no credential is revoked while pods
//! run it, and the issuer never holds more than two. After the retry: one live owned
//! credential, in the Secret, run by the pods.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// The step fails and has no effect.
    Before,
    /// The step takes effect and its answer is lost (a create) or replaced by an error.
    After,
    /// The process dies before the step.
    KillBefore,
    /// The process dies after the step took effect.
    KillAfter,
}

#[derive(Debug, PartialEq)]
enum FakeError {
    Failed,
    Lost,
    Killed,
}

#[derive(Clone, Debug)]
struct Cred {
    owned: bool,
    used: bool,
}

#[derive(Default)]
struct World {
    next_id: u32,
    live: BTreeMap<u32, Cred>,
    secret: Option<u32>,
    pods: Option<u32>,
    /// A rollout under way: the pods switch to it at the next look, not at once.
    rolling: Option<u32>,
    recorded: Option<u32>,
    steps: usize,
    fault: Option<(usize, Fault)>,
    violations: Vec<String>,
}

impl World {
    fn new() -> Self {
        let mut w = World {
            next_id: 2,
            ..World::default()
        };
        w.live.insert(
            1,
            Cred {
                owned: true,
                used: true,
            },
        );
        w.secret = Some(1);
        w.pods = Some(1);
        w.recorded = Some(1);
        w
    }

    /// Counts a step and says which fault, if any, strikes it.
    fn step(&mut self) -> Option<Fault> {
        self.steps += 1;
        match self.fault {
            Some((at, f)) if at == self.steps => Some(f),
            _ => None,
        }
    }
}

struct Model(Mutex<World>);

impl Model {
    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().expect("lock")
    }

    /// Runs one step: `effect` happens unless the fault strikes before it.
    fn run<T>(
        &self,
        lost: FakeError,
        effect: impl FnOnce(&mut World) -> Result<T, FakeError>,
    ) -> Result<T, FakeError> {
        let mut w = self.world();
        match w.step() {
            Some(Fault::Before) => Err(FakeError::Failed),
            Some(Fault::KillBefore) => Err(FakeError::Killed),
            Some(Fault::After) => effect(&mut w).and(Err(lost)),
            Some(Fault::KillAfter) => effect(&mut w).and(Err(FakeError::Killed)),
            None => effect(&mut w),
        }
    }
}

#[async_trait]
impl Credentials for Model {
    type Id = u32;
    type New = u32;
    type Error = FakeError;

    async fn observe(&self) -> Result<View<u32>, FakeError> {
        self.run(FakeError::Failed, |w| {
            let current = w.secret.filter(|id| w.live.contains_key(id));
            let live = w
                .live
                .iter()
                .map(|(id, c)| Live {
                    id: *id,
                    owned: c.owned || Some(*id) == current || Some(*id) == w.recorded,
                    used: Some(c.used),
                    last_used: c.used.then(|| format!("t{id}")),
                    label: id.to_string(),
                })
                .collect();
            Ok(View {
                live,
                current,
                recorded: w.recorded,
            })
        })
    }

    async fn create(&self) -> Result<u32, FakeError> {
        self.run(FakeError::Lost, |w| {
            if w.live.len() >= 2 {
                w.violations.push("a third credential was asked for".into());
                return Err(FakeError::Failed);
            }
            let id = w.next_id;
            w.next_id += 1;
            w.live.insert(
                id,
                Cred {
                    owned: true,
                    used: false,
                },
            );
            Ok(id)
        })
    }

    fn outcome_unknown(&self, error: &FakeError) -> bool {
        *error == FakeError::Lost
    }

    fn id_of(&self, new: &u32) -> u32 {
        *new
    }

    async fn deliver(&self, new: &u32) -> Result<(), FakeError> {
        self.run(FakeError::Failed, |w| {
            w.secret = Some(*new);
            Ok(())
        })
    }

    async fn roll_out(&self, current: &u32) -> Result<(), FakeError> {
        self.run(FakeError::Failed, |w| {
            if w.secret == Some(*current) && w.pods != Some(*current) {
                w.rolling = Some(*current);
            }
            Ok(())
        })
    }

    async fn in_use(&self, id: &u32) -> Result<bool, FakeError> {
        self.run(FakeError::Failed, |w| {
            if w.rolling.take_if(|r| r == id).is_some() {
                // The new pods come up now; they have not used it yet.
                w.pods = Some(*id);
                return Ok(false);
            }
            let running = w.pods == Some(*id) && w.live.contains_key(id);
            if let Some(c) = w.live.get_mut(id) {
                c.used |= running;
            }
            Ok(running)
        })
    }

    async fn revoke(&self, id: &u32) -> Result<(), FakeError> {
        self.run(FakeError::Failed, |w| {
            if w.pods == Some(*id) {
                w.violations
                    .push(format!("revoked {id} while the pods run it"));
            }
            w.live.remove(id);
            Ok(())
        })
    }
}

const POLICY: Policy = Policy {
    confirm: ConfirmPolicy {
        timeout: Duration::from_secs(5),
        required: true,
    },
    capacity: Some(2),
    displace_foreign: false,
};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// One run as the resource makes it, saving what it would save: the converged credential,
/// the partial progress of a failed update, nothing after a kill.
fn apply(model: &Model, goal: Goal<u32>) -> Result<u32, RotationError<u32, FakeError>> {
    let outcome = block_on(converge(model, goal, POLICY, &CancellationToken::new()));
    let mut w = model.world();
    match outcome {
        Ok(done) => {
            w.recorded = Some(done.current);
            Ok(done.current)
        }
        Err(Failure {
            error: RotationError::Step(FakeError::Killed),
            ..
        }) => Err(RotationError::Step(FakeError::Killed)),
        Err(failure) => {
            if let Some(current) = failure.current {
                w.recorded = Some(current);
            }
            Err(failure.error)
        }
    }
}

fn assert_converged(model: &Model, context: &str) {
    let w = model.world();
    assert!(w.violations.is_empty(), "{context}: {:?}", w.violations);
    let owned: Vec<u32> = w
        .live
        .iter()
        .filter(|(_, c)| c.owned)
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(owned.len(), 1, "{context}: live owned {owned:?}");
    assert_eq!(w.secret, Some(owned[0]), "{context}: the Secret holds it");
    assert_eq!(w.pods, Some(owned[0]), "{context}: the pods run it");
    assert_eq!(w.recorded, Some(owned[0]), "{context}: state names it");
}

fn clean_rotation_steps() -> usize {
    let model = Model(Mutex::new(World::new()));
    apply(&model, Goal::Fresh { replacing: Some(1) }).expect("rotates");
    assert_converged(&model, "clean");
    model.world().steps
}

#[test]
fn a_clean_rotation_replaces_the_credential_once() {
    let model = Model(Mutex::new(World::new()));
    let new = apply(&model, Goal::Fresh { replacing: Some(1) }).expect("rotates");
    assert_eq!(new, 2);
    assert_converged(&model, "clean");
    // Nothing left to do: finishing again creates nothing.
    let again = apply(&model, Goal::Finish).expect("finishes");
    assert_eq!(again, 2);
    assert_eq!(model.world().next_id, 3, "no further credential");
}

#[test]
fn every_fault_at_every_step_converges_on_retry() {
    let total = clean_rotation_steps();
    for at in 1..=total {
        for fault in [
            Fault::Before,
            Fault::After,
            Fault::KillBefore,
            Fault::KillAfter,
        ] {
            let context = format!("{fault:?} at step {at}");
            let mut world = World::new();
            world.fault = Some((at, fault));
            let model = Model(Mutex::new(world));
            let goal = Goal::Fresh { replacing: Some(1) };
            let first = apply(&model, goal.clone());
            // The retry the resource makes: after a kill nothing was saved and the plan asks
            // for the same rotation; after a saved failure the plan finishes it.
            let retry = match first {
                Ok(_) => Goal::Finish,
                Err(RotationError::Step(FakeError::Killed)) => goal,
                Err(_) => Goal::Finish,
            };
            model.world().fault = None;
            apply(&model, retry).unwrap_or_else(|e| panic!("{context}: retry failed: {e:?}"));
            assert_converged(&model, &context);
            assert!(
                model.world().next_id <= 4,
                "{context}: at most one extra credential created"
            );
        }
    }
}

#[test]
fn a_lost_create_answer_is_swept_and_created_again_in_the_same_run() {
    let mut world = World::new();
    // Step 1 observes, step 2 creates.
    world.fault = Some((2, Fault::After));
    let model = Model(Mutex::new(world));
    let new = apply(&model, Goal::Fresh { replacing: Some(1) }).expect("rotates");
    assert_eq!(new, 3, "the lost credential 2 was not adopted");
    assert_converged(&model, "lost answer");
}

#[test]
fn foreign_credentials_are_displaced_only_with_the_opt_in() {
    let foreign = |w: &mut World| {
        w.live.clear();
        for id in [10, 11] {
            w.live.insert(
                id,
                Cred {
                    owned: false,
                    used: true,
                },
            );
        }
        w.secret = None;
        w.pods = None;
        w.recorded = None;
    };
    let mut world = World::new();
    foreign(&mut world);
    let model = Model(Mutex::new(world));
    let refused = apply(&model, Goal::Fresh { replacing: None }).expect_err("no room");
    let RotationError::NoRoom { in_the_way } = refused else {
        panic!("{refused:?}");
    };
    assert_eq!(in_the_way.len(), 2);
    assert_eq!(model.world().live.len(), 2, "nothing revoked");

    let mut world = World::new();
    foreign(&mut world);
    let model = Model(Mutex::new(world));
    let policy = Policy {
        displace_foreign: true,
        ..POLICY
    };
    let done = block_on(converge(
        &model,
        Goal::Fresh { replacing: None },
        policy,
        &CancellationToken::new(),
    ))
    .expect("displaces");
    assert_eq!(done.displaced.len(), 1, "one foreign credential made room");
    assert_eq!(model.world().live.len(), 2, "the other foreign one stays");
}

#[test]
fn an_unconfirmed_successor_keeps_the_old_credential() {
    let model = Model(Mutex::new(World::new()));
    // Pods that never pick anything up: roll-out does nothing.
    let stuck = Policy {
        confirm: ConfirmPolicy {
            timeout: Duration::from_millis(300),
            required: true,
        },
        ..POLICY
    };
    model.world().secret = Some(1);
    let outcome = block_on(async {
        let pods = Stuck(&model);
        converge(
            &pods,
            Goal::Fresh { replacing: Some(1) },
            stuck,
            &CancellationToken::new(),
        )
        .await
    });
    let failure = outcome.expect_err("not confirmed");
    assert!(matches!(failure.error, RotationError::NotConfirmed(_)));
    assert_eq!(failure.current, Some(2), "the Secret holds the new one");
    let w = model.world();
    assert!(w.live.contains_key(&1), "the old one is kept");
    assert!(w.violations.is_empty());
}

/// The model, with pods that never restart.
struct Stuck<'a>(&'a Model);

#[async_trait]
impl Credentials for Stuck<'_> {
    type Id = u32;
    type New = u32;
    type Error = FakeError;
    async fn observe(&self) -> Result<View<u32>, FakeError> {
        self.0.observe().await
    }
    async fn create(&self) -> Result<u32, FakeError> {
        self.0.create().await
    }
    fn outcome_unknown(&self, error: &FakeError) -> bool {
        self.0.outcome_unknown(error)
    }
    fn id_of(&self, new: &u32) -> u32 {
        *new
    }
    async fn deliver(&self, new: &u32) -> Result<(), FakeError> {
        self.0.deliver(new).await
    }
    async fn roll_out(&self, _: &u32) -> Result<(), FakeError> {
        Ok(())
    }
    async fn in_use(&self, id: &u32) -> Result<bool, FakeError> {
        self.0.in_use(id).await
    }
    async fn revoke(&self, id: &u32) -> Result<(), FakeError> {
        self.0.revoke(id).await
    }
}

#[test]
fn cancellation_stops_waiting_and_keeps_the_old_credential() {
    let model = Model(Mutex::new(World::new()));
    let stop = CancellationToken::new();
    stop.cancel();
    let outcome = block_on(converge(
        &Stuck(&model),
        Goal::Fresh { replacing: Some(1) },
        POLICY,
        &stop,
    ));
    let failure = outcome.expect_err("cancelled");
    assert!(matches!(failure.error, RotationError::Cancelled));
    assert!(model.world().live.contains_key(&1));
}
