//! The drive loop: polls a core machine, runs its commands concurrently, feeds back replies and
//! deadlines. No protocol decision is made here.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use redlock_core::{
    Acquire, Command, CommandForm, CommandKind, Error as CoreError, Extend, Input, InstanceStatus,
    Instant, Output, Release, Report, RequestId, Resources, Token,
};

use redis::aio::MultiplexedConnection;

use crate::connection::{run_on, to_redis, Answer, Instance};
use crate::error::InstanceResult;
use crate::handoff::Subscription;
use crate::observe::{Observation, ObservedReply, Observer, Operation};
use crate::rng::SystemRng;
use crate::Inner;

/// The three core machines, seen alike by the driver.
pub(crate) trait Machine: Send + 'static {
    type Outcome: Clone + Send;
    /// Which operation this is, for observers.
    const OPERATION: Operation;
    fn handle(&mut self, input: Input<'_>) -> Result<(), CoreError>;
    fn poll(&mut self) -> Output<'_, Self::Outcome>;
    /// Stops the operation early (dropped future); only acquire has anything to undo.
    fn cancel(&mut self, _now: Instant) {}
    /// For fast handoff: the keys, while the machine waits to retry after a failed attempt.
    fn waiting_to_retry(&self) -> Option<&Resources> {
        None
    }
    /// For fast handoff: a release was announced; the core may move its retry up.
    fn wake(&mut self, _now: Instant, _spread: Duration) -> Result<(), CoreError> {
        Ok(())
    }
    /// For observers: the running attempt (1-based) and whether the machine is still deciding
    /// it; `None` for machines without attempts.
    fn attempt(&self) -> Option<(u32, bool)> {
        None
    }
    /// For observers: the `t1` of the running attempt.
    fn attempt_t1(&self) -> Option<Instant> {
        None
    }
    /// For observers: per-instance results of the running attempt.
    fn attempt_report(&self) -> Option<Report> {
        None
    }
    /// Per-instance results so far (of the running attempt, or of the outcome once done), to
    /// find the instances that timed out.
    fn statuses(&self) -> Option<Report>;
}

impl Machine for Acquire<SystemRng> {
    type Outcome = redlock_core::AcquireOutcome;
    const OPERATION: Operation = Operation::Acquire;
    fn handle(&mut self, input: Input<'_>) -> Result<(), CoreError> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Output<'_, Self::Outcome> {
        self.poll_output()
    }
    fn cancel(&mut self, now: Instant) {
        // A clock error here only means the machine already failed closed.
        let _ = Acquire::cancel(self, now);
    }
    fn waiting_to_retry(&self) -> Option<&Resources> {
        self.is_waiting_to_retry().then(|| self.resources())
    }
    fn wake(&mut self, now: Instant, spread: Duration) -> Result<(), CoreError> {
        Acquire::wake(self, now, spread).map(|_| ())
    }
    fn attempt(&self) -> Option<(u32, bool)> {
        Some((Acquire::attempt(self), self.outcome().is_none()))
    }
    fn attempt_t1(&self) -> Option<Instant> {
        Some(self.attempt_started())
    }
    fn attempt_report(&self) -> Option<Report> {
        Some(self.report())
    }
    fn statuses(&self) -> Option<Report> {
        Some(self.report())
    }
}

impl Machine for Extend {
    type Outcome = redlock_core::ExtendOutcome;
    const OPERATION: Operation = Operation::Extend;
    fn statuses(&self) -> Option<Report> {
        self.outcome().map(|o| *o.report())
    }
    fn handle(&mut self, input: Input<'_>) -> Result<(), CoreError> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Output<'_, Self::Outcome> {
        self.poll_output()
    }
}

impl Machine for Release {
    type Outcome = redlock_core::ReleaseOutcome;
    const OPERATION: Operation = Operation::Release;
    fn statuses(&self) -> Option<Report> {
        self.outcome().map(|o| o.report)
    }
    fn handle(&mut self, input: Input<'_>) -> Result<(), CoreError> {
        self.handle_input(input)
    }
    fn poll(&mut self) -> Output<'_, Self::Outcome> {
        self.poll_output()
    }
}

/// What a command in flight resolves to.
pub(crate) struct Sent {
    instance: usize,
    request: RequestId,
    answer: Answer,
    /// It was a release (which must reach Redis even if the driver stops polling).
    is_release: bool,
    /// The generation of the connection it broke, if it did: the receiver invalidates it.
    broken: Option<u64>,
}

impl Sent {
    /// Forgets the connection this command found broken, so the next command reconnects.
    fn invalidate_broken(&self, inner: &Inner) {
        if let (Some(generation), Some(instance)) =
            (self.broken, inner.instances.get(self.instance))
        {
            instance.invalidate(generation);
        }
    }
}

/// Where a command goes.
pub(crate) enum Route {
    /// Over the instance's current connection (the common case: no shared state touched
    /// while the command is in flight, so tasks on different threads do not contend).
    Connected {
        generation: u64,
        conn: MultiplexedConnection,
    },
    /// There is no connection yet: connect first.
    Connect(Arc<Inner>),
}

impl Route {
    fn to(inner: &Arc<Inner>, instance: usize) -> Self {
        match inner.instances.get(instance).and_then(Instance::cached) {
            Some((generation, conn)) => Self::Connected { generation, conn },
            None => Self::Connect(Arc::clone(inner)),
        }
    }
}

/// Sends one command to instance `instance`. The driver keeps one such future per command in
/// flight, unboxed: its type is a parameter of [`Driver`], fixed by [`Driver::new`].
async fn send(
    route: Route,
    instance: usize,
    request: RequestId,
    cmd: Arc<redis::Cmd>,
    is_release: bool,
) -> Sent {
    let (answer, broken) = match route {
        Route::Connected {
            generation,
            mut conn,
        } => {
            let (answer, broken) = run_on(&mut conn, &cmd).await;
            (answer, broken.then_some(generation))
        }
        // Boxed: connecting is rare, and its future (the whole connection handshake) is
        // several times the size of the rest, which every command in flight would carry.
        Route::Connect(inner) => {
            Box::pin(async move {
                match inner.instances.get(instance) {
                    Some(i) => (i.run(&cmd).await, None),
                    None => (Answer::Transport("no such instance".into()), None),
                }
            })
            .await
        }
    };
    Sent {
        instance,
        request,
        answer,
        is_release,
        broken,
    }
}

/// The type of [`send`], as a [`Driver`] stores it.
type SendFn<F> = fn(Route, usize, RequestId, Arc<redis::Cmd>, bool) -> F;

/// What makes two commands of one machine the same bytes (its resources never change).
#[derive(Clone, Copy, PartialEq, Eq)]
struct CommandKey {
    kind: CommandKind,
    form: CommandForm,
    value: Token,
    ttl_ms: u64,
    script: Option<&'static str>,
}

impl CommandKey {
    fn of(command: &Command<'_>) -> Self {
        Self {
            kind: command.kind(),
            form: command.form(),
            value: *command.value(),
            ttl_ms: command.ttl_ms(),
            script: command.script().map(|s| s.sha1),
        }
    }
}

/// How far apart waiters woken by the same release retry, against a thundering herd. A waiter's
/// first wake-up retries at once (the waiters of one process are woken one at a time, so only
/// waiters of other processes can collide); once a woken attempt has lost, later ones spread.
const HANDOFF_SPREAD: Duration = Duration::from_millis(2);

/// What a driver remembers to tell an [`Observer`] (only when one is set).
pub(crate) struct Observed {
    observer: Arc<dyn Observer>,
    lock: u64,
    /// The values of the attempts seen so far, with their attempt numbers.
    attempts: Vec<(Token, u32)>,
    /// Commands in flight: instance, request, attempt, kind.
    requests: Vec<(usize, RequestId, Option<u32>, CommandKind)>,
    /// The attempt whose timeouts were reported, and the instances reported (bit set).
    timeouts: (u32, u32),
}

impl Observed {
    pub(crate) fn new(observer: Arc<dyn Observer>, lock: u64) -> Self {
        Self {
            observer,
            lock,
            attempts: Vec::new(),
            requests: Vec::new(),
            timeouts: (0, 0),
        }
    }

    fn emit(&self, observation: &Observation<'_>) {
        self.observer.observe(observation);
    }

    /// A command is being sent.
    fn sent<M: Machine>(
        &mut self,
        machine: &M,
        (instance, request, kind, value): (usize, RequestId, CommandKind, Token),
        at: Instant,
    ) {
        let attempt = match (kind, machine.attempt()) {
            (CommandKind::Acquire, Some((attempt, _))) => {
                if !self.attempts.iter().any(|(v, _)| *v == value) {
                    self.attempts.push((value, attempt));
                    self.emit(&Observation::AttemptStarted {
                        lock: self.lock,
                        attempt,
                        value: value.as_str(),
                        t1: machine.attempt_t1().unwrap_or(at),
                        at,
                    });
                }
                Some(attempt)
            }
            (_, Some(_)) => self
                .attempts
                .iter()
                .find(|(v, _)| *v == value)
                .map(|(_, a)| *a),
            _ => None,
        };
        self.requests.push((instance, request, attempt, kind));
        self.emit(&Observation::CommandSent {
            lock: self.lock,
            operation: M::OPERATION,
            command: kind,
            attempt,
            instance,
            value: value.as_str(),
            at,
        });
    }

    /// A reply is about to be fed to the machine.
    fn reply<M: Machine>(
        &mut self,
        machine: &M,
        (instance, request, answer): (usize, RequestId, &Answer),
        at: Instant,
    ) {
        let Some(pos) = self
            .requests
            .iter()
            .position(|&(i, r, _, _)| i == instance && r == request)
        else {
            return;
        };
        let (_, _, attempt, command) = self.requests.swap_remove(pos);
        let current = match (machine.attempt(), attempt) {
            (Some((running, deciding)), Some(a)) => deciding && running == a,
            (Some(_), None) => false,
            (None, _) => true,
        };
        let reply = match answer {
            Answer::Ok => ObservedReply::Ok,
            Answer::Nil => ObservedReply::Nil,
            Answer::Integer(i) => ObservedReply::Integer(*i),
            Answer::ServerError(e) => ObservedReply::Error(e),
            Answer::Other => ObservedReply::Other,
            Answer::Transport(e) => ObservedReply::Transport(e),
        };
        self.emit(&Observation::ReplyReceived {
            lock: self.lock,
            operation: M::OPERATION,
            command,
            attempt,
            instance,
            reply,
            current,
            at,
        });
    }

    /// After an input: reports the instances the running attempt newly gave up on.
    fn after_input<M: Machine>(&mut self, machine: &M, at: Instant) {
        let (Some((attempt, _)), Some(report)) = (machine.attempt(), machine.attempt_report())
        else {
            return;
        };
        if self.timeouts.0 != attempt {
            self.timeouts = (attempt, 0);
        }
        for (instance, status) in report.as_slice().iter().enumerate() {
            let bit = 1u32 << (instance % 32);
            if *status == InstanceStatus::TimedOut && self.timeouts.1 & bit == 0 {
                self.timeouts.1 |= bit;
                self.emit(&Observation::TimedOut {
                    lock: self.lock,
                    attempt,
                    instance,
                    at,
                });
            }
        }
    }
}

/// Runs one machine to its outcome. Dropping it before the end cancels the machine and finishes
/// its cleanup in the background.
pub(crate) struct Driver<'a, M: Machine, F: Future<Output = Sent> + Send + 'static> {
    /// Borrowed, not cloned: tasks on every thread share this `Arc`, and bumping its count on
    /// each operation makes the threads fight over its cache line.
    inner: &'a Arc<Inner>,
    machine: Option<M>,
    /// Sends a command (always [`send`]; stored so the background cleanup can keep sending).
    send: SendFn<F>,
    inflight: FuturesUnordered<F>,
    /// Releases in flight: they must reach Redis even if the driver stops polling.
    releases_inflight: usize,
    /// The machine reached its outcome.
    done: bool,
    /// Last error text per instance, for reports (allocated at the first error).
    details: Vec<Option<String>>,
    /// The observer's view, when an observer is set.
    observed: Option<Observed>,
    /// The clock reading of the last input fed (the decision time of a finished machine).
    last_input: Option<Instant>,
    /// Fast handoff: subscribed to the keys' release announcements since the first failed
    /// attempt, until the machine is done.
    waiter: Option<Subscription>,
    /// Fast handoff: the waiter has been woken before (its next wake-ups spread).
    woken: bool,
    /// Instances whose connection was dropped after a timeout, for the attempt in the high
    /// bits (so each timeout condemns a connection once).
    condemned: (u32, u32),
    /// The last command built: a round sends the same bytes to every instance, so it is built
    /// once and shared.
    last_command: Option<(CommandKey, Arc<redis::Cmd>)>,
}

impl<M: Machine> Driver<'_, M, std::future::Pending<Sent>> {
    /// A driver for `machine`, whose commands go out through [`send`].
    pub(crate) fn new(
        inner: &Arc<Inner>,
        machine: M,
    ) -> Driver<'_, M, impl Future<Output = Sent> + Send + 'static> {
        Driver {
            inner,
            machine: Some(machine),
            send,
            inflight: FuturesUnordered::new(),
            releases_inflight: 0,
            done: false,
            details: Vec::new(),
            observed: None,
            last_input: None,
            waiter: None,
            woken: false,
            condemned: (0, 0),
            last_command: None,
        }
    }
}

impl<M: Machine, F: Future<Output = Sent> + Send + 'static> Driver<'_, M, F> {
    /// Reports this operation of lock `lock` to the manager's observer, if it has one.
    pub(crate) fn observed(mut self, lock: u64) -> Self {
        self.observed = self
            .inner
            .observer
            .as_ref()
            .map(|o| Observed::new(Arc::clone(o), lock));
        self
    }

    /// The machine (until the driver is dropped).
    pub(crate) fn machine(&self) -> Option<&M> {
        self.machine.as_ref()
    }

    /// The clock reading of the last input fed to the machine.
    pub(crate) fn last_input(&self) -> Option<Instant> {
        self.last_input
    }

    /// Drives the machine until it is done.
    pub(crate) async fn run(&mut self) -> M::Outcome {
        // One timer for the whole operation, moved only when the machine's deadline moves.
        let sleep = tokio::time::sleep_until(tokio::time::Instant::now());
        tokio::pin!(sleep);
        loop {
            let Some(machine) = self.machine.as_mut() else {
                // Unreachable: the machine is only taken by `Drop`.
                std::future::pending::<()>().await;
                continue;
            };
            let until = loop {
                match machine.poll() {
                    Output::Send(tx) => {
                        let kind = tx.command.kind();
                        let key = CommandKey::of(&tx.command);
                        let cmd = match &self.last_command {
                            Some((k, cmd)) if *k == key => Arc::clone(cmd),
                            _ => {
                                let cmd = Arc::new(to_redis(&tx.command));
                                self.last_command = Some((key, Arc::clone(&cmd)));
                                cmd
                            }
                        };
                        let (instance, request) = (tx.instance, tx.request);
                        let value = *tx.command.value();
                        if let Some(obs) = self.observed.as_mut() {
                            let now = self.inner.clock.now();
                            obs.sent(&*machine, (instance, request, kind, value), now);
                        }
                        let is_release = kind == CommandKind::Release;
                        if is_release {
                            self.releases_inflight += 1;
                        }
                        self.inflight.push((self.send)(
                            Route::to(self.inner, instance),
                            instance,
                            request,
                            cmd,
                            is_release,
                        ));
                    }
                    Output::Wait { until } => break until,
                    Output::Done(outcome) => {
                        let outcome = outcome.clone();
                        Self::condemn_timed_out(self.inner, &mut self.condemned, &*machine);
                        self.done = true;
                        self.waiter = None;
                        self.finish_in_background();
                        return outcome;
                    }
                }
            };
            let deadline = self.inner.clock.to_tokio(until);
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let waiting = match (&self.inner.handoff, machine.waiting_to_retry()) {
                (Some(handoff), Some(resources)) => {
                    if self.waiter.is_none() {
                        self.waiter = Some(handoff.subscribe(resources));
                    }
                    true
                }
                _ => false,
            };
            let input = tokio::select! {
                biased;
                Some(sent) = self.inflight.next() => {
                    sent.invalidate_broken(self.inner);
                    let Sent { instance, request, answer, is_release, .. } = sent;
                    if is_release {
                        self.releases_inflight -= 1;
                    }
                    if let Some(text) = answer.error_text() {
                        let n = self.inner.instances.len();
                        if self.details.len() < n {
                            self.details.resize(n, None);
                        }
                        if let Some(d) = self.details.get_mut(instance) {
                            *d = Some(text.to_owned());
                        }
                    }
                    tracing::trace!(instance, ?answer, "reply");
                    Some((instance, request, answer))
                }
                () = released(self.waiter.as_ref()), if waiting => {
                    let spread = if self.woken { HANDOFF_SPREAD } else { Duration::ZERO };
                    self.woken = true;
                    if let Err(e) = machine.wake(self.inner.clock.now(), spread) {
                        tracing::error!(error = %e, "redlock machine refused a wake-up");
                    }
                    continue;
                }
                () = &mut sleep => None,
            };
            let now = self.inner.clock.now();
            self.last_input = Some(now);
            if let (Some(obs), Some((instance, request, answer))) = (self.observed.as_mut(), &input)
            {
                obs.reply(&*machine, (*instance, *request, answer), now);
            }
            let result = match &input {
                Some((instance, request, answer)) => match answer.reply() {
                    Some(reply) => machine.handle(Input::Reply {
                        instance: *instance,
                        request: *request,
                        reply,
                        at: now,
                    }),
                    None => machine.handle(Input::TransportError {
                        instance: *instance,
                        request: *request,
                        at: now,
                    }),
                },
                None => machine.handle(Input::Timeout { now }),
            };
            if input.is_none() {
                Self::condemn_timed_out(self.inner, &mut self.condemned, &*machine);
            }
            if let Err(e) = result {
                // Instances come from the machine itself and the clock is monotonic, so this
                // only happens if tokio's clock misbehaves; the machine has failed closed.
                tracing::error!(error = %e, "redlock machine refused an input");
            }
            if let Some(obs) = self.observed.as_mut() {
                obs.after_input(&*machine, now);
            }
        }
    }

    /// Drops the connection of every instance the machine gave up on (once per attempt): its
    /// command may still be stuck there, and a connection that may have lost bytes would match
    /// later replies to the wrong requests.
    fn condemn_timed_out(inner: &Inner, condemned: &mut (u32, u32), machine: &M) {
        let Some(report) = machine.statuses() else {
            return;
        };
        let attempt = machine.attempt().map_or(0, |(a, _)| a);
        if condemned.0 != attempt {
            *condemned = (attempt, 0);
        }
        for (i, status) in report.as_slice().iter().enumerate() {
            let bit = 1u32 << (i % 32);
            if *status == InstanceStatus::TimedOut && condemned.1 & bit == 0 {
                condemned.1 |= bit;
                if let Some(instance) = inner.instances.get(i) {
                    instance.condemn();
                }
            }
        }
    }

    /// Per-instance results from a report, with the error texts seen.
    pub(crate) fn results(&self, report: &Report) -> Vec<InstanceResult> {
        report
            .as_slice()
            .iter()
            .enumerate()
            .map(|(i, status)| InstanceResult {
                instance: i,
                server: self
                    .inner
                    .instances
                    .get(i)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
                status: *status,
                detail: if status.is_failure() {
                    self.details.get(i).cloned().flatten()
                } else {
                    None
                },
            })
            .collect()
    }

    /// Lets commands still in flight finish without us, if any of them must reach Redis.
    fn finish_in_background(&mut self) {
        if self.releases_inflight == 0 {
            return;
        }
        let mut inflight = std::mem::take(&mut self.inflight);
        self.releases_inflight = 0;
        let limit = self.background_limit();
        let inner = Arc::clone(self.inner);
        spawn(self.inner, async move {
            let drain = async {
                while let Some(sent) = inflight.next().await {
                    sent.invalidate_broken(&inner);
                }
            };
            let _ = tokio::time::timeout(limit, drain).await;
        });
    }

    fn background_limit(&self) -> Duration {
        Duration::from_millis(self.inner.config.ttl_ms().max(1_000))
    }
}

impl<M: Machine, F: Future<Output = Sent> + Send + 'static> Drop for Driver<'_, M, F> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let Some(mut machine) = self.machine.take() else {
            return;
        };
        // Dropped mid-operation: cancel, then finish the cleanup in the background.
        let inner = Arc::clone(self.inner);
        let inflight = std::mem::take(&mut self.inflight);
        let send = self.send;
        let releases_inflight = self.releases_inflight;
        let limit = self.background_limit();
        let observed = self.observed.take();
        machine.cancel(inner.clock.now());
        spawn(self.inner, async move {
            let mut driver = Driver {
                details: Vec::new(),
                inner: &inner,
                machine: Some(machine),
                send,
                inflight,
                releases_inflight,
                done: false,
                observed,
                last_input: None,
                waiter: None,
                woken: false,
                condemned: (0, 0),
                last_command: None,
            };
            let _ = tokio::time::timeout(limit, driver.run()).await;
            // Out of time: stop here rather than cancelling again.
            driver.done = true;
        });
    }
}

/// Resolves when a release of the waiter's keys is announced; never without a subscription.
async fn released(waiter: Option<&Subscription>) {
    match waiter {
        Some(w) => w.released().await,
        None => std::future::pending().await,
    }
}

/// Spawns background cleanup on the current tokio runtime, tracked for
/// [`Redlock::close`](crate::Redlock::close), if there is a runtime (there is none after it shut
/// down: the keys then expire with their TTL).
pub(crate) fn spawn(inner: &Inner, fut: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => {
            handle.spawn(inner.background.track_future(fut));
        }
        Err(_) => tracing::warn!("no tokio runtime: lock keys left to expire with their ttl"),
    }
}
