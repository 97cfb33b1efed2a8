//! LDS → RDS → CDS → EDS, as gRPC follows them: the listener names the
//! routes, the virtual host for the target's name picks a route, the route
//! names the cluster, the cluster names its endpoints; each step watches
//! the next, and the endpoints become the pool's through a discovery
//! stream.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::Stream;
use tokio::sync::mpsc;
use xds_client::{
    Error as XdsError, ProcessingDone, Resource, ResourceEvent, ResourceWatcher, XdsClient,
};

use super::bootstrap::{Bootstrap, IGNORE_RESOURCE_DELETION};
use super::resources::{Cluster, Endpoints, LbPolicy, Listener, Route, RouteSource, RouteTable};
use super::{XdsTarget, client};
use crate::config::OutlierDetection;
use crate::discovery::{Announced, Change, Target};
use crate::state::circuit::CircuitBreaker;
use crate::state::discover::PoolView;
use crate::state::ring::RingConfig;
use crate::state::route::RoutePolicy;
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
    circuit: Arc<CircuitBreaker>,
    view: PoolView,
) -> impl Stream<Item = Result<EndpointChange, Infallible>> + Send + 'static {
    let (tx, rx) = mpsc::channel(CHANGES_IN_FLIGHT);
    let start = Some((target, bootstrap, board, circuit, view, tx));
    futures_util::stream::unfold((start, rx), |(mut start, mut rx)| async move {
        if let Some((target, bootstrap, board, circuit, view, tx)) = start.take() {
            tokio::spawn(run(target, bootstrap, board, circuit, view, tx));
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
    circuit: Arc<CircuitBreaker>,
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
    let (outlier_detection, settings) = tokio::sync::watch::channel(None);
    view.follow_outlier_detection(settings);
    let keep_deleted = bootstrap.has_feature(IGNORE_RESOURCE_DELETION);
    let mut cascade = Cascade::new(target, board, circuit, outlier_detection, keep_deleted);
    let listener = cascade.target.listener.clone();
    cascade
        .listener
        .follow(&client, Some(listener), &cascade.board)
        .await;
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
    route: Option<RoutePolicy>,
    ring: Option<RingConfig>,
}

impl Pushed {
    /// Gives the pool the weights, route policy and ring the resources now
    /// say, where they changed; the endpoints to announce.
    fn push(&mut self, cascade: &Cascade, view: &PoolView) -> BTreeMap<SocketAddr, Target> {
        let (addresses, weights) = cascade.addresses();
        if weights != self.weights {
            view.set_weights(weights.clone());
            self.weights = weights;
        }
        let route = cascade.route().map(|r| r.policy.clone());
        if route != self.route {
            view.set_route_policy(route.clone());
            self.route = route;
        }
        let ring = cascade.ring(&addresses);
        if ring != self.ring {
            view.set_ring(ring.clone());
            self.ring = ring;
        }
        addresses
    }
}

/// The four watches and what each last gave.
struct Cascade {
    target: XdsTarget,
    board: Arc<Board>,
    /// The pool's limit on attempts in flight: the cluster's
    /// `max_requests` (gRPC A32).
    circuit: Arc<CircuitBreaker>,
    /// gRPC A53: a resource the control plane drops keeps serving.
    keep_deleted: bool,
    /// The pool's outlier detection: the cluster's (gRPC A50).
    outlier_detection: tokio::sync::watch::Sender<Option<OutlierDetection>>,
    /// The priorities that failed: all their endpoints failed to connect,
    /// and none has been ready since (gRPC A56's TRANSIENT_FAILURE, sticky
    /// until READY, so that a reconnection attempt does not flap).
    failed: BTreeSet<u32>,
    /// The priorities that have had a ready endpoint: one that loses
    /// them all has failed at once, before its reconnection attempts fail
    /// too, so the next priority is connecting while calls wait.
    ready_once: BTreeSet<u32>,
    listener: Watched<Listener>,
    routes: Watched<RouteTable>,
    cluster: Watched<Cluster>,
    endpoints: Watched<Endpoints>,
}

impl Cascade {
    fn new(
        target: XdsTarget,
        board: Arc<Board>,
        circuit: Arc<CircuitBreaker>,
        outlier_detection: tokio::sync::watch::Sender<Option<OutlierDetection>>,
        keep_deleted: bool,
    ) -> Self {
        Self {
            keep_deleted,
            listener: Watched::new(XdsResourceKind::Listener),
            routes: Watched::new(XdsResourceKind::RouteConfiguration),
            cluster: Watched::new(XdsResourceKind::Cluster),
            endpoints: Watched::new(XdsResourceKind::ClusterLoadAssignment),
            board,
            circuit,
            target,
            failed: BTreeSet::new(),
            ready_once: BTreeSet::new(),
            outlier_detection,
        }
    }

    /// The next event of any of the four watches, taken in.
    async fn next_event(&mut self) -> ProcessingDone {
        let (board, keep) = (&*self.board, self.keep_deleted);
        tokio::select! {
            event = self.listener.next() => self.listener.apply(event, board, keep),
            event = self.routes.next() => self.routes.apply(event, board, keep),
            event = self.cluster.next() => self.cluster.apply(event, board, keep),
            event = self.endpoints.next() => self.endpoints.apply(event, board, keep),
        }
    }

    /// Watches what the resources at hand now name, and stops watching
    /// what they no longer name.
    async fn follow(&mut self, client: &XdsClient) {
        let route_name = self.listener.value.as_ref().and_then(|l| match &l.routes {
            RouteSource::Rds(name) => Some(name.clone()),
            RouteSource::Inline(_) => None,
        });
        self.routes.follow(client, route_name, &self.board).await;
        let cluster_name = self.cluster_name();
        self.cluster.follow(client, cluster_name, &self.board).await;
        let eds_name = self
            .cluster
            .value
            .as_ref()
            .map(|c| c.eds_service_name.clone());
        if let (Some(name), Some(cluster)) = (&self.cluster.name, &self.cluster.value) {
            self.circuit.set(name, Some(cluster.max_requests));
            let detection = cluster.outlier_detection.clone();
            // Restarted only when it changes: an interval restarted at
            // every update would never end.
            self.outlier_detection.send_if_modified(|current| {
                let changed = *current != detection;
                *current = detection;
                changed
            });
        }
        self.endpoints.follow(client, eds_name, &self.board).await;
        let drops = self
            .endpoints
            .value
            .as_ref()
            .map(|e| e.drops.clone())
            .unwrap_or_default();
        self.circuit.set_drops(drops);
    }

    /// The route the target's calls take: in the virtual host for the
    /// target's name, the first route that matches every path, else the
    /// first route.
    fn route(&self) -> Option<&Route> {
        let listener = self.listener.value.as_ref()?;
        let table = match &listener.routes {
            RouteSource::Inline(table) => table,
            RouteSource::Rds(_) => self.routes.value.as_deref()?,
        };
        let Some(host) = table.virtual_host_for(&self.target.authority) else {
            tracing::warn!(target = %self.target.authority, "no xDS virtual host matches the target");
            return None;
        };
        host.routes
            .iter()
            .find(|r| r.catch_all)
            .or_else(|| host.routes.first())
    }

    /// The cluster of [`route`](Self::route); of weighted clusters, the
    /// heaviest.
    fn cluster_name(&self) -> Option<String> {
        let mut heaviest: Option<&(String, u32)> = None;
        for cluster in &self.route()?.clusters {
            if heaviest.is_none_or(|h| cluster.1 > h.1) {
                heaviest = Some(cluster);
            }
        }
        heaviest.map(|(name, _)| name.clone())
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
    fn fail_over(&mut self, states: &HashMap<SocketAddr, EndpointState>) -> bool {
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
                    priority,
                    "xDS priority failed; the next one takes the calls"
                );
            }
        }
        self.failed != before
    }

    /// How calls hash onto a ring, for a RING_HASH cluster (gRPC A42):
    /// over `serving`'s endpoints, each weighed as its locality's weight
    /// times its own, the hash made by the route's `hash_policy`.
    fn ring(&self, serving: &BTreeMap<SocketAddr, Target>) -> Option<RingConfig> {
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
            policies: self
                .route()
                .map(|r| r.hash_policy.clone())
                .unwrap_or_default(),
        })
    }

    /// The endpoints that take calls (gRPC A56): those of the lowest
    /// priority that has not failed, with those of the failed priorities
    /// below it, which keep reconnecting and take calls back as soon as
    /// one is ready. A priority fails when none of its endpoints is ready
    /// and one has failed an attempt or it had been ready before, and
    /// recovers when one is ready. grpc-go fails over once every endpoint
    /// has failed (round robin's TRANSIENT_FAILURE); failing over as soon
    /// as none can serve brings the next priority up while the rest still
    /// try, so calls wait for a connection instead of failing when the
    /// last of them fails too.
    ///
    /// Each endpoint's weight is its locality's over the locality's
    /// endpoints (gRPC A27's `wrr_locality`: localities share the calls by
    /// weight, and their endpoints share a locality's evenly, endpoint
    /// weights unused, as grpc-go's round robin and least request leave
    /// them).
    fn addresses(&self) -> (BTreeMap<SocketAddr, Target>, Weights) {
        let Some(endpoints) = self.endpoints.value.clone() else {
            return (BTreeMap::new(), Weights::new());
        };
        let by_priority = self.priorities();
        let chosen = by_priority
            .keys()
            .find(|p| !self.failed.contains(p))
            .or_else(|| by_priority.keys().last())
            .copied();
        let mut weights = Weights::new();
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
        let addresses = by_priority
            .into_iter()
            .filter(|(priority, _)| Some(*priority) <= chosen)
            .flat_map(|(_, addresses)| addresses)
            .map(|address| {
                (
                    address,
                    Target::new(self.target.uri.clone()).connect_to(address),
                )
            })
            .collect();
        (addresses, weights)
    }
}

/// One watched resource: its name, its watcher, and its last good value.
struct Watched<T: Resource> {
    kind: XdsResourceKind,
    name: Option<String>,
    watcher: Option<ResourceWatcher<T>>,
    value: Option<Arc<T>>,
}

impl<T: Resource> Watched<T> {
    fn new(kind: XdsResourceKind) -> Self {
        Self {
            kind,
            name: None,
            watcher: None,
            value: None,
        }
    }

    /// The next event; never, while nothing is watched.
    async fn next(&mut self) -> ResourceEvent<T> {
        if let Some(watcher) = &mut self.watcher
            && let Some(event) = watcher.next().await
        {
            return event;
        }
        // The client's worker is gone, or nothing is watched.
        self.watcher = None;
        std::future::pending().await
    }

    /// Watches `name` from now on (nothing, for `None`).
    async fn follow(&mut self, client: &XdsClient, name: Option<String>, board: &Board) {
        if self.name == name {
            return;
        }
        if let Some(old) = self.name.take() {
            board.forget(self.kind, &old);
        }
        self.watcher = None;
        self.value = None;
        if let Some(name) = &name {
            board.set(self.kind, name, XdsResourceState::Requested);
            self.watcher = Some(client.watch::<T>(name.clone()).await);
        }
        self.name = name;
    }

    /// Takes in an event: a new value, a NACK that keeps the last good
    /// one, or an absence.
    fn apply(
        &mut self,
        event: ResourceEvent<T>,
        board: &Board,
        keep_deleted: bool,
    ) -> ProcessingDone {
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
