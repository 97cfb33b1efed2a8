//! Every streaming shape through one pooled client: server streaming,
//! client streaming and bidirectional streaming, against a route guide
//! server started in-process.
//!
//! Run: `cargo run -p pooled-client-examples --bin route_guide`

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use tonic::transport::server::TcpIncoming;

use futures_util::{Stream, StreamExt};
use pooled_client::Pool;
use pooled_client_examples::routeguide::route_guide_server::{RouteGuide, RouteGuideServer};
use pooled_client_examples::routeguide::{
    Feature, Point, PooledRouteGuideClient, Rectangle, RouteNote, RouteSummary,
};
use tonic::{Request, Response, Status, Streaming};

/// The notes left at each point, by latitude and longitude.
type NotesByPoint = HashMap<(i32, i32), Vec<RouteNote>>;

/// Features on a small grid, and the notes left so far.
#[derive(Default)]
struct Guide {
    notes: Arc<Mutex<NotesByPoint>>,
}

fn feature_at(point: &Point) -> Feature {
    Feature {
        name: format!("hill at {},{}", point.latitude, point.longitude),
        location: Some(*point),
    }
}

type Boxed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl RouteGuide for Guide {
    async fn get_feature(&self, request: Request<Point>) -> Result<Response<Feature>, Status> {
        Ok(Response::new(feature_at(request.get_ref())))
    }

    type ListFeaturesStream = Boxed<Feature>;

    async fn list_features(
        &self,
        request: Request<Rectangle>,
    ) -> Result<Response<Boxed<Feature>>, Status> {
        let rectangle = request.into_inner();
        let (lo, hi) = match (rectangle.lo, rectangle.hi) {
            (Some(lo), Some(hi)) => (lo, hi),
            _ => return Err(Status::invalid_argument("a rectangle needs both corners")),
        };
        let features: Vec<_> = (lo.latitude..=hi.latitude)
            .flat_map(|latitude| {
                (lo.longitude..=hi.longitude).map(move |longitude| Point {
                    latitude,
                    longitude,
                })
            })
            .map(|point| Ok(feature_at(&point)))
            .collect();
        Ok(Response::new(Box::pin(futures_util::stream::iter(
            features,
        ))))
    }

    async fn record_route(
        &self,
        request: Request<Streaming<Point>>,
    ) -> Result<Response<RouteSummary>, Status> {
        let mut points = request.into_inner();
        let mut summary = RouteSummary::default();
        let mut last: Option<Point> = None;
        while let Some(point) = points.next().await {
            let point = point?;
            if let Some(last) = last {
                summary.distance += (point.latitude - last.latitude).abs()
                    + (point.longitude - last.longitude).abs();
            }
            summary.point_count += 1;
            last = Some(point);
        }
        Ok(Response::new(summary))
    }

    type RouteChatStream = Boxed<RouteNote>;

    async fn route_chat(
        &self,
        request: Request<Streaming<RouteNote>>,
    ) -> Result<Response<Boxed<RouteNote>>, Status> {
        let notes = self.notes.clone();
        let answers = request.into_inner().map(move |note| {
            let note = note?;
            let location = note.location.unwrap_or_default();
            let mut notes = notes
                .lock()
                .map_err(|_| Status::internal("notes lock poisoned"))?;
            let here = notes
                .entry((location.latitude, location.longitude))
                .or_default();
            let earlier = here.len();
            here.push(note.clone());
            Ok(RouteNote {
                location: Some(location),
                message: format!("{} (note {} here)", note.message, earlier + 1),
            })
        });
        Ok(Response::new(Box::pin(answers)))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(RouteGuideServer::new(Guide::default()))
            .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true))),
    );

    let pool = Pool::builder().endpoint(format!("http://{addr}")).build()?;
    let guide = PooledRouteGuideClient::new(pool.clone());

    let feature = guide
        .get_feature(Point {
            latitude: 1,
            longitude: 2,
        })
        .await?;
    println!("unary:            {}", feature.into_inner().name);

    let rectangle = Rectangle {
        lo: Some(Point {
            latitude: 0,
            longitude: 0,
        }),
        hi: Some(Point {
            latitude: 1,
            longitude: 1,
        }),
    };
    let mut features = guide.list_features(rectangle).await?.into_inner();
    while let Some(feature) = features.next().await {
        println!("server streaming: {}", feature?.name);
    }

    let route = (0..5).map(|i| Point {
        latitude: i,
        longitude: i * 2,
    });
    let summary = guide
        .record_route(futures_util::stream::iter(route))
        .await?
        .into_inner();
    println!(
        "client streaming: {} points, distance {}",
        summary.point_count, summary.distance
    );

    let notes = ["first", "second", "third"].map(|message| RouteNote {
        location: Some(Point {
            latitude: 7,
            longitude: 7,
        }),
        message: message.to_owned(),
    });
    let mut answers = guide
        .route_chat(futures_util::stream::iter(notes))
        .await?
        .into_inner();
    while let Some(answer) = answers.next().await {
        println!("bidi streaming:   {}", answer?.message);
    }

    println!("pool: {:?}", pool.stats());
    pool.close().await;
    Ok(())
}
