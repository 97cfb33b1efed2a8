//! LDS → RDS → CDS → EDS, as gRPC follows them: the listener names the
//! routes, the virtual host for the target's name picks a route, the route
//! names the cluster, the cluster names its endpoints; each step watches
//! the next, and the endpoints become the pool's through a discovery
//! stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::Stream;
use tokio::sync::mpsc;
use xds_client::{Error as XdsError, ProcessingDone, Resource, ResourceEvent, XdsClient};

use super::bootstrap::{Bootstrap, IGNORE_RESOURCE_DELETION};
use super::resources::{
    Cluster, Endpoints, LbPolicy, Listener, RouteSource, RouteTable, VirtualHost,
};
use super::router::{RouteRule, WeightedCluster, XdsRouter};
use super::{XdsTarget, client};
use crate::discovery::{Announced, Change, Target};
use crate::state::circuit::CircuitBreaker;
use crate::state::clusters::{ClusterConfig, ClusterConfigs};
use crate::state::discover::PoolView;
use crate::state::outlier::ClusterDetection;
use crate::state::ring::RingConfig;
use crate::state::route::Router;
use crate::state::weights::Weights;
use crate::telemetry::stats::EndpointState;
use crate::telemetry::xds_status::{Board, XdsResourceKind, XdsResourceState};

/// What the cascade tells the pool: an endpoint by its address.
pub(crate) type EndpointChange = Change<SocketAddr, Target>;

/// Changes in flight from the cascade to the pool: the cascade waits
/// while the pool applies them, so a control plane's burst is held here
/// at most this many at a time.
const CHANGES_IN_FLIGHT: usize = 256;

/// The pool's discovery stream for `target`: on its first poll (on the
/// pool's runtime) it starts the ADS client and the cascade, which reads
/// the endpoints' states through `view` for priority failover.
pub(crate) fn changes(
    target: XdsTarget,
    bootstrap: Bootstrap,
    board: Arc<Board>,
    view: PoolView,
) -> impl Stream<Item = Result<EndpointChange, Infallible>> + Send + 'static {
    let (tx, rx) = mpsc::channel(CHANGES_IN_FLIGHT);
    let start = Some((target, bootstrap, board, view, tx));
    futures_util::stream::unfold((start, rx), |(mut start, mut rx)| async move {
        if let Some((target, bootstrap, board, view, tx)) = start.take() {
            tokio::spawn(run(target, bootstrap, board, view, tx));
        }
        let change = rx.recv().await?;
        Some((Ok(change), (start, rx)))
    })
}

/// Follows the resources until the pool drops its stream.
async fn run(
    target: XdsTarget,
    bootstrap: Bootstrap,
    board: Arc<Board>,
    mut view: PoolView,
    tx: mpsc::Sender<EndpointChange>,
) {
    let client = match client::start(&bootstrap, &target.given, Arc::clone(&board)) {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "xDS client could not start; the pool has no endpoints");
            board.start_failed(error);
            return;
        }
    };
    let (outlier_detection, settings) = tokio::sync::watch::channel(ClusterDetection::new());
    view.follow_outlier_detection(settings);
    let keep_deleted = bootstrap.has_feature(IGNORE_RESOURCE_DELETION);
    let mut cascade = Cascade::new(target, board, outlier_detection, keep_deleted);
    cascade.follow(&client).await;
    let mut pushed = Pushed::default();
    let mut announced = Announced::new();
    loop {
        // Held until the pool has the changes: gRPC A88's flow control, so
        // the next response is read once this one is applied.
        let done = tokio::select! {
            () = tx.closed() => return,
            alive = view.changed() => {
                if !alive {
                    return;
                }
                None
            }
            done = cascade.next_event() => Some(done),
        };
        let failed_over = cascade.fail_over(&view.states());
        if done.is_none() && !failed_over {
            // The endpoints' states changed, not what they mean.
            continue;
        }
        cascade.follow(&client).await;
        let addresses = pushed.push(&cascade, &view);
        if !announce(&mut announced, addresses, &tx).await {
            return;
        }
    }
}

/// Gives the pool what changed of the endpoints: the new ones first, then
/// those gone; `false` once the pool dropped its stream.
async fn announce(
    announced: &mut Announced<SocketAddr, Target>,
    addresses: BTreeMap<SocketAddr, Target>,
    tx: &mpsc::Sender<EndpointChange>,
) -> bool {
    let (new, gone) = announced.replace_all(addresses);
    let changes = new
        .into_iter()
        .map(|(address, target)| Change::Insert(address, target))
        .chain(gone.into_iter().map(Change::Remove));
    for change in changes {
        if tx.send(change).await.is_err() {
            return false;
        }
    }
    true
}

/// What the cascade last gave the pool besides its endpoints, so that it
/// tells the pool only what changed.
#[derive(Default)]
struct Pushed {
    weights: Weights,
    clusters: ClusterConfigs,
}

impl Pushed {
    /// Gives the pool the weights, clusters and router the resources now
    /// say (the first two where they changed); the endpoints to announce.
    /// The clusters and router come first, so that a call routed to a
    /// cluster whose endpoints are on their way waits for them.
    fn push(&mut self, cascade: &Cascade, view: &PoolView) -> BTreeMap<SocketAddr, Target> {
        let (addresses, weights, clusters) = cascade.serving();
        if weights != self.weights {
            view.set_weights(weights.clone());
            self.weights = weights;
        }
        if clusters != self.clusters {
            view.set_clusters(clusters.clone());
            self.clusters = clusters;
        }
        view.set_router(
            cascade
                .router()
                .map(|router| Box::new(router) as Box<dyn Router>),
        );
        addresses
    }
}

/// An event of one of the cascade's watches, tagged with the watch.
enum Event {
    Listener(Tagged<Listener>),
    Routes(Tagged<RouteTable>),
    Cluster(String, Tagged<Cluster>),
    Endpoints(String, Tagged<Endpoints>),
}

/// A watcher's event and the generation of the watch it came from: a
/// watch that ended may have left events behind.
struct Tagged<T: Resource> {
    generation: u64,
    event: ResourceEvent<T>,
}

/// Numbers the watches.
static GENERATIONS: AtomicU64 = AtomicU64::new(0);

/// The watches and what each last gave: the listener, its routes, and
/// every cluster its virtual host's routes name (gRPC A28).
struct Cascade {
    target: XdsTarget,
    board: Arc<Board>,
    /// gRPC A53: a resource the control plane drops keeps serving.
    keep_deleted: bool,
    /// Each cluster's outlier detection (gRPC A50).
    outlier_detection: tokio::sync::watch::Sender<ClusterDetection>,
    listener: Watched<Listener>,
    routes: Watched<RouteTable>,
    clusters: BTreeMap<String, ClusterState>,
    /// The watches' events, forwarded.
    events: mpsc::UnboundedReceiver<Event>,
    forward: mpsc::UnboundedSender<Event>,
    /// The pool's random id, for `io.grpc.channel_id` hash policies.
    channel_id: u64,
}

impl Cascade {
    fn new(
        target: XdsTarget,
        board: Arc<Board>,
        outlier_detection: tokio::sync::watch::Sender<ClusterDetection>,
        keep_deleted: bool,
    ) -> Self {
        let (forward, events) = mpsc::unbounded_channel();
        Self {
            keep_deleted,
            listener: Watched::new(XdsResourceKind::Listener),
            routes: Watched::new(XdsResourceKind::RouteConfiguration),
            clusters: BTreeMap::new(),
            board,
            target,
            outlier_detection,
            events,
            forward,
            channel_id: fastrand::u64(..),
        }
    }

    /// The next event of any watch, taken in.
    async fn next_event(&mut self) -> ProcessingDone {
        let Some(event) = self.events.recv().await else {
            // The cascade holds a sender: never.
            return std::future::pending().await;
        };
        let (board, keep) = (&*self.board, self.keep_deleted);
        match event {
            Event::Listener(tagged) => self.listener.apply(tagged, board, keep),
            Event::Routes(tagged) => self.routes.apply(tagged, board, keep),
            Event::Cluster(name, tagged) => match self.clusters.get_mut(&name) {
                Some(state) => state.cluster.apply(tagged, board, keep),
                None => tagged.event.into_done(),
            },
            Event::Endpoints(name, tagged) => match self.clusters.get_mut(&name) {
                Some(state) => state.endpoints.apply(tagged, board, keep),
                None => tagged.event.into_done(),
            },
        }
    }

    /// Watches what the resources at hand now name, and stops watching
    /// what they no longer name.
    async fn follow(&mut self, client: &XdsClient) {
        let (board, tx) = (Arc::clone(&self.board), self.forward.clone());
        let listener = Some(self.target.listener.clone());
        self.listener
            .follow(client, listener, &board, &tx, Event::Listener)
            .await;
        let route_name = self.listener.value.as_ref().and_then(|l| match &l.routes {
            RouteSource::Rds(name) => Some(name.clone()),
            RouteSource::Inline(_) => None,
        });
        self.routes
            .follow(client, route_name, &board, &tx, Event::Routes)
            .await;
        let named = self.cluster_names();
        self.clusters.retain(|name, state| {
            let kept = named.contains(name);
            if !kept {
                state.stop(&board);
            }
            kept
        });
        for name in named {
            let state = self.clusters.entry(name.clone()).or_default();
            state.follow(client, &name, &board, &tx).await;
        }
        let detection: ClusterDetection = self
            .clusters
            .iter()
            .filter_map(|(name, state)| {
                let detection = state.cluster.value.as_ref()?.outlier_detection.clone()?;
                Some((Arc::from(name.as_str()), detection))
            })
            .collect();
        // Restarted only when it changes: an interval restarted at every
        // update would never end.
        self.outlier_detection.send_if_modified(|current| {
            let changed = *current != detection;
            *current = detection;
            changed
        });
    }

    /// The virtual host for the target's name, in the listener's routes.
    fn virtual_host(&self) -> Option<&VirtualHost> {
        let listener = self.listener.value.as_ref()?;
        let table = match &listener.routes {
            RouteSource::Inline(table) => table,
            RouteSource::Rds(_) => self.routes.value.as_deref()?,
        };
        let host = table.virtual_host_for(&self.target.authority);
        if host.is_none() {
            tracing::warn!(target = %self.target.authority, "no xDS virtual host matches the target");
        }
        host
    }

    /// Every cluster the virtual host's routes may send a call to.
    fn cluster_names(&self) -> BTreeSet<String> {
        self.virtual_host()
            .into_iter()
            .flat_map(|host| &host.routes)
            .flat_map(|route| &route.clusters)
            .filter(|(_, weight)| *weight > 0)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The router of the virtual host's routes, each cluster with its
    /// breaker; a route that sets no `max_stream_duration` takes the
    /// listener's (gRPC A31).
    fn router(&self) -> Option<XdsRouter> {
        let host = self.virtual_host()?;
        let listener_limit = self.listener.value.as_ref()?.max_stream_duration;
        let routes = host
            .routes
            .iter()
            .map(|route| {
                let mut up_to = 0;
                let clusters = route
                    .clusters
                    .iter()
                    .filter(|(_, weight)| *weight > 0)
                    .filter_map(|(name, weight)| {
                        up_to += u64::from(*weight);
                        Some(WeightedCluster {
                            name: Arc::from(name.as_str()),
                            breaker: Arc::clone(&self.clusters.get(name)?.breaker),
                            up_to,
                        })
                    })
                    .collect();
                let mut policy = route.policy.clone();
                policy.max_stream_duration = policy.max_stream_duration.or(listener_limit);
                RouteRule {
                    matcher: route.matcher.clone(),
                    clusters,
                    policy: Arc::new(policy),
                }
            })
            .collect();
        Some(XdsRouter {
            routes,
            channel_id: self.channel_id,
        })
    }

    /// Reads the endpoints' states into each cluster's failed priorities;
    /// whether one failed or recovered.
    fn fail_over(&mut self, states: &HashMap<SocketAddr, EndpointState>) -> bool {
        let mut changed = false;
        for (name, state) in &mut self.clusters {
            changed |= state.fail_over(name, states);
        }
        changed
    }

    /// The endpoints that take calls, the union of the clusters' (an
    /// endpoint in two clusters is one endpoint of the pool, sharing its
    /// connections); each endpoint's weight (its first cluster's); and
    /// each cluster's endpoints, weights and ring.
    fn serving(&self) -> (BTreeMap<SocketAddr, Target>, Weights, ClusterConfigs) {
        let mut addresses = BTreeMap::new();
        let mut weights = Weights::new();
        let mut clusters = ClusterConfigs::new();
        for (name, state) in &self.clusters {
            let cluster_weights = state.addresses();
            for (address, weight) in &cluster_weights {
                weights.entry(*address).or_insert(*weight);
                addresses
                    .entry(*address)
                    .or_insert_with(|| Target::new(self.target.uri.clone()).connect_to(*address));
            }
            let ring = state.ring(&cluster_weights);
            clusters.insert(
                Arc::from(name.as_str()),
                ClusterConfig {
                    weights: cluster_weights,
                    ring,
                    fails_over: state.fails_over(),
                },
            );
        }
        (addresses, weights, clusters)
    }
}

/// One cluster's watches, the state of its priorities, and its breaker.
struct ClusterState {
    cluster: Watched<Cluster>,
    endpoints: Watched<Endpoints>,
    /// The priorities that failed: all their endpoints failed to connect,
    /// and none has been ready since (gRPC A56's TRANSIENT_FAILURE, sticky
    /// until READY, so that a reconnection attempt does not flap).
    failed: BTreeSet<u32>,
    /// The priorities that have had a ready endpoint: one that loses
    /// them all has failed at once, before its reconnection attempts fail
    /// too, so the next priority is connecting while calls wait.
    ready_once: BTreeSet<u32>,
    /// The cluster's limit on attempts in flight, `max_requests` (gRPC
    /// A32), and its drops.
    breaker: Arc<CircuitBreaker>,
}

impl Default for ClusterState {
    fn default() -> Self {
        Self {
            cluster: Watched::new(XdsResourceKind::Cluster),
            endpoints: Watched::new(XdsResourceKind::ClusterLoadAssignment),
            failed: BTreeSet::new(),
            ready_once: BTreeSet::new(),
            breaker: Arc::default(),
        }
    }
}

impl ClusterState {
    /// Watches the cluster `name` and the endpoints it names; sets its
    /// breaker.
    async fn follow(
        &mut self,
        client: &XdsClient,
        name: &str,
        board: &Board,
        tx: &mpsc::UnboundedSender<Event>,
    ) {
        let key = name.to_owned();
        let wrap = move |tagged| Event::Cluster(key.clone(), tagged);
        self.cluster
            .follow(client, Some(name.to_owned()), board, tx, wrap)
            .await;
        let eds_name = self
            .cluster
            .value
            .as_ref()
            .map(|c| c.eds_service_name.clone());
        let key = name.to_owned();
        let wrap = move |tagged| Event::Endpoints(key.clone(), tagged);
        self.endpoints
            .follow(client, eds_name, board, tx, wrap)
            .await;
        if let Some(cluster) = &self.cluster.value {
            self.breaker.set(name, Some(cluster.max_requests));
        }
        let drops = self
            .endpoints
            .value
            .as_ref()
            .map(|e| e.drops.clone())
            .unwrap_or_default();
        self.breaker.set_drops(drops);
    }

    /// Stops both watches: no route names the cluster any more.
    fn stop(&mut self, board: &Board) {
        self.cluster.stop(board);
        self.endpoints.stop(board);
    }

    /// The addresses that may take calls, by priority (localities of
    /// weight 0 and priorities with no address left out).
    fn priorities(&self) -> BTreeMap<u32, Vec<SocketAddr>> {
        let mut by_priority: BTreeMap<u32, Vec<SocketAddr>> = BTreeMap::new();
        let Some(endpoints) = self.endpoints.value.as_ref() else {
            return by_priority;
        };
        for locality in endpoints.localities.iter().filter(|l| l.weight > 0) {
            by_priority
                .entry(locality.priority)
                .or_default()
                .extend(&locality.addresses);
        }
        by_priority.retain(|_, addresses| !addresses.is_empty());
        by_priority
    }

    /// Reads the endpoints' states into the priorities that failed and
    /// those that have been ready (see [`addresses`](Self::addresses));
    /// whether a priority failed or recovered.
    fn fail_over(&mut self, cluster: &str, states: &HashMap<SocketAddr, EndpointState>) -> bool {
        let by_priority = self.priorities();
        let before = self.failed.clone();
        self.failed.retain(|p| by_priority.contains_key(p));
        self.ready_once.retain(|p| by_priority.contains_key(p));
        for (priority, addresses) in &by_priority {
            let state = |a: &SocketAddr| states.get(a).copied();
            if addresses
                .iter()
                .any(|a| state(a) == Some(EndpointState::Ready))
            {
                self.ready_once.insert(*priority);
                if self.failed.remove(priority) {
                    tracing::info!(
                        cluster,
                        priority,
                        "xDS priority ready again; it takes the calls back"
                    );
                }
            } else if (self.ready_once.contains(priority)
                || addresses
                    .iter()
                    .any(|a| state(a) == Some(EndpointState::BackingOff)))
                && self.failed.insert(*priority)
            {
                tracing::warn!(
                    cluster,
                    priority,
                    "xDS priority failed; the next one takes the calls"
                );
            }
        }
        self.failed != before
    }

    /// The priority that takes the calls: the lowest that has not failed,
    /// else the last.
    fn chosen(&self, by_priority: &BTreeMap<u32, Vec<SocketAddr>>) -> Option<u32> {
        by_priority
            .keys()
            .find(|p| !self.failed.contains(p))
            .or_else(|| by_priority.keys().last())
            .copied()
    }

    /// Whether a priority after the one that takes the calls stands by: the
    /// pool then lets calls wait for the failover rather than fail.
    fn fails_over(&self) -> bool {
        let by_priority = self.priorities();
        let chosen = self.chosen(&by_priority);
        by_priority.keys().any(|p| Some(*p) > chosen)
    }

    /// How calls hash onto a ring, for a RING_HASH cluster (gRPC A42):
    /// over `serving`'s endpoints, each weighed as its locality's weight
    /// times its own (the call's hash is made by its route).
    fn ring(&self, serving: &Weights) -> Option<RingConfig> {
        let cluster = self.cluster.value.as_ref()?;
        if cluster.lb_policy != LbPolicy::RingHash {
            return None;
        }
        let endpoints = self.endpoints.value.as_ref()?;
        let mut weights = HashMap::new();
        for locality in &endpoints.localities {
            for (address, weight) in locality.addresses.iter().zip(&locality.endpoint_weights) {
                if serving.contains_key(address) {
                    weights.insert(*address, locality.weight.saturating_mul(*weight));
                }
            }
        }
        Some(RingConfig {
            min_ring_size: cluster.ring_size.0,
            max_ring_size: cluster.ring_size.1,
            weights,
            policies: Vec::new(),
        })
    }

    /// The endpoints that take calls, each with its weight (gRPC A56):
    /// those of the lowest priority that has not failed, with those of
    /// the failed priorities below it, which keep reconnecting and take
    /// calls back as soon as one is ready. A priority fails when none of
    /// its endpoints is ready and one has failed an attempt or it had been
    /// ready before, and recovers when one is ready. grpc-go fails over
    /// once every endpoint has failed (round robin's TRANSIENT_FAILURE);
    /// failing over as soon as none can serve brings the next priority up
    /// while the rest still try, so calls wait for a connection instead
    /// of failing when the last of them fails too.
    ///
    /// Each endpoint's weight is its locality's over the locality's
    /// endpoints (gRPC A27's `wrr_locality`: localities share the calls by
    /// weight, and their endpoints share a locality's evenly, endpoint
    /// weights unused, as grpc-go's round robin and least request leave
    /// them).
    fn addresses(&self) -> Weights {
        let mut weights = Weights::new();
        let Some(endpoints) = self.endpoints.value.as_ref() else {
            return weights;
        };
        let chosen = self.chosen(&self.priorities());
        for locality in endpoints
            .localities
            .iter()
            .filter(|l| l.weight > 0 && !l.addresses.is_empty() && Some(l.priority) <= chosen)
        {
            let each = f64::from(locality.weight) / locality.addresses.len() as f64;
            for address in &locality.addresses {
                *weights.entry(*address).or_default() += each;
            }
        }
        weights
    }
}

/// One watched resource: its name, the task that forwards its watcher's
/// events, and its last good value.
struct Watched<T: Resource> {
    kind: XdsResourceKind,
    name: Option<String>,
    /// The watch's number: events of an earlier watch are passed over.
    generation: u64,
    /// Forwards the watcher's events to the cascade; aborted (and the
    /// watcher dropped, which ends the watch) when the watch ends.
    forwarder: Option<tokio::task::AbortHandle>,
    value: Option<Arc<T>>,
}

impl<T: Resource> Drop for Watched<T> {
    fn drop(&mut self) {
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
    }
}

impl<T: Resource> Watched<T> {
    fn new(kind: XdsResourceKind) -> Self {
        Self {
            kind,
            name: None,
            generation: 0,
            forwarder: None,
            value: None,
        }
    }

    /// Watches `name` from now on (nothing, for `None`), its events
    /// forwarded to `tx` wrapped by `wrap`.
    async fn follow(
        &mut self,
        client: &XdsClient,
        name: Option<String>,
        board: &Board,
        tx: &mpsc::UnboundedSender<Event>,
        wrap: impl Fn(Tagged<T>) -> Event + Send + 'static,
    ) {
        if self.name == name {
            return;
        }
        self.stop(board);
        let Some(name) = name else {
            return;
        };
        board.set(self.kind, &name, XdsResourceState::Requested);
        let mut watcher = client.watch::<T>(name.clone()).await;
        let generation = GENERATIONS.fetch_add(1, Ordering::Relaxed);
        let tx = tx.clone();
        let forwarder = tokio::spawn(async move {
            while let Some(event) = watcher.next().await {
                if tx.send(wrap(Tagged { generation, event })).is_err() {
                    return;
                }
            }
        });
        self.forwarder = Some(forwarder.abort_handle());
        self.generation = generation;
        self.name = Some(name);
    }

    /// Stops watching: its value goes, and the board forgets it.
    fn stop(&mut self, board: &Board) {
        if let Some(forwarder) = self.forwarder.take() {
            forwarder.abort();
        }
        if let Some(old) = self.name.take() {
            board.forget(self.kind, &old);
        }
        self.value = None;
    }

    /// Takes in an event: a new value, a NACK that keeps the last good
    /// one, or an absence.
    fn apply(&mut self, tagged: Tagged<T>, board: &Board, keep_deleted: bool) -> ProcessingDone {
        let Tagged { generation, event } = tagged;
        if generation != self.generation || self.name.is_none() {
            // An event of a watch that ended.
            return event.into_done();
        }
        let name = self.name.as_deref().unwrap_or_default();
        let kind = self.kind;
        match event {
            ResourceEvent::ResourceChanged { result, done } => {
                match result {
                    Ok(value) => {
                        tracing::info!(%kind, name, "xDS resource ACKed");
                        board.set(kind, name, XdsResourceState::Acked);
                        self.value = Some(value);
                    }
                    Err(XdsError::ResourceDoesNotExist) => {
                        let kept = keep_deleted && self.value.is_some();
                        tracing::warn!(%kind, name, kept, "xDS resource does not exist");
                        board.set(kind, name, XdsResourceState::DoesNotExist);
                        if !kept {
                            self.value = None;
                        }
                    }
                    Err(error) => {
                        let error = error.to_string();
                        tracing::warn!(%kind, name, %error, kept = self.value.is_some(), "xDS resource NACKed");
                        board.set(kind, name, XdsResourceState::Nacked { error });
                    }
                }
                done
            }
            ResourceEvent::AmbientError { error, done } => {
                tracing::warn!(%kind, name, %error, "xDS error; serving what the pool has");
                done
            }
        }
    }
}

/// What an event holds besides its news: its response's flow-control
/// token (gRPC A88).
trait IntoDone {
    fn into_done(self) -> ProcessingDone;
}

impl<T> IntoDone for ResourceEvent<T> {
    fn into_done(self) -> ProcessingDone {
        match self {
            ResourceEvent::ResourceChanged { done, .. }
            | ResourceEvent::AmbientError { done, .. } => done,
        }
    }
}
