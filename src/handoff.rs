//! Fast handoff: a waiter hears the holder's release and retries at once instead of sleeping out
//! its retry delay.
//!
//! With [`Builder::fast_handoff`](crate::Builder::fast_handoff) every release (and every cleanup
//! of a failed attempt) runs the core's `RELEASE_NOTIFY_SCRIPT`, which publishes the released
//! value on `redlock:released:<key>` on each instance where it deleted the key. An acquire that
//! has failed once and waits to retry subscribes to the channels of its keys on every instance
//! (one shared pub/sub connection per instance, refcounted subscriptions per channel). When one
//! released value has been announced by a quorum of instances, the longest-waiting acquire of
//! this process on that key calls the core's [`Acquire::wake`](redlock_core::Acquire::wake), so
//! its next attempt starts within a small random spread; the others keep their timers.
//!
//! Only timing is at stake: a lost, late or spurious announcement costs at most the normal retry
//! delay or one early attempt, and the core's rules (retry count, deadline, cleanup) are
//! untouched. Waiting until a quorum of instances announced releases (rather than for the first
//! announcement) ignores the cleanups of other waiters' failed attempts while the lock is held
//! (they free only instances the holder does not hold, a minority), so waiters do not retry in a
//! storm; after a split vote the cleanups of all contenders free a quorum and wake a waiter. The protocol, for other
//! bindings, is in `docs/fast-handoff.md`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use redlock_core::{Resources, RELEASE_CHANNEL_PREFIX};
use tokio::sync::{mpsc, Notify};

/// How many distinct released values a channel remembers while counting their announcements.
const RECENT_VALUES: usize = 8;
/// The least time between two connection attempts of one instance's pub/sub connection.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(500);

/// The subscriptions of one [`Redlock`](crate::Redlock) and its pub/sub connections.
pub(crate) struct Handoff {
    registry: Arc<Registry>,
    listeners: Vec<Listener>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("instances", &self.listeners.len())
            .finish_non_exhaustive()
    }
}

/// Channels with waiters, shared with the listener tasks.
struct Registry {
    channels: Mutex<HashMap<Vec<u8>, Channel>>,
    quorum: usize,
}

struct Channel {
    /// The waiters subscribed to it, longest waiting first.
    waiters: Vec<Arc<Notify>>,
    /// Released values seen lately and the instances that announced each (bit set); `None` once
    /// the value reached a quorum and woke the waiters.
    recent: VecDeque<(Vec<u8>, Option<u32>)>,
    /// Instances that announced any release since the channel last woke a waiter (bit set).
    freed: u32,
}

/// One instance's pub/sub connection, run by a task started on demand.
struct Listener {
    client: redis::Client,
    state: Mutex<ListenerState>,
}

#[derive(Default)]
struct ListenerState {
    /// Commands to the running task; `None` or closed when no task runs.
    control: Option<mpsc::UnboundedSender<Control>>,
    /// When the last task started, to space out reconnections to an instance that is down.
    started: Option<tokio::time::Instant>,
}

enum Control {
    Subscribe(Vec<u8>),
    Unsubscribe(Vec<u8>),
}

/// A waiter's subscription to the release channels of its keys; unsubscribes when dropped.
pub(crate) struct Subscription {
    handoff: Arc<Handoff>,
    channels: Vec<Vec<u8>>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("channels", &self.channels.len())
            .finish_non_exhaustive()
    }
}

impl Subscription {
    /// Resolves once a release of one of the keys has been announced by a quorum since the
    /// subscription began or since the last time this resolved (announcements are not lost
    /// while the waiter is busy: one is kept).
    pub(crate) async fn released(&self) {
        self.notify.notified().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // Controls are sent under the registry lock so a subscribe and an unsubscribe of the
        // same channel reach the connections in the order the registry saw them.
        let Ok(mut channels) = self.handoff.registry.channels.lock() else {
            return;
        };
        for name in &self.channels {
            let Some(channel) = channels.get_mut(name) else {
                continue;
            };
            channel.waiters.retain(|w| !Arc::ptr_eq(w, &self.notify));
            if channel.waiters.is_empty() {
                channels.remove(name);
                for listener in &self.handoff.listeners {
                    listener.send(Control::Unsubscribe(name.clone()));
                }
            }
        }
    }
}

impl Handoff {
    /// Fast handoff over `clients` (one per instance); nothing connects before the first wait.
    pub(crate) fn new(
        clients: Vec<redis::Client>,
        quorum: usize,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            registry: Arc::new(Registry {
                channels: Mutex::new(HashMap::new()),
                quorum,
            }),
            listeners: clients
                .into_iter()
                .map(|client| Listener {
                    client,
                    state: Mutex::new(ListenerState::default()),
                })
                .collect(),
            connect_timeout,
        }
    }

    /// Subscribes a waiter to the release channels of `resources` on every instance, starting
    /// (or restarting) the pub/sub connections that are not running.
    pub(crate) fn subscribe(self: &Arc<Self>, resources: &Resources) -> Subscription {
        let notify = Arc::new(Notify::new());
        let mut channels = Vec::with_capacity(resources.len());
        // Held while controls are sent: see `Subscription::drop`.
        let Ok(mut registry) = self.registry.channels.lock() else {
            return Subscription {
                handoff: Arc::clone(self),
                channels,
                notify,
            };
        };
        let mut fresh = Vec::new();
        for key in resources.iter() {
            let mut name = Vec::with_capacity(RELEASE_CHANNEL_PREFIX.len() + key.len());
            name.extend_from_slice(RELEASE_CHANNEL_PREFIX.as_bytes());
            name.extend_from_slice(key);
            let channel = registry.entry(name.clone()).or_insert_with(|| {
                fresh.push(name.clone());
                Channel {
                    waiters: Vec::new(),
                    recent: VecDeque::new(),
                    freed: 0,
                }
            });
            channel.waiters.push(Arc::clone(&notify));
            channels.push(name);
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            // A task started now subscribes to every channel in the registry by itself.
            if !self.ensure_running(i, listener) {
                for name in &fresh {
                    listener.send(Control::Subscribe(name.clone()));
                }
            }
        }
        drop(registry);
        Subscription {
            handoff: Arc::clone(self),
            channels,
            notify,
        }
    }

    /// Starts instance `i`'s listener task unless one runs or one started too recently.
    /// Returns whether a task was started now.
    fn ensure_running(&self, i: usize, listener: &Listener) -> bool {
        let Ok(mut state) = listener.state.lock() else {
            return false;
        };
        if state.control.as_ref().is_some_and(|c| !c.is_closed()) {
            return false;
        }
        let now = tokio::time::Instant::now();
        if state.started.is_some_and(|t| now < t + RECONNECT_BACKOFF) {
            return false;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let (tx, rx) = mpsc::unbounded_channel();
        state.control = Some(tx);
        state.started = Some(now);
        runtime.spawn(listen(
            i,
            listener.client.clone(),
            Arc::downgrade(&self.registry),
            rx,
            self.connect_timeout,
        ));
        true
    }
}

impl Listener {
    fn send(&self, control: Control) {
        if let Ok(state) = self.state.lock() {
            if let Some(tx) = &state.control {
                let _ = tx.send(control);
            }
        }
    }
}

impl Registry {
    /// Instance `instance` announced that `value` was released on `channel`.
    fn announce(&self, instance: usize, channel: &[u8], value: &[u8]) {
        let Ok(mut channels) = self.channels.lock() else {
            return;
        };
        let Some(entry) = channels.get_mut(channel) else {
            return;
        };
        let bit = 1u32 << (instance % 32);
        let pos = match entry.recent.iter().position(|(v, _)| v == value) {
            Some(pos) => pos,
            None => {
                if entry.recent.len() == RECENT_VALUES {
                    entry.recent.pop_front();
                }
                entry.recent.push_back((value.to_vec(), Some(0)));
                entry.recent.len() - 1
            }
        };
        let Some((_, Some(mask))) = entry.recent.get_mut(pos) else {
            // That release was counted already.
            return;
        };
        *mask |= bit;
        let released = mask.count_ones() as usize >= self.quorum;
        entry.freed |= bit;
        // A quorum of instances freed, by one release or by several (the cleanups of a split
        // vote, in which nobody won, together free every instance).
        if released || entry.freed.count_ones() as usize >= self.quorum {
            entry.freed = 0;
            if released {
                if let Some(slot) = entry.recent.get_mut(pos) {
                    slot.1 = None;
                }
            }
            // One release frees the lock for one holder: wake only this process's longest
            // waiter (it stays first until it unsubscribes), so the waiters of one process do
            // not split the vote among themselves. Waiters of other processes are woken by
            // their own process, within the core's random spread.
            if let Some(first) = entry.waiters.first() {
                first.notify_one();
            }
        }
    }

    fn channel_names(&self) -> Vec<Vec<u8>> {
        self.channels
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Runs instance `instance`'s pub/sub connection until it breaks or the manager is gone. A
/// broken connection is restarted by the next waiter that subscribes.
async fn listen(
    instance: usize,
    client: redis::Client,
    registry: Weak<Registry>,
    mut control: mpsc::UnboundedReceiver<Control>,
    connect_timeout: Duration,
) {
    let pubsub = match tokio::time::timeout(connect_timeout, client.get_async_pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::debug!(instance, error = %e, "fast handoff: no pub/sub connection");
            return;
        }
        Err(_) => {
            tracing::debug!(instance, "fast handoff: pub/sub connection timed out");
            return;
        }
    };
    let (mut sink, mut stream) = pubsub.split();
    let initial = match registry.upgrade() {
        Some(r) => r.channel_names(),
        None => return,
    };
    if !initial.is_empty() && sink.subscribe(&initial).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            command = control.recv() => {
                let result = match command {
                    Some(Control::Subscribe(name)) => sink.subscribe(&name).await,
                    Some(Control::Unsubscribe(name)) => sink.unsubscribe(&name).await,
                    // The manager is gone.
                    None => return,
                };
                if let Err(e) = result {
                    tracing::debug!(instance, error = %e, "fast handoff: pub/sub connection failed");
                    return;
                }
            }
            message = stream.next() => {
                let Some(message) = message else {
                    tracing::debug!(instance, "fast handoff: pub/sub connection closed");
                    return;
                };
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                if let Ok(channel) = message.get_channel::<Vec<u8>>() {
                    registry.announce(instance, &channel, message.get_payload_bytes());
                }
            }
        }
    }
}
